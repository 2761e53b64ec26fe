"""Bearer tokens: JWTs verified with python-jose against the configured JWKS."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cachetools import TTLCache
from jose import ExpiredSignatureError, JWTError, jwt
from jose.exceptions import JWTClaimsError

from api.errors import Unauthorized, Unavailable
from elevate.identity import InvalidName, canonical
from elevate.settings import Settings

ALGORITHMS = ("RS256", "ES256")
_KTY = {"RS256": "RSA", "ES256": "EC"}
_REFETCH_AFTER_S = 30  # an unknown kid refetches the JWKS, at most this often
_FETCH_TIMEOUT_S = 5  # a slow key endpoint answers within this, or the login is 503
_TOKEN_CACHE_S = 60  # a verified token is trusted this long without checking it again


@dataclass(frozen=True)
class User:
    username: str
    groups: tuple[str, ...]
    is_admin: bool
    is_auditor: bool


class JwksVerifier:
    """Verifies tokens against the JWKS, fetched single-flight: one thread fetches while the
    others wait (at most the fetch timeout), known kids never wait, and unknown kids refetch at
    most once per refetch interval, so junk tokens during a slow key endpoint cost nothing."""

    def __init__(
        self,
        settings: Settings,
        refetch_after_s: float = _REFETCH_AFTER_S,
        fetch_timeout_s: float = _FETCH_TIMEOUT_S,
    ) -> None:
        self._settings = settings
        self._refetch_after_s, self._fetch_timeout_s = refetch_after_s, fetch_timeout_s
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._attempted_at = float("-inf")
        self._error: Unavailable | None = None
        self._state = threading.Lock()
        self._inflight: threading.Event | None = None
        self._tokens: TTLCache[str, dict[str, Any]] = TTLCache(4096, _TOKEN_CACHE_S)
        self._tokens_lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        source = self._settings.auth_jwks_url
        try:
            if source.startswith(("https://", "http://")):
                resp = httpx.get(source, timeout=self._fetch_timeout_s)
                resp.raise_for_status()
                data = resp.json()
            else:
                data = json.loads(Path(source).read_text())
            if not isinstance(data, dict) or not isinstance(data.get("keys", []), list):
                raise ValueError("not a JWKS document")
        except (OSError, ValueError, httpx.HTTPError) as err:
            raise Unavailable(
                f"the signing keys could not be loaded: {err}", "jwks_unavailable"
            ) from err
        return data

    def _refresh(self) -> None:
        """Fetch once, whoever asks; the others wait for that fetch instead of starting theirs."""
        with self._state:
            done = self._inflight
            if done is None:
                if time.monotonic() - self._attempted_at <= self._refetch_after_s:
                    return  # fetched (or failed) a moment ago: an unknown kid costs nothing
                self._attempted_at = time.monotonic()
                self._inflight = threading.Event()
        if done is not None:
            done.wait(self._fetch_timeout_s + 1)
            return
        try:
            keys = [k for k in self._load().get("keys", []) if isinstance(k, dict)]
            found: dict[str | None, dict[str, Any]] = {
                k["kid"]: k for k in keys if isinstance(k.get("kid"), str)
            }
            if len(keys) == 1:
                found.setdefault(None, keys[0])
            self._keys, self._error = found, None
        except Unavailable as err:
            self._error = err
        finally:
            with self._state:
                event, self._inflight = self._inflight, None
            if event is not None:
                event.set()

    def _key(self, kid: str | None) -> dict[str, Any] | None:
        key = self._keys.get(kid)
        if key is None:
            self._refresh()
            key = self._keys.get(kid)
        if key is None and not self._keys and self._error is not None:
            raise self._error  # no keys at all: the key endpoint is down, not the token wrong
        return key

    def _signing_key(self, token: str) -> tuple[str, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as err:
            raise Unauthorized("the token is not a well-formed JWT", "invalid_token") from err
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise Unauthorized(f"tokens signed with {alg!r} are not accepted", "invalid_token")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("the token's kid must be a string", "invalid_token")
        key = self._key(kid)
        if key is None or key.get("kty") != _KTY[alg]:
            raise Unauthorized("the token is signed with an unknown key", "invalid_token")
        return alg, key

    def _cached(self, token: str) -> dict[str, Any] | None:
        with self._tokens_lock:
            claims = self._tokens.get(token)
        if claims is None or claims["exp"] + self._settings.auth_leeway_seconds < time.time():
            return None
        return claims

    def verify(self, token: str) -> dict[str, Any]:
        if (cached := self._cached(token)) is not None:
            return cached
        alg, key = self._signing_key(token)
        s = self._settings
        options = {"require_exp": True, "require_aud": True, "leeway": s.auth_leeway_seconds}
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=s.auth_audience,
                issuer=s.auth_issuer,
                options=options,
            )
        except ExpiredSignatureError as err:
            raise Unauthorized("the token has expired", "token_expired") from err
        except JWTClaimsError as err:
            raise Unauthorized(
                f"the token's claims are not accepted: {err}", "invalid_token"
            ) from err
        except JWTError as err:
            raise Unauthorized(f"the token could not be verified: {err}", "invalid_token") from err
        if not isinstance(claims.get("exp"), int | float):
            raise Unauthorized("the token's exp must be a number", "invalid_token")
        with self._tokens_lock:
            self._tokens[token] = claims
        return claims

    def user(self, token: str) -> User:
        return self.user_from_claims(self.verify(token))

    def known_user(self, token: str) -> User | None:
        """The caller of a token verified before and not expired; None for any other."""
        claims = self._cached(token)
        return None if claims is None else self.user_from_claims(claims)

    def user_from_claims(self, claims: dict[str, Any]) -> User:
        """The caller as verified claims name them: a bearer token, an ID token, dev sign-in."""
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
