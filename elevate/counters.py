"""Pre-aggregated metrics, moved in the same transaction as the rows they count.

/metrics reads a few dozen rows of `metric_counts` instead of aggregating every request at every
scrape. Every Session flush that adds, changes or deletes an AccessRequest, or appends an
AuditEvent, moves the counters by the difference it makes (a `before_flush` listener), so every
ORM write counts, whoever makes it, and a rolled-back transaction takes its counts back with it.
Rows written with plain SQL (a bulk import) are not seen: `rebuild` counts everything again,
as the migration that made the table did.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from elevate.models import AccessRequest, AuditEvent, MetricCount

# Seconds: from "a grant takes a second" to "the approver answered the next morning".
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400)
REQUESTS = "elevate_requests"  # label: the status
AUDIT_EVENTS = "elevate_audit_events"  # label: ""
FINDINGS = "elevate_reconcile_findings"  # label: the audit action, reconcile_<kind>_<outcome>
Key = tuple[str, str]


@dataclass(frozen=True)
class Histogram:
    name: str
    doc: str
    start: str
    end: str
    counts: Callable[[Mapping[str, Any]], bool]


HISTOGRAMS = (
    Histogram(
        "elevate_approval_wait_seconds",
        "From the request to its approval (requests that needed one)",
        "created_at",
        "approved_at",
        lambda row: (row["approvals_required"] or 0) > 0,
    ),
    Histogram(
        "elevate_approve_to_active_seconds",
        "From approval (or the requested start, if later) to access confirmed at AWS",
        "grant_due_at",
        "granted_at",
        lambda row: True,
    ),
    Histogram(
        "elevate_revoke_lag_seconds",
        "From end_at to access confirmed gone at AWS (requests that ran to their end)",
        "end_at",
        "revoked_at",
        lambda row: row["status"] == "ended",
    ),
)
FIELDS = sorted(
    {"status", "approvals_required"} | {f for h in HISTOGRAMS for f in (h.start, h.end)}
)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def contributions(row: Mapping[str, Any]) -> dict[Key, float]:
    """What one request adds to the counters: its status, and each latency it has both ends of."""
    out: dict[Key, float] = defaultdict(float)
    if row["status"]:
        out[(REQUESTS, row["status"])] += 1
    for h in HISTOGRAMS:
        start, end = row[h.start], row[h.end]
        if start is None or end is None or not h.counts(row):
            continue
        seconds = max(0.0, (_utc(end) - _utc(start)).total_seconds())  # a skew is "at once"
        out[(h.name, "count")] += 1
        out[(h.name, "sum")] += seconds
        for bound in BUCKETS:
            if seconds <= bound:
                out[(h.name, str(bound))] += 1
    return out


def _now(obj: AccessRequest) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in FIELDS}


def _before(obj: AccessRequest) -> dict[str, Any]:
    """The values the database holds for this row, before the flush writes the new ones."""
    state = sa.inspect(obj)
    values = {}
    for f in FIELDS:
        history = state.attrs[f].load_history()
        if history.deleted:
            values[f] = history.deleted[0]
        elif history.unchanged:
            values[f] = history.unchanged[0]
        else:
            values[f] = None  # set from nothing in this transaction
    return values


def _event_counts(e: AuditEvent) -> dict[Key, float]:
    out: dict[Key, float] = {(AUDIT_EVENTS, ""): 1}
    if e.action.startswith("reconcile_"):
        out[(FINDINGS, e.action)] = 1
    return out


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    delta: dict[Key, float] = {}

    def add(counts: Mapping[Key, float], sign: int) -> None:
        for key, value in counts.items():
            delta[key] = delta.get(key, 0.0) + sign * value

    for obj in session.new:
        if isinstance(obj, AccessRequest):
            add(contributions(_now(obj)), 1)
        elif isinstance(obj, AuditEvent):
            add(_event_counts(obj), 1)
    for obj in session.dirty:
        if isinstance(obj, AccessRequest) and session.is_modified(obj):
            add(contributions(_before(obj)), -1)
            add(contributions(_now(obj)), 1)
    for obj in session.deleted:
        if isinstance(obj, AccessRequest):
            add(contributions(_before(obj)), -1)
    changed = {k: v for k, v in delta.items() if v}
    if changed and _has_table(session.connection()):
        bump(session.connection(), changed)


_HAVE_TABLE: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _has_table(conn: sa.Connection) -> bool:
    """A database migrated before the counters existed (a migration test writing old rows)
    has nothing to count into; the migration that makes the table counts those rows."""
    if conn.engine in _HAVE_TABLE:
        return True
    if sa.inspect(conn).has_table(MetricCount.__tablename__):
        _HAVE_TABLE.add(conn.engine)
        return True
    return False


def bump(conn: sa.Connection, delta: Mapping[Key, float]) -> None:
    """Add to each counter, creating it at its first use; in key order, so that concurrent
    transactions take the rows' locks in one order and never deadlock."""
    if not delta:
        return
    table = MetricCount.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.name, table.c.label],
        set_={"value": table.c.value + stmt.excluded.value},
    )
    # One statement for all of them (executemany): a request that ends moves some twenty
    # counters, and one statement each was a tenth of the worker's time in a burst of writes.
    rows = [{"name": n, "label": lb, "value": v} for (n, lb), v in sorted(delta.items())]
    conn.execute(stmt, rows)


def rebuild(conn: sa.Connection) -> None:
    """Count everything again from the rows (after a bulk import; the migration's backfill)."""
    requests = AccessRequest.__table__  # type: ignore[attr-defined]
    events = AuditEvent.__table__  # type: ignore[attr-defined]
    total: dict[Key, float] = defaultdict(float)
    rows = conn.execute(
        sa.select(*(requests.c[f] for f in FIELDS)).execution_options(yield_per=5000)
    )
    for row in rows.mappings():
        for key, value in contributions(dict(row)).items():
            total[key] += value
    total[(AUDIT_EVENTS, "")] = conn.execute(sa.select(sa.func.count()).select_from(events)).one()[
        0
    ]
    findings = conn.execute(
        sa.select(events.c.action, sa.func.count())
        .where(events.c.action.like("reconcile\\_%", escape="\\"))
        .group_by(events.c.action)
    )
    for action, count in findings:
        total[(FINDINGS, action)] = count
    conn.execute(sa.delete(MetricCount.__table__))  # type: ignore[attr-defined]
    bump(conn, {k: v for k, v in total.items() if v})


def read(conn: sa.Connection | Session) -> dict[Key, float]:
    table = MetricCount.__table__  # type: ignore[attr-defined]
    return {(r.name, r.label): r.value for r in conn.execute(sa.select(table))}


def labels(values: Mapping[Key, float], name: str) -> Iterable[tuple[str, float]]:
    return ((label, v) for (n, label), v in values.items() if n == name)


event.listen(Session, "before_flush", _before_flush)
