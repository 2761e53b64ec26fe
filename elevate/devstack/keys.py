"""The dev stack's signing key: an RSA key, its JWKS, and tokens minted with it."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt

from elevate.settings import STATE_DIR

KEY_PATH = STATE_DIR / "dev-signing-key.pem"
MESSAGE_KEY_PATH = STATE_DIR / "message-key"
KID = "elevate-dev-1"


def ensure_message_key(path: Path = MESSAGE_KEY_PATH) -> str:
    """The dev stack's ELEVATE_MESSAGE_KEY, made once and kept: workflows in the Temporal
    database replay the lease checks they made with it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_dev_key(key_path: Path = KEY_PATH, jwks_path: Path | None = None) -> Path:
    """Create the key (once) and write its public JWKS next to it; returns the JWKS path."""
    jwks_path = jwks_path or key_path.with_name("jwks.json")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    if not key_path.exists():
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key_path.write_bytes(pem)
        key_path.chmod(0o600)
    private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = jwk.construct(public_pem.decode(), "RS256").to_dict()
    public.update({"kid": KID, "use": "sig", "alg": "RS256"})
    jwks_path.write_text(json.dumps({"keys": [public]}, indent=2))
    return jwks_path


def mint_token(
    username: str,
    groups: list[str],
    *,
    issuer: str,
    audience: str,
    username_claim: str = "email",
    groups_claim: str = "groups",
    ttl_seconds: int = 8 * 3600,
    key_path: Path = KEY_PATH,
    extra: dict[str, object] | None = None,
    kid: object = KID,
) -> str:
    """A signed token; `extra` adds claims (a None value removes one), `kid` may be anything
    a header can hold, so tests can mint the malformed tokens an attacker would."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": username,
        username_claim: username,
        groups_claim: groups,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    claims.update(extra or {})
    claims = {k: v for k, v in claims.items() if v is not None}
    key = key_path.read_text()
    return str(jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid}))
