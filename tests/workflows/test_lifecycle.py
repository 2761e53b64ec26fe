"""The request lifecycle on the time-skipping server, with real activities against moto."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from elevate.contracts import Actor, CancelInput, DecisionInput, RevokeInput
from elevate.models import AccessRequest, Approval, AuditEvent
from tests.workflows.conftest import TASK_QUEUE, new_request
from workflows.access_request import AccessRequestWorkflow

CAROL = Actor("carol@example.com", ["elevate-approvers"])
ERIN = Actor("erin@example.com", ["elevate-approvers"])
ALICE = Actor("alice@example.com", ["developers"])
BOB = Actor("bob@example.com", ["developers"])
# The audit events of a request approved once that runs to its end.
LIFECYCLE = ["requested", "approval", "approved", "granting", "granted", "revoking", "ended"]


def assigned(sso, inp) -> bool:
    a = inp.assignment
    found = sso.list_account_assignments(
        InstanceArn=a.instance_arn, AccountId=a.account_id, PermissionSetArn=a.permission_set_arn
    )["AccountAssignments"]
    return any(x["PrincipalId"] == a.principal_id for x in found)


def row(engine, rid) -> AccessRequest:
    with Session(engine) as s:
        return s.get(AccessRequest, rid)


def actions(engine, rid) -> list[str]:
    with Session(engine) as s:
        stmt = select(AuditEvent).where(AuditEvent.request_id == rid).order_by(AuditEvent.seq)
        return [e.action for e in s.exec(stmt)]


async def start(env: WorkflowEnvironment, inp):
    return await env.client.start_workflow(
        AccessRequestWorkflow.run, inp, id=f"access-request-{inp.request_id}", task_queue=TASK_QUEUE
    )


async def test_eight_hour_grant_is_active_then_removed(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, duration=timedelta(hours=8))
    async with worker_for():
        handle = await start(env, inp)
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL, "ok"))
        assert await handle.result() == "ended"
    r = row(engine, inp.request_id)
    assert r.status == "ended"
    assert r.end_at - r.granted_at == timedelta(hours=8)
    assert r.decided_by == "carol@example.com"
    assert not assigned(sso, inp)
    assert actions(engine, inp.request_id) == LIFECYCLE


async def test_access_exists_while_active(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, account="staging")
    async with worker_for():
        handle = await start(env, inp)
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
        # Time skips only while a result is awaited, so polling here stays before end_at.
        for _ in range(200):
            if row(engine, inp.request_id).status == "active":
                break
            await asyncio.sleep(0.05)
        assert row(engine, inp.request_id).status == "active"
        assert assigned(sso, inp)
        await handle.execute_update(AccessRequestWorkflow.revoke, RevokeInput(ALICE, "done early"))
        assert await handle.result() == "revoked"
    r = row(engine, inp.request_id)
    assert r.revoked_by == "alice@example.com"
    assert not assigned(sso, inp)


async def test_unapproved_request_expires(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, approval_timeout=timedelta(hours=3))
    async with worker_for():
        handle = await start(env, inp)
        assert await handle.result() == "expired"
    assert row(engine, inp.request_id).status == "expired"
    assert not assigned(sso, inp)


async def test_reject_ends_without_grant(env, engine, org, sso, worker_for):
    inp = new_request(engine, org)
    async with worker_for():
        handle = await start(env, inp)
        await handle.execute_update(AccessRequestWorkflow.reject, DecisionInput(ERIN, "no"))
        assert await handle.result() == "rejected"
        with pytest.raises(RPCError):  # the workflow has closed: nothing left to decide
            await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
    assert row(engine, inp.request_id).decided_by == "erin@example.com"
    assert not assigned(sso, inp)


async def test_cancel_before_approval(env, engine, org, sso, worker_for):
    inp = new_request(engine, org)
    async with worker_for():
        handle = await start(env, inp)
        await handle.execute_update(AccessRequestWorkflow.cancel, CancelInput(ALICE, "not needed"))
        assert await handle.result() == "cancelled"
    assert row(engine, inp.request_id).status == "cancelled"


async def test_validators_refuse_self_approval_strangers_and_other_cancellers(
    env, engine, org, worker_for
):
    inp = new_request(engine, org, username="carol@example.com")
    async with worker_for():
        handle = await start(env, inp)
        for update, arg in [
            (AccessRequestWorkflow.approve, DecisionInput(CAROL)),  # own request
            (AccessRequestWorkflow.approve, DecisionInput(BOB)),  # not an approver
            (AccessRequestWorkflow.cancel, CancelInput(BOB)),  # not the requester
        ]:
            with pytest.raises(WorkflowUpdateFailedError) as err:
                await handle.execute_update(update, arg)
            assert err.value.cause.type == "NotAllowed"
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(ERIN))
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(ERIN))
        frank = Actor("frank@example.com", ["elevate-approvers"])
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(frank))
        assert err.value.cause.type == "Conflict"
        await handle.result()
    with Session(engine) as s:
        approvals = s.exec(select(Approval).where(Approval.request_id == inp.request_id)).all()
    assert [a.approver for a in approvals] == ["erin@example.com"]


async def test_scheduled_start_waits_and_fixes_end(env, engine, org, sso, worker_for):
    begin = (await env.get_current_time()) + timedelta(days=2)
    inp = new_request(engine, org, start_at=begin, duration=timedelta(hours=1), account="sandbox")
    async with worker_for():
        handle = await start(env, inp)
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
        assert await handle.result() == "ended"
    r = row(engine, inp.request_id)
    assert r.start_at == begin
    assert r.end_at == begin + timedelta(hours=1)
    assert r.granted_at >= begin


async def test_the_approval_completing_the_quorum_is_written_with_its_decision(
    env, engine, org, sso, worker_for
):
    inp = new_request(engine, org, duration=timedelta(hours=1), approvals_required=2)
    async with worker_for():
        handle = await start(env, inp)
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL, "one"))
        assert row(engine, inp.request_id).status == "pending_approval"
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(ERIN, "two"))
        # The answer already shows what the quorum decided: the grant is under way.
        assert row(engine, inp.request_id).status in ("granting", "active")
        assert await handle.result() == "ended"
        history = await handle.fetch_history()
    assert actions(engine, inp.request_id) == [*LIFECYCLE[:2], "approval", *LIFECYCLE[2:]]
    with Session(engine) as s:
        approvers = s.exec(select(Approval.approver).where(Approval.request_id == inp.request_id))
        assert sorted(approvers) == ["carol@example.com", "erin@example.com"]
    # One transaction for the second approval, `approved` and `granting`, in the workflow task
    # that sends the lease message to the owner, not four round trips one after another.
    tasks: list[list[str]] = [[]]
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            tasks.append([])
        elif (step := _step(e)) and "notification" not in step:
            tasks[-1].append(step)
    assert ["local record_batch", "send_lease"] in tasks
    assert sum(t.count("record_approval") for t in tasks) == 1  # the first approval, alone


LOCAL = "core_local_activity"  # the SDK's marker of a local activity's result


def _step(event) -> str | None:
    """What a history event did about the projection and the owner, if anything."""
    if event.HasField("activity_task_scheduled_event_attributes"):
        return event.activity_task_scheduled_event_attributes.activity_type.name
    if event.HasField("signal_external_workflow_execution_initiated_event_attributes"):
        return event.signal_external_workflow_execution_initiated_event_attributes.signal_name
    marker = event.marker_recorded_event_attributes
    if event.HasField("marker_recorded_event_attributes") and marker.marker_name == LOCAL:
        data = json.loads(marker.details["data"].payloads[0].data)
        return f"local {data['activity_type']}"
    return None


async def test_no_database_write_goes_through_the_task_queue(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, duration=timedelta(hours=1))
    async with worker_for():
        handle = await start(env, inp)
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
        assert await handle.result() == "ended"
        history = await handle.fetch_history()
    assert actions(engine, inp.request_id) == LIFECYCLE  # every step reached the projection
    steps = [s for s in map(_step, history.events) if s and "notification" not in s]
    # Every write is a local activity inside the workflow task: `requested`; the approval with
    # `approved` + `granting`, before the acquire goes out (no access the projection does not
    # show); `granted`; `revoking`, once the release is delivered (a release never waits for
    # the database); `ended`. Only the acquire is queued: send_lease may start the owner. The
    # release is a signal from the workflow itself: the owner runs while it holds the lease.
    assert steps == [
        "local record_status",
        "local record_batch",
        "send_lease",
        "local record_status",
        "release",
        "local record_status",
        "local record_status",
    ]
