"""Wire shapes of policies and settings, shared by the API and `elevate policy apply`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.config import JsonDict

from elevate import policy
from elevate.contracts import Principal
from elevate.identity import canonical

_N = r"\d+"
_TIME = rf"({_N}H({_N}M)?({_N}S)?|{_N}M({_N}S)?|{_N}S)"
# Days, hours, minutes, whole seconds: the RFC 3339 durations that name a fixed length (no years,
# months or weeks). The OpenAPI document publishes this pattern; the API checks the same one.
DURATION_PATTERN = rf"^P({_N}D(T{_TIME})?|T{_TIME})$"


def _iso_duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError("must be an ISO 8601 duration such as PT30M, PT2H or P1DT4H")
    return value


# Far beyond any sensible limit, but small enough that now + duration is always a datetime.
_LONGEST = timedelta(days=3660)


def _bounded(value: timedelta) -> timedelta:
    if value > _LONGEST:
        raise ValueError("must be at most P3660D")
    return value


def iso(duration: timedelta) -> str:
    """ISO 8601, as the API writes durations (PT2H, P1DT30M, P400D): pydantic would write
    P1Y35D, which RFC 3339 does not allow and the pattern above refuses."""
    days, rest = divmod(int(duration.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = zip((hours, minutes, seconds), "HMS", strict=True)
    time = "".join(f"{n}{unit}" for n, unit in parts if n)
    if not days and not time:
        return "PT0S"
    return f"P{f'{days}D' if days else ''}{f'T{time}' if time else ''}"


def _json_integer(value: Any) -> Any:
    # What JSON Schema calls an integer: 5 and 5.0, but not "5" or true.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
IsoDuration = Annotated[
    timedelta,
    BeforeValidator(_iso_duration),
    AfterValidator(_bounded),
    PlainSerializer(iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "duration", "pattern": DURATION_PATTERN}),
]


PolicyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# Not only whitespace: Python, JSON Schema validators and pydantic-core disagree on what \s is,
# so the characters they disagree on (\x1c-\x1f, and \x85 that str.strip removes) count as blank
# for all of them.
NON_BLANK = r"[^\s\x1c-\x1f\x85]"
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=320, pattern=NON_BLANK),
]
AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
OuId = Annotated[
    str, StringConstraints(pattern=r"^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$")
]


class PrincipalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["user", "group"]
    name: Name

    @model_validator(mode="after")
    def _canonical_user(self) -> PrincipalBody:
        # Stored as the token's canonical username, so matching never depends on spelling.
        if self.type == "user":
            self.name = canonical(self.name)
        return self

    def to_principal(self) -> Principal:
        return Principal(self.type, self.name)


# What _somewhere() checks, said in the schema so that clients see it before they send.
_NAMES_A_SCOPE: JsonDict = {
    "anyOf": [
        {"required": ["accounts"], "properties": {"accounts": {"minItems": 1}}},
        {"required": ["ous"], "properties": {"ous": {"minItems": 1}}},
    ]
}


class _Scope(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_NAMES_A_SCOPE)
    accounts: list[AccountId] = Field(default_factory=list)
    ous: list[OuId] = Field(default_factory=list)
    permission_sets: list[Name] = Field(default_factory=list, description="empty means all")

    @model_validator(mode="after")
    def _somewhere(self) -> _Scope:
        if not self.accounts and not self.ous:
            raise ValueError("name at least one account or OU (the root id covers everything)")
        return self


class EligibilityBody(_Scope):
    principals: list[PrincipalBody] = Field(min_length=1)
    max_duration: IsoDuration = timedelta(hours=1)
    approval_required: StrictBool = True
    ticket_required: StrictBool = False

    def to_policy(self, name: str) -> policy.EligibilityPolicy:
        return policy.EligibilityPolicy(
            name=name,
            principals=[p.to_principal() for p in self.principals],
            accounts=self.accounts,
            ous=self.ous,
            permission_sets=self.permission_sets,
            max_duration=self.max_duration,
            approval_required=self.approval_required,
            ticket_required=self.ticket_required,
        )


class ApprovalBody(_Scope):
    approvers: list[PrincipalBody] = Field(min_length=1)
    approvals_required: JsonInt = Field(default=1, ge=1, le=10)

    def to_policy(self, name: str) -> policy.ApprovalPolicy:
        return policy.ApprovalPolicy(
            name=name,
            approvers=[p.to_principal() for p in self.approvers],
            approvals_required=self.approvals_required,
            accounts=self.accounts,
            ous=self.ous,
            permission_sets=self.permission_sets,
        )


class SettingsBody(BaseModel):
    max_duration: IsoDuration
    min_duration: IsoDuration
    approval_timeout: IsoDuration
    ticket_required: bool
    comment_required: bool


class SettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_duration: IsoDuration | None = None
    min_duration: IsoDuration | None = None
    approval_timeout: IsoDuration | None = None
    ticket_required: StrictBool | None = None
    comment_required: StrictBool | None = None


POLICY_KINDS: dict[str, type[EligibilityBody] | type[ApprovalBody]] = {
    "eligibility": EligibilityBody,
    "approval": ApprovalBody,
}
