"""The web app (API.md "Web app"): pages served by the API, signed in with OpenID Connect."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api import errors
from api.web import audit_pages, routes, signin
from api.web.render import refusal
from api.web.session import COOKIE, SignInRequired, cookie_is_secure
from elevate.settings import Settings

log = logging.getLogger("elevate.api.web")
_API_PATHS = ("/v1/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
_REQUEST_LINK = re.compile(r"^/v1/requests/([0-9a-fA-F-]{36})$")


class DeepLinks:
    """A notification's link opened in a browser (no token, wants HTML) lands on the page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = _REQUEST_LINK.match(scope["path"])
            headers = dict(scope["headers"])
            if (
                match
                and b"authorization" not in headers
                and b"text/html" in headers.get(b"accept", b"")
            ):
                await RedirectResponse(f"/requests/{match[1]}", 303)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _sign_in_first(request: Request, _: Exception) -> Response:
    if request.query_params.get("part"):
        return PlainTextResponse("signed out", status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/requests"  # a form posted after the session ended: nothing to come back to
    return RedirectResponse(f"/login?next={target}", status_code=303)


async def _api_error(request: Request, exc: Exception) -> Response:
    """Pages get an HTML refusal in role="alert"; the REST API keeps its JSON body."""
    assert isinstance(exc, errors.ApiError)
    if request.url.path.startswith(_API_PATHS):
        return errors.error_response(exc.status, exc.code, exc.detail, exc.fields)
    return refusal(request, exc.status, exc.detail)


def install(app: FastAPI, settings: Settings) -> None:
    secret = settings.ui_session_secret
    if secret is None:
        log.warning("ELEVATE_UI_SESSION_SECRET is not set; sessions end when this process does")
        secret = secrets.token_urlsafe(32)
    app.state.oidc = signin.oidc_client(settings)
    app.state.id_verifier = signin.id_token_verifier(settings)
    app.add_middleware(DeepLinks)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=COOKIE,
        max_age=settings.ui_session_hours * 3600,
        same_site="lax",
        https_only=cookie_is_secure(settings),
    )
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(errors.ApiError, _api_error)
    for module in (routes, audit_pages, signin):
        app.include_router(module.router)
    static = Path(__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
