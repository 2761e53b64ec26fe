"""Every way a token can be wrong ends in 401 with the error body, against the running API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from tests.stack import AUDIENCE, ISSUER, KID, Stack


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "email": "alice@example.com",
        "groups": ["developers"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _unsigned(
    header: dict[str, object], claims: dict[str, object], key: bytes | None = None
) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{_b64(sig)}"


def _other_key_token() -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jwt.encode(_claims(), pem.decode(), algorithm="RS256", headers={"kid": KID})


def _bad_tokens(stack: Stack) -> dict[str, str]:
    sign = stack.key_path.read_text()
    public = json.loads((stack.key_path.with_name("jwks.json")).read_text())["keys"][0]
    return {
        "malformed": "not-a-jwt",
        "wrong key": _other_key_token(),
        "expired": jwt.encode(
            _claims(exp=int(time.time()) - 3600), sign, "RS256", headers={"kid": KID}
        ),
        "no exp": jwt.encode(_claims(exp=None), sign, "RS256", headers={"kid": KID}),
        "wrong issuer": jwt.encode(
            _claims(iss="https://evil"), sign, "RS256", headers={"kid": KID}
        ),
        "wrong audience": jwt.encode(_claims(aud="other"), sign, "RS256", headers={"kid": KID}),
        "alg none": _unsigned({"alg": "none", "typ": "JWT", "kid": KID}, _claims()),
        "HS256 with the public key": _unsigned(
            {"alg": "HS256", "typ": "JWT", "kid": KID}, _claims(), json.dumps(public).encode()
        ),
        "HS256 with the public PEM": _unsigned(
            {"alg": "HS256", "typ": "JWT", "kid": KID},
            _claims(),
            _public_pem(stack),
        ),
        "no username claim": jwt.encode(_claims(email=None), sign, "RS256", headers={"kid": KID}),
    }


def _public_pem(stack: Stack) -> bytes:
    private = serialization.load_pem_private_key(stack.key_path.read_bytes(), password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


CASES = [
    "malformed",
    "wrong key",
    "expired",
    "no exp",
    "wrong issuer",
    "wrong audience",
    "alg none",
    "HS256 with the public key",
    "HS256 with the public PEM",
    "no username claim",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_token_is_401(stack: Stack, case: str) -> None:
    token = _bad_tokens(stack)[case]
    resp = httpx.get(f"{stack.base}/v1/requests", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"}
    assert body["detail"]


def test_missing_token_is_401(stack: Stack) -> None:
    resp = httpx.get(f"{stack.base}/v1/requests")
    assert resp.status_code == 401
    assert resp.json()["error"] == "missing_token"


def test_valid_token_is_accepted(stack: Stack) -> None:
    with stack.client("alice@example.com") as c:
        assert c.get("/v1/requests").status_code == 200
