"""Webhooks from the lifecycle: delivered in order, and never in the way of a revoke."""

from __future__ import annotations

from datetime import timedelta

from elevate.contracts import DecisionInput
from elevate.settings import Settings
from tests.sink import webhook_sink
from tests.workflows.conftest import new_request
from tests.workflows.test_lifecycle import CAROL, assigned, row, start
from workflows.access_request import AccessRequestWorkflow


def _settings(url: str) -> Settings:
    return Settings(notify_webhook_url=url, notify_webhook_secret="s", public_url="https://e.test")


async def test_lifecycle_events_arrive_in_order(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, duration=timedelta(hours=1))
    with webhook_sink() as sink:
        async with worker_for(settings=_settings(sink.url)):
            handle = await start(env, inp)
            await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
            assert await handle.result() == "ended"
    assert sink.events() == ["pending_approval", "approved", "active", "ended"]
    ids = {d.headers["X-Elevate-Event-Id"] for d in sink.received}
    assert len(ids) == 4
    last = sink.received[-1].json
    assert last["request"]["status"] == "ended"
    assert last["link"] == f"https://e.test/v1/requests/{inp.request_id}"


async def test_a_failing_receiver_does_not_hold_up_the_lifecycle(env, engine, org, sso, worker_for):
    inp = new_request(engine, org, account="staging", duration=timedelta(hours=1))
    with webhook_sink(status=500) as sink:
        async with worker_for(settings=_settings(sink.url)):
            handle = await start(env, inp)
            await handle.execute_update(AccessRequestWorkflow.approve, DecisionInput(CAROL))
            assert await handle.result() == "ended"
    assert row(engine, inp.request_id).status == "ended"
    assert not assigned(sso, inp)
    assert "ended" in sink.events()  # it was tried, and retried, without success
    assert len(sink.received) > 4
