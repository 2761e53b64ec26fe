"""What the last reconciler run found."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from activities.reconcile import managed_names
from api.errors import NotFound
from elevate.models import ReconcileRun
from elevate.settings import Settings


def last_run(session: Session, settings: Settings) -> dict[str, Any]:
    run = session.exec(
        select(ReconcileRun).order_by(col(ReconcileRun.started_at).desc()).limit(1)
    ).first()
    if run is None:
        raise NotFound("the reconciler has not finished a run yet", "no_reconcile_run")
    managed = managed_names(session, settings.reconcile_permission_sets)
    return {**run.model_dump(), "managed_permission_sets": managed}
