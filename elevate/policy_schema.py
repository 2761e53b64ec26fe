"""Wire shapes of policies and settings, shared by the API and `elevate policy apply`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from elevate import policy
from elevate.contracts import Principal
from elevate.identity import canonical


def _iso_duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or not value.startswith("P"):
        raise ValueError("must be an ISO 8601 duration such as PT30M or PT2H")
    return value


# Far beyond any sensible limit, but small enough that now + duration is always a datetime.
_LONGEST = timedelta(days=3660)


def _bounded(value: timedelta) -> timedelta:
    if value > _LONGEST:
        raise ValueError("must be at most P3660D")
    return value


IsoDuration = Annotated[timedelta, BeforeValidator(_iso_duration), AfterValidator(_bounded)]


def iso(duration: timedelta) -> str:
    """ISO 8601, as the API writes durations (PT2H, P1DT30M)."""
    return str(TypeAdapter(timedelta).dump_python(duration, mode="json"))


PolicyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
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


class _Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")
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
    approval_required: bool = True
    ticket_required: bool = False

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
    approvals_required: int = Field(default=1, ge=1, le=10)

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
    ticket_required: bool | None = None
    comment_required: bool | None = None


POLICY_KINDS: dict[str, type[EligibilityBody] | type[ApprovalBody]] = {
    "eligibility": EligibilityBody,
    "approval": ApprovalBody,
}
