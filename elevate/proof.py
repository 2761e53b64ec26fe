"""Proof that a workflow message was made by the API or the worker: an HMAC over its fields.

Reaching the Temporal frontend must not be enough to approve as someone or to be granted an
assignment. The API and the worker hold `ELEVATE_MESSAGE_KEY`; every message they send carries
`proof` = HMAC-SHA256 over (kind, the workflow it is for, its fields), and the workflows check it.
The workflow id is covered, so a genuine approval cannot be replayed to another request, and the
kind (the update or signal name), so an approval cannot be replayed as a rejection.

Stdlib only: workflow code imports this (passed through the sandbox). The key reaches workflow
code through `configure()` at worker start, never through a workflow input or history.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# Set once when the worker starts; the first key signs, every key verifies (rotation).
_keys: tuple[bytes, ...] = ()


def configure(keys: Sequence[str]) -> None:
    global _keys
    _keys = tuple(k.encode() for k in keys if k)


def configured() -> bool:
    return bool(_keys)


def _body(kind: str, fields: Mapping[str, Any]) -> bytes:
    return json.dumps([kind, fields], sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(key: bytes, kind: str, fields: Mapping[str, Any]) -> str:
    return hmac.new(key, _body(kind, fields), hashlib.sha256).hexdigest()


def verify(keys: Sequence[bytes], kind: str, fields: Mapping[str, Any], proof: str | None) -> bool:
    if not isinstance(proof, str):
        return False
    return any(hmac.compare_digest(sign(k, kind, fields), proof) for k in keys)


def fields_of(message: Any, target: str) -> dict[str, Any]:
    """What a proof covers: every field of the message but the proof, and the target workflow."""
    fields = {k: v for k, v in dataclasses.asdict(message).items() if k != "proof"}
    return {"to": target, "message": fields}


def seal(message: T, kind: str, target: str, key: str) -> T:
    """The message with its proof, for `kind` (update or signal name) sent to workflow `target`."""
    proof = sign(key.encode(), kind, fields_of(message, target))
    return dataclasses.replace(message, proof=proof)  # type: ignore[type-var]


def genuine(message: Any, kind: str, target: str) -> bool:
    """True when the message's proof is right; without a configured key nothing can be checked
    (workflow tests in-process), and the worker refuses to start without one."""
    if not _keys:
        return True
    return verify(_keys, kind, fields_of(message, target), getattr(message, "proof", None))
