"""An extension waiting for approval: its own approvers, quorum and deadline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.lease import LeaseActivities
    from activities.store import StoreActivities
    from elevate.contracts import (
        AccessRequestInput,
        Actor,
        DecisionInput,
        ExtendInput,
        ExtensionChange,
        LeaseInput,
        Status,
    )
    from elevate.identity import same_person
    from elevate.policy import matches
    from workflows.options import (
        SYSTEM,
        check_in_time,
        check_proof,
        conflict,
        message,
        not_allowed,
        store,
    )

# Before this patch the owner's lease kept the first end; now an extension moves it.
LEASE_EXTENDS = "lease-extends"


@dataclass
class PendingExtension:
    request: ExtendInput
    requested_at: datetime
    approvals: dict[str, str | None] = field(default_factory=dict)
    rejected_by: str | None = None

    @property
    def deadline(self) -> datetime:
        return self.requested_at + self.request.approval_timeout

    def approved(self) -> bool:
        return len(self.approvals) >= self.request.approvals_required

    def projection(self) -> dict[str, object]:
        """What the API shows as the request's `extension`."""
        r = self.request
        return {
            "id": r.extension_id,
            "duration": r.duration.total_seconds(),
            "justification": r.justification,
            "approvers": [{"type": p.type, "name": p.name} for p in r.approvers],
            "approvals_required": r.approvals_required,
            "approvals": [{"approver": a, "comment": c} for a, c in self.approvals.items()],
            "requested_at": self.requested_at.isoformat(),
            "expires_at": self.deadline.isoformat(),
        }


class ExtensionHandlers:
    """AccessRequestWorkflow's `extend` update and the deciding of a pending extension, which
    `approve` and `reject` hand over while the request is active."""

    inp: AccessRequestInput
    _status: Status | None
    _stop: tuple[Status, Actor, str | None] | None
    _ending: bool
    _extension: PendingExtension | None
    _end_at: datetime | None
    _end_version: int
    _lease_input: Callable[..., LeaseInput]

    @workflow.update
    async def extend(self, inp: ExtendInput) -> None:
        self._extension = PendingExtension(inp, workflow.now())
        details = {"duration": inp.duration.total_seconds(), "justification": inp.justification}
        await self._project_extension("extension_requested", inp.actor.username, details)
        if self._extension is not None and self._extension.approved():
            await self._apply_extension()

    @extend.validator
    def _validate_extend(self, inp: ExtendInput) -> None:
        check_proof("extend", inp)
        check_in_time(inp)
        if not same_person(inp.actor.username, self.inp.requester):
            raise not_allowed("only the requester may extend a request")
        if self._status is not Status.ACTIVE or self._stop is not None or self._ending:
            raise conflict(f"the request is {self._status}; only active requests can be extended")
        if self._extension is not None:
            raise conflict("an extension is already waiting for approval")

    def _deciding_extension(self) -> bool:
        return self._extension is not None and self._status is Status.ACTIVE

    def _check_extension_decider(self, actor: Actor) -> None:
        ext = self._extension
        if ext is None or self._ending or self._stop is not None:
            raise conflict("no extension is waiting for approval")
        if same_person(actor.username, self.inp.requester):
            raise not_allowed("nobody may decide their own request")
        if not matches(actor.username, actor.groups, ext.request.approvers):
            raise not_allowed("you are not an approver of this extension")
        counted = [n for n in ext.approvals if n != actor.username]
        if any(same_person(actor.username, n) for n in counted):
            raise conflict("this person's approval is already counted")

    async def _decide_extension(self, inp: DecisionInput, approve: bool) -> None:
        ext = self._extension
        if ext is None:
            return
        name = inp.actor.username
        details: dict[str, object] = {"comment": inp.comment}
        if not approve:
            await self._close_extension("extension_rejected", name, details)
        elif name not in ext.approvals:
            ext.approvals[name] = inp.comment
            await self._project_extension("extension_approval", name, details)
            if ext.approved():
                await self._apply_extension()

    async def _apply_extension(self) -> None:
        ext, self._extension = self._extension, None
        if ext is None or self._end_at is None or self._ending:
            return
        self._end_at += ext.request.duration
        self._end_version += 1
        if workflow.patched(LEASE_EXTENDS):
            # Before anything waits for the database: the owner must not drop the lease at the
            # old end.
            await message(LeaseActivities.send_lease, self._lease_input(False, self._end_at))
        details = {
            "duration": ext.request.duration.total_seconds(),
            "approvers": list(ext.approvals),
        }
        await self._project_extension("extended", SYSTEM, details, end_at=self._end_at)

    async def _close_extension(self, action: str, actor: str, details: dict[str, object]) -> None:
        self._extension = None
        await self._project_extension(action, actor, details)

    async def _project_extension(
        self, action: str, actor: str, details: dict[str, object], end_at: datetime | None = None
    ) -> None:
        pending = self._extension.projection() if self._extension else None
        change = ExtensionChange(
            self.inp.request_id, str(workflow.uuid4()), actor, action, pending, end_at, details
        )
        await store(StoreActivities.record_extension, change)
