"""Leases that end by themselves, and an owner that can be rebuilt: access ends when it ends,
whatever happens to the request's workflow or to the owner's own state."""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import sqlalchemy as sa
from temporalio import workflow
from temporalio.service import RPCError

from activities.assignments import AssignmentActivities
from activities.lease import LeaseActivities
from elevate.contracts import (
    Actor,
    AssignmentState,
    LeaseInput,
    RevokeInput,
    assignment_workflow_id,
)
from elevate.devstack.moto_fidelity import install
from tests.workflows.conftest import TASK_QUEUE, activities_of, fleet, new_request, provider_for
from tests.workflows.test_extension import extension
from tests.workflows.test_lifecycle import actions, assigned, row
from tests.workflows.test_overlaps import approved, until
from workflows.access_request import AccessRequestWorkflow


async def gone(sso, inp, tries: int = 300) -> bool:
    """The revoke runs in real time after a timer fired in skipped time: wait for it."""
    for _ in range(tries):
        if not assigned(sso, inp):
            return True
        await asyncio.sleep(0.02)
    return False


def owner_of(env, inp):
    return env.client.get_workflow_handle(assignment_workflow_id(inp.assignment))


async def pending(env, engine, org, timeout: timedelta):
    """A request nobody approves: an open workflow that hears the owner's answers, and a clock
    (awaiting its result skips time until it expires)."""
    inp = new_request(engine, org, account="sandbox", approval_timeout=timeout)
    return await env.client.start_workflow(
        "AccessRequestWorkflow", inp, id=f"access-request-{inp.request_id}", task_queue=TASK_QUEUE
    )


async def test_a_lease_nobody_gives_back_ends_at_end_plus_grace(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, duration=timedelta(hours=1), account="prod")
    async with worker_for():
        h = await pending(env, engine, org, timedelta(minutes=30))
        # An acquire whose request will never release (its workflow was terminated, is stuck).
        lease = LeaseInput(inp.request_id, h.id, inp.assignment, duration=timedelta(hours=1))
        await LeaseActivities(env.client, TASK_QUEUE).send_lease(lease)
        for _ in range(200):
            if assigned(sso, inp):
                break
            await asyncio.sleep(0.02)
        assert assigned(sso, inp)
        assert await h.result() == "expired"  # 30 minutes later
        assert assigned(sso, inp)  # still covered: its end has not come
        clock = await pending(env, engine, org, timedelta(minutes=35))
        assert await clock.result() == "expired"  # past the end + the 2-minute grace
        assert await gone(sso, inp)
        await asyncio.wait_for(owner_of(env, inp).result(), 10)  # idle and empty: it ends
        assert "lease_expired" in actions(engine, inp.request_id)


async def test_an_extension_moves_the_end_of_the_lease(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, duration=timedelta(hours=1), account="staging")
    async with worker_for():
        handle = await approved(env, inp)
        await until(engine, inp.request_id, "active")
        owner = owner_of(env, inp)
        first = (await owner.query("expiries"))[inp.request_id]
        await handle.execute_update("extend", extension(2, required=0))  # needs no approval
        for _ in range(200):
            moved = (await owner.query("expiries"))[inp.request_id]
            if moved != first:
                break
            await asyncio.sleep(0.02)
        end_at = row(engine, inp.request_id).end_at
        assert datetime.fromisoformat(moved) == end_at + timedelta(minutes=2)
        # The first end was counted from the owner's grant, a few milliseconds before the request's.
        later = datetime.fromisoformat(moved) - datetime.fromisoformat(first)
        assert abs(later - timedelta(hours=2)) < timedelta(seconds=1)
        assert await handle.result() == "ended"
        assert await gone(sso, inp)


async def test_a_late_acquire_after_release_is_refused(env, engine, org, sso, worker_for):
    a = new_request(engine, org, duration=timedelta(minutes=30), account="sandbox")
    b = new_request(engine, org, duration=timedelta(hours=3), account="sandbox")
    async with worker_for():
        ha = await approved(env, a)
        hb = await approved(env, b)
        await until(engine, b.request_id, "active")
        assert await ha.result() == "ended"
        # A retried acquire of A arrives after A gave its lease back (B hears the answer).
        late = LeaseInput(a.request_id, hb.id, a.assignment, duration=timedelta(days=1))
        await LeaseActivities(env.client, TASK_QUEUE).send_lease(late)
        owner = owner_of(env, a)
        for _ in range(100):
            if await owner.query("leases") == [b.request_id]:
                break
            await asyncio.sleep(0.02)
        assert await owner.query("leases") == [b.request_id]
        assert await hb.result() == "ended"
        assert await gone(sso, b)  # A's resurrected lease would have kept it
        await asyncio.wait_for(owner.result(), 10)


