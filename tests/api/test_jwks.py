"""The JWKS behind token checks, served by a local HTTP server that counts its fetches."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from api.auth import JwksVerifier
from api.errors import Unauthorized, Unavailable
from elevate.devstack.keys import ensure_dev_key, mint_token
from elevate.settings import Settings

ISSUER, AUDIENCE = "https://idp.jwks.test", "elevate-jwks"


@dataclass
class KeyServer:
    url: str
    jwks: bytes
    fetches: int = 0
    delay: float = 0.0


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    path = tmp_path / "key.pem"
    ensure_dev_key(path)
    return path


@pytest.fixture
def server(key_path: Path) -> Iterator[KeyServer]:
    state = KeyServer("", key_path.with_name("jwks.json").read_bytes())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            time.sleep(state.delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state.jwks)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()


def verifier(server: KeyServer, **kw: float) -> JwksVerifier:
    settings = Settings(
        auth_jwks_url=server.url, auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_leeway_seconds=0
    )
    return JwksVerifier(settings, **kw)


def token(key_path: Path, **kw: object) -> str:
    return mint_token(
        "alice@example.com", [], issuer=ISSUER, audience=AUDIENCE, key_path=key_path, **kw
    )  # type: ignore[arg-type]


def _unsigned_with_kid(kid: str) -> str:
    """Junk an attacker sends for free: no signing, a fresh kid each time."""
    header = json.dumps({"alg": "RS256", "kid": kid}).encode()
    body = json.dumps({"sub": "x", "aud": AUDIENCE}).encode()
    return f"{_b64(header)}.{_b64(body)}.{_b64(b'sig')}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_flood_of_unknown_kids_costs_no_fetches(server: KeyServer, key_path: Path) -> None:
    v = verifier(server, refetch_after_s=30)
    assert v.user(token(key_path)).username == "alice@example.com"
    assert server.fetches == 1

    def junk(_: int) -> str:
        try:
            v.verify(_unsigned_with_kid(str(uuid.uuid4())))
        except Unauthorized as err:
            return err.code
        return "accepted"

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(junk, range(500)))
    assert set(answers) == {"invalid_token"}
    assert server.fetches <= 2  # at most the one refresh the interval allows


def test_concurrent_first_logins_fetch_once(server: KeyServer, key_path: Path) -> None:
    server.delay = 0.5
    v = verifier(server)
    with ThreadPoolExecutor(16) as pool:
        users = list(pool.map(lambda _: v.user(token(key_path)).username, range(32)))
    assert set(users) == {"alice@example.com"}
    assert server.fetches == 1


def test_a_slow_key_endpoint_stalls_no_login_with_a_known_key(
    server: KeyServer, key_path: Path
) -> None:
    v = verifier(server, refetch_after_s=0)
    good = token(key_path)
    v.verify(good)
    server.delay = 3
    junk = threading.Thread(
        target=lambda: pytest.raises(Unauthorized, v.verify, token(key_path, kid="x"))
    )
    junk.start()
    login = token(key_path, ttl_seconds=100)
    time.sleep(0.2)  # the junk token's refetch is now in flight
    started = time.monotonic()
    assert v.user(login).username == "alice@example.com"
    assert time.monotonic() - started < 1.5
    junk.join()


def test_a_hanging_key_endpoint_is_503_within_the_timeout(
    server: KeyServer, key_path: Path
) -> None:
    server.delay = 2
    v = verifier(server, fetch_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        v.verify(token(key_path))
    assert time.monotonic() - started < 2


def test_a_cached_token_still_expires(server: KeyServer, key_path: Path) -> None:
    v = verifier(server)
    short = token(key_path, ttl_seconds=1)
    v.verify(short)
    v.verify(short)
    time.sleep(2.5)  # python-jose compares whole seconds
    with pytest.raises(Unauthorized) as refused:
        v.verify(short)
    assert refused.value.code == "token_expired"


def test_a_jwks_that_is_not_a_key_set_is_503(server: KeyServer, key_path: Path) -> None:
    server.jwks = json.dumps(["not", "a", "jwks"]).encode()
    with pytest.raises(Unavailable):
        verifier(server).verify(token(key_path))
