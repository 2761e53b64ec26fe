"""An extension waiting for approval: its own approvers, quorum and deadline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from elevate.contracts import ExtendInput


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
