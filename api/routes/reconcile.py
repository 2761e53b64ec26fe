"""/v1/reconcile: the reconciler's last run (admins and auditors)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import AdminOrAuditor, SessionDep, SettingsDep
from api.errors import responses
from api.services import reconcile as service

router = APIRouter(prefix="/v1/reconcile", tags=["reconcile"])


@router.get("", responses=responses(404))
def last_run(_: AdminOrAuditor, session: SessionDep, settings: SettingsDep) -> Any:
    return service.last_run(session, settings)
