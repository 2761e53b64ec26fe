"""Messages from a request to the owner of its assignment (signal-with-start), and what a fresh
owner learns about its leases from the projection."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from elevate import proof
from elevate.contracts import (
    TERMINAL,
    Assignment,
    AssignmentState,
    CoveringLeases,
    LeaseInput,
    Status,
    assignment_workflow_id,
)
from elevate.models import AccessRequest, utcnow

_DONE = [s.value for s in TERMINAL] + [Status.REVOKING.value]
_LOOKUP_TIMEOUT = 3.0  # seconds an acquire waits for the leases before it leaves that to the owner


class LeaseActivities:
    def __init__(
        self,
        client: Client,
        task_queue: str,
        engine: sa.Engine | None = None,
        grace: timedelta = timedelta(minutes=2),
        end_sessions: bool = False,
        message_key: str = "",
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._engine = engine
        self._grace = grace
        self._end_sessions = end_sessions
        self._message_key = message_key

    @activity.defn
    async def send_lease(self, lease: LeaseInput) -> None:
        """Start the owner if it is not running, and hand it the acquire or release.

        Safe to retry: the owner treats a repeated acquire or release of the same request as one.
        """
        owner = assignment_workflow_id(lease.assignment)
        kind = "release" if lease.release else "acquire"
        if self._message_key:  # the owner checks it: proof that the worker sent this lease
            lease = proof.seal(lease, kind, owner, self._message_key)
        await self._client.start_workflow(
            "AssignmentWorkflow",  # by name: the workflow module imports this one
            await self._fresh_state(lease),
            id=owner,
            task_queue=self._task_queue,
            start_signal=kind,
            start_signal_args=[lease],
        )

    async def _fresh_state(self, lease: LeaseInput) -> AssignmentState:
        """The state an owner starts with should this message start it (it is ignored when the
        owner runs). For an acquire the leases are learned here, so a fresh owner grants at once
        instead of asking first; a release never waits for the database (the owner asks then)."""
        state = AssignmentState(lease.assignment, end_sessions=self._end_sessions)
        if lease.release or self._engine is None:
            return state
        try:
            found = await asyncio.wait_for(self.covering_leases(lease.assignment), _LOOKUP_TIMEOUT)
        except Exception:  # noqa: BLE001 - the database is down or slow: the owner asks itself
            activity.logger.warning("could not read the leases of %s", lease.assignment)
            return state
        now = utcnow()
        state.leases = dict(found.leases)
        state.expires = dict(found.expires)
        state.released = {r: now for r in found.released if r not in found.leases}
        state.rebuilt = True
        return state

    @activity.defn
    async def covering_leases(self, a: Assignment) -> CoveringLeases:
        """The active requests of this triple whose workflow still runs and whose end (plus the
        grace) has not passed; and the requests of the triple that are done with it."""
        rows, done = await asyncio.to_thread(self._rows, a)
        found = CoveringLeases(released=done)
        now = utcnow()
        for request_id, workflow_id, end_at in rows:
            expires = end_at + self._grace if end_at is not None else None
            if expires is not None and expires <= now:
                continue
            if await workflow_running(self._client, workflow_id):
                found.leases[request_id] = workflow_id
                if expires is not None:
                    found.expires[request_id] = expires
        return found

    def _rows(self, a: Assignment) -> tuple[list[tuple[str, str, datetime | None]], list[str]]:
        if self._engine is None:
            raise RuntimeError("LeaseActivities needs the database to rebuild an owner")
        same = (
            col(AccessRequest.account_id) == a.account_id,
            col(AccessRequest.permission_set_arn) == a.permission_set_arn,
            col(AccessRequest.principal_id) == a.principal_id,
        )
        with Session(self._engine) as session:
            active = session.exec(
                select(AccessRequest.id, AccessRequest.workflow_id, AccessRequest.end_at).where(
                    *same, AccessRequest.status == Status.ACTIVE.value
                )
            ).all()
            done = session.exec(
                select(AccessRequest.id)
                .where(*same, col(AccessRequest.status).in_(_DONE))
                .order_by(col(AccessRequest.updated_at).desc())
                .limit(100)
            ).all()
        return [(r, w, e) for r, w, e in active], list(done)


async def workflow_running(client: Client, workflow_id: str) -> bool:
    """Does the workflow exist and still run? (An unknown one does not.)"""
    return await workflow_status(client, workflow_id) == WorkflowExecutionStatus.RUNNING


async def workflow_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.status
