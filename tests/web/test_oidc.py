"""Sign-in through a real OpenID provider (node-oidc-provider, its own process): code + PKCE."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from elevate.devstack import processes
from tests.stack import Stack

pytestmark = pytest.mark.integration

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
ALICE = "alice@example.com"


@dataclass
class Oidc:
    issuer: str
    app: str  # the API signed in through the provider

    @property
    def callback(self) -> str:
        return f"{self.app}/auth/callback"


def _node_ready() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the OpenID provider (tests/oidc)")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True)


@pytest.fixture(scope="module")
def oidc(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oidc]:
    _node_ready()
    logs = tmp_path_factory.mktemp("oidc")
    idp_port, api_port = processes.free_port(), processes.free_port()
    issuer, app = f"http://127.0.0.1:{idp_port}", f"http://127.0.0.1:{api_port}"
    idp = processes.spawn(
        ["node", str(OIDC_DIR / "provider.mjs")],
        {
            "OIDC_PORT": str(idp_port),
            "OIDC_ISSUER": issuer,
            "OIDC_REDIRECT_URI": f"{app}/auth/callback",
        },
        logs / "oidc.log",
    )
    procs = [idp]
    try:
        processes.wait_until(lambda: processes.port_open("127.0.0.1", idp_port), "oidc", 30, idp)
        env = {
            **stack.env,
            "ELEVATE_AUTH_ISSUER": issuer,
            "ELEVATE_AUTH_JWKS_URL": f"{issuer}/jwks",
            "ELEVATE_UI_CLIENT_ID": "elevate-web",
            "ELEVATE_UI_CLIENT_SECRET": "elevate-web-secret",
            "ELEVATE_PUBLIC_URL": app,
            "ELEVATE_UI_DEV_LOGIN": "false",
        }
        procs.append(processes.start_elevate(["api", "--port", str(api_port)], env, logs / "a.log"))
        processes.wait_until(lambda: processes.http_ok(f"{app}/readyz"), "the API", 60, procs[-1])
        yield Oidc(issuer, app)
    finally:
        processes.stop(procs)


def _log_in_at_provider(page: Any) -> None:
    page.locator('input[name="login"]').fill(ALICE)
    page.locator('input[name="password"]').fill("any")
    page.locator('button[type="submit"]').click()


def _to_callback(c: httpx.Client, oidc: Oidc, url: str) -> str:
    """Walk the provider's redirects (logging in when it asks) as a browser would, stopping at
    the redirect back to elevate; that callback URL (code, state) is returned unvisited."""
    for _ in range(10):
        if url.startswith(oidc.callback):
            return url
        r = c.get(url)
        form = re.search(r'<form[^>]*action="([^"]+)"', r.text) if r.status_code == 200 else None
        if form:
            hidden = dict(
                re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', r.text)
            )
            fields = {**hidden, "login": ALICE, "password": "any"}
            r = c.post(urljoin(url, form[1]), data=fields)
        assert r.status_code in (302, 303), r.text
        url = urljoin(url, r.headers["location"])
    pytest.fail("the provider did not redirect back to elevate")


def _begin(c: httpx.Client, oidc: Oidc) -> str:
    """elevate's redirect to the provider's authorization endpoint."""
    r = c.get(f"{oidc.app}/login")
    assert r.status_code == 302, r.text
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["client_id"] == ["elevate-web"]
    assert query["code_challenge_method"] == ["S256"]  # PKCE
    return str(r.headers["location"])


def _start(c: httpx.Client, oidc: Oidc) -> str:
    return _to_callback(c, oidc, _begin(c, oidc))


def _with(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | params
    return parts._replace(query=urlencode(query)).geturl()


def _assert_refused(c: httpx.Client, oidc: Oidc, r: httpx.Response, reason: str = "") -> None:
    assert r.status_code == 401, r.text
    alert = re.search(r'role="alert"[^>]*>([^<]*)<', r.text)
    assert alert, r.text
    assert "sign-in refused" in alert[1]
    assert re.search(reason, alert[1]), alert[1]
    signed_in = c.get(f"{oidc.app}/requests")
    assert signed_in.status_code == 303  # still nobody: off to sign in
    assert signed_in.headers["location"].startswith("/login")


@pytest.fixture
def browserless() -> Iterator[httpx.Client]:
    """A client that holds cookies and follows no redirect, so each hop can be tampered with."""
    with httpx.Client(follow_redirects=False, timeout=15) as c:
        yield c


def test_sign_in_shows_the_users_requests(stack: Stack, oidc: Oidc, new_page: Any) -> None:
    with stack.client(ALICE) as c:
        created = c.post(
            "/v1/requests",
            json={
                "account_id": stack.org.accounts["staging"],
                "permission_set": "ReadOnly",
                "duration": "PT30M",
                "justification": "oidc sign-in",
            },
        )
    assert created.status_code == 201, created.text
    page = new_page()
    page.goto(f"{oidc.app}/requests")
    page.wait_for_url(re.compile(re.escape(oidc.issuer)))  # off to the provider
    _log_in_at_provider(page)
    page.wait_for_url(f"{oidc.app}/requests")
    assert page.get_by_text(ALICE).first.is_visible()
    assert page.locator(f'a[href="/requests/{created.json()["id"]}"]').count() == 1
    assert httpx.get(f"{oidc.app}/dev/login").status_code == 404  # off unless turned on


def test_a_wrong_state_is_refused(oidc: Oidc, browserless: httpx.Client) -> None:
    callback = _start(browserless, oidc)
    r = browserless.get(_with(callback, state="not-the-state-elevate-sent"))
    _assert_refused(browserless, oidc, r)


def test_a_replayed_code_is_refused(oidc: Oidc, browserless: httpx.Client) -> None:
    c = browserless
    callback = _start(c, oidc)
    before = c.cookies["elevate_session"]  # holds this sign-in's state and PKCE verifier
    first = c.get(callback)
    assert first.status_code == 303, first.text
    assert first.headers["location"] == "/requests"
    c.cookies.delete("elevate_session")
    c.cookies.set("elevate_session", before, domain="127.0.0.1")  # all as before but the code
    _assert_refused(c, oidc, c.get(callback), "grant")  # the provider: invalid_grant


def test_an_id_token_for_another_audience_is_refused(oidc: Oidc, browserless: httpx.Client) -> None:
    c = browserless
    authorize = _begin(c, oidc)
    nonce = parse_qs(urlsplit(authorize).query)["nonce"][0]
    other = _id_token_for_other_app(c, oidc, nonce)  # right user, issuer, nonce; wrong audience
    httpx.post(f"{oidc.issuer}/__test/next-id-token", content=other).raise_for_status()
    callback = _to_callback(c, oidc, authorize)  # /token will hand over the other app's token
    _assert_refused(c, oidc, c.get(callback), "aud|azp")  # whose client the token is for


def _id_token_for_other_app(c: httpx.Client, oidc: Oidc, nonce: str) -> str:
    """A genuine ID token of the same provider, for the same user, issued to another client."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "client_id": "other-app",
        "response_type": "code",
        "scope": "openid email groups",
        "redirect_uri": oidc.callback,
        "state": "s",
        "nonce": nonce,
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }
    callback = _to_callback(c, oidc, f"{oidc.issuer}/auth?{urlencode(params)}")
    token = httpx.post(
        f"{oidc.issuer}/token",
        auth=("other-app", "other-app-secret"),
        data={
            "grant_type": "authorization_code",
            "code": parse_qs(urlsplit(callback).query)["code"][0],
            "redirect_uri": oidc.callback,
            "code_verifier": verifier,
        },
    )
    token.raise_for_status()
    claims = json.loads(base64.urlsafe_b64decode(token.json()["id_token"].split(".")[1] + "=="))
    assert claims["aud"] == "other-app"
    assert claims["email"] == ALICE
    return str(token.json()["id_token"])
