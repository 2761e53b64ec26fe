"""Notifications from the lifecycle: in order, readable in Slack, never in the way of a revoke."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from elevate.contracts import DecisionInput
from elevate.settings import Settings
from tests.sink import Sink, webhook_sink
from tests.workflows.conftest import new_request
from tests.workflows.test_extension import extension
from tests.workflows.test_lifecycle import CAROL, assigned, row, start
from tests.workflows.test_overlaps import approved, until
from workflows.access_request import AccessRequestWorkflow

LEAD = timedelta(minutes=15)  # the default lead of ending_soon


def _settings(webhook: str | None = None, slack: str | None = None) -> Settings:
    return Settings(
        notify_webhook_url=webhook,
        notify_webhook_secret="s",
        slack_webhook_url=slack,
        public_url="https://e.test",
    )


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def _scheduled(
    handle: WorkflowHandle[object, object],
) -> AsyncIterator[tuple[str, dict, datetime]]:
    """Each activity the workflow scheduled: its name, its input, when by the workflow's clock.

    That is the time-skipping server's clock: the waits it skipped show at their full length.
    """
    async for e in handle.fetch_history_events():
        attrs = e.activity_task_scheduled_event_attributes
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            arg = json.loads(attrs.input.payloads[0].data)
            yield attrs.activity_type.name, arg, e.event_time.ToDatetime(tzinfo=UTC)


async def scheduled(
    handle: WorkflowHandle[object, object], activity: str, **match: str
) -> list[datetime]:
    """When the workflow scheduled `activity` with these input fields."""
    return [
        at
        async for name, arg, at in _scheduled(handle)
        if name == activity and match.items() <= arg.items()
    ]


async def approved_at(handle: WorkflowHandle[object, object]) -> datetime:
    """When the approval was accepted, by the workflow's clock."""
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            return e.event_time.ToDatetime(tzinfo=UTC)
    raise AssertionError("no update was accepted")


async def sent_at(handle: WorkflowHandle[object, object], event: str) -> list[datetime]:
    return await scheduled(handle, "send_notification", event=event)


async def received(sink: Sink, event: str) -> None:
    for _ in range(400):
        if event in sink.events():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {event} among {sink.events()}")


async def test_every_lifecycle_event_arrives_once(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, duration=timedelta(hours=1))
    with webhook_sink() as sink:
        async with worker_for(settings=_settings(sink.url)):
            handle = await start(env, inp)
            await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
            assert await handle.result() == "ended"
    # Each event is its own activity, delivered concurrently with its neighbours: receivers order
    # them by the request's timeline, not by arrival (pending_approval and approved may swap).
    events = sink.events()
    assert sorted(events) == sorted(
        ["pending_approval", "approved", "active", "ending_soon", "ended"]
    )
    assert events[-2:] == ["ending_soon", "ended"]  # an hour apart: these never swap
    ids = {d.headers["X-Elevate-Event-Id"] for d in sink.received}
    assert len(ids) == 5
    last = sink.received[-1].json
    assert last["request"]["status"] == "ended"
    assert last["link"] == f"https://e.test/requests/{inp.request_id}"


async def test_slack_gets_a_readable_message_per_event(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, account="sandbox", duration=timedelta(hours=1))
    with webhook_sink() as slack:
        async with worker_for(settings=_settings(slack=slack.url)):
            handle = await approved(env, inp)
            assert await handle.result() == "ended"
    r = row(engine, inp.request_id)
    who = f"alice@example.com's request for ReadOnly on sandbox ({org.accounts['sandbox']})"
    link = f"https://e.test/requests/{inp.request_id}"
    texts = slack.texts()  # concurrent deliveries: neighbours may arrive swapped
    assert sorted(texts) == sorted(
        [
            f"{who} waits for approval by the elevate-approvers group: {link}",
            f"{who} was approved by carol@example.com: {link}",
            f"{who} is active until {_utc(r.end_at)}: {link}",
            f"{who} ends soon, at {_utc(r.end_at)}: {link}",
            f"{who} has ended: {link}",
        ]
    )
    active = next(d for d in slack.received if "is active until" in d.json["text"])
    facts = [f["text"] for f in active.json["blocks"][1]["fields"]]
    assert facts[:2] == [f"*Start*\n{_utc(r.start_at)}", f"*End*\n{_utc(r.end_at)}"]


async def test_ending_soon_comes_the_lead_before_the_end(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, account="staging", duration=timedelta(hours=2))
    inp.ending_soon_lead = timedelta(minutes=30)
    with webhook_sink() as sink:
        async with worker_for(settings=_settings(sink.url)):
            handle = await approved(env, inp)
            assert await handle.result() == "ended"
    assert sink.events()[-2:] == ["ending_soon", "ended"]  # neighbours of `active` may swap
    assert "active" in sink.events()[:-2]
    end_at = row(engine, inp.request_id).end_at
    [soon] = await sent_at(handle, "ending_soon")
    assert end_at - timedelta(minutes=30) <= soon < end_at - timedelta(minutes=29)
    [ended] = await sent_at(handle, "ended")
    assert ended >= end_at


