"""Prometheus metrics from the pre-aggregated counters (elevate/counters.py), so every API
replica agrees and a scrape costs two small queries however many requests there are.

Latencies are histograms over every request that has both timestamps; the counters only grow,
as Prometheus counters must (a request's latency is counted once it has both ends).
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
from sqlmodel import Session, col, select

from elevate import counters
from elevate.contracts import Status
from elevate.models import ReconcileRun


class ProjectionCollector(Collector):
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Any]:
        with Session(self._engine) as session:
            values = counters.read(session)
            yield from self._by_status(values)
            yield from self._latencies(values)
            yield from self._reconciler(session, values)

    def _by_status(self, values: dict[counters.Key, float]) -> Iterator[Any]:
        by_status = GaugeMetricFamily(
            "elevate_requests", "Access requests by status", labels=["status"]
        )
        for status in Status:
            by_status.add_metric([status.value], values.get((counters.REQUESTS, status.value), 0))
        yield by_status
        events = values.get((counters.AUDIT_EVENTS, ""), 0)
        yield CounterMetricFamily("elevate_audit_events", "Audit events appended", value=events)

    def _latencies(self, values: dict[counters.Key, float]) -> Iterator[Any]:
        for h in counters.HISTOGRAMS:
            count = int(values.get((h.name, "count"), 0))
            buckets = [(str(b), int(values.get((h.name, str(b)), 0))) for b in counters.BUCKETS]
            yield HistogramMetricFamily(
                h.name,
                h.doc,
                buckets=[*buckets, ("+Inf", count)],
                sum_value=float(values.get((h.name, "sum"), 0.0)),
            )

    def _reconciler(self, session: Session, values: dict[counters.Key, float]) -> Iterator[Any]:
        findings = CounterMetricFamily(
            "elevate_reconcile_findings",
            "Reconciler findings: orphan (no request covers it) or missing, and what was done",
            labels=["kind", "outcome"],
        )
        for action, count in sorted(counters.labels(values, counters.FINDINGS)):
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
