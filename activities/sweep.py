"""Requests whose workflow never started: the API stopped between writing the request and
starting its workflow. Without this they would wait in `pending_approval` forever."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from elevate.audit import commit_with_event
from elevate.contracts import Status
from elevate.models import AccessRequest, AuditEvent, utcnow

# A request this old whose workflow wrote nothing yet is looked up at Temporal.
GRACE = timedelta(minutes=2)
LOST = "its workflow never started (the API stopped before starting it); request again"


class SweepActivities:
    def __init__(self, engine: sa.Engine, client: Client) -> None:
        self._engine = engine
        self._client = client

    @activity.defn
    async def fail_unstarted(self) -> int:
        """Mark `failed` every request whose workflow Temporal does not know; how many."""
        lost = 0
        for request_id, workflow_id in await asyncio.to_thread(self._candidates):
            if not await self._started(workflow_id):
                await asyncio.to_thread(self._fail, request_id)
                lost += 1
        return lost

    def _candidates(self) -> list[tuple[str, str]]:
        """Old enough, still waiting, and without a single event (the workflow writes the first)."""
        no_event = ~sa.exists().where(col(AuditEvent.request_id) == AccessRequest.id)
        query = select(AccessRequest.id, AccessRequest.workflow_id).where(
            col(AccessRequest.status).in_([Status.PENDING_APPROVAL.value, Status.SCHEDULED.value]),
            col(AccessRequest.created_at) < utcnow() - GRACE,
            no_event,
        )
        with Session(self._engine) as session:
            return [(r, w) for r, w in session.exec(query).all()]

    async def _started(self, workflow_id: str) -> bool:
        try:
            await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    def _fail(self, request_id: str) -> None:
        def apply(session: Session) -> None:
            row = session.get(AccessRequest, request_id)
            if row is not None:
                row.status, row.failure, row.updated_at = Status.FAILED.value, LOST, utcnow()
                session.add(row)

        commit_with_event(
            lambda: Session(self._engine),
            apply,
            actor="elevate-reconciler",
            action="start_lost",
            request_id=request_id,
            details={"status": Status.FAILED.value, "failure": LOST},
            dedupe_key=f"start-lost-{request_id}",
        )
