"""The API's gateway to a request's workflow: a 503 means nothing was recorded, and an action the
workflow accepted is never answered with one, however slowly it is recorded.

Against the stack's Temporal server (real time, on task queues of its own): the gateway gives up
on waits there, which the session's time-skipping server does not take well."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from api import temporal_gateway
from api.errors import NotAllowed, Unavailable
from api.temporal_gateway import TemporalGateway
from elevate import temporal
from elevate.settings import Settings
from tests.stack import Stack
from workflows.options import check_in_time

pytestmark = pytest.mark.integration
QUEUE = "test-gateway"
RECORD_SECONDS = 2.5  # the worker's database write, slower than the API waits
SLOW_TASK = 0.4  # seconds


@dataclass
class Decision:
    actor: str
    deadline: datetime | None = None
    proof: str | None = None


recorded = threading.Event()


@activity.defn
def slow_record(actor: str) -> None:
    time.sleep(RECORD_SECONDS)
    recorded.set()


@workflow.defn(sandboxed=False)
class SlowToRecord:
    def __init__(self) -> None:
        self.approved_by: str | None = None
        self.taken = False

    @workflow.query
    def was_taken(self) -> bool:
        return self.taken

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.approved_by is not None)
        return str(self.approved_by)

    @workflow.update
    async def approve(self, d: Decision) -> None:
        self.taken = True
        await workflow.execute_activity(
            slow_record, d.actor, start_to_close_timeout=timedelta(seconds=30)
        )
        self.approved_by = d.actor

    @approve.validator
    def check(self, d: Decision) -> None:
        check_in_time(d)  # as the real workflows' validators do
        if d.actor == "mallory":
            raise ApplicationError("you are not an approver", type="NotAllowed")
        if d.actor == "slowpoke":
            time.sleep(SLOW_TASK)  # a workflow task on a saturated worker


@pytest.fixture
async def temporal_client(stack: Stack) -> Client:
    return await Client.connect(stack.env["ELEVATE_TEMPORAL_ADDRESS"])


def _gateway(client: Client, monkeypatch: pytest.MonkeyPatch) -> TemporalGateway:
    monkeypatch.setattr(temporal_gateway, "ACTION_TIMEOUT", 1.0)
    gw = TemporalGateway(Settings(message_key="k" * 32))
    gw._client = client  # the gateway's own connection, to the stack's server
    return gw


@asynccontextmanager
async def serving(client: Client, queue: str) -> AsyncIterator[None]:
    """A worker for SlowToRecord on `queue`, for the block."""
    with ThreadPoolExecutor(4) as pool:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[SlowToRecord],
            activities=[slow_record],
            activity_executor=pool,
        ):
            yield


@pytest.fixture
async def gateway(
    temporal_client: Client, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TemporalGateway]:
    async with serving(temporal_client, QUEUE):
        yield _gateway(temporal_client, monkeypatch)


async def start(client: Client, queue: str = QUEUE) -> tuple[str, WorkflowHandle[Any, str]]:
    rid = str(uuid.uuid4())
    handle = await client.start_workflow(
        SlowToRecord.run, id=temporal.workflow_id(rid), task_queue=queue
    )
    return rid, handle


async def test_an_accepted_action_slow_to_record_is_not_a_503(temporal_client, gateway):
    recorded.clear()
    rid, handle = await start(temporal_client)
    began = time.monotonic()

    await gateway.update(rid, SlowToRecord.approve, Decision("carol"))  # no Unavailable

    assert time.monotonic() - began < RECORD_SECONDS  # answered within the API's bound ...
    assert not recorded.is_set()
    assert await handle.result() == "carol"  # ... and the approval was taken all the same
    assert recorded.is_set()


async def test_a_refusal_is_still_the_workflows_verdict(temporal_client, gateway):
    rid, handle = await start(temporal_client)
    with pytest.raises(NotAllowed, match="not an approver"):
        await gateway.update(rid, SlowToRecord.approve, Decision("mallory"))
    await handle.terminate()


async def test_no_worker_is_a_503_and_nothing_is_recorded(temporal_client, monkeypatch):
    gw = _gateway(temporal_client, monkeypatch)
    rid, handle = await start(temporal_client, "test-gateway-nobody")
    with pytest.raises(Unavailable, match="nothing was recorded"):
        await gw.update(rid, SlowToRecord.approve, Decision("carol"))
    await handle.terminate()


async def test_an_action_that_reaches_the_workflow_late_is_a_503_and_never_taken(
    temporal_client, monkeypatch
):
    """The worker picks the action up after its deadline (two thirds into the API's wait of
    1 s here) and its workflow task is slow: refused, so the 503 is true."""
    gw = _gateway(temporal_client, monkeypatch)
    rid, handle = await start(temporal_client, "test-gateway-late")
    attempt = asyncio.ensure_future(gw.update(rid, SlowToRecord.approve, Decision("slowpoke")))
    await asyncio.sleep(0.75)  # past the deadline, inside the wait
    async with serving(temporal_client, "test-gateway-late"):
        with pytest.raises(Unavailable, match="nothing was recorded"):
            await attempt
        await asyncio.sleep(1.0)
        assert not await handle.query(SlowToRecord.was_taken)
    await handle.terminate()


def test_a_refusal_for_lateness_is_a_503_not_a_conflict() -> None:
    """The validator refuses an action past its deadline while the API may still be waiting."""
    late = ApplicationError("the caller stopped waiting", type="Expired", non_retryable=True)
    answer = temporal_gateway._refused(WorkflowUpdateFailedError(late))
    assert isinstance(answer, Unavailable)
    assert "nothing was recorded" in str(answer)
