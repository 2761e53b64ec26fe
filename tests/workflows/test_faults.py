"""Faults on the way to AWS and back: cancellation mid-grant, refused grants, failing revokes."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from sqlmodel import Session, select
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError, CancelledError

from activities.assignments import AssignmentActivities
from elevate.contracts import Actor, Assignment, CancelInput, RevokeInput
from elevate.models import AuditEvent
from tests.workflows.conftest import TASK_QUEUE, new_request, provider_for
from tests.workflows.test_lifecycle import ALICE, actions, assigned, row
from workflows.access_request import AccessRequestWorkflow

T = TypeVar("T")
REFUSAL = "Received a 404 status error: Not supported account"


class HeldCreate(AssignmentActivities):
    """Holds the create at the door until the test lets it go, then creates it for real."""

    def __init__(self, sso: Any) -> None:
        super().__init__(provider_for(sso), poll_interval=0.01)
        self.started, self.go = threading.Event(), threading.Event()
        self.operations: list[str | None] = []

    @activity.defn(name="create_assignment")
    def create_assignment(self, a: Assignment) -> str | None:
        self.started.set()
        if not self.go.wait(10):
            raise RuntimeError("the test never let the create go")
        operation = super().create_assignment(a)
        self.operations.append(operation)
        return operation


class DeniedDeletes(AssignmentActivities):
    """The first deletes are refused as AWS refuses a caller without permission."""

    def __init__(self, sso: Any, refusals: int) -> None:
        super().__init__(provider_for(sso), poll_interval=0.01)
        self.refusals = refusals
        self.calls = 0

    @activity.defn(name="delete_assignment")
    def delete_assignment(self, a: Assignment) -> str | None:
        self.calls += 1
        if self.calls <= self.refusals:
            raise ApplicationError(
                "AccessDeniedException: not authorized to perform DeleteAccountAssignment",
                type="AccessDeniedException",
                non_retryable=True,
            )
        return super().delete_assignment(a)


class RefusingStatus:
    """The real client, except that AWS reports every assignment creation as FAILED."""

    def __init__(self, sso: Any) -> None:
        self._sso = sso
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sso, name)

    def describe_account_assignment_creation_status(self, **kwargs: Any) -> dict[str, Any]:
        request_id = kwargs["AccountAssignmentCreationRequestId"]
        self.refused.append(request_id)
        status = {"Status": "FAILED", "RequestId": request_id, "FailureReason": REFUSAL}
        return {"AccountAssignmentCreationStatus": status}


class SlowOperations:
    """The real client, except that AWS says IN_PROGRESS twice for each operation before it
    answers with the real status; counts the operations started and the polls."""

    def __init__(self, sso: Any) -> None:
        self._sso = sso
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sso, name)

    def _counted(self, name: str, **kwargs: Any) -> Any:
        self.calls[name] += 1
        return getattr(self._sso, name)(**kwargs)

    def create_account_assignment(self, **kwargs: Any) -> Any:
        return self._counted("create_account_assignment", **kwargs)

    def delete_account_assignment(self, **kwargs: Any) -> Any:
        return self._counted("delete_account_assignment", **kwargs)

    def describe_account_assignment_creation_status(self, **kwargs: Any) -> Any:
        return self._status("creation", "AccountAssignmentCreationRequestId", kwargs)

    def describe_account_assignment_deletion_status(self, **kwargs: Any) -> Any:
        return self._status("deletion", "AccountAssignmentDeletionRequestId", kwargs)

    def _status(self, kind: str, key: str, kwargs: dict[str, Any]) -> Any:
        name = f"describe_account_assignment_{kind}_status"
        self.calls[name] += 1
        if self.calls[name] <= 2:
            body = {"Status": "IN_PROGRESS", "RequestId": kwargs[key]}
            return {f"AccountAssignment{kind.title()}Status": body}
        return getattr(self._sso, name)(**kwargs)


async def start(env, inp) -> WorkflowHandle[Any, str]:
    return await env.client.start_workflow(
        AccessRequestWorkflow.run, inp, id=f"access-request-{inp.request_id}", task_queue=TASK_QUEUE
    )


async def in_thread(wait: Callable[[float], bool]) -> None:
    """Wait for a threading.Event without blocking the event loop the worker runs on."""
    assert await asyncio.get_running_loop().run_in_executor(None, wait, 10)


async def finished(awaitable: Awaitable[T]) -> T:
    """A result, or a failed test instead of a hung one (wall time; server time skips ahead)."""
    return await asyncio.wait_for(awaitable, timeout=30)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting until {what}")


async def cancel_processed(handle: WorkflowHandle[Any, str]) -> bool:
    """The workflow has run a task since the cancellation was requested."""
    seen = False
    async for event in handle.fetch_history_events():
        seen = seen or event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
        if seen and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return True
    return False


def audit(engine, rid) -> list[AuditEvent]:
    with Session(engine) as s:
        stmt = select(AuditEvent).where(AuditEvent.request_id == rid).order_by(AuditEvent.seq)
        return list(s.exec(stmt))


async def test_workflow_cancelled_mid_grant_leaves_no_access(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, approvals_required=0, username="dave@example.com")
    ic = HeldCreate(sso)
    async with worker_for(ic):
        try:
            handle = await start(env, inp)
            await in_thread(ic.started.wait)
            await handle.cancel()
            await until(lambda: cancel_processed(handle), "the workflow saw the cancellation")
            ic.go.set()  # the grant reaches AWS only after the workflow was cancelled
            with pytest.raises(WorkflowFailureError) as err:
                await finished(handle.result())
        finally:
            ic.go.set()  # before the worker shuts down: it waits for running activities
    assert isinstance(err.value.cause, CancelledError)
    (operation,) = ic.operations
    assert operation is not None  # the grant really reached AWS, once
    assert not assigned(sso, inp)
    r = row(engine, inp.request_id)
    assert r.status == "revoked"
    assert r.revoked_at is not None
    trail = actions(engine, inp.request_id)
    assert "granted" not in trail
    assert trail[-3:] == ["granting", "revoking", "revoked"]


async def test_revoke_is_retried_until_aws_allows_it(env, engine, org, sso, worker_for):
    inp = new_request(
        engine, org, approvals_required=0, account="staging", username="erin@example.com"
    )
    ic = DeniedDeletes(sso, refusals=3)
    async with worker_for(ic):
        handle = await start(env, inp)
        assert await finished(handle.result()) == "ended"
    assert ic.calls == 4
    assert row(engine, inp.request_id).status == "ended"
    assert not assigned(sso, inp)
    events = audit(engine, inp.request_id)
    trail = [e.action for e in events]
    # The owner revokes before the projection says `revoking` (a revoke never waits for the
    # database), so its first refusal may be recorded either side of that write.
    assert sorted(trail[-5:-1]) == ["revoke_failed"] * 3 + ["revoking"]
    assert trail[-1] == "ended"
    failed = [e for e in events if e.action == "revoke_failed"]
    assert all("not authorized" in e.details["reason"] for e in failed)


async def test_an_operation_in_progress_is_polled_never_started_twice(
    env, engine, org, sso, worker_for
):
    inp = new_request(engine, org, approvals_required=0, account="prod")
    aws = SlowOperations(sso)
    async with worker_for(AssignmentActivities(provider_for(aws), poll_interval=0.01)):
        handle = await start(env, inp)

        async def active() -> bool:
            return await handle.query(AccessRequestWorkflow.status) == "active"

        await until(active, "the grant is done")
        assert assigned(sso, inp)
        await handle.execute_update(AccessRequestWorkflow.revoke, RevokeInput(ALICE, "done"))
        assert await finished(handle.result()) == "revoked"
    assert not assigned(sso, inp)
    # Each round is one activity retried while AWS works: the retry polls the operation it
    # started (kept in the heartbeat) and never creates or deletes a second time.
    assert aws.calls == {
        "create_account_assignment": 1,
        "describe_account_assignment_creation_status": 3,
        "delete_account_assignment": 1,
        "describe_account_assignment_deletion_status": 3,
    }
    assert actions(engine, inp.request_id)[-3:] == ["granted", "revoking", "revoked"]


async def test_grant_refused_by_aws_fails_and_leaves_nothing(env, engine, org, sso, worker_for):
    inp = new_request(
        engine, org, approvals_required=0, account="sandbox", username="carol@example.com"
    )
    aws = RefusingStatus(sso)
    async with worker_for(AssignmentActivities(provider_for(aws), poll_interval=0.01)):
        handle = await start(env, inp)
        assert await finished(handle.result()) == "failed"
    assert len(aws.refused) == 1  # permanent: asked once, not retried
    r = row(engine, inp.request_id)
    assert r.status == "failed"
    assert REFUSAL in r.failure
    assert r.granted_at is None
    # The create went through at moto before the status said FAILED: it was taken back.
    assert not assigned(sso, inp)
    assert actions(engine, inp.request_id)[-2:] == ["granting", "grant_failed"]


async def test_requester_cancels_while_granting(env, engine, org, sso, worker_for):
    inp = new_request(
        engine,
        org,
        approvals_required=0,
        account="prod",
        permission_set="AdministratorAccess",
        username="alice@example.com",
        duration=timedelta(hours=1),
    )
    ic = HeldCreate(sso)
    alice = Actor("alice@example.com", ["developers"])
    async with worker_for(ic):
        try:
            handle = await start(env, inp)
            await in_thread(ic.started.wait)
            update = await handle.start_update(
                AccessRequestWorkflow.cancel,
                CancelInput(alice, "wrong account"),
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )
            ic.go.set()
            await finished(update.result())
            assert await finished(handle.result()) == "cancelled"
        finally:
            ic.go.set()
    (operation,) = ic.operations
    assert operation is not None  # the grant really reached AWS, once
    assert not assigned(sso, inp)
    r = row(engine, inp.request_id)
    assert r.status == "cancelled"
    assert r.granted_at is None
    assert "granted" not in actions(engine, inp.request_id)
