"""Request and response bodies of the REST contract (../shared/API.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from elevate.policy_schema import IsoDuration

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class RequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: Annotated[str, StringConstraints(pattern=r"^\d{12}$")] = Field(
        description="the 12-digit AWS account id"
    )
    permission_set: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="the permission set's name (its ARN is accepted too)"
    )
    duration: IsoDuration
    start_at: AwareDatetime | None = None
    justification: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ]
    ticket: Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)] | None = None


class ExtendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: IsoDuration
    justification: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ]


class Comment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Text | None = None


class ApprovalOut(BaseModel):
    approver: str
    comment: str | None
    at: datetime


class EventOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    details: dict[str, Any]


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
    extension: dict[str, Any] | None = Field(
        default=None, description="an extension waiting for approval (approve/reject decide it)"
    )


class RequestDetail(RequestOut):
    events: list[EventOut]


class AccountOut(BaseModel):
    id: str
    name: str
    ou_path: str


class PermissionSetOut(BaseModel):
    name: str
    arn: str
    description: str | None


class EligibilityOut(BaseModel):
    account_id: str
    account_name: str
    permission_set: str
    max_duration: timedelta
    approval_required: bool
    ticket_required: bool
