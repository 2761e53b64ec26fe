"""Recorded histories must replay; a change that breaks one needs workflow.patched."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.sessions import SessionActivities
from elevate.contracts import (
    Actor,
    DecisionInput,
    assignment_workflow_id,
    session_guard_workflow_id,
)
from elevate.temporal import data_converter
from tests.workflows.conftest import TASK_QUEUE, new_request, provider_for
from worker import WORKFLOW_RUNNER
from workflows.access_request import AccessRequestWorkflow
from workflows.assignment import AssignmentWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.sessions import SessionGuardWorkflow

# Recorded from test_fresh_history_replays with ELEVATE_RECORD_HISTORY=<dir>: one request's
# full lifecycle (request → approve → lease → end → release) and its assignment owner's run.
# v2: before notifications; v3: webhooks only; v4: webhooks, Slack and ending_soon;
# v5: leases that end, revoke first, and the permission set's writer ending live sessions;
# v5_slack (from tests/workflows/test_slack.py): a request with Slack approvals;
# v6: what is decided together written together, and an owner started with its leases known;
# v7: lease messages on their own task queue, and the owner's grant and revoke one activity each.
# v8: status writes that no lease message goes beside are local activities.
# v9: the release a signal from the request workflow itself.
# v10: the writes beside a lease message local too; the sessions writer tells in one write.
RECORD_AS = "lifecycle_v10"
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
# reconcile_v1/v2 (from tests/workflows/test_reconcile.py): one scan of every pair; check + sweep.
WORKFLOWS = [AccessRequestWorkflow, AssignmentWorkflow, SessionGuardWorkflow, ReconcileWorkflow]


# The SDK's default sandbox re-imports every workflow module for each run and checks what they
# call; the worker's runner imports them once (worker.py). Histories must replay under both.
RUNNERS = {"sandboxed": SandboxedWorkflowRunner(), "worker": WORKFLOW_RUNNER}


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path, runner: str) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=data_converter, workflow_runner=RUNNERS[runner]
    )
    await replayer.replay_workflow(history)


async def test_fresh_history_replays(env, engine, org, sso, worker_for) -> None:
    inp = new_request(engine, org, account="sandbox", permission_set="AdministratorAccess")
    sessions = SessionActivities(
        provider_for(sso), env.client, TASK_QUEUE, keep=timedelta(hours=1), poll_interval=0.01
    )
    async with worker_for(sessions=sessions):
        handle = await env.client.start_workflow(
            AccessRequestWorkflow.run,
            inp,
            id=f"access-request-{inp.request_id}",
            task_queue=TASK_QUEUE,
        )
        approver = Actor("carol@example.com", ["elevate-approvers"])
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(approver))
        assert await handle.result() == "ended"
        clock = new_request(engine, org, account="prod", approval_timeout=timedelta(hours=2))
        waiting = await env.client.start_workflow(
            AccessRequestWorkflow.run, clock, id=f"clock-{clock.request_id}", task_queue=TASK_QUEUE
        )
        assert await waiting.result() == "expired"  # the deny's hour has passed: the writer ends
        guard = env.client.get_workflow_handle(
            session_guard_workflow_id(inp.assignment.permission_set_arn)
        )
        await guard.result()
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter)
    owner = env.client.get_workflow_handle(assignment_workflow_id(inp.assignment))
    histories = {
        "request": await handle.fetch_history(),
        "owner": await owner.fetch_history(),
        "sessions": await guard.fetch_history(),
    }
    for history in histories.values():
        await replayer.replay_workflow(history)
    if record := os.environ.get("ELEVATE_RECORD_HISTORY"):
        for name, history in histories.items():
            (Path(record) / f"{RECORD_AS}_{name}.json").write_text(history.to_json())
