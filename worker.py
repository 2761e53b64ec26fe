"""The Temporal worker: runs AccessRequestWorkflow and its activities."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import timedelta
from types import TracebackType
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import Runtime
from temporalio.worker import PollerBehaviorAutoscaling, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.assignments import AssignmentActivities
from activities.audit_checkpoint import AuditActivities
from activities.lease import LeaseActivities
from activities.notify import NotifyActivities
from activities.reconcile import ReconcileActivities
from activities.sessions import SessionActivities
from activities.slack import SlackActivities
from activities.store import StoreActivities
from activities.sweep import SweepActivities
from elevate import proof, temporal
from elevate.contracts import CheckpointState, ReconcileInput
from elevate.db import make_engine, prepare_schema
from elevate.logs import configure as configure_logging
from elevate.providers import aws
from elevate.providers.base import Provider
from elevate.providers.factory import make_provider
from elevate.providers.identity_center import IdentityCenterProvider
from elevate.settings import Settings, get_settings
from workflows.access_request import AccessRequestWorkflow
from workflows.assignment import AssignmentWorkflow
from workflows.audit_checkpoint import WORKFLOW_ID as AUDIT_CHECKPOINT_ID
from workflows.audit_checkpoint import AuditCheckpointWorkflow
from workflows.options import Lane, lane_queue, message_queue
from workflows.reconcile import UNSTARTED, ReconcileWorkflow
from workflows.sessions import SessionGuardWorkflow

log = logging.getLogger("elevate.worker")

# Bounded so that a burst of expiries does not throttle itself at AWS.
MAX_CONCURRENT_ACTIVITIES = 16
# ELEVATE_AWS_MAX_CALLS_PER_SECOND split between the lanes' task queues. Temporal enforces a task
# queue's rate across every worker polling it, so the fleet together stays within the budget.
# Revokes get the largest share, grants the next, the reconciler what is left; shares sum to 1.
LANE_SHARES: dict[Lane, float] = {"revoke": 0.5, "grant": 0.3, "sweep": 0.2}
# An assignment activity makes at most three sso-admin calls an attempt: a whole round
# (grant_assignment, revoke_assignment: create or delete, one status poll, the read-back; an
# IN_PROGRESS status is a retry that polls again). Only after a failed revoke round, when the owner
# no longer knows the state, does a delete read first (four). Histories from before AWS_ROUND
# schedule one-call activities, paced the same (below the budget). So a lane starts at most its
# share / 3 activities a second. The reconciler's activities pace themselves at their share.
CALLS_PER_ACTIVITY = 3
SWEEP_ACTIVITIES_PER_SECOND = 1.0
MAX_SLICE = timedelta(minutes=4)  # within the sweep activities' 10-minute timeout
# Lease messages are async activities (one Temporal call, an acquire one indexed read): they cost
# no thread, so many can be in flight.
MAX_CONCURRENT_MESSAGES = 64
# The sandbox re-imports a workflow's module, and every module of ours it imports, for each
# workflow it runs: ~10 ms for a request (outside the sandbox; more inside), paid at every start
# and every cache miss, and held by every cached workflow (2,000 requests active: 279 MB of
# worker, 263 MB with one import). Our workflow modules keep no state at module level (constants
# only), so one import serves every run. The sandbox's checks still guard them where histories
# are tested: the workflow tests run them in the default, fully re-importing sandbox, and the
# replay tests replay under both. What workflows bring in through `imports_passed_through` must
# be passed through by name too: pydantic looks a payload type's module up in the sandbox's
# sys.modules, which a host-side import never fills.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "workflows", "elevate", "activities"
    )
)


def lane_calls_per_second(settings: Settings, lane: Lane) -> float:
    return settings.aws_max_calls_per_second * LANE_SHARES[lane]


def lane_activities_per_second(settings: Settings, lane: Lane) -> float:
    if lane == "sweep":
        return SWEEP_ACTIVITIES_PER_SECOND
    return lane_calls_per_second(settings, lane) / CALLS_PER_ACTIVITY


class Fleet:
    """The main worker and its AWS lanes, started and stopped together."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.workers = list(workers)
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Fleet:
        for w in self.workers:
            await self._stack.enter_async_context(w)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.__aexit__(kind, err, tb)

    async def run(self) -> None:
        await asyncio.gather(*(w.run() for w in self.workers))


