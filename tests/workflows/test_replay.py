"""Recorded histories must replay; a change that breaks one needs workflow.patched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from elevate.contracts import Actor, DecisionInput, assignment_workflow_id
from tests.workflows.conftest import TASK_QUEUE, new_request
from workflows.access_request import AccessRequestWorkflow
from workflows.assignment import AssignmentWorkflow

# Recorded from test_fresh_history_replays with ELEVATE_RECORD_HISTORY=<dir>: one request's
# full lifecycle (request → approve → lease → end → release) and its assignment owner's run.
# v2: before notifications; v3: webhooks only; v4: webhooks, Slack and ending_soon;
# v5_slack (from tests/workflows/test_slack.py): a request with Slack approvals.
RECORD_AS = "lifecycle_v4"
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
WORKFLOWS = [AccessRequestWorkflow, AssignmentWorkflow]


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


async def test_fresh_history_replays(env, engine, org, worker_for) -> None:
    inp = new_request(engine, org, account="sandbox", permission_set="AdministratorAccess")
    async with worker_for():
        handle = await env.client.start_workflow(
            AccessRequestWorkflow.run,
            inp,
            id=f"access-request-{inp.request_id}",
            task_queue=TASK_QUEUE,
        )
        approver = Actor("carol@example.com", ["elevate-approvers"])
        await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(approver))
        assert await handle.result() == "ended"
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    owner = env.client.get_workflow_handle(assignment_workflow_id(inp.assignment))
    histories = {"request": await handle.fetch_history(), "owner": await owner.fetch_history()}
    for history in histories.values():
        await replayer.replay_workflow(history)
    if record := os.environ.get("ELEVATE_RECORD_HISTORY"):
        for name, history in histories.items():
            (Path(record) / f"{RECORD_AS}_{name}.json").write_text(history.to_json())
