"""Bearer tokens: JWTs verified with python-jose against the configured JWKS."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from jose import ExpiredSignatureError, JWTError, jwt
from jose.exceptions import JWTClaimsError

from api.errors import Unauthorized, Unavailable
from elevate.identity import InvalidName, canonical
from elevate.settings import Settings

ALGORITHMS = ("RS256", "ES256")
_KTY = {"RS256": "RSA", "ES256": "EC"}
_REFETCH_AFTER_S = 30  # an unknown kid refetches the JWKS, at most this often


@dataclass(frozen=True)
class User:
    username: str
    groups: tuple[str, ...]
    is_admin: bool
    is_auditor: bool


class JwksVerifier:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        source = self._settings.auth_jwks_url
        try:
            if source.startswith(("https://", "http://")):
                resp = httpx.get(source, timeout=5)
                resp.raise_for_status()
                data: dict[str, Any] = resp.json()
            else:
                data = json.loads(Path(source).read_text())
        except (OSError, ValueError, httpx.HTTPError) as err:
            raise Unavailable(
                f"the signing keys could not be loaded: {err}", "jwks_unavailable"
            ) from err
        return data

    def _key(self, kid: str | None) -> dict[str, Any] | None:
        with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at > _REFETCH_AFTER_S:
                keys = self._load().get("keys", [])
                self._keys = {k.get("kid"): k for k in keys}
                if len(keys) == 1:
                    self._keys.setdefault(None, keys[0])
                self._fetched_at = time.monotonic()
            return self._keys.get(kid)

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as err:
            raise Unauthorized("the token is not a well-formed JWT", "invalid_token") from err
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise Unauthorized(f"tokens signed with {alg!r} are not accepted", "invalid_token")
        key = self._key(header.get("kid"))
        if key is None or key.get("kty") != _KTY[alg]:
            raise Unauthorized("the token is signed with an unknown key", "invalid_token")
        s = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=s.auth_audience,
                issuer=s.auth_issuer,
                options={"require_exp": True, "leeway": s.auth_leeway_seconds},
            )
        except ExpiredSignatureError as err:
            raise Unauthorized("the token has expired", "token_expired") from err
        except JWTClaimsError as err:
            raise Unauthorized(
                f"the token's claims are not accepted: {err}", "invalid_token"
            ) from err
        except JWTError as err:
            raise Unauthorized(f"the token could not be verified: {err}", "invalid_token") from err
        return claims

    def user(self, token: str) -> User:
        claims = self.verify(token)
        s = self._settings
        username = claims.get(s.auth_username_claim)
        if not isinstance(username, str) or not username:
            raise Unauthorized(f"the token has no {s.auth_username_claim!r} claim", "invalid_token")
        if s.auth_username_claim == "email" and claims.get("email_verified") is False:
            raise Unauthorized("the token's email is not verified", "invalid_token")
        try:
            username = canonical(username)
        except InvalidName as err:
            raise Unauthorized(
                f"the token's username is not accepted: {err}", "invalid_token"
            ) from err
        groups = claims.get(s.auth_groups_claim, [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise Unauthorized(
                f"the {s.auth_groups_claim!r} claim must be a list of strings", "invalid_token"
            )
        return User(
            username=username,
            groups=tuple(groups),
            is_admin=s.admin_group in groups,
            is_auditor=s.auditor_group in groups,
        )