def lane_worker(
    client: Client,
    settings: Settings,
    executor: ThreadPoolExecutor,
    lane: Lane,
    activities: Sequence[Callable[..., Any]],
) -> Worker:
    return Worker(
        client,
        task_queue=lane_queue(settings.task_queue, lane),
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_task_queue_activities_per_second=lane_activities_per_second(settings, lane),
        activity_task_poller_behavior=PollerBehaviorAutoscaling(),
    )


def build_worker(
    client: Client, settings: Settings, executor: ThreadPoolExecutor, provider: Provider
) -> Fleet:
    engine = make_engine(settings.database_url)
    prepare_schema(engine, settings)
    store = StoreActivities(engine)
    assignments = AssignmentActivities(provider)
    sessions = (
        SessionActivities(provider, client, settings.task_queue, settings.end_sessions_keep)
        if isinstance(provider, IdentityCenterProvider)
        else None  # plain IAM cannot end issued sessions precisely (README)
    )
    session_activities: list[Callable[..., Any]] = (
        [] if sessions is None else [sessions.send_end_sessions, sessions.apply_session_denies]
    )
    lease = LeaseActivities(
        client,
        settings.task_queue,
        engine,
        settings.lease_grace,
        end_sessions=settings.end_sessions and sessions is not None,
        message_key=settings.signing_key(),
    )
    notify = NotifyActivities(engine, settings)
    slack_app = SlackActivities(engine, settings, provider)
    reconcile = ReconcileActivities(
        engine,
        provider,
        settings.reconcile_permission_sets,
        settings.lease_grace,
        calls_per_second=lane_calls_per_second(settings, "sweep"),
        # A slice fills most of the interval, so the sweep uses its share and no more.
        slice_time=min(settings.reconcile_interval * 0.9, MAX_SLICE),
    )
    sweep = SweepActivities(engine, client, settings.lease_grace)
    audit = AuditActivities(engine, settings)
    lanes: dict[Lane, list[Callable[..., Any]]] = {
        "revoke": [
            assignments.revoke_assignment,
            assignments.delete_assignment,
            assignments.wait_assignment_deleted,
            assignments.verify_assignment,
            *session_activities[1:],
        ],
        "grant": [
            assignments.grant_assignment,
            assignments.create_assignment,
            assignments.wait_assignment_created,
            assignments.verify_assignment,
        ],
        "sweep": [reconcile.check, reconcile.sweep],
    }
    messages = Worker(
        client,
        task_queue=message_queue(settings.task_queue),
        activities=[lease.send_lease],
        max_concurrent_activities=MAX_CONCURRENT_MESSAGES,
        activity_task_poller_behavior=PollerBehaviorAutoscaling(),
    )
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[
            AccessRequestWorkflow,
            AssignmentWorkflow,
            ReconcileWorkflow,
            SessionGuardWorkflow,
            AuditCheckpointWorkflow,
        ],
        activities=[
            audit.take_checkpoint,
            lease.send_lease,  # histories from before LEASE_QUEUE
            lease.covering_leases,
            notify.send_notification,
            notify.send_slack_notification,
            slack_app.send_slack_approval,
            reconcile.scan,
            reconcile.record_run,
            sweep.fail_unstarted,
            sweep.find_lost,
            sweep.fail_lost,
            store.record_status,
            store.record_approval,
            store.record_batch,
            store.record_event,
            store.record_extension,
            # Histories from before the lanes scheduled these on the main queue.
            assignments.create_assignment,
            assignments.wait_assignment_created,
            assignments.delete_assignment,
            assignments.wait_assignment_deleted,
            assignments.verify_assignment,
            *session_activities,
        ],
        activity_executor=executor,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=WORKFLOW_RUNNER,
        # In a burst a lifecycle's ~20 workflow tasks waited seconds each for one of the five
        # default pollers (each poll a round trip to a busy server), and so did 100 grants
        # arriving at once on a lane; the SDK adds pollers while a queue has tasks waiting.
        workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
        activity_task_poller_behavior=PollerBehaviorAutoscaling(),
    )
    return Fleet(
        [main, messages, *(lane_worker(client, settings, executor, k, v) for k, v in lanes.items())]
    )