async def test_a_request_shorter_than_the_lead_gets_no_ending_soon(
    env, engine, org, sso, worker_for
):
    inp = new_request(engine, org, account="prod", permission_set="BreakGlass", duration=LEAD)
    with webhook_sink() as sink:
        async with worker_for(settings=_settings(sink.url)):
            handle = await approved(env, inp)
            assert await handle.result() == "ended"
    # Concurrent neighbours may swap (above): `approved`, then `active` once moto granted.
    assert sorted(sink.events()) == sorted(["pending_approval", "approved", "active", "ended"])


async def test_an_extension_after_ending_soon_brings_another(env, engine, org, sso, worker_for):
    inp = new_request(
        engine,
        org,
        account="prod",
        permission_set="AdministratorAccess",
        duration=timedelta(hours=2),
    )
    with webhook_sink() as hook, webhook_sink() as slack:
        async with worker_for(settings=_settings(hook.url, slack.url)):
            handle = await approved(env, inp)
            await until(engine, inp.request_id, "active")
            first_end = row(engine, inp.request_id).end_at
            await env.sleep(first_end - LEAD / 3 - await env.get_current_time())
            await received(hook, "ending_soon")
            assert await env.get_current_time() < first_end
            await handle.execute_update("extend", extension(1, required=0))  # waived: applies now
            assert await handle.result() == "ended"
    new_end = first_end + timedelta(hours=1)
    assert row(engine, inp.request_id).end_at == new_end
    # `approved` and `active` may swap (above); the rest come hours apart.
    assert hook.events()[-3:] == ["ending_soon", "ending_soon", "ended"]
    assert "active" in hook.events()[:-3]
    first, second = await sent_at(handle, "ending_soon")
    assert first_end - LEAD <= first < first_end - LEAD + timedelta(minutes=1)
    assert new_end - LEAD <= second < new_end - LEAD + timedelta(minutes=1)
    ends = [d.json["request"]["end_at"] for d in hook.received if d.json["event"] == "ending_soon"]
    assert [datetime.fromisoformat(e) for e in ends] == [first_end, new_end]
    soon = [t for t in slack.texts() if "ends soon" in t]
    assert len(soon) == 2
    assert f"ends soon, at {_utc(first_end)}:" in soon[0]
    assert f"ends soon, at {_utc(new_end)}:" in soon[1]


@pytest.mark.parametrize(("failing", "account"), [("webhook", "staging"), ("slack", "sandbox")])
async def test_a_failing_channel_holds_up_neither_the_lifecycle_nor_the_other(
    env, engine, org, sso, worker_for, failing, account
):
    inp = new_request(
        engine, org, account=account, permission_set="BreakGlass", duration=timedelta(hours=1)
    )
    with webhook_sink() as good, webhook_sink(status=500) as bad:
        hook, slack = (bad, good) if failing == "webhook" else (good, bad)
        async with worker_for(settings=_settings(hook.url, slack.url)):
            handle = await start(env, inp)
            await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
            assert await handle.result() == "ended"
    r = row(engine, inp.request_id)
    assert r.status == "ended"
    assert not assigned(sso, inp)
    # Neither the grant nor the revoke waited for the retries (which time-skipping would skip).
    assert r.granted_at - await approved_at(handle) < timedelta(seconds=5)
    assert r.revoked_at - r.end_at < timedelta(seconds=5)
    assert len(bad.received) > 5  # tried, and retried, without success
    assert len(good.received) == 5  # the other channel's deliveries were not sent again


async def scheduled_types(handle: WorkflowHandle[object, object]) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


@pytest.mark.parametrize("channels", [["slack"], []])
async def test_only_the_channels_configured_at_the_request_are_notified(
    env, engine, org, sso, worker_for, channels
):
    inp = new_request(engine, org, account="sandbox", duration=timedelta(hours=1))
    inp.channels = channels  # the API's settings had only these URLs
    with webhook_sink() as hook, webhook_sink() as slack:
        async with worker_for(settings=_settings(hook.url, slack.url)):
            handle = await approved(env, inp)
            assert await handle.result() == "ended"
    assert hook.events() == []
    assert len(slack.received) == (5 if channels else 0)
    # An unconfigured channel costs no activity either, not one that finds no URL.
    types = await scheduled_types(handle)
    assert "send_notification" not in types
    assert types.count("send_slack_notification") == (5 if channels else 0)
