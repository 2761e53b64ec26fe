"""Sign-in: OpenID Connect code flow with PKCE (Authlib), the dev sign-in, and sign-out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from httpx import HTTPError
from joserfc.errors import JoseError

from api.auth import JwksVerifier
from api.errors import ApiError, NotFound
from api.web.render import page, refusal
from api.web.session import CsrfChecked, current, sign_in
from elevate.settings import Settings

log = logging.getLogger("elevate.api.web")
router = APIRouter(include_in_schema=False)


def oidc_client(settings: Settings) -> Any:
    """Authlib's client for the issuer, or None when no UI client is configured."""
    if not settings.ui_client_id:
        return None
    oauth = OAuth()
    oauth.register(
        name="elevate",
        client_id=settings.ui_client_id,
        client_secret=settings.ui_client_secret,
        server_metadata_url=f"{settings.auth_issuer.rstrip('/')}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile groups", "code_challenge_method": "S256"},
    )
    return oauth.create_client("elevate")


def id_token_verifier(settings: Settings) -> JwksVerifier:
    """The bearer token's verifier, with the UI client as the audience an ID token names."""
    return JwksVerifier(settings.model_copy(update={"auth_audience": settings.ui_client_id}))


def _callback_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}/auth/callback"


@router.get("/login")
async def login(request: Request, next: str = "/requests") -> Response:
    settings: Settings = request.app.state.settings
    client = request.app.state.oidc
    local = next.startswith("/") and not next.startswith(("//", "/\\"))
    target = next if local else "/requests"  # never off to another site after sign-in
    request.session["next"] = target
    if client is None:
        if settings.ui_dev_login:
            return RedirectResponse("/dev/login", status_code=303)
        return refusal(request, 503, "no sign-in is configured (ELEVATE_UI_CLIENT_ID)")
    try:
        redirect = await client.authorize_redirect(request, _callback_url(settings))
    except (HTTPError, AuthlibBaseError) as err:
        return refusal(request, 503, f"the identity provider did not answer: {err}")
    response: Response = redirect
    return response


@router.get("/auth/callback")
async def callback(request: Request) -> Response:
    client = request.app.state.oidc
    if client is None:
        raise NotFound("no sign-in is configured")
    try:
        token = await client.authorize_access_token(request)
        user = request.app.state.id_verifier.user(token.get("id_token", ""))
    except (AuthlibBaseError, JoseError, HTTPError, ApiError) as err:
        log.info("sign-in refused: %s", err)
        return refusal(request, 401, f"sign-in refused: {_reason(err)}", "Sign-in refused")
    target = request.session.get("next", "/requests")
    sign_in(request, user.username, list(user.groups))
    return RedirectResponse(target, status_code=303)


def _reason(err: Exception) -> str:
    if isinstance(err, ApiError):
        return err.detail
    if isinstance(err, AuthlibBaseError):
        return err.description or err.error or "the identity provider's answer was not accepted"
    return str(err)


def dev_users(settings: Settings) -> dict[str, list[str]]:
    path: Path | None = settings.ui_dev_users
    if path is None or not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {str(k): [str(g) for g in v or []] for k, v in data.items()}


def _dev_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if not settings.ui_dev_login:
        raise NotFound("no such path")
    return settings


@router.get("/dev/login")
def dev_login_page(request: Request) -> Response:
    users = dev_users(_dev_settings(request))
    return page(request, "dev_login.html", users=users)


@router.post("/dev/login", dependencies=[CsrfChecked])
async def dev_login(request: Request) -> Response:
    users = dev_users(_dev_settings(request))
    username = (await request.form()).get("username")
    if not isinstance(username, str) or username not in users:
        return refusal(request, 403, "that user is not in the dev users file")
    target = request.session.get("next", "/requests")
    sign_in(request, username, users[username])
    return RedirectResponse(target, status_code=303)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> Response:
    was = current(request)
    request.session.clear()
    return page(request, "signed_out.html", was=was)
