"""The web app's own rules that need no browser: cookie flags, ID token audience, wording."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from api.errors import Unauthorized
from api.web.render import duration_words
from api.web.session import cookie_is_secure
from api.web.signin import id_token_verifier
from elevate.devstack.keys import ensure_dev_key, mint_token
from elevate.settings import Settings


@pytest.mark.parametrize(
    ("public_url", "secure"),
    [
        ("http://localhost:8000", False),
        ("http://127.0.0.1:8000", False),
        ("http://[::1]:8000", False),
        ("https://localhost", True),
        ("https://elevate.example.com", True),
        ("http://elevate.example.com", True),  # plain http elsewhere still gets Secure
    ],
)
def test_the_session_cookie_is_secure_unless_http_on_loopback(
    public_url: str, secure: bool
) -> None:
    assert cookie_is_secure(Settings(public_url=public_url)) is secure


def test_an_id_token_is_checked_against_the_ui_client_not_the_api_audience(
    tmp_path: Path,
) -> None:
    key = tmp_path / "key.pem"
    jwks = ensure_dev_key(key)
    settings = Settings(
        auth_jwks_url=str(jwks),
        auth_issuer="https://idp",
        auth_audience="elevate-api",
        ui_client_id="elevate-web",
    )
    verifier = id_token_verifier(settings)

    def token(audience: str) -> str:
        return mint_token(
            "Alice@example.com",
            ["developers"],
            issuer="https://idp",
            audience=audience,
            key_path=key,
        )

    assert verifier.user(token("elevate-web")).groups == ("developers",)
    for audience in ("elevate-api", "other-app"):
        with pytest.raises(Unauthorized):
            verifier.user(token(audience))


@pytest.mark.parametrize(
    ("duration", "words"),
    [
        (timedelta(hours=2), "2 hours"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=90), "1 hour 30 minutes"),
        (timedelta(minutes=15), "15 minutes"),
        (timedelta(days=1, hours=1), "1 day 1 hour"),
    ],
)
def test_durations_read_as_people_say_them(duration: timedelta, words: str) -> None:
    assert duration_words(duration) == words
