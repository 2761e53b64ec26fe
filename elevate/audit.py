"""The append-only, hash-chained audit trail.

Appends are optimistic: the next `seq` is the last one plus one, and the primary key makes two
writers that read the same tail collide, so one retries on the new tail and the chain never forks.

`verify` recomputes the chain. It proves that no event before the first broken seq was edited,
deleted or inserted; it cannot see the newest events removed, or well-formed events appended, by
someone who can write the table (the hash has no secret): elevate/audit_anchor.py keeps the head
hash elsewhere (checkpoints in a Temporal workflow's history and in S3 under Object Lock).
On PostgreSQL a trigger (migration 0002) refuses UPDATE, DELETE and TRUNCATE of the table.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from elevate.models import AuditEvent, utcnow

GENESIS = "0" * 64
_MAX_TRIES = 50
_MAX_BACKOFF = 0.05  # seconds between two tries at most
# PostgreSQL advisory lock id of the chain's end (the migration lock is 7_423_001).
_CHAIN_LOCK = 7_423_002


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
    after: AuditEvent | None = None,
) -> AuditEvent:
    """Add the next event of the chain to `session`; the caller commits it. `after` is the event
    this transaction staged last, when it staged one: the chain's end without asking again."""
    if after is not None:
        seq, prev = after.seq + 1, after.hash
    else:
        tail = select(AuditEvent.seq, AuditEvent.hash).order_by(col(AuditEvent.seq).desc())
        last_seq, prev = session.exec(tail.limit(1)).first() or (0, GENESIS)
        seq = last_seq + 1
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


@dataclass(frozen=True)
class Step:
    """One change of a transaction and the event that records it."""

    apply: Callable[[Session], None]
    actor: str
    action: str
    request_id: str | None = None
    details: dict[str, Any] | None = None
    dedupe_key: str | None = None


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
    case nothing is changed.
    """
    step = Step(apply, actor, action, request_id, details, dedupe_key)
    return commit_with_events(session_factory, [step])


def commit_with_events(session_factory: Any, steps: list[Step]) -> bool:
    """Run each step's change and append its event, in order, all in one transaction.

    Returns False when the first step's event exists already: the transaction was committed by
    an earlier try (a retried activity), so nothing is changed. Retries when another writer took
    the same `seq`: that conflict shows at any flush, the commit's or one that reading the
    chain's end makes (after a step staged an event), so the whole transaction is the unit that
    is tried again.
    """
    if not steps:
        return False
    for attempt in range(_MAX_TRIES):
        if attempt:
            # Writers that collided wait a random while, so that one of them gets through
            # (without it, a writer of eight on PostgreSQL lost all 50 tries).
            time.sleep(random.uniform(0, min(_MAX_BACKOFF, 0.002 * 2**attempt)))
        with session_factory() as session:
            try:
                _queue_for_the_end(session)
                if already_recorded(session, steps[0].dedupe_key):
                    return False
                staged = None
                for step in steps:
                    step.apply(session)
                    staged = stage_event(
                        session,
                        actor=step.actor,
                        action=step.action,
                        request_id=step.request_id,
                        details=step.details,
                        dedupe_key=step.dedupe_key,
                        after=staged,
                    )
                session.commit()
                return True
            except IntegrityError:
                session.rollback()
    raise RuntimeError("could not append to the audit chain: too much contention")


def _queue_for_the_end(session: Session) -> None:
    """On PostgreSQL appenders take turns at the chain's end (a lock held until the transaction
    ends) instead of colliding on it: in a burst of a hundred lifecycles, writers that read the
    same end waited for each other's row locks only to find their seq taken and start again, and
    each write took seconds. SQLite has one writer at a time anyway."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    # The lowest seq from which the chain no longer verifies; every event before it is intact.
    first_broken_seq: int | None = None


_SEQ = col(AuditEvent.seq)
_CHAIN = (
    _SEQ,
    col(AuditEvent.at),
    col(AuditEvent.actor),
    col(AuditEvent.action),
    col(AuditEvent.request_id),
    col(AuditEvent.details),
    col(AuditEvent.prev_hash),
    col(AuditEvent.hash),
)


def verify(
    session: Session, *, batch_size: int = 1000, after: tuple[int, str] | None = None
) -> VerifyResult:
    """Walk the events in seq order and recompute every hash and link, a batch at a time;
    `after` = (seq, hash) of an event already proven (a checkpoint) starts the walk behind it.

    An edited event fails its own hash; a deleted one is reported as its missing seq; a forged
    one fails its hash or link (or, numbered below 1, is reported as itself).
    """
    expected, prev, checked = 1, GENESIS, 0
    if after is not None:
        expected, prev, checked = after[0] + 1, after[1], after[0]
    for seq, row in _stored_events(session, batch_size, after[0] if after else None):
        if seq != expected:
            return VerifyResult(False, _count(session), min(seq, expected))
        if row is None or row.prev_hash != prev or row.hash != _rehash(row):
            return VerifyResult(False, _count(session), seq)
        expected, prev, checked = seq + 1, row.hash, checked + 1
    return VerifyResult(True, checked)


def _rehash(row: sa.Row[Any]) -> str:
    return event_hash(
        row.seq, row.at, row.actor, row.action, row.request_id, row.details, row.prev_hash
    )


def _count(session: Session) -> int:
    return (
        session.connection()
        .execute(sa.select(sa.func.count()).select_from(AuditEvent))
        .scalar_one()
    )


def _stored_events(
    session: Session, batch_size: int, start_after: int | None = None
) -> Iterator[tuple[int, sa.Row[Any] | None]]:
    """(seq, row) in seq order; row is None when the stored values cannot even be decoded.

    Core rows, not ORM objects: nothing piles up in the session, and an event the session loaded
    earlier is read again as stored rather than served from its identity map.
    """
    conn = session.connection()
    after = start_after
    while True:
        stmt = sa.select(*_CHAIN).order_by(_SEQ).limit(batch_size)
        if after is not None:
            stmt = stmt.where(_SEQ > after)
        result = conn.execute(stmt)
        batch: list[tuple[int, sa.Row[Any] | None]]
        try:
            batch = [(r.seq, r) for r in result]
        except (ValueError, TypeError):  # garbage written behind the ORM's back (SQLite)
            result.close()
            batch = _one_by_one(conn, after, batch_size)
        yield from batch
        if len(batch) < batch_size:
            return
        after = batch[-1][0]


def _one_by_one(
    conn: sa.Connection, after: int | None, limit: int
) -> list[tuple[int, sa.Row[Any] | None]]:
    stmt = sa.select(_SEQ).order_by(_SEQ).limit(limit)
    if after is not None:
        stmt = stmt.where(_SEQ > after)
    out: list[tuple[int, sa.Row[Any] | None]] = []
    for seq in conn.execute(stmt).scalars():
        try:
            row: sa.Row[Any] | None = conn.execute(sa.select(*_CHAIN).where(_SEQ == seq)).one()
        except (ValueError, TypeError):
            row = None
        out.append((seq, row))
    return out
