"""What the last reconciler run found."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from api.errors import NotFound
from elevate.models import ReconcileRun


def last_run(session: Session) -> dict[str, Any]:
    run = session.exec(
        select(ReconcileRun).order_by(col(ReconcileRun.started_at).desc()).limit(1)
    ).first()
    if run is None:
        raise NotFound("the reconciler has not finished a run yet", "no_reconcile_run")
    return run.model_dump()