RECONCILE_SCHEDULE = "elevate-reconcile"
# Never-started requests are a database question: their own schedule, apart from the AWS walk.
UNSTARTED_SCHEDULE = "elevate-unstarted"


def reconcile_schedule(settings: Settings, mode: str | None = None) -> Schedule:
    schedule_id = RECONCILE_SCHEDULE if mode is None else UNSTARTED_SCHEDULE
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileWorkflow.run,
            ReconcileInput(mode or settings.reconcile_mode),
            id=schedule_id,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.reconcile_interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    """Create the schedules, or bring existing ones in line with the current settings."""
    for schedule_id, mode in ((RECONCILE_SCHEDULE, None), (UNSTARTED_SCHEDULE, UNSTARTED)):
        schedule = reconcile_schedule(settings, mode)
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:
            await client.get_schedule_handle(schedule_id).update(_replace_with(schedule))


def _replace_with(schedule: Schedule) -> Callable[[ScheduleUpdateInput], Awaitable[ScheduleUpdate]]:
    async def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    return replace


async def ensure_audit_checkpoint(client: Client, settings: Settings) -> None:
    """One checkpoint workflow per namespace; a running one takes this worker's interval."""
    handle = await client.start_workflow(
        AuditCheckpointWorkflow.run,
        CheckpointState(settings.audit_checkpoint_interval),
        id=AUDIT_CHECKPOINT_ID,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    await handle.signal(AuditCheckpointWorkflow.set_interval, settings.audit_checkpoint_interval)


# glibc gives each thread that allocates under contention an arena of its own, up to 8 per core;
# the SDK's Rust threads and the activity threads fill them, and each keeps its freed memory.
# Two arenas: with 2,000 requests active the worker held 244 MB instead of 263 MB.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def few_malloc_arenas() -> None:
    """Cap glibc's malloc arenas before any thread starts; a no-op where there is no glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError, TypeError):
        pass  # musl, macOS: no such tunable


def count_aws_errors(runtime: Runtime) -> None:
    counter = runtime.metric_meter.create_counter(
        "elevate_aws_errors", "AWS calls that failed, retried ones included"
    )
    aws.on_error(
        lambda service, operation, code: counter.add(
            1, {"service": service, "operation": operation, "code": code}
        )
    )


async def run(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    few_malloc_arenas()
    # Without a key nothing could be checked; refusing to start beats accepting forged messages.
    proof.configure(settings.message_keys() or [settings.signing_key()])
    provider = make_provider(settings)
    provider.validate()  # a catalog naming what AWS lacks stops the worker before it polls
    runtime = temporal.metrics_runtime(settings.worker_metrics_port)
    if runtime is not None:
        count_aws_errors(runtime)
        log.info("worker metrics on :%s/metrics", settings.worker_metrics_port)
    client = await temporal.connect(settings, runtime)
    await temporal.register_search_attributes(client, settings.temporal_namespace)
    await ensure_reconcile_schedule(client, settings)
    await ensure_audit_checkpoint(client, settings)
    with ThreadPoolExecutor(max_workers=4 * MAX_CONCURRENT_ACTIVITIES) as executor:
        worker = build_worker(client, settings, executor, provider)
        log.info(
            "worker polling task queue %s on %s", settings.task_queue, settings.temporal_address
        )
        await worker.run()


if __name__ == "__main__":
    configure_logging(get_settings())
    asyncio.run(run())
