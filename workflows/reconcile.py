"""The periodic comparison of AWS with the active requests (run by a Temporal Schedule)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.lease import LeaseActivities
    from activities.reconcile import ReconcileActivities
    from activities.sweep import SweepActivities
    from elevate.contracts import LeaseInput, LeaseResult, ReconcileInput
    from workflows.assignment import LEASE_RESULT
    from workflows.options import message, store

RECONCILER = "reconciler"
SWEEP_PATCH = "sweep-unstarted"
# Before this patch a request whose workflow was terminated stayed `active` with its access.
LOST_PATCH = "workflow-lost"


@workflow.defn
class ReconcileWorkflow:
    """Scan, then hand each finding to the assignment's owner, so fixes never race a grant;
    then fail the requests whose workflow never started.

    An orphan (no covering request) is released on the owner, which revokes it unless a lease
    arrived meanwhile; a missing assignment of an active request is acquired again with
    `repair`. In `report` mode nothing is changed. Signal: `lease_result` (the owners' answers).
    """

    @workflow.run
    async def run(self, inp: ReconcileInput) -> int:
        if inp.mode == "revoke" and workflow.patched(LOST_PATCH):
            await self._end_lost()
        report = await workflow.execute_activity_method(
            ReconcileActivities.scan,
            inp,
            start_to_close_timeout=timedelta(minutes=10),
            # Scans heartbeat per account; a short timeout lets the next scan run soon after a
            # worker died mid-scan (the schedule skips runs while one is still open).
            heartbeat_timeout=timedelta(seconds=10),
        )
        if inp.mode == "revoke":
            me = workflow.info().workflow_id
            for f in report.findings:
                if f.kind == "orphan":
                    lease = LeaseInput(
                        f"{RECONCILER}-{report.run_id}", me, f.assignment, release=True
                    )
                else:
                    lease = LeaseInput(
                        f.request_id or "", f.request_workflow_id or "", f.assignment, repair=True
                    )
                await message(LeaseActivities.send_lease, lease)
        await store(ReconcileActivities.record_run, report)
        if workflow.patched(SWEEP_PATCH):
            # Requests the API wrote but never started a workflow for: marked failed, in both
            # modes (nothing at AWS is touched).
            await workflow.execute_activity_method(
                SweepActivities.fail_unstarted, start_to_close_timeout=timedelta(minutes=2)
            )
        return len(report.findings)

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
        """The owners answer every release; the reconciler does not wait for them."""
