"""/v1/audit: the hash-chained audit trail and its verification (admins and auditors)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Query

from api.deps import AdminOrAuditor, SessionDep, SettingsDep, TemporalDep
from api.pagination import Cursor, Limit
from api.schemas import Page, Rfc3339
from api.services import audit as service
from api.services.audit import AuditEventOut, VerifyOut

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", response_model=Page[AuditEventOut])
def list_events(
    _: AdminOrAuditor,
    session: SessionDep,
    since: Annotated[
        Rfc3339 | None, Query(description="events at or after this time (RFC 3339)")
    ] = None,
    until: Annotated[
        Rfc3339 | None, Query(description="events before this time (RFC 3339)")
    ] = None,
    request_id: str | None = None,
    actor: str | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    return service.list_events(
        session,
        since=since,
        until=until,
        request_id=request_id,
        actor=actor,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/verify",
    response_model=VerifyOut,
    response_model_exclude_none=True,
    summary="Recompute the hash chain",
)
def verify(
    _: AdminOrAuditor,
    session: SessionDep,
    settings: SettingsDep,
    gateway: TemporalDep,
    full: Annotated[
        bool, Query(description="walk every event, not only those after the last checkpoint")
    ] = False,
) -> Any:
    checkpoints = anyio.from_thread.run(gateway.checkpoints)
    return service.verify(session, settings, checkpoints, full)
