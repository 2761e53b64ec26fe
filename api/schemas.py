"""Request and response bodies of the REST contract (../shared/API.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from elevate.policy_schema import NON_BLANK, IsoDuration

# Re-exported: the resource lives in the shared package, so the worker's webhooks match it.
from elevate.resources import ApprovalOut as ApprovalOut
from elevate.resources import RequestOut as RequestOut

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    # pydantic alone also takes 1700000000 or "0.5" as a time; the schema promises a string.
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-11-28T09:00:00Z")


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as err:  # 9999-12-31T23:00:00-05:00 has no UTC datetime
        raise ValueError("is out of range") from err


# An RFC 3339 instant with an offset, as UTC; one that UTC cannot hold is 422, not 500.
Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc)]
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
    start_at: Rfc3339 | None = None
    justification: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=NON_BLANK),
    ]
    ticket: Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)] | None = None


class ExtendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: IsoDuration
    justification: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=NON_BLANK),
    ]


class Comment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Text | None = None


class EventOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    details: dict[str, Any]


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
    max_duration: IsoDuration
    approval_required: bool
    ticket_required: bool
