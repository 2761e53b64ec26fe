"""Overlapping requests for the same assignment: access stays while any of them covers it."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from temporalio import activity
from temporalio.worker import Replayer

from activities.assignments import AssignmentActivities
from activities.lease import LeaseActivities
from elevate.contracts import Actor, Assignment, DecisionInput, LeaseInput, assignment_workflow_id
from elevate.temporal import data_converter
from tests.workflows.conftest import TASK_QUEUE, new_request, provider_for
from tests.workflows.test_lifecycle import actions, assigned, row
from workflows.access_request import AccessRequestWorkflow
from workflows.assignment import AssignmentWorkflow

CAROL = Actor("carol@example.com", ["elevate-approvers"])


async def approved(env, inp):
    handle = await env.client.start_workflow(
        AccessRequestWorkflow.run, inp, id=f"access-request-{inp.request_id}", task_queue=TASK_QUEUE
    )
    await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
    return handle


async def until(engine, rid, *statuses, tries=400):
    for _ in range(tries):
        if row(engine, rid).status in statuses:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{rid} is {row(engine, rid).status}, not {statuses}")


async def test_first_ending_does_not_cut_the_other(env, engine, org, sso, worker_for):
    a = new_request(
        engine, org, duration=timedelta(hours=1), account="prod", username="bob@example.com"
    )
    b = new_request(
        engine, org, duration=timedelta(hours=3), account="prod", username="bob@example.com"
    )
    async with worker_for():
        ha, hb = await approved(env, a), await approved(env, b)
        await until(engine, a.request_id, "active")
        await until(engine, b.request_id, "active")
        assert await ha.result() == "ended"  # skips time to A's end; B still holds a lease
        assert assigned(sso, b)
        assert row(engine, b.request_id).status == "active"
        assert await hb.result() == "ended"
    assert not assigned(sso, b)


async def test_later_request_ending_first_keeps_the_earlier(env, engine, org, sso, worker_for):
    a = new_request(
        engine, org, duration=timedelta(hours=4), account="staging", username="bob@example.com"
    )
    b = new_request(
        engine, org, duration=timedelta(minutes=30), account="staging", username="bob@example.com"
    )
    async with worker_for():
        ha = await approved(env, a)
        await until(engine, a.request_id, "active")
        hb = await approved(env, b)
        assert await hb.result() == "ended"
        assert assigned(sso, a)
        assert row(engine, a.request_id).status == "active"
        assert await ha.result() == "ended"
    assert not assigned(sso, a)


class SlowDelete(AssignmentActivities):
    """Holds every delete until the test lets it go, so a grant can arrive mid-revoke."""

    def __init__(self, sso, started: threading.Event, go: threading.Event) -> None:
        super().__init__(provider_for(sso), poll_interval=0.01)
        self.started, self.go = started, go

    @activity.defn(name="delete_assignment")
    def delete_assignment(self, a: Assignment) -> str | None:
        self.started.set()
        self.go.wait(10)
        return super().delete_assignment(a)


async def test_request_arriving_while_another_revokes_ends_up_granted(
    env, engine, org, sso, worker_for
):
    started, go = threading.Event(), threading.Event()
    a = new_request(
        engine, org, duration=timedelta(minutes=30), account="sandbox", username="bob@example.com"
    )
    b = new_request(
        engine, org, duration=timedelta(hours=2), account="sandbox", username="bob@example.com"
    )
    try:
        async with worker_for(SlowDelete(sso, started, go)):
            ha = await approved(env, a)
            await until(engine, a.request_id, "active")
            result = asyncio.ensure_future(ha.result())  # time skips to A's end: A revokes
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
            hb = await approved(env, b)  # B asks while A's revoke is at AWS
            go.set()
            assert await result == "ended"
            await until(engine, b.request_id, "active")
            assert assigned(sso, b)  # serialized: revoke finished, then B's grant
            assert await hb.result() == "ended"
    finally:
        go.set()
    assert not assigned(sso, b)


async def test_a_stale_repair_does_not_grant_again(env, engine, org, sso, worker_for):
    """The reconciler saw A active and its assignment missing; its repair arrives after A has
    released. B stands in for a request workflow that is still open to hear the answer."""
    a = new_request(
        engine, org, duration=timedelta(minutes=30), account="staging", username="erin@example.com"
    )
    b = new_request(
        engine, org, duration=timedelta(hours=2), account="sandbox", username="erin@example.com"
    )
    async with worker_for():
        assert await (await approved(env, a)).result() == "ended"
        hb = await approved(env, b)
        await until(engine, b.request_id, "active")
        stale = LeaseInput(a.request_id, hb.id, a.assignment, repair=True)
        await LeaseActivities(env.client, TASK_QUEUE).send_lease(stale)
        owner = env.client.get_workflow_handle(assignment_workflow_id(a.assignment))
        await asyncio.wait_for(owner.result(), 10)  # holds no lease, so it ends
        assert not assigned(sso, a)
        assert await hb.result() == "ended"
    assert "reconcile_missing_regranted" not in actions(engine, a.request_id)  # nothing was


async def test_a_repair_of_an_active_request_grants_again_and_is_audited(
    env, engine, org, sso, worker_for
):
    a = new_request(
        engine, org, duration=timedelta(hours=2), account="staging", username="dave@example.com"
    )
    async with worker_for():
        ha = await approved(env, a)
        await until(engine, a.request_id, "active")
        x = a.assignment
        sso.delete_account_assignment(
            InstanceArn=x.instance_arn,
            TargetId=x.account_id,
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=x.permission_set_arn,
            PrincipalType=x.principal_type,
            PrincipalId=x.principal_id,
        )  # someone removed it at AWS
        assert not assigned(sso, a)
        repair = LeaseInput(a.request_id, ha.id, x, repair=True)
        await LeaseActivities(env.client, TASK_QUEUE).send_lease(repair)
        for _ in range(400):
            if "reconcile_missing_regranted" in actions(engine, a.request_id):
                break
            await asyncio.sleep(0.02)
        assert assigned(sso, a)
        assert actions(engine, a.request_id).count("reconcile_missing_regranted") == 1
        assert await ha.result() == "ended"
    assert not assigned(sso, a)
    owner = env.client.get_workflow_handle(assignment_workflow_id(x))
    await asyncio.wait_for(owner.result(), 10)
    replayer = Replayer(workflows=[AssignmentWorkflow], data_converter=data_converter)
    await replayer.replay_workflow(await owner.fetch_history())  # the audited repair replays
