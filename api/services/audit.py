"""The business steps behind /v1/audit: read the trail, and check that nobody rewrote it."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select

from api.errors import Invalid
from api.pagination import decode, encode
from elevate import audit
from elevate.models import AuditEvent

_CURSOR_TAG = "audit"  # a cursor of another list is not a position in this one


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    actor: str
    action: str
    request_id: str | None
    details: dict[str, Any]
    hash: str
    prev_hash: str


class VerifyOut(BaseModel):
    ok: bool
    events: int
    first_broken_seq: int | None = None


def list_events(
    session: Session,
    *,
    since: datetime | None,
    until: datetime | None,
    request_id: str | None,
    actor: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    stmt = select(AuditEvent)
    if since is not None:
        stmt = stmt.where(col(AuditEvent.at) >= since)
    if until is not None:
        stmt = stmt.where(col(AuditEvent.at) < until)
    if request_id is not None:
        stmt = stmt.where(AuditEvent.request_id == request_id)
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if cursor:
        stmt = stmt.where(col(AuditEvent.seq) < _position(cursor))
    rows = session.exec(stmt.order_by(col(AuditEvent.seq).desc()).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = encode([_CURSOR_TAG, page[-1].seq]) if len(rows) > limit else None
    return {"items": [AuditEventOut.model_validate(e) for e in page], "next_cursor": next_cursor}


def _position(cursor: str) -> int:
    tag, seq = decode(cursor, (str, int))
    if tag != _CURSOR_TAG:
        raise Invalid("the cursor is not one this API issued", "invalid_cursor", ["cursor"])
    return int(seq)


def verify(session: Session) -> VerifyOut:
    return VerifyOut(**asdict(audit.verify(session)))