async def test_a_fresh_owner_keeps_access_another_request_covers(env, engine, org, sso, worker_for):
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
        await owner_of(env, a).terminate("the owner lost its state")
        await ha.execute_update("revoke", RevokeInput(Actor("bob@example.com"), "done with it"))
        assert await ha.result() == "revoked"
        assert row(engine, a.request_id).status == "revoked"
        assert assigned(sso, b)  # the fresh owner learned B's lease before it revoked
        assert row(engine, b.request_id).status == "active"
        assert await hb.result() == "ended"
        assert await gone(sso, b)


def scheduled_activities(history) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


async def test_a_fresh_owner_started_by_an_acquire_knows_the_leases_at_once(
    env, engine, org, sso, worker_for
):
    install()  # AWS keeps one assignment where moto would add a second on the repeated create
    a, b = (
        new_request(engine, org, duration=hours, account="prod", username="bob@example.com")
        for hours in (timedelta(hours=2), timedelta(hours=3))
    )
    async with worker_for():
        ha = await approved(env, a)
        await until(engine, a.request_id, "active")
        await owner_of(env, a).terminate("the owner lost its state")
        hb = await approved(env, b)  # its acquire starts a fresh owner
        await until(engine, b.request_id, "active")
        await hb.execute_update("revoke", RevokeInput(Actor("bob@example.com"), "done with it"))
        assert await hb.result() == "revoked"
        assert assigned(sso, a)  # the fresh owner knew A's lease: B's release did not revoke
        assert row(engine, a.request_id).status == "active"
        await ha.execute_update("revoke", RevokeInput(Actor("bob@example.com"), "done too"))
        assert await ha.result() == "revoked"
        assert await gone(sso, a)
        history = await owner_of(env, a).fetch_history()
        # It learned them from the acquire, without a round trip of its own to ask.
        assert "covering_leases" not in scheduled_activities(history)


async def test_an_acquire_that_cannot_read_the_leases_leaves_the_owner_to_ask(
    env, engine, org, tmp_path
):
    unreachable = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/elevate.db")
    lease = LeaseActivities(env.client, TASK_QUEUE, unreachable)
    inp = new_request(engine, org, account="prod")
    acquire = LeaseInput(inp.request_id, "w", inp.assignment, release=False)
    state = await lease._fresh_state(acquire)
    assert not state.rebuilt  # the owner asks the projection itself before it revokes anything
    assert state.leases == {}
    # With the database up, the acquire brings what the projection says.
    state = await LeaseActivities(env.client, TASK_QUEUE, engine)._fresh_state(acquire)
    assert state.rebuilt


@workflow.defn(name="AssignmentWorkflow", sandboxed=False)  # a test module: no sandbox
class SilentOwner:
    """An owner that takes every lease message and never answers (lost, stuck)."""

    def __init__(self) -> None:
        self.acquires: list[datetime] = []

    @workflow.signal
    def acquire(self, _lease: LeaseInput) -> None:
        self.acquires.append(workflow.now())

    @workflow.query
    def acquired_at(self) -> list[datetime]:
        return self.acquires

    @workflow.run
    async def run(self, _state: AssignmentState) -> None:
        await workflow.wait_condition(lambda: False)


async def test_an_unanswered_acquire_is_sent_again_ever_less_often(env, engine, org, sso):
    # Someone no other test here asks for: no real owner of the triple is running.
    inp = new_request(engine, org, approvals_required=0, username="audrey@example.com")
    ic = AssignmentActivities(provider_for(sso), poll_interval=0.01)
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with fleet(
            env.client,
            [AccessRequestWorkflow, SilentOwner],
            activities_of(engine, ic, env.client),
            executor,
        ):
            handle = await env.client.start_workflow(
                AccessRequestWorkflow.run,
                inp,
                id=f"access-request-{inp.request_id}",
                task_queue=TASK_QUEUE,
            )
            owner = owner_of(env, inp)
            try:
                await until_sent(owner, 1)
                await env.sleep(timedelta(minutes=70))
                await until_sent(owner, 7)
                sent = await owner.query(SilentOwner.acquired_at)
            finally:
                await handle.terminate("test over")
                await owner.terminate("test over")
    gaps = [round((b - a) / timedelta(minutes=1)) for a, b in itertools.pairwise(sent)]
    # Sent again after 2 minutes, then after each wait doubled, up to 16 minutes.
    assert gaps[:6] == [2, 4, 8, 16, 16, 16]


async def until_sent(owner, count: int) -> None:
    for _ in range(400):
        try:
            if len(await owner.query(SilentOwner.acquired_at)) >= count:
                return
        except RPCError:
            pass  # not started yet
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} acquires arrived")
