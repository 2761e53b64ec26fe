"""What the last reconciler run found, and how far the sweep has walked."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from activities.reconcile import managed_names
from api.errors import NotFound
from elevate.models import ReconcileRun
from elevate.settings import Settings

# The sweep's cursor stays internal; API.md shows its progress.
SWEEP_FIELDS = ("pairs_total", "pairs_checked", "started_at", "completed_at")


def last_run(session: Session, settings: Settings) -> dict[str, Any]:
    run = session.exec(
        select(ReconcileRun).order_by(col(ReconcileRun.started_at).desc()).limit(1)
    ).first()
    if run is None:
        raise NotFound("the reconciler has not finished a run yet", "no_reconcile_run")
    shown = run.model_dump()
    shown["sweep"] = None if run.sweep is None else {k: run.sweep.get(k) for k in SWEEP_FIELDS}
    shown["managed_permission_sets"] = managed_names(session, settings.reconcile_permission_sets)
    return shown
