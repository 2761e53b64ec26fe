"""How workflows call activities: timeouts and retry policies, stated once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from elevate import proof
    from elevate.contracts import AWS_FIRST_BACKOFF, AWS_MAX_BACKOFF

# Database writes retry until they succeed: the projection must catch up with the history.
_STORE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
# AWS calls: botocore already retried throttling briefly; this covers longer outages and the
# fleet's own budget (API.md "AWS budget"). A revoke never gives up; a grant keeps trying for
# _GRANT_PATIENCE, then the request fails naming AWS's reason.
_AWS_RETRY = RetryPolicy(initial_interval=AWS_FIRST_BACKOFF, maximum_interval=AWS_MAX_BACKOFF)
_GRANT_PATIENCE = timedelta(minutes=30)
# Each lane is its own task queue with its own share of ELEVATE_AWS_MAX_CALLS_PER_SECOND
# (worker.py), so a burst of grants or a long sweep cannot hold up a revoke.
Lane = Literal["revoke", "grant", "sweep"]
# Webhooks: a receiver that is down gets retried for a while, then the event is dropped.
_NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
# Before this patch lease messages took the main task queue's activity slots, shared with every
# database write: in a burst a release waited behind the projection. Now they have their own.
LEASE_QUEUE = "lease-queue"
A = TypeVar("A")
R = TypeVar("R")
SYSTEM = "elevate"  # the actor of what the workflows decide themselves


def conflict(message: str) -> ApplicationError:
    """A validator's refusal the API answers with 409."""
    return ApplicationError(message, type="Conflict", non_retryable=True)


def check_in_time(inp: Any) -> None:
    """An action the API already answered 503 for (it waited 15 s) must not happen later."""
    deadline = getattr(inp, "deadline", None)
    if deadline is not None and workflow.now() > deadline:
        raise ApplicationError("the caller stopped waiting", type="Expired", non_retryable=True)


def not_allowed(message: str) -> ApplicationError:
    """A validator's refusal the API answers with 403."""
    return ApplicationError(message, type="NotAllowed", non_retryable=True)


def check_proof(kind: str, message: Any) -> None:
    """Refuse a message the API or the worker did not make (see elevate/proof.py); used by
    validators, so a forged update never reaches history."""
    if not proof.genuine(message, kind, workflow.info().workflow_id):
        raise not_allowed("the message does not prove that elevate sent it")


def lane_queue(task_queue: str, lane: Lane) -> str:
    """The task queue of an AWS lane: `<task_queue>-aws-<lane>`."""
    return f"{task_queue}-aws-{lane}"


def message_queue(task_queue: str) -> str:
    """The task queue of lease messages to the owners: `<task_queue>-messages`."""
    return f"{task_queue}-messages"


def _patience(lane: Lane) -> timedelta | None:
    return _GRANT_PATIENCE if lane == "grant" else None


# Short start-to-close timeouts: they are how Temporal notices a worker that died mid-call,
# so they bound how long a crash delays a grant or a revoke.
async def aws(activity: Callable[[Any, A], R], arg: A, lane: Lane) -> R:
    return await _on_lane(activity, arg, lane, timedelta(seconds=30))


async def wait_aws(activity: Callable[[Any, A], R], arg: A, lane: Lane) -> R:
    """Polls AWS inside the activity; the heartbeat notices a worker that died mid-poll."""
    return await _on_lane(activity, arg, lane, timedelta(minutes=10), timedelta(seconds=10))


async def aws_round(activity: Callable[[Any, A], R], arg: A, lane: Lane) -> R:
    """A whole grant or revoke at AWS in one activity (start, wait, read back); its heartbeat
    keeps the operation across attempts and notices a worker that died mid-round."""
    return await _on_lane(activity, arg, lane, timedelta(minutes=2), timedelta(seconds=10))


async def _on_lane(
    activity: Callable[[Any, A], R],
    arg: A,
    lane: Lane,
    start_to_close: timedelta,
    heartbeat: timedelta | None = None,
) -> R:
    return await workflow.execute_activity_method(
        activity,
        arg,
        task_queue=lane_queue(workflow.info().task_queue, lane),
        start_to_close_timeout=start_to_close,
        schedule_to_close_timeout=_patience(lane),
        heartbeat_timeout=heartbeat,
        retry_policy=_AWS_RETRY,
    )


async def store(activity: Callable[[Any, A], R], arg: A) -> R:
    """Database writes and Temporal messages: retried until they succeed."""
    return await workflow.execute_activity_method(
        activity, arg, start_to_close_timeout=timedelta(seconds=10), retry_policy=_STORE_RETRY
    )


async def ask(activity: Callable[[Any, A], Awaitable[R]], arg: A) -> R:
    """An async activity that reads (the projection, Temporal): retried until it answers."""
    return await workflow.execute_activity_method(
        activity, arg, start_to_close_timeout=timedelta(seconds=30), retry_policy=_STORE_RETRY
    )


async def local_store(activity: Callable[[Any, A], R], arg: A) -> R:
    """A database write run by the workflow's own worker inside its workflow task (a local
    activity): no round trip through a task queue. Only for a write that no other command waits
    behind, since the task's commands go out once it is done. Retried until it succeeds."""
    return await workflow.execute_local_activity_method(
        activity, arg, start_to_close_timeout=timedelta(seconds=10), retry_policy=_STORE_RETRY
    )


def record(activity: Callable[[Any, A], R], arg: A) -> workflow.ActivityHandle[R]:
    """A database write that must not hold up what comes next (a revoke never waits for the
    database); retried until it succeeds. Await the handle before the workflow closes."""
    return workflow.start_activity_method(
        activity, arg, start_to_close_timeout=timedelta(seconds=10), retry_policy=_STORE_RETRY
    )


async def message(activity: Callable[[Any, A], Awaitable[None]], arg: A) -> None:
    """Messages to other workflows (signal-with-start): retried until they are delivered, on a
    task queue of their own (LEASE_QUEUE) so that a revoke never waits behind the database."""
    own = workflow.patched(LEASE_QUEUE)
    await workflow.execute_activity_method(
        activity,
        arg,
        task_queue=message_queue(workflow.info().task_queue) if own else None,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=_STORE_RETRY,
    )


def notify(activity: Callable[[Any, A], None], arg: A) -> workflow.ActivityHandle[None]:
    """Started, not awaited: a slow or broken receiver must never delay the lifecycle."""
    return workflow.start_activity_method(
        activity,
        arg,
        start_to_close_timeout=timedelta(seconds=30),
        schedule_to_close_timeout=timedelta(minutes=15),
        retry_policy=_NOTIFY_RETRY,
    )


def reason(err: ActivityError) -> str:
    cause = err.cause
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or err)
