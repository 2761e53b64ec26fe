"""The single owner of one assignment: serializes its grants and revokes, holds its leases."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.assignments import AssignmentActivities
    from activities.store import StoreActivities
    from elevate import proof
    from elevate.contracts import (
        AssignmentState,
        EventRecord,
        LeaseInput,
        LeaseResult,
        VerifyInput,
        WaitInput,
    )
    from workflows.options import aws, reason, store, wait_aws

SYSTEM = "elevate"
LEASE_RESULT = "lease_result"
# Before this patch a repair re-added the lease of a request that had released it meanwhile.
REPAIR_NEEDS_LEASE = "repair-needs-lease"
LEASE_PROOF = "lease-proof"


@workflow.defn
class AssignmentWorkflow:
    """Entity workflow, id `assignment-<account>-<permission set>-<principal>`.

    The assignment exists at AWS exactly while at least one request holds a lease on it; grant
    and revoke of the triple never interleave because only this workflow calls AWS for it.
    Signals: `acquire`, `release` (LeaseInput), each answered by signalling `lease_result` to the
    request's workflow. Continues as new when its history grows long; ends when idle and empty.
    """

    @workflow.init
    def __init__(self, state: AssignmentState) -> None:
        self.state = state

    @workflow.signal
    def acquire(self, lease: LeaseInput) -> None:
        # A lease not made by send_lease (someone who reached Temporal) grants nothing.
        forged = not proof.genuine(lease, "acquire", workflow.info().workflow_id)
        if forged and workflow.patched(LEASE_PROOF):
            workflow.logger.warning("dropped an acquire without valid proof: %s", lease.request_id)
            return
        self.state.queue.append(lease)

    @workflow.signal
    def release(self, lease: LeaseInput) -> None:
        self.state.queue.append(lease)

    @workflow.query
    def leases(self) -> list[str]:
        return sorted(self.state.leases)

    @workflow.run
    async def run(self, state: AssignmentState) -> None:
        while True:
            while self.state.queue:
                lease = self.state.queue.pop(0)
                await (self._release(lease) if lease.release else self._acquire(lease))
            if not self.state.leases and not self.state.granted:
                return  # a new lease signal-with-starts a fresh run
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(self.state)
            await workflow.wait_condition(lambda: bool(self.state.queue))

    async def _acquire(self, lease: LeaseInput) -> None:
        if lease.repair and workflow.patched(REPAIR_NEEDS_LEASE):
            await self._repair(lease)
            return
        self.state.leases[lease.request_id] = lease.workflow_id
        if not self.state.granted or lease.repair:
            try:
                await self._grant()
            except ActivityError as err:
                del self.state.leases[lease.request_id]
                await self._revoke_if_unused(lease.request_id, quiet=True)
                await self._answer(
                    lease, LeaseResult(lease.request_id, False, ok=False, failure=reason(err))
                )
                return
            self.state.granted = True
        if not await self._answer(lease, LeaseResult(lease.request_id, False)):
            # The request is gone (terminated); its lease must not keep the access alive.
            self.state.leases.pop(lease.request_id, None)
            await self._revoke_if_unused(lease.request_id, quiet=False)

    async def _repair(self, lease: LeaseInput) -> None:
        """The reconciler saw the assignment missing while the request was active. Its scan may
        be stale: grant again only if the request still holds its lease here."""
        if lease.request_id not in self.state.leases:
            return
        try:
            await self._grant()
            self.state.granted = True
        except ActivityError as err:
            details: dict[str, object] = {"reason": reason(err)}
            event = EventRecord(
                lease.request_id, str(workflow.uuid4()), SYSTEM, "regrant_failed", details
            )
            await store(StoreActivities.record_event, event)

    async def _release(self, lease: LeaseInput) -> None:
        self.state.leases.pop(lease.request_id, None)
        await self._revoke_if_unused(lease.request_id, quiet=False)
        covered = bool(self.state.leases)
        await self._answer(lease, LeaseResult(lease.request_id, True, still_covered=covered))

    async def _grant(self) -> None:
        a = self.state.assignment
        operation = await aws(AssignmentActivities.create_assignment, a)
        if operation is not None:
            await wait_aws(
                AssignmentActivities.wait_assignment_created,
                WaitInput(a.instance_arn, operation),
            )
        await aws(AssignmentActivities.verify_assignment, VerifyInput(a, True))

    async def _revoke_if_unused(self, request_id: str, quiet: bool) -> None:
        """Retried until AWS confirms the assignment is gone; each failed round is an event."""
        if self.state.leases:
            return
        a = self.state.assignment
        backoff = timedelta(seconds=5)
        while True:
            try:
                operation = await aws(AssignmentActivities.delete_assignment, a)
                if operation is not None:
                    await wait_aws(
                        AssignmentActivities.wait_assignment_deleted,
                        WaitInput(a.instance_arn, operation),
                    )
                await aws(AssignmentActivities.verify_assignment, VerifyInput(a, False))
                self.state.granted = False
                return
            except ActivityError as err:
                details: dict[str, object] = {"reason": reason(err), "quiet": quiet}
                event = EventRecord(
                    request_id, str(workflow.uuid4()), SYSTEM, "revoke_failed", details
                )
                await store(StoreActivities.record_event, event)
                await workflow.sleep(backoff)
                backoff = min(backoff * 2, timedelta(minutes=5))

    async def _answer(self, lease: LeaseInput, result: LeaseResult) -> bool:
        """Tell the request; False when its workflow no longer exists."""
        handle = workflow.get_external_workflow_handle(lease.workflow_id)
        try:
            await handle.signal(LEASE_RESULT, result)
        except Exception:  # noqa: BLE001 - the target closed or vanished; nothing to tell
            return False
        return True
