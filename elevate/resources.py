"""The request resource as the API shows it: shared so the worker's notifications match it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from elevate.models import AccessRequest, Approval


class ApprovalOut(BaseModel):
    approver: str
    comment: str | None
    at: datetime


class ExtensionOut(BaseModel):
    """An extension waiting for approval; `duration` is how much it adds to end_at."""

    id: str
    duration: timedelta
    justification: str
    approvers: list[dict[str, str]]
    approvals_required: int
    approvals: list[dict[str, str | None]]
    requested_at: datetime
    expires_at: datetime


class RequestOut(BaseModel):
    id: str
    requester: str
    account_id: str
    account_name: str
    permission_set: str
    duration: timedelta
    start_at: datetime | None
    end_at: datetime | None
    justification: str
    ticket: str | None
    status: str
    approvals: list[ApprovalOut]
    approvals_required: int
    created_at: datetime
    updated_at: datetime
    granted_at: datetime | None
    revoked_at: datetime | None
    decided_by: str | None
    revoked_by: str | None
    failure: str | None
    workflow_id: str
    extension: ExtensionOut | None = Field(
        default=None, description="an extension waiting for approval (approve/reject decide it)"
    )


def to_resource(session: Session, row: AccessRequest) -> RequestOut:
    return to_resources(session, [row])[0]


def to_resources(session: Session, rows: Sequence[AccessRequest]) -> list[RequestOut]:
    """A page of resources with one query for all their approvals (not one per row)."""
    by_request: dict[str, list[ApprovalOut]] = defaultdict(list)
    if rows:
        stmt = select(Approval).where(col(Approval.request_id).in_([r.id for r in rows]))
        for a in session.exec(stmt.order_by(col(Approval.at))).all():
            by_request[a.request_id].append(
                ApprovalOut(approver=a.approver, comment=a.comment, at=a.at)
            )
    return [_resource(row, by_request[row.id]) for row in rows]


def _resource(row: AccessRequest, approvals: list[ApprovalOut]) -> RequestOut:
    data = row.model_dump(
        exclude={"approvers", "duration_seconds", "principal_id", "pending_extension"}
    )
    return RequestOut(
        **data,
        # Stored as the workflow reports it (duration in seconds); ISO 8601 outside, like all.
        extension=ExtensionOut.model_validate(row.pending_extension)
        if row.pending_extension
        else None,
        duration=timedelta(seconds=row.duration_seconds),
        approvals=approvals,
    )
