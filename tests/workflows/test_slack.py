"""Slack approvals in the workflow: scheduled only for Slack-configured requests, never in the
way of the lifecycle, and replayable."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.worker import Replayer

from activities.assignments import AssignmentActivities
from activities.slack import SlackActivities
from elevate.contracts import DecisionInput
from elevate.devstack.seed import USERS
from elevate.devstack.slack_standin import SlackStandIn, serving
from elevate.settings import Settings
from elevate.temporal import data_converter
from tests.workflows.conftest import activities_of, fleet, new_request, provider_for
from tests.workflows.test_faults import until
from tests.workflows.test_lifecycle import CAROL, row, start
from tests.workflows.test_notify import approved_at, scheduled
from worker import Fleet
from workflows.access_request import AccessRequestWorkflow
from workflows.assignment import AssignmentWorkflow


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with serving(USERS) as s:
        yield s


async def _true(value: bool) -> bool:
    return value


def _asked(standin: SlackStandIn, method: str):
    """Whether the stand-in was called with `method`, as `until` wants it."""
    return lambda: _true(bool(standin.calls_of(method)))


def _worker(env, engine, sso, standin: SlackStandIn, executor: ThreadPoolExecutor) -> Fleet:
    settings = Settings(
        slack_bot_token="xoxb-wf", slack_signing_secret="wf-secret", slack_api_url=standin.url
    )
    provider = provider_for(sso)
    ic = AssignmentActivities(provider, poll_interval=0.01)
    return fleet(
        env.client,
        [AccessRequestWorkflow, AssignmentWorkflow],
        [
            *activities_of(engine, ic, env.client),
            SlackActivities(engine, settings, provider).send_slack_approval,
        ],
        executor,
    )


@pytest.mark.parametrize("slack_app", [True, False])
async def test_only_slack_configured_requests_schedule_it_and_they_replay(
    env, engine, org, sso, standin, slack_app
):
    inp = new_request(engine, org, account="staging", duration=timedelta(hours=1))
    inp = dataclasses.replace(inp, slack_app=slack_app)
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with _worker(env, engine, sso, standin, executor):
            handle = await start(env, inp)
            if slack_app:
                # The approval message is out before the rest runs in skipped time.
                await until(_asked(standin, "chat.postMessage"), "the message was posted")
            await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
            assert await handle.result() == "ended"
    sent = await scheduled(handle, "send_slack_approval")
    # pending_approval, approved, active, ended: the events the messages show.
    assert len(sent) == (4 if slack_app else 0)
    assert bool(standin.calls_of("chat.postMessage")) is slack_app
    replayer = Replayer(
        workflows=[AccessRequestWorkflow, AssignmentWorkflow],
        data_converter=data_converter,
    )
    history = await handle.fetch_history()
    await replayer.replay_workflow(history)
    if slack_app and (record := os.environ.get("ELEVATE_RECORD_HISTORY")):
        (Path(record) / "lifecycle_v5_slack_request.json").write_text(history.to_json())


async def test_a_slack_outage_holds_up_neither_grant_nor_revoke(env, engine, org, sso, standin):
    standin.failing = True
    inp = new_request(engine, org, account="sandbox", duration=timedelta(hours=1))
    inp = dataclasses.replace(inp, slack_app=True)
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with _worker(env, engine, sso, standin, executor):
            handle = await start(env, inp)
            await until(lambda: _true(standin.refused >= 1), "the outage was met")
            await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
            assert await handle.result() == "ended"
    r = row(engine, inp.request_id)
    assert r.revoked_at - r.end_at < timedelta(seconds=5)
    assert r.granted_at - await approved_at(handle) < timedelta(seconds=5)
