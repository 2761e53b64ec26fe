"""Prometheus metrics read from the projection at scrape time, so every API replica agrees."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlmodel import Session, col, func, select

from elevate.contracts import Status
from elevate.models import AccessRequest, AuditEvent, ReconcileRun


class ProjectionCollector(Collector):
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Any]:
        with Session(self._engine) as session:
            counts = dict(
                session.exec(
                    select(AccessRequest.status, func.count()).group_by(AccessRequest.status)
                ).all()
            )
            events = session.exec(select(func.count()).select_from(AuditEvent)).one()
            last = session.exec(
                select(ReconcileRun).order_by(col(ReconcileRun.started_at).desc()).limit(1)
            ).first()
        by_status = GaugeMetricFamily(
            "elevate_requests", "Access requests by status", labels=["status"]
        )
        for status in Status:
            by_status.add_metric([status.value], counts.get(status.value, 0))
        yield by_status
        yield CounterMetricFamily("elevate_audit_events", "Audit events appended", value=events)
        if last is not None:
            yield GaugeMetricFamily(
                "elevate_reconcile_last_run_timestamp_seconds",
                "When the last reconciler run finished",
                value=last.finished_at.timestamp(),
            )
            findings = GaugeMetricFamily(
                "elevate_reconcile_last_run_findings",
                "Findings of the last reconciler run",
                labels=["kind"],
            )
            for kind in ("orphan", "missing"):
                findings.add_metric([kind], sum(1 for f in last.findings if f["kind"] == kind))
            yield findings
