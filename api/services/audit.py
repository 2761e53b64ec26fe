"""The business steps behind /v1/audit: read the trail, and check that nobody rewrote it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from api.errors import Invalid, Unavailable
from api.pagination import decode, encode
from elevate import audit_anchor
from elevate.contracts import Checkpoint
from elevate.models import AuditEvent
from elevate.providers.aws import client
from elevate.settings import Settings

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


class CheckpointOut(BaseModel):
    seq: int
    at: datetime


class VerifyOut(BaseModel):
    ok: bool
    events: int
    first_broken_seq: int | None = None
    checkpoint: CheckpointOut | None = Field(
        default=None, description="the newest checkpoint kept outside the database"
    )


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


def verify(
    session: Session, settings: Settings, checkpoints: list[Checkpoint] | None, full: bool
) -> VerifyOut:
    """The chain against the workflow's checkpoints, else (Temporal down) the S3 anchors."""
    if checkpoints is None and settings.audit_anchor_bucket:
        try:
            s3 = client("s3", settings.aws_region)
            checkpoints = audit_anchor.read_anchors(
                s3, settings.audit_anchor_bucket, settings.audit_anchor_prefix
            )
        except (ClientError, BotoCoreError) as err:
            raise Unavailable(f"the audit anchors could not be read: {err}") from err
    verdict = audit_anchor.check(session, checkpoints or [], full)
    cp = verdict.checkpoint
    return VerifyOut(
        ok=verdict.ok,
        events=verdict.events,
        first_broken_seq=verdict.first_broken_seq,
        checkpoint=CheckpointOut(seq=cp.seq, at=cp.at) if cp else None,
    )
