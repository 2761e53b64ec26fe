"""Prometheus metrics aggregated by the database at scrape time, so every API replica agrees.

Latencies are histograms over every request that has both timestamps; rows are never deleted,
so the buckets only grow, as Prometheus counters must.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from sqlmodel import Session, col, func, select

from elevate.contracts import Status
from elevate.models import AccessRequest, AuditEvent, ReconcileRun

# Seconds: from "a grant takes a second" to "the approver answered the next morning".
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400)


def _seconds(session: Session, start: Any, end: Any) -> Any:
    """`end - start` in seconds, in SQL (SQLite keeps timestamps as text, PostgreSQL natively)."""
    if session.get_bind().dialect.name == "sqlite":
        return sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0, 6)
    return sa.extract("epoch", end - start)


def histogram(
    session: Session, name: str, doc: str, start: Any, end: Any, *where: Any
) -> HistogramMetricFamily:
    """Buckets, sum and count in one aggregate query: no row leaves the database."""
    # OFFSET 0 keeps PostgreSQL from inlining the subquery, so each row's seconds are computed
    # once rather than once per bucket (3-4x faster measured).
    rows = sa.select(_seconds(session, start, end).label("s"))
    inner = rows.where(start.is_not(None), end.is_not(None), *where).offset(0).subquery()
    secs = sa.case((inner.c.s < 0, 0.0), else_=inner.c.s)  # a clock skew is "at once"
    columns: list[Any] = [sa.func.count(), sa.func.coalesce(sa.func.sum(secs), 0.0)]
    columns += [sa.func.count().filter(secs <= b) for b in BUCKETS]
    count, total, *cumulative = session.execute(sa.select(*columns)).one()
    buckets = [(str(b), int(n)) for b, n in zip(BUCKETS, cumulative, strict=True)]
    return HistogramMetricFamily(
        name, doc, buckets=[*buckets, ("+Inf", int(count))], sum_value=float(total)
    )


class ProjectionCollector(Collector):
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Any]:
        with Session(self._engine) as session:
            yield from self._by_status(session)
            yield from self._latencies(session)
            yield from self._reconciler(session)

    def _by_status(self, session: Session) -> Iterator[Any]:
        counts = dict(
            session.exec(
                select(AccessRequest.status, func.count()).group_by(AccessRequest.status)
            ).all()
        )
        by_status = GaugeMetricFamily(
            "elevate_requests", "Access requests by status", labels=["status"]
        )
        for status in Status:
            by_status.add_metric([status.value], counts.get(status.value, 0))
        yield by_status
        events = session.exec(select(func.count()).select_from(AuditEvent)).one()
        yield CounterMetricFamily("elevate_audit_events", "Audit events appended", value=events)

    def _latencies(self, session: Session) -> Iterator[Any]:
        r = AccessRequest
        yield histogram(
            session,
            "elevate_approval_wait_seconds",
            "From the request to its approval (requests that needed one)",
            col(r.created_at),
            col(r.approved_at),
            col(r.approvals_required) > 0,
        )
        yield histogram(
            session,
            "elevate_approve_to_active_seconds",
            "From approval (or the requested start, if later) to access confirmed at AWS",
            col(r.grant_due_at),
            col(r.granted_at),
        )
        yield histogram(
            session,
            "elevate_revoke_lag_seconds",
            "From end_at to access confirmed gone at AWS (requests that ran to their end)",
            col(r.end_at),
            col(r.revoked_at),
            col(r.status) == Status.ENDED.value,
        )

    def _reconciler(self, session: Session) -> Iterator[Any]:
        actions = session.exec(
            select(AuditEvent.action, func.count())
            .where(col(AuditEvent.action).like("reconcile_%"))
            .group_by(AuditEvent.action)
        ).all()
        findings = CounterMetricFamily(
            "elevate_reconcile_findings",
            "Reconciler findings: orphan (no request covers it) or missing, and what was done",
            labels=["kind", "outcome"],
        )
        for action, count in actions:
            _, kind, outcome = action.split("_", 2)
            findings.add_metric([kind, outcome], count)
        yield findings
        last = session.exec(
            select(ReconcileRun).order_by(col(ReconcileRun.started_at).desc()).limit(1)
        ).first()
        if last is None:
            return
        yield GaugeMetricFamily(
            "elevate_reconcile_last_run_timestamp_seconds",
            "When the last reconciler run finished",
            value=last.finished_at.timestamp(),
        )
        by_kind = GaugeMetricFamily(
            "elevate_reconcile_last_run_findings",
            "Findings of the last reconciler run",
            labels=["kind"],
        )
        for kind in ("orphan", "missing"):
            by_kind.add_metric([kind], sum(1 for f in last.findings if f["kind"] == kind))
        yield by_kind
