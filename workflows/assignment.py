"""The single owner of one assignment: serializes its grants and revokes, holds its leases."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.assignments import AssignmentActivities
    from activities.lease import LeaseActivities
    from activities.sessions import SessionActivities
    from activities.store import StoreActivities
    from elevate import proof
    from elevate.contracts import (
        AssignmentState,
        EndSessions,
        EventRecord,
        KnownAssignment,
        LeaseInput,
        LeaseResult,
        VerifyInput,
        WaitInput,
    )
    from workflows.options import ask, aws, aws_round, reason, record, store, wait_aws

SYSTEM = "elevate"
LEASE_RESULT = "lease_result"
# Before this patch a repair re-added the lease of a request that had released it meanwhile.
REPAIR_NEEDS_LEASE = "repair-needs-lease"
# Before this patch leases lasted until released, a fresh owner started empty, a released
# request could take its lease again, and a failing revoke blocked acquires and history growth.
LEASE_ENDS = "lease-ends"
# Requests that gave their lease back are remembered this long (late duplicate acquires).
_TOMBSTONE_TTL = timedelta(days=1)
# Before this patch an acquire needed no proof that the worker sent it.
LEASE_PROOF = "lease-proof"
# Before this patch the reconciler audited every repair it asked for as a regrant, even one the
# owner skipped because the request had released meanwhile; now the owner audits what it did.
REPAIR_AUDITED = "repair-audited"
# Before this patch a grant and a revoke were three activities each (start, wait, read back),
# three round trips through Temporal; now each is one activity that makes the same calls.
AWS_ROUND = "aws-round"
RECONCILER = "elevate-reconciler"  # the actor of what the owner does on the reconciler's word


@workflow.defn
class AssignmentWorkflow:
    """Entity workflow, id `assignment-<account>-<permission set>-<principal>`.

    The assignment exists at AWS exactly while at least one request holds a lease on it; grant
    and revoke of the triple never interleave because only this workflow calls AWS for it.
    Each lease ends by itself at its request's end plus a grace, so no request workflow has to
    be alive for its access to go; a fresh run learns the leases from the projection first.
    Signals: `acquire` (also moves the end of a held lease), `release` (LeaseInput), each
    answered by signalling `lease_result` to the sender. Queries: `leases`, `expiries`.
    Continues as new when its history grows long; ends when idle and empty.
    """

    @workflow.init
    def __init__(self, state: AssignmentState) -> None:
        self.state = state
        self._v2 = False
        self._writes: list[workflow.ActivityHandle[Any]] = []

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

    @workflow.query
    def expiries(self) -> dict[str, str]:
        """When each lease lapses by itself (its request's end plus the grace)."""
        return {r: at.isoformat() for r, at in sorted(self.state.expires.items())}

    @workflow.run
    async def run(self, state: AssignmentState) -> None:
        self._v2 = workflow.patched(LEASE_ENDS)
        if self._v2:
            await self._rebuild()
            if self.state.revoke_pending:
                await self._revoke_if_unused("", quiet=False)
        while True:
            while self.state.queue:
                lease = self.state.queue.pop(0)
                await (self._release(lease) if lease.release else self._acquire(lease))
            if self._v2:
                await self._expire()
            if not self.state.leases and not self.state.granted:
                await self._flush()
                return  # a new lease signal-with-starts a fresh run
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()
            await self._wait_for_work()

    async def _flush(self) -> None:
        """The events written on the side reach the database before this run closes."""
        writes, self._writes = self._writes, []
        for handle in writes:
            await handle

    async def _continue_as_new(self) -> None:
        await self._flush()
        workflow.continue_as_new(self.state)

    async def _wait_for_work(self) -> None:
        """Until a message arrives or, since LEASE_ENDS, the earliest lease lapses."""
        expiry = min(self.state.expires.values(), default=None) if self._v2 else None
        if expiry is None:
            await workflow.wait_condition(lambda: bool(self.state.queue))
            return
        delay = expiry - workflow.now()
        if delay <= timedelta(0):
            return
        try:
            await workflow.wait_condition(lambda: bool(self.state.queue), timeout=delay)
        except TimeoutError:
            pass

    async def _rebuild(self) -> None:
        """A run without state (first start, or after a terminate or reset) asks who really covers
        the triple before it revokes anything, so losing its state never cuts access early."""
        if self.state.rebuilt:
            return
        found = await ask(LeaseActivities.covering_leases, self.state.assignment)
        for request_id, workflow_id in found.leases.items():
            self.state.leases.setdefault(request_id, workflow_id)
            if request_id in found.expires:
                self.state.expires.setdefault(request_id, found.expires[request_id])
        now = workflow.now()
        for request_id in found.released:
            if request_id not in self.state.leases:
                self.state.released.setdefault(request_id, now)
        self.state.rebuilt = True

    async def _expire(self) -> None:
        """Drop the leases whose end (plus grace) has passed; revoke when none is left."""
        now = workflow.now()
        lapsed = sorted(r for r, at in self.state.expires.items() if at <= now)
        for request_id in lapsed:
            self._forget(request_id, now)
            self._event(request_id, "lease_expired", {"reason": "its end passed unreleased"})
        cutoff = now - _TOMBSTONE_TTL
        for request_id in [r for r, at in self.state.released.items() if at < cutoff]:
            del self.state.released[request_id]
        if lapsed:
            await self._revoke_if_unused(lapsed[0], quiet=False)

    def _forget(self, request_id: str, now: datetime) -> None:
        self.state.leases.pop(request_id, None)
        self.state.expires.pop(request_id, None)
        self.state.released[request_id] = now

    def _set_expiry(self, lease: LeaseInput) -> None:
        if not self._v2:
            return
        end = lease.end_at
        if end is None and lease.duration is not None:
            end = workflow.now() + lease.duration
        if end is not None:
            self.state.expires[lease.request_id] = end + lease.grace

    async def _acquire(self, lease: LeaseInput) -> None:
        if lease.repair and workflow.patched(REPAIR_NEEDS_LEASE):
            await self._repair(lease)
            return
        if self._v2 and lease.request_id in self.state.released:
            # A late duplicate (or forged replay) of a lease already given back: no resurrection.
            failure = "this request already gave its access back"
            await self._answer(
                lease, LeaseResult(lease.request_id, False, ok=False, failure=failure)
            )
            return
        held = lease.request_id in self.state.leases
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
        if not held or lease.end_at is not None:
            self._set_expiry(lease)  # counted from the grant; an extension moves it
        if not await self._answer(lease, LeaseResult(lease.request_id, False)):
            # The request is gone (terminated); its lease must not keep the access alive.
            self.state.leases.pop(lease.request_id, None)
            self.state.expires.pop(lease.request_id, None)
            await self._revoke_if_unused(lease.request_id, quiet=False)

    async def _repair(self, lease: LeaseInput) -> None:
        """The reconciler saw the assignment missing while the request was active. Its scan may
        be stale: grant again only if the request still holds its lease here."""
        if lease.request_id not in self.state.leases:
            return
        try:
            await self._grant()
            self.state.granted = True
            if workflow.patched(REPAIR_AUDITED):
                a = self.state.assignment
                details: dict[str, object] = {
                    "account_id": a.account_id,
                    "permission_set_arn": a.permission_set_arn,
                    "principal_id": a.principal_id,
                    "mode": "revoke",
                }
                self._event(lease.request_id, "reconcile_missing_regranted", details, RECONCILER)
        except ActivityError as err:
            failure: dict[str, object] = {"reason": reason(err)}
            event = EventRecord(
                lease.request_id, str(workflow.uuid4()), SYSTEM, "regrant_failed", failure
            )
            await store(StoreActivities.record_event, event)

    async def _release(self, lease: LeaseInput) -> None:
        if self._v2:
            self._forget(lease.request_id, workflow.now())
        else:
            self.state.leases.pop(lease.request_id, None)
        await self._revoke_if_unused(lease.request_id, quiet=False)
        covered = bool(self.state.leases)
        await self._answer(lease, LeaseResult(lease.request_id, True, still_covered=covered))

    def _known(self, belief: bool) -> KnownAssignment:
        """The assignment as sent to AWS; `belief` holds unless a revoke round failed (then a
        deletion may be half done, and the activity reads first)."""
        fields = dataclasses.asdict(self.state.assignment)
        fields.pop("known", None)
        return KnownAssignment(**fields, known=belief and not self.state.revoke_pending)

    async def _grant(self) -> None:
        if workflow.patched(AWS_ROUND):
            await aws_round(AssignmentActivities.grant_assignment, self._known(True), "grant")
            return
        a = self.state.assignment
        # Creating one that exists changes nothing at AWS: no read first.
        operation = await aws(AssignmentActivities.create_assignment, self._known(True), "grant")
        if operation is not None:
            await wait_aws(
                AssignmentActivities.wait_assignment_created,
                WaitInput(a.instance_arn, operation),
                "grant",
            )
        await aws(AssignmentActivities.verify_assignment, VerifyInput(a, True), "grant")

    async def _revoke_if_unused(self, request_id: str, quiet: bool) -> None:
        """Retried until AWS confirms the assignment is gone; each failed round is an event.

        Since LEASE_ENDS a new acquire stops the retries (the acquire grants again, which is
        idempotent) and a long retry continues as new with the revoke still pending.
        """
        if self.state.leases:
            self.state.revoke_pending = False
            return
        backoff = timedelta(seconds=5)
        while True:
            try:
                await self._revoke()
                self.state.granted = False
                self.state.revoke_pending = False
                if self._v2 and self.state.end_sessions:
                    # The assignment is gone; sessions it issued until now must stop too. On
                    # the side: a failure there must not hold up the answer to the request.
                    ended = EndSessions(self.state.assignment, workflow.now(), request_id)
                    self._writes.append(record(SessionActivities.send_end_sessions, ended))
                return
            except ActivityError as err:
                details: dict[str, object] = {"reason": reason(err), "quiet": quiet}
                if not self._v2:
                    event = EventRecord(
                        request_id, str(workflow.uuid4()), SYSTEM, "revoke_failed", details
                    )
                    await store(StoreActivities.record_event, event)
                    await workflow.sleep(backoff)
                else:
                    self._event(request_id, "revoke_failed", details)  # never waits for the DB
                    self.state.revoke_pending = True
                    if await self._acquire_arrives(backoff):
                        self.state.granted = False  # unknown now: the acquire grants again
                        return
                    if workflow.info().is_continue_as_new_suggested():
                        await self._continue_as_new()
                backoff = min(backoff * 2, timedelta(minutes=5))

    async def _revoke(self) -> None:
        a = self.state.assignment
        # The owner's own grant was read back: it knows the assignment is there.
        known = self._known(self.state.granted)
        if workflow.patched(AWS_ROUND):
            await aws_round(AssignmentActivities.revoke_assignment, known, "revoke")
            return
        operation = await aws(AssignmentActivities.delete_assignment, known, "revoke")
        if operation is not None:
            await wait_aws(
                AssignmentActivities.wait_assignment_deleted,
                WaitInput(a.instance_arn, operation),
                "revoke",
            )
        await aws(AssignmentActivities.verify_assignment, VerifyInput(a, False), "revoke")

    async def _acquire_arrives(self, within: timedelta) -> bool:
        try:
            await workflow.wait_condition(
                lambda: any(not q.release for q in self.state.queue), timeout=within
            )
        except TimeoutError:
            return False
        return True

    def _event(
        self, request_id: str, action: str, details: dict[str, object], actor: str = SYSTEM
    ) -> None:
        if request_id:
            event = EventRecord(request_id, str(workflow.uuid4()), actor, action, details)
            self._writes.append(record(StoreActivities.record_event, event))

    async def _answer(self, lease: LeaseInput, result: LeaseResult) -> bool:
        """Tell the request; False when its workflow no longer exists."""
        handle = workflow.get_external_workflow_handle(lease.workflow_id)
        try:
            await handle.signal(LEASE_RESULT, result)
        except Exception:  # noqa: BLE001 - the target closed or vanished; nothing to tell
            return False
        return True
