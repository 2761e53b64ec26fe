"""Requests whose workflow never started (the API stopped between writing the request and
starting its workflow), and covering requests whose workflow is gone or stuck past its end
(an operator terminated it, it timed out, failed, or hangs). Without this the first would wait
in `pending_approval` forever and the second would look `active` forever."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.lease import workflow_status
from elevate.audit import commit_with_event
from elevate.contracts import Assignment, LostRequest, Status
from elevate.models import AccessRequest, AuditEvent, utcnow

# A request this old whose workflow wrote nothing yet is looked up at Temporal.
GRACE = timedelta(minutes=2)
LOST = "its workflow never started (the API stopped before starting it); request again"


COVERING = (Status.GRANTING.value, Status.ACTIVE.value, Status.REVOKING.value)


class SweepActivities:
    def __init__(
        self, engine: sa.Engine, client: Client, grace: timedelta = timedelta(minutes=2)
    ) -> None:
        self._engine = engine
        self._client = client
        self._grace = grace

    @activity.defn
    async def find_lost(self) -> list[LostRequest]:
        """Covering requests whose workflow closed without giving the access back, or that are
        still `active` by their own word past end_at + grace (stuck)."""
        lost: list[LostRequest] = []
        now = utcnow()
        for row in await asyncio.to_thread(self._covering):
            status = await workflow_status(self._client, row.workflow_id)
            if status is None and now - row.created_at < GRACE:
                continue  # the API may still be starting it
            if status != WorkflowExecutionStatus.RUNNING:
                cause = "gone" if status is None else status.name.lower().replace("_", " ")
                lost.append(_lost(row, f"its workflow was {cause} while it held access"))
            elif row.end_at is not None and row.end_at + self._grace < now:
                if await self._says_active(row.workflow_id):
                    lost.append(_lost(row, "its workflow is stuck past the end of the access"))
        return lost

    def _covering(self) -> list[AccessRequest]:
        with Session(self._engine, expire_on_commit=False) as session:
            query = select(AccessRequest).where(col(AccessRequest.status).in_(COVERING))
            return list(session.exec(query).all())

    async def _says_active(self, workflow_id: str) -> bool:
        """A workflow that answers anything but `active` is on its way to the revoke."""
        try:
            status = await asyncio.wait_for(
                self._client.get_workflow_handle(workflow_id).query("status"), 10
            )
        except Exception:  # noqa: BLE001 - no answer (no worker can run it): it is stuck
            return True
        return bool(status == Status.ACTIVE.value)

    @activity.defn
    def fail_lost(self, lost: LostRequest) -> None:
        """After its access went through the owner: the request ends `failed`, audited."""

        def apply(session: Session) -> None:
            row = session.get(AccessRequest, lost.request_id)
            if row is not None and row.status in COVERING:
                row.status, row.failure = Status.FAILED.value, lost.cause
                row.revoked_at = row.updated_at = utcnow()
                session.add(row)

        commit_with_event(
            lambda: Session(self._engine),
            apply,
            actor="elevate-reconciler",
            action="workflow_lost",
            request_id=lost.request_id,
            details={"status": Status.FAILED.value, "failure": lost.cause},
            dedupe_key=f"workflow-lost-{lost.request_id}",
        )

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


def _lost(row: AccessRequest, cause: str) -> LostRequest:
    a = Assignment(row.instance_arn, row.account_id, row.permission_set_arn, row.principal_id)
    return LostRequest(row.id, row.workflow_id, a, cause)
