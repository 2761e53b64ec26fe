"""Extending an active request: approved, rejected, expired, waived."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from elevate.contracts import Actor, DecisionInput, ExtendInput, Principal
from tests.workflows.test_lifecycle import actions, assigned, row
from tests.workflows.test_overlaps import approved, until

ALICE = Actor("alice@example.com", ["developers"])
CAROL = Actor("carol@example.com", ["elevate-approvers"])
APPROVERS = [Principal("group", "elevate-approvers")]


def extension(
    hours: float, required: int = 1, timeout: timedelta = timedelta(hours=1)
) -> ExtendInput:
    return ExtendInput(
        ALICE, "ext-1", timedelta(hours=hours), "need more time", APPROVERS, required, timeout
    )


async def active(env, engine, org, **kw):
    from tests.workflows.conftest import new_request

    inp = new_request(engine, org, duration=timedelta(hours=2), **kw)
    handle = await approved(env, inp)
    await until(engine, inp.request_id, "active")
    return inp, handle


async def test_approved_extension_moves_the_end_without_a_gap(env, engine, org, sso, worker_for):
    async with worker_for():
        inp, handle = await active(
            env, engine, org, account="prod", permission_set="AdministratorAccess"
        )
        await handle.execute_update("extend", extension(1))
        assert row(engine, inp.request_id).pending_extension["approvals_required"] == 1
        with pytest.raises(WorkflowUpdateFailedError):  # one pending extension at a time
            await handle.execute_update("extend", extension(1))
        await handle.execute_update("approve", DecisionInput(CAROL, "ok"))
        r = row(engine, inp.request_id)
        assert r.end_at - r.granted_at == timedelta(hours=3)
        assert r.pending_extension is None
        assert assigned(sso, inp)
        assert await handle.result() == "ended"
    events = actions(engine, inp.request_id)
    assert events.index("extended") < events.index("revoking")
    assert events.count("revoking") == 1  # the access never lapsed in between


async def test_rejected_and_expired_extensions_leave_the_end_alone(env, engine, org, worker_for):
    async with worker_for():
        inp, handle = await active(
            env, engine, org, account="staging", permission_set="AdministratorAccess"
        )
        await handle.execute_update("extend", extension(4))
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update("approve", DecisionInput(ALICE))  # the requester
        assert err.value.cause.type == "NotAllowed"
        await handle.execute_update("reject", DecisionInput(CAROL, "no"))
        await handle.execute_update("extend", extension(4, timeout=timedelta(minutes=30)))
        assert await handle.result() == "ended"  # time skips past the extension's deadline
    r = row(engine, inp.request_id)
    assert r.end_at - r.granted_at == timedelta(hours=2)
    assert r.pending_extension is None
    events = actions(engine, inp.request_id)
    assert "extension_rejected" in events
    assert "extension_expired" in events
    assert "extended" not in events


async def test_waived_extension_applies_at_once(env, engine, org, worker_for):
    async with worker_for():
        inp, handle = await active(
            env, engine, org, account="sandbox", permission_set="AdministratorAccess"
        )
        await handle.execute_update("extend", extension(0.5, required=0))
        r = row(engine, inp.request_id)
        assert r.end_at - r.granted_at == timedelta(hours=2, minutes=30)
        assert await handle.result() == "ended"
