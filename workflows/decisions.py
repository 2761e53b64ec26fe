"""AccessRequestWorkflow's updates that decide a request: approve, reject, cancel, revoke."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.store import StoreActivities
    from elevate.contracts import (
        Actor,
        ApprovalRecord,
        CancelInput,
        DecisionInput,
        RevokeInput,
        Status,
    )
    from elevate.identity import same_person
    from elevate.policy import matches
    from workflows.extension import ExtensionHandlers
    from workflows.notices import Notices
    from workflows.options import check_in_time, check_proof, conflict, not_allowed, store

APPROVE_ANSWERS_DECIDED = "approve-answers-decided"
CANCELLABLE = (Status.PENDING_APPROVAL, Status.SCHEDULED, Status.GRANTING)
REVOCABLE = (Status.SCHEDULED, Status.GRANTING, Status.ACTIVE)


class DecisionHandlers(ExtensionHandlers):
    """The run loop waits on what these set: `_approvals`, `_rejection`, `_stop`. Each answers
    once the projection shows the outcome, so the API's response already does."""

    _approvals: dict[str, str | None]
    _approving: set[str]
    _rejection: DecisionInput | None
    _projected: Status | None
    _requested: bool
    _lean: bool
    _unwritten_approvals: list[ApprovalRecord]
    _notices: Notices

    def _quorum(self) -> bool:
        return len(self._approvals) >= self.inp.approvals_required

    def _check_decider(self, actor: Actor) -> None:
        if self._status is not Status.PENDING_APPROVAL or self._quorum() or self._rejection:
            raise conflict(f"the request is {self._status}, no longer pending approval")
        if self._stop is not None:
            raise conflict("the request is being cancelled")
        if same_person(actor.username, self.inp.requester):
            raise not_allowed("nobody may decide their own request")
        if not matches(actor.username, actor.groups, self.inp.approvers):
            raise not_allowed("you are not an approver of this request")

    @workflow.update
    async def approve(self, inp: DecisionInput) -> None:
        if self._deciding_extension():
            await self._decide_extension(inp, approve=True)
            return
        name = inp.actor.username
        if name in self._approvals or name in self._approving:
            return  # the same approver again counts once
        self._approving.add(name)
        if workflow.patched("approval-after-requested"):
            # Keeps the audit trail in order: "requested" is written before any "approval".
            await workflow.wait_condition(lambda: self._requested)
        record = ApprovalRecord(self.inp.request_id, str(workflow.uuid4()), name, inp.comment)
        if self._lean and len(self._approvals) + 1 >= self.inp.approvals_required:
            # The approval that completes the quorum is written with the decision it makes
            # (`approved`, and `granting` when the grant is due): one transaction.
            self._unwritten_approvals.append(record)
        else:
            await store(StoreActivities.record_approval, record)
        self._approving.discard(name)
        self._approvals[name] = inp.comment
        if not self._quorum():
            self._notices.approval_counted()
        if self._quorum() and workflow.patched(APPROVE_ANSWERS_DECIDED):
            # The approval that completes the quorum answers with the decided request.
            await workflow.wait_condition(lambda: self._projected is not Status.PENDING_APPROVAL)

    @approve.validator
    def _validate_approve(self, inp: DecisionInput) -> None:
        check_proof("approve", inp)
        check_in_time(inp)
        if self._deciding_extension():
            self._check_extension_decider(inp.actor)
            return
        if inp.actor.username in self._approvals or inp.actor.username in self._approving:
            return
        # Validators do not run on replay, so checking spellings here changes no history.
        if any(same_person(inp.actor.username, n) for n in [*self._approvals, *self._approving]):
            raise conflict("this person's approval is already counted")
        self._check_decider(inp.actor)
        if len(self._approvals) + len(self._approving) >= self.inp.approvals_required:
            raise conflict("the request already has the approvals it needs")

    @workflow.update
    async def reject(self, inp: DecisionInput) -> None:
        if self._deciding_extension():
            await self._decide_extension(inp, approve=False)
            return
        self._rejection = inp
        await workflow.wait_condition(lambda: self._projected is Status.REJECTED)

    @reject.validator
    def _validate_reject(self, inp: DecisionInput) -> None:
        check_proof("reject", inp)
        check_in_time(inp)
        if self._deciding_extension():
            self._check_extension_decider(inp.actor)
            return
        self._check_decider(inp.actor)
        if self._approving:
            raise conflict("an approval is being recorded; try again")

    @workflow.update
    async def cancel(self, inp: CancelInput) -> None:
        self._stop = self._stop or (Status.CANCELLED, inp.actor, inp.comment)
        await workflow.wait_condition(lambda: self._projected not in CANCELLABLE)

    @cancel.validator
    def _validate_cancel(self, inp: CancelInput) -> None:
        check_proof("cancel", inp)
        check_in_time(inp)
        if not same_person(inp.actor.username, self.inp.requester) and not inp.actor.is_admin:
            raise not_allowed("only the requester or an admin may cancel a request")
        if self._status not in CANCELLABLE or self._stop is not None:
            raise conflict(
                f"the request is {self._status}; only a request not yet active can be cancelled"
            )

    @workflow.update
    async def revoke(self, inp: RevokeInput) -> None:
        self._stop = self._stop or (Status.REVOKED, inp.actor, inp.comment)
        await workflow.wait_condition(lambda: self._projected not in REVOCABLE)

    @revoke.validator
    def _validate_revoke(self, inp: RevokeInput) -> None:
        check_proof("revoke", inp)
        check_in_time(inp)
        actor = inp.actor
        allowed = (
            actor.is_admin
            or same_person(actor.username, self.inp.requester)
            or matches(actor.username, actor.groups, self.inp.approvers)
        )
        if not allowed:
            raise not_allowed(
                "only the requester, an approver of the request or an admin may revoke it"
            )
        if self._status not in REVOCABLE or self._stop is not None:
            raise conflict(
                f"the request is {self._status}; only scheduled or active requests can be revoked"
            )
