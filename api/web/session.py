"""The web app's session: who is signed in (a signed cookie) and the CSRF token of its forms."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request

from api.auth import JwksVerifier, User
from api.errors import NotAllowed
from elevate.settings import Settings

COOKIE = "elevate_session"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class SignInRequired(Exception):
    """A page asked for a signed-in user and the session has none: send the browser to sign in."""


def cookie_is_secure(settings: Settings) -> bool:
    """Secure unless the app is served over plain http on a loopback address (the dev stack)."""
    url = urlsplit(settings.public_url)
    return not (url.scheme == "http" and url.hostname in _LOOPBACK)


def sign_in(request: Request, username: str, groups: list[str]) -> None:
    """Start a fresh session (a new CSRF token too) for a verified user."""
    settings: Settings = request.app.state.settings
    request.session.clear()
    request.session["user"] = {
        settings.auth_username_claim: username,
        settings.auth_groups_claim: groups,
    }


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def _check_csrf(request: Request) -> None:
    form = await request.form()
    sent, expected = form.get("csrf_token"), request.session.get("csrf")
    if not (isinstance(sent, str) and isinstance(expected, str)):
        raise NotAllowed("the form has no valid CSRF token; reload the page", "csrf_failed")
    if not secrets.compare_digest(sent, expected):
        raise NotAllowed("the form has no valid CSRF token; reload the page", "csrf_failed")


def current(request: Request) -> User | None:
    claims: Any = request.session.get("user")
    if not isinstance(claims, dict):
        return None
    verifier: JwksVerifier = request.app.state.verifier
    return verifier.user_from_claims(claims)  # the bearer token's rules: roles, canonical name


def _web_user(request: Request) -> User:
    user = current(request)
    if user is None:
        raise SignInRequired
    return user


WebUser = Annotated[User, Depends(_web_user)]
CsrfChecked = Depends(_check_csrf)
