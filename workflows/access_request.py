"""One workflow per access request: approval → start → grant → hold → revoke."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.lease import LeaseActivities
    from activities.store import StoreActivities
    from elevate import temporal as ta
    from elevate.contracts import (
        AccessRequestInput,
        Actor,
        ApprovalRecord,
        DecisionInput,
        LeaseInput,
        LeaseResult,
        ProjectionBatch,
        Status,
        StatusChange,
        assignment_workflow_id,
    )
    from workflows.assignment import LEASE_RESULT
    from workflows.decisions import CANCELLABLE, DecisionHandlers
    from workflows.extension import PendingExtension
    from workflows.notices import Notices
    from workflows.options import SYSTEM, local_store, message, store

# Before these patches a lost lease message waited forever, and the revoke waited for the
# database write of `revoking`.
LEASE_RESEND = "lease-resend"
REVOKE_FIRST = "revoke-first"
# Before this patch each decision was its own database write, one after another: the approval
# that completes the quorum, `approved`, `granting`; then the lease message. Now what is
# decided together is written together (one transaction), beside the lease message, and
# `revoking` is written beside the release: three round trips fewer before the grant.
LEAN_WRITES = "lean-writes"
# Before this patch every status write was an activity on the main task queue: scheduled,
# polled, answered, and a workflow task to wake up for. Now a write that no command waits behind
# (all but the ones beside a lease message) is a local activity inside the workflow task.
LOCAL_WRITES = "local-writes"
# Before this patch a release went through send_lease (an activity, then signal-with-start). The
# owner runs while it holds our lease, so the release is now a signal sent by the workflow
# itself; send_lease only when the owner is gone (terminated), to start a fresh one.
DIRECT_RELEASE = "direct-release"
# Before this patch the writes beside a lease message (`approved` + `granting`, `revoking`) were
# activities on the task queue, each a task and a workflow task to wake up for. Now they are
# local activities: `granting` before the acquire goes out (no access before the projection
# says so), `revoking` once the release is delivered (a revoke never waits for the database).
LOCAL_BESIDE = "local-beside-lease"
# Before this patch a lease message was sent again every 2 minutes while its answer was due: a
# grant waiting its turn in the AWS budget for ten minutes sent five. Now each wait doubles.
RESEND_BACKOFF = "resend-backoff"
_RESEND_AFTER = timedelta(minutes=2)
_RESEND_AT_MOST = timedelta(minutes=16)


@workflow.defn
class AccessRequestWorkflow(DecisionHandlers):
    """The lifecycle of one access request; its history is the truth, SQL the projection.

    Updates: `approve`, `reject`, `cancel`, `revoke` (DecisionHandlers) and `extend`
    (ExtensionHandlers); validators answer Conflict / NotAllowed before anything reaches
    history. Signal: `lease_result`. Query: `status`.
    """

    @workflow.init
    def __init__(self, inp: AccessRequestInput) -> None:
        self.inp = inp
        # The API inserted the row as pending_approval; messages may arrive before run() writes.
        self._status: Status | None = (
            Status.PENDING_APPROVAL if inp.approvals_required else Status.SCHEDULED
        )
        self._approvals: dict[str, str | None] = {}
        self._approving: set[str] = set()
        self._rejection: DecisionInput | None = None
        self._stop: tuple[Status, Actor, str | None] | None = None
        self._projected = self._status
        self._requested = False  # the "requested" event is written: later events may follow
        self._start_at: datetime | None = inp.start_at
        self._end_at: datetime | None = None
        self._lease_results: dict[bool, LeaseResult] = {}  # keyed by release
        self._extension: PendingExtension | None = None
        self._end_version = 0  # bumped when an extension moves end_at
        self._ending = False  # end_at has passed: no more extensions
        self._notices = Notices(inp.request_id, inp.ending_soon_lead, inp.slack_app, inp.channels)
        self._lean = False  # LEAN_WRITES, decided once at the start of run()
        self._local = False  # LOCAL_WRITES, likewise
        self._local_beside = False  # LOCAL_BESIDE, likewise
        self._unwritten: list[StatusChange] = []  # decided, written with the next write
        self._unwritten_approvals: list[ApprovalRecord] = []

    @workflow.run
    async def run(self, inp: AccessRequestInput) -> str:
        self._lean = workflow.patched(LEAN_WRITES)
        self._local = self._lean and workflow.patched(LOCAL_WRITES)
        self._local_beside = self._local and workflow.patched(LOCAL_BESIDE)
        grant: asyncio.Task[None] | None = None
        try:
            if await self._await_approval() and await self._await_start():
                grant = asyncio.ensure_future(self._grant())
                # Shielded: a workflow cancellation must not abandon a grant halfway at AWS.
                await asyncio.shield(grant)
                if self._status is Status.ACTIVE:
                    await self._hold()
        except asyncio.CancelledError:
            if self._status in CANCELLABLE and grant is None:
                await self._set(
                    Status.CANCELLED, SYSTEM, "cancelled", {"reason": "workflow cancelled"}
                )
            elif self._stop is None:
                self._stop = (Status.REVOKED, Actor(SYSTEM), "workflow cancelled")
            raise
        finally:
            if grant is not None:
                await self._cleanup(grant)
            await self._notices.drain()
            await workflow.wait_condition(workflow.all_handlers_finished)
        return str(self._status)

    # --- phases ---------------------------------------------------------------------------

    async def _await_approval(self) -> bool:
        if self.inp.approvals_required == 0:
            await self._set(Status.SCHEDULED, self.inp.requester, "requested", {"approval": "none"})
            return True
        await self._set(Status.PENDING_APPROVAL, self.inp.requester, "requested")
        try:
            await workflow.wait_condition(
                lambda: self._quorum() or self._rejection is not None or self._stop is not None,
                timeout=self.inp.approval_timeout,
            )
        except TimeoutError:
            await self._set(Status.EXPIRED, SYSTEM, "expired")
            return False
        if self._rejection is not None:
            actor = self._rejection.actor.username
            details = {"comment": self._rejection.comment}
            await self._set(Status.REJECTED, actor, "rejected", details, decided_by=actor)
            return False
        if self._stop is not None:
            await self._finish_stop()
            return False
        approvers = ", ".join(self._approvals)
        if self._lean:
            # Written with what comes next: `granting`, or the wait for a later start.
            self._decide(Status.SCHEDULED, SYSTEM, "approved", decided_by=approvers)
        else:
            await self._set(Status.SCHEDULED, SYSTEM, "approved", decided_by=approvers)
        return True

    async def _await_start(self) -> bool:
        if self._start_at is not None and self._stop is None:
            delay = self._start_at - workflow.now()
            if delay > timedelta(0):
                await self._write_decided()
                try:
                    await workflow.wait_condition(lambda: self._stop is not None, timeout=delay)
                except TimeoutError:
                    pass
        if self._stop is not None:
            await self._finish_stop()
            return False
        return True

    async def _grant(self) -> None:
        """Take a lease on the assignment; its owner grants it unless it already exists."""
        if self._lean:
            # The owner starts granting while `granting` is written.
            result = await self._lease_beside(False, Status.GRANTING, SYSTEM, "granting")
        else:
            await self._set(Status.GRANTING, SYSTEM, "granting")
            result = await self._lease(release=False)
        if not result.ok:
            failure = result.failure or "the grant failed"
            await self._set(
                Status.FAILED, SYSTEM, "grant_failed", {"reason": failure}, failure=failure
            )
            return
        if self._stop is not None:
            return  # cancelled or revoked while granting: cleanup gives the lease back
        now = workflow.now()
        # "As soon as approved" counts from the grant; a scheduled start fixes the end.
        self._start_at = self.inp.start_at or now
        self._end_at = self._start_at + self.inp.duration
        await self._set(
            Status.ACTIVE,
            SYSTEM,
            "granted",
            granted_at=now,
            start_at=self._start_at,
            end_at=self._end_at,
        )

    async def _lease(self, release: bool) -> LeaseResult:
        """Send an acquire or release to the assignment's owner and wait for its answer."""
        await self._send_lease(release)
        return await self._lease_answer(release)

    async def _lease_beside(
        self,
        release: bool,
        status: Status,
        actor: str,
        action: str,
        details: Mapping[str, object] | None = None,
    ) -> LeaseResult:
        """Send the lease message and write `status` at once (LEAN_WRITES); wait for both, then
        for the owner's answer. Since LOCAL_BESIDE the write is local: before an acquire, after
        a release."""
        if self._local_beside:
            if not release:
                await self._set(status, actor, action, details)
            await self._send_lease(release)
            if release:
                await self._set(status, actor, action, details)
            return await self._lease_answer(release)
        send = asyncio.ensure_future(self._send_lease(release))
        await self._set(status, actor, action, details, beside_lease=True)
        await send
        return await self._lease_answer(release)

    async def _send_lease(self, release: bool) -> None:
        self._lease_results.pop(release, None)
        lease = self._lease_input(release)
        if release and self._lean and workflow.patched(DIRECT_RELEASE):
            owner = workflow.get_external_workflow_handle(assignment_workflow_id(lease.assignment))
            try:
                await owner.signal("release", lease)
                return
            except Exception:  # noqa: BLE001 - the owner is gone: send_lease starts a fresh one
                workflow.logger.info("the owner of %s is gone; starting one", lease.request_id)
        await message(LeaseActivities.send_lease, lease)

    def _lease_input(self, release: bool, end_at: datetime | None = None) -> LeaseInput:
        """The lease carries its end (or the duration from the grant), so the owner drops it by
        itself should this workflow never give it back."""
        inp = self.inp
        end = end_at or (inp.start_at + inp.duration if inp.start_at else None)
        return LeaseInput(
            inp.request_id,
            workflow.info().workflow_id,
            inp.assignment,
            release,
            end_at=end,
            duration=None if end else inp.duration,
            grace=inp.lease_grace,
        )

    async def _lease_answer(self, release: bool) -> LeaseResult:
        if not workflow.patched(LEASE_RESEND):
            await workflow.wait_condition(lambda: release in self._lease_results)
            return self._lease_results[release]
        # An owner that lost its state (terminated, reset) lost our message too: send it again.
        wait = _RESEND_AFTER
        while True:
            try:
                await workflow.wait_condition(lambda: release in self._lease_results, timeout=wait)
                return self._lease_results[release]
            except TimeoutError:
                await message(LeaseActivities.send_lease, self._lease_input(release))
            if workflow.patched(RESEND_BACKOFF):
                wait = min(wait * 2, _RESEND_AT_MOST)

    @workflow.signal(name=LEASE_RESULT)
    def lease_result(self, result: LeaseResult) -> None:
        self._lease_results[result.release] = result

    async def _hold(self) -> None:
        """Sleep until end_at; an approved extension moves it, a revoke cuts it short.

        It also wakes to send `ending_soon` and when a pending extension's deadline passes.
        """
        while self._stop is None and self._end_at is not None:
            now = workflow.now()
            if self._end_at <= now:
                break
            wakes = [self._end_at, self._notices.remind(self._end_at, now)]
            if self._extension is not None:
                wakes.append(self._extension.deadline)
            wake = min(w for w in wakes if w is not None)
            try:
                await workflow.wait_condition(self._woken(self._end_version), timeout=wake - now)
            except TimeoutError:
                pass
            if self._extension is not None and workflow.now() >= self._extension.deadline:
                await self._close_extension("extension_expired", SYSTEM, {})
        self._ending = True
        if self._extension is not None:
            await self._close_extension(
                "extension_expired", SYSTEM, {"reason": "the access ended first"}
            )

    def _woken(self, version: int) -> Callable[[], bool]:
        """True once a revoke arrives or an extension has moved end_at."""
        return lambda: self._stop is not None or self._end_version != version

    async def _cleanup(self, grant: asyncio.Task[None]) -> None:
        """Runs after any grant began, whatever happened since: the access must not outlive us."""
        try:
            await grant
        except (ActivityError, asyncio.CancelledError):
            pass
        if self._status is Status.FAILED:
            return  # the owner already gave the failed lease back
        final, actor, comment = self._stop or (Status.ENDED, Actor(SYSTEM), None)
        if self._lean:
            # The owner revokes at AWS while `revoking` is written, even while the database
            # (the projection) is down.
            why = {"comment": comment}
            released = await self._lease_beside(
                True, Status.REVOKING, actor.username, "revoking", why
            )
        elif workflow.patched(REVOKE_FIRST):
            # The owner revokes at AWS even while the database (the projection) is down.
            await self._send_lease(release=True)
            await self._set(Status.REVOKING, actor.username, "revoking", {"comment": comment})
            released = await self._lease_answer(release=True)
        else:
            await self._set(Status.REVOKING, actor.username, "revoking", {"comment": comment})
            released = await self._lease(release=True)
        revoked_by = actor.username if final is not Status.ENDED else None
        action = "ended" if final is Status.ENDED else str(final)
        details = {"comment": comment, "still_covered_by_another_request": released.still_covered}
        await self._set(
            final, actor.username, action, details, revoked_at=workflow.now(), revoked_by=revoked_by
        )

    async def _finish_stop(self) -> None:
        if self._stop is None:
            return
        final, actor, comment = self._stop
        details = {"comment": comment}
        if final is Status.REVOKED:
            await self._set(
                final,
                actor.username,
                "revoked",
                details,
                revoked_at=workflow.now(),
                revoked_by=actor.username,
            )
        else:
            await self._set(final, actor.username, "cancelled", details)

    # --- projection -----------------------------------------------------------------------

    async def _set(
        self,
        status: Status,
        actor: str,
        action: str,
        details: Mapping[str, object] | None = None,
        *,
        beside_lease: bool = False,
        **fields: object,
    ) -> None:
        """Decide a status and write it, with whatever was decided before and not yet written."""
        self._decide(status, actor, action, details, **fields)
        await self._write_decided(beside_lease)

    def _decide(
        self,
        status: Status,
        actor: str,
        action: str,
        details: Mapping[str, object] | None = None,
        **fields: object,
    ) -> None:
        change = StatusChange(
            request_id=self.inp.request_id,
            event_id=str(workflow.uuid4()),
            status=status,
            actor=actor,
            action=action,
            details=dict(details or {}),
            **fields,  # type: ignore[arg-type]
        )
        # Validators judge by the decided status; handlers that answer the API wait for the
        # projected one, so the API's response already shows the change.
        self._status = status
        self._unwritten.append(change)

    async def _write_decided(self, beside_lease: bool = False) -> None:
        """`beside_lease`: a lease message goes out at the same time, so the write must not be a
        local activity, which would hold the message back until the database answers."""
        changes, self._unwritten = self._unwritten, []
        approvals, self._unwritten_approvals = self._unwritten_approvals, []
        if not changes and not approvals:
            return
        write = local_store if self._local and not beside_lease else store
        if approvals or len(changes) > 1:  # only since LEAN_WRITES
            await write(StoreActivities.record_batch, ProjectionBatch(approvals, changes))
        else:
            await write(StoreActivities.record_status, changes[0])
        if changes:
            self._projected = changes[-1].status
        self._requested = True
        # Indexed only when the starter indexed it (the API does; the time-skipping server,
        # which has no custom attributes, is started without).
        if changes and workflow.info().typed_search_attributes.get(ta.STATUS) is not None:
            workflow.upsert_search_attributes([ta.STATUS.value_set(str(changes[-1].status))])
        for change in changes:
            self._notices.status_changed(change)

    @workflow.query
    def status(self) -> str | None:
        return None if self._status is None else str(self._status)
