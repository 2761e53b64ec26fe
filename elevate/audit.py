"""The append-only, hash-chained audit trail.

Appends are optimistic: the next `seq` is the last one plus one, and the primary key makes two
writers that read the same tail collide, so one retries on the new tail and the chain never forks.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from elevate.models import AuditEvent, utcnow

GENESIS = "0" * 64
_MAX_TRIES = 50


def event_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    request_id: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    body = json.dumps(
        [seq, at.isoformat(), actor, action, request_id, details, prev_hash],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def stage_event(
    session: Session,
    *,
    actor: str,
    action: str,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> AuditEvent:
    """Add the next event of the chain to `session`; the caller commits it."""
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()
    seq = last.seq + 1 if last else 1
    prev = last.hash if last else GENESIS
    at = utcnow()
    details = json.loads(json.dumps(details or {}, default=str))
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        request_id=request_id,
        details=details,
        dedupe_key=dedupe_key,
        prev_hash=prev,
        hash=event_hash(seq, at, actor, action, request_id, details, prev),
    )
    session.add(event)
    return event


def already_recorded(session: Session, dedupe_key: str | None) -> bool:
    if dedupe_key is None:
        return False
    stmt = select(AuditEvent.seq).where(AuditEvent.dedupe_key == dedupe_key)
    return session.exec(stmt).first() is not None


def commit_with_event(
    session_factory: Any,
    apply: Any,
    *,
    actor: str,
    action: str,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """Run `apply(session)` and append its event in one transaction.

    Returns False when an event with `dedupe_key` exists already (a retried activity), in which
    case nothing is changed. Retries when another writer took the same `seq`.
    """
    for _ in range(_MAX_TRIES):
        with session_factory() as session:
            if already_recorded(session, dedupe_key):
                return False
            apply(session)
            stage_event(
                session,
                actor=actor,
                action=action,
                request_id=request_id,
                details=details,
                dedupe_key=dedupe_key,
            )
            try:
                session.commit()
                return True
            except IntegrityError:
                session.rollback()
    raise RuntimeError("could not append to the audit chain: too much contention")
