"""Reaching Temporal is not enough: messages that elevate did not sign are refused.

Sent straight to the stack's Temporal frontend, as anyone who can reach it could.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError

from elevate import proof
from elevate.contracts import (
    Actor,
    Assignment,
    AssignmentState,
    DecisionInput,
    LeaseInput,
    assignment_workflow_id,
)
from elevate.temporal import data_converter
from tests.stack import Stack
from workflows.access_request import AccessRequestWorkflow
from workflows.assignment import AssignmentWorkflow

ALICE, CAROL = "alice@example.com", "carol@example.com"
CAROL_ACTOR = Actor(CAROL, ["elevate-approvers"])


@pytest.fixture
async def temporal(stack: Stack) -> Client:
    return await Client.connect(
        stack.env["ELEVATE_TEMPORAL_ADDRESS"], data_converter=data_converter
    )


def _pending(stack: Stack) -> str:
    with stack.client(ALICE) as c:
        resp = c.post(
            "/v1/requests",
            json={
                "account_id": stack.org.accounts["sandbox"],
                "permission_set": "ReadOnly",
                "duration": "PT1H",
                "justification": "forgery test",
            },
        )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _forgeries(stack: Stack, other_request: str) -> dict[str, DecisionInput]:
    genuine_elsewhere = proof.seal(
        DecisionInput(CAROL_ACTOR),
        "approve",
        f"access-request-{other_request}",
        stack.env["ELEVATE_MESSAGE_KEY"],
    )
    return {
        "no proof": DecisionInput(CAROL_ACTOR),
        "junk proof": DecisionInput(CAROL_ACTOR, proof="0" * 64),
        "another key": proof.seal(DecisionInput(CAROL_ACTOR), "approve", "x", "not-the-key"),
        "replayed from another request": genuine_elsewhere,
    }


async def test_a_forged_approval_is_refused_and_leaves_no_history(
    stack: Stack, temporal: Client
) -> None:
    rid, other = _pending(stack), _pending(stack)
    handle = temporal.get_workflow_handle(f"access-request-{rid}")
    for name, forged in _forgeries(stack, other).items():
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(AccessRequestWorkflow.approve, forged)
        assert "prove" in str(refused.value.cause), name
    history = await handle.fetch_history()
    kinds = {e.event_type for e in history.events}
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in kinds
    with stack.client(ALICE) as c:
        got = c.get(f"/v1/requests/{rid}").json()
    assert (got["status"], got["approvals"]) == ("pending_approval", [])


async def test_a_forged_acquire_grants_nothing(stack: Stack, temporal: Client) -> None:
    account, pset = stack.org.accounts["sandbox"], stack.org.permission_sets["AdministratorAccess"]
    target = Assignment(stack.org.instance_arn, account, pset, stack.org.users[ALICE])
    owner = assignment_workflow_id(target)
    for forged in (
        LeaseInput("forged-1", "access-request-forged", target),
        proof.seal(LeaseInput("forged-2", "x", target), "acquire", owner, "not-the-key"),
    ):
        await temporal.start_workflow(
            AssignmentWorkflow.run,
            AssignmentState(target),
            id=owner,
            task_queue=stack.env["ELEVATE_TASK_QUEUE"],
            start_signal="acquire",
            start_signal_args=[forged],
        )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the owner had time to act on it, and did not
        assert not stack.assigned("sandbox", "AdministratorAccess", ALICE)
        await asyncio.sleep(0.5)
    history = await temporal.get_workflow_handle(owner).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    # A fresh owner only looks up who covers its triple; nothing is asked of AWS.
    assert set(scheduled) <= {"covering_leases"}
