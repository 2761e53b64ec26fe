"""The audit chain checked against checkpoints kept outside the database (API.md "Audit").

A checkpoint is `{seq, hash}` of the newest event at one moment, recorded in the history of the
audit checkpoint workflow and, with `ELEVATE_AUDIT_ANCHOR_BUCKET`, in S3 under Object Lock
(COMPLIANCE): someone who can write the database can change neither. Deleting the newest events
leaves a checkpoint beyond the end; recomputing the chain after an edit changes the hash at a
checkpoint's seq. Verification is incremental: it walks only the events after the newest
checkpoint that still matches, so it stays fast however long the chain is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from elevate import audit
from elevate.contracts import Checkpoint
from elevate.models import AuditEvent, utcnow

_SEQ = col(AuditEvent.seq)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    events: int
    first_broken_seq: int | None = None
    checkpoint: Checkpoint | None = None  # the newest one compared with


def head(session: Session) -> Checkpoint | None:
    conn = session.connection()
    row = conn.execute(sa.select(_SEQ, col(AuditEvent.hash)).order_by(_SEQ.desc()).limit(1)).first()
    return Checkpoint(row.seq, row.hash, utcnow()) if row else None


def matches(session: Session, cp: Checkpoint) -> bool:
    """The event at the checkpoint's seq is still the one that was anchored, hash and content."""
    stmt = sa.select(*audit._CHAIN).where(_SEQ == cp.seq)
    try:
        row = session.connection().execute(stmt).first()
    except (ValueError, TypeError):  # undecodable garbage at that seq
        return False
    return row is not None and row.hash == cp.hash and audit._rehash(row) == cp.hash


def _count(session: Session) -> int:
    return (
        session.connection()
        .execute(sa.select(sa.func.count()).select_from(AuditEvent))
        .scalar_one()
    )


def _last_seq(session: Session) -> int:
    return session.connection().execute(sa.select(sa.func.max(_SEQ))).scalar_one() or 0


def check(session: Session, checkpoints: Sequence[Checkpoint], full: bool = False) -> Verdict:
    """The chain against its checkpoints (oldest first). Walks from the newest checkpoint that
    matches (from the start with `full`). When one no longer matches, the first broken seq is
    the first missing one if the end was cut off, else the first seq that no matching
    checkpoint vouches for (a recomputed chain cannot be dated closer than that)."""
    newest = checkpoints[-1] if checkpoints else None
    good = bad = None
    for cp in checkpoints:
        if not matches(session, cp):
            bad = cp
            break
        good = cp
    start = None if full or good is None else (good.seq, good.hash)
    walk = audit.verify(session, after=start)
    events = _count(session)
    if not walk.ok and (bad is None or (walk.first_broken_seq or 0) <= bad.seq):
        return Verdict(False, events, walk.first_broken_seq, newest)
    if bad is None:
        return Verdict(walk.ok, events, walk.first_broken_seq, newest)
    last = _last_seq(session)
    first = last + 1 if last < bad.seq else (good.seq + 1 if good else 1)
    return Verdict(False, events, first, newest)


def verify_since(session: Session, previous: Checkpoint | None) -> int | None:
    """The first broken seq after `previous` (None: intact), before a new checkpoint is taken,
    so a tampered chain is never anchored as if it were the real one."""
    if previous is not None and not matches(session, previous):
        return previous.seq
    after = (previous.seq, previous.hash) if previous else None
    return audit.verify(session, after=after).first_broken_seq


# S3 anchors: one object per checkpoint, named by seq and hash so that a listing alone reads
# them, oldest first; Object Lock keeps anyone from deleting or overwriting one.
def object_key(prefix: str, cp: Checkpoint) -> str:
    return f"{prefix}checkpoints/{cp.seq:012d}-{cp.hash}.json"


def put_anchor(s3: Any, bucket: str, prefix: str, cp: Checkpoint, keep: timedelta) -> None:
    body = {"seq": cp.seq, "hash": cp.hash, "at": cp.at.isoformat()}
    s3.put_object(
        Bucket=bucket,
        Key=object_key(prefix, cp),
        Body=json.dumps(body).encode(),
        ContentType="application/json",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=cp.at + keep,
    )


def read_anchors(s3: Any, bucket: str, prefix: str) -> list[Checkpoint]:
    """Every checkpoint in the bucket, oldest first (the API's fallback when Temporal is down)."""
    out: list[Checkpoint] = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}checkpoints/"
    )
    for page in pages:
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[-1].removesuffix(".json")
            seq, _, digest = name.partition("-")
            if seq.isdigit() and len(digest) == 64:
                out.append(Checkpoint(int(seq), digest, obj["LastModified"]))
    return sorted(out, key=lambda c: c.seq)
