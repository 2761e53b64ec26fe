"""The periodic comparison of AWS with the active requests (run by Temporal Schedules)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.lease import LeaseActivities
    from activities.reconcile import ReconcileActivities
    from activities.sweep import SweepActivities
    from elevate.contracts import Finding, LeaseInput, LeaseResult, ReconcileInput, ReconcileReport
    from workflows.assignment import LEASE_RESULT
    from workflows.options import lane_queue, message, store

RECONCILER = "reconciler"
SWEEP_PATCH = "sweep-unstarted"
# Before this patch a request whose workflow was terminated stayed `active` with its access.
LOST_PATCH = "workflow-lost"
# Before this patch each run listed every account x managed permission set on the main queue.
CHECK_SWEEP_PATCH = "check-and-sweep"
UNSTARTED = "unstarted"  # the mode of the schedule that only fails never-started requests
# Before this patch a run audited each missing assignment it handed over as regranted; now the
# owner audits the regrant it really made (none when the request released meanwhile).
OWNER_AUDITS_REPAIR = "owner-audits-repair"
# How long a run waits for the owners' answers, to audit what they really did.
ANSWER_WAIT = timedelta(seconds=30)
_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
R = TypeVar("R")


async def _swept(activity: Callable[[Any, ReconcileInput], R], inp: ReconcileInput) -> R:
    return await workflow.execute_activity_method(
        activity,
        inp,
        task_queue=lane_queue(workflow.info().task_queue, "sweep"),
        start_to_close_timeout=timedelta(minutes=10),
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=_RETRY,
    )


@workflow.defn
class ReconcileWorkflow:
    """Check every covering request's assignment, sweep the next slice of provisioned pairs,
    then hand each finding to the assignment's owner, so fixes never race a grant.

    An orphan (no covering request) is released on the owner, which revokes it unless a lease
    arrived meanwhile; a missing assignment of an active request is acquired again with
    `repair`. In `report` mode nothing is changed. Mode `unstarted` (its own schedule) only
    fails the requests whose workflow never started. Signal: `lease_result` (owners' answers).
    """

    def __init__(self) -> None:
        self._answers: dict[str, LeaseResult] = {}

    @workflow.run
    async def run(self, inp: ReconcileInput) -> int:
        if inp.mode == UNSTARTED:
            return await self._fail_unstarted()
        if inp.mode == "revoke" and workflow.patched(LOST_PATCH):
            await self._end_lost()
        v2 = workflow.patched(CHECK_SWEEP_PATCH)
        report = await (self._check_and_sweep(inp) if v2 else self._scan(inp))
        if inp.mode == "revoke":
            await self._hand_over(report, v2)
        await store(ReconcileActivities.record_run, report)
        if not v2 and workflow.patched(SWEEP_PATCH):
            await self._fail_unstarted()
        return len(report.findings)

    async def _scan(self, inp: ReconcileInput) -> ReconcileReport:
        return await workflow.execute_activity_method(
            ReconcileActivities.scan,
            inp,
            start_to_close_timeout=timedelta(minutes=10),
            # Scans heartbeat per account; a short timeout lets the next scan run soon after a
            # worker died mid-scan (the schedule skips runs while one is still open).
            heartbeat_timeout=timedelta(seconds=10),
        )

    async def _check_and_sweep(self, inp: ReconcileInput) -> ReconcileReport:
        """Both on the sweep lane: they pace themselves at its share of the AWS budget."""
        report = await _swept(ReconcileActivities.check, inp)
        walked = await _swept(ReconcileActivities.sweep, inp)
        report.findings += walked.findings
        report.sweep = walked.state
        return report

    async def _hand_over(self, report: ReconcileReport, v2: bool) -> None:
        me = workflow.info().workflow_id
        released: dict[str, Finding] = {}
        for i, f in enumerate(report.findings):
            if f.kind == "orphan":
                lease_id = f"{RECONCILER}-{report.run_id}" + (f"-{i}" if v2 else "")
                lease = LeaseInput(lease_id, me, f.assignment, release=True)
                released[lease_id] = f
            else:
                lease = LeaseInput(
                    f.request_id or "", f.request_workflow_id or "", f.assignment, repair=True
                )
                if workflow.patched(OWNER_AUDITS_REPAIR):
                    f.outcome = "handed"  # the owner audits what it does with it
            await message(LeaseActivities.send_lease, lease)
        if v2 and released:
            await self._outcomes(released)

    async def _outcomes(self, released: dict[str, Finding]) -> None:
        """Wait (a while) for the owners: an orphan is audited as revoked only if it was."""
        try:
            await workflow.wait_condition(
                lambda: released.keys() <= self._answers.keys(), timeout=ANSWER_WAIT
            )
        except TimeoutError:
            pass
        for lease_id, f in released.items():
            answer = self._answers.get(lease_id)
            if answer is None or not answer.ok:
                f.outcome = "pending"
            else:
                f.outcome = "kept" if answer.still_covered else "revoked"

    async def _fail_unstarted(self) -> int:
        """Requests the API wrote but never started a workflow for: marked failed, in every
        mode (nothing at AWS is touched)."""
        return await workflow.execute_activity_method(
            SweepActivities.fail_unstarted, start_to_close_timeout=timedelta(minutes=2)
        )

    async def _end_lost(self) -> None:
        """Requests whose workflow closed (or hangs) holding access: their lease goes back to
        the owner first, which revokes unless another request covers the triple; then the
        request ends `failed` with a `workflow_lost` event."""
        lost = await workflow.execute_activity_method(
            SweepActivities.find_lost,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        me = workflow.info().workflow_id
        for request in lost:
            lease = LeaseInput(request.request_id, me, request.assignment, release=True)
            await message(LeaseActivities.send_lease, lease)
            await store(SweepActivities.fail_lost, request)

    @workflow.signal(name=LEASE_RESULT)
    def lease_result(self, result: LeaseResult) -> None:
        """The owners answer every release."""
        self._answers[result.request_id] = result
