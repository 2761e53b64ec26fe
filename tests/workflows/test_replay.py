"""Recorded histories must replay; a change that breaks one needs workflow.patched."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from elevate.contracts import Actor, DecisionInput
from tests.workflows.conftest import TASK_QUEUE, new_request
from workflows.access_request import AccessRequestWorkflow

# Recorded with `history.to_json()` from a full run (request → approve → grant → end → revoke).
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json("recorded", path.read_text())
    replayer = Replayer(workflows=[AccessRequestWorkflow], data_converter=pydantic_data_converter)
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
        await handle.execute_update(
            AccessRequestWorkflow.approve,
            DecisionInput(Actor("carol@example.com", ["elevate-approvers"])),
        )
        assert await handle.result() == "ended"
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[AccessRequestWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
