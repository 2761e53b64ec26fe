"""The workflow's own checks: one person per spelling, and only messages elevate signed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowUpdateFailedError

from elevate import proof
from elevate.contracts import Actor, DecisionInput
from elevate.models import Approval
from tests.workflows.conftest import TASK_QUEUE, new_request
from workflows.access_request import AccessRequestWorkflow

APPROVERS = ["elevate-approvers"]


async def _start(env, inp):
    return await env.client.start_workflow(
        AccessRequestWorkflow.run, inp, id=f"access-request-{inp.request_id}", task_queue=TASK_QUEUE
    )


def _approvers(engine, rid) -> list[str]:
    with Session(engine) as s:
        return [a.approver for a in s.exec(select(Approval).where(Approval.request_id == rid))]


async def test_two_spellings_of_one_approver_count_once(env, engine, org, worker_for):
    inp = new_request(engine, org, username="carol@example.com", approvals_required=2)
    async with worker_for():
        handle = await _start(env, inp)
        with pytest.raises(WorkflowUpdateFailedError) as own:
            await handle.execute_update(
                AccessRequestWorkflow.approve, DecisionInput(Actor("Carol@Example.com", APPROVERS))
            )
        assert own.value.cause.type == "NotAllowed"
        await handle.execute_update(
            AccessRequestWorkflow.approve, DecisionInput(Actor("ERIN@example.com", APPROVERS))
        )
        with pytest.raises(WorkflowUpdateFailedError) as again:
            await handle.execute_update(
                AccessRequestWorkflow.approve, DecisionInput(Actor("erin@example.com", APPROVERS))
            )
        assert again.value.cause.type == "Conflict"
        await handle.terminate()
    assert _approvers(engine, inp.request_id) == ["ERIN@example.com"]


@pytest.fixture
def message_key() -> Iterator[str]:
    """The worker's key, as worker.py sets it at start; removed again for the other tests."""
    proof.configure(["test-message-key"])
    yield "test-message-key"
    proof.configure([])


async def test_only_a_signed_approval_counts(env, engine, org, worker_for, message_key):
    # Two approvals needed: one signed approval counts and grants nothing (no lease to sign).
    inp = new_request(engine, org, approvals_required=2, account="sandbox")
    carol = Actor("carol@example.com", APPROVERS)
    target = f"access-request-{inp.request_id}"
    async with worker_for():
        handle = await _start(env, inp)
        for forged in (
            DecisionInput(carol),
            proof.seal(DecisionInput(carol), "reject", target, message_key),  # another update
            proof.seal(DecisionInput(carol), "approve", "access-request-other", message_key),
        ):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(AccessRequestWorkflow.approve, forged)
            assert refused.value.cause.type == "NotAllowed"
        signed = proof.seal(DecisionInput(carol), "approve", target, message_key)
        await handle.execute_update(AccessRequestWorkflow.approve, signed)
        await handle.terminate()
    assert _approvers(engine, inp.request_id) == ["carol@example.com"]
