"""Where access is granted: one interface, implemented for IAM Identity Center and for plain IAM.

The workflow and the policies only see `Assignment` triples (principal, account, permission
set); a provider says what those mean at AWS. `Assignment.instance_arn` carries the provider's
scope (the Identity Center instance ARN, or "iam"), and `PermissionSet.arn` the provider's
stable identifier of an entitlement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from elevate.contracts import Assignment
from elevate.providers.catalog import Account, PermissionSet


@dataclass(frozen=True)
class Operation:
    """The state of an asynchronous grant or revoke at AWS."""

    status: Literal["IN_PROGRESS", "SUCCEEDED", "FAILED"]
    reason: str | None = None
    request_id: str | None = None  # what to poll while IN_PROGRESS, where AWS gives one


class Provider(Protocol):
    kind: str  # "identity_center" or "iam"

    # --- catalog (cached; refreshed on a miss) -------------------------------------------
    def scope(self) -> str:
        """Goes into `Assignment.instance_arn`."""
        ...

    def accounts(self, refresh: bool = False) -> list[Account]: ...

    def ous(self, refresh: bool = False) -> dict[str, str]:
        """OU ids (and root ids) with their paths; empty where there are no OUs."""
        ...

    def permission_sets(self, refresh: bool = False) -> list[PermissionSet]: ...

    def find_account(self, account_id: str) -> Account | None: ...

    def find_permission_set(self, name_or_arn: str) -> PermissionSet | None: ...

    def resolve_principal(self, username: str) -> str | None:
        """The principal id of the user named `username`, or None when there is none."""
        ...

    def validate(self) -> None:
        """Check the configuration at start-up; raise naming what is wrong."""
        ...

    # --- assignments (boto3 ClientError escapes; activities classify it) -------------------
    def start_grant(self, a: Assignment, check: bool = True) -> str | None:
        """Start granting; an operation id to poll, or None when nothing is left to wait for.

        `check=False`: the caller knows the assignment is absent, so no read comes first.
        """
        ...

    def grant_status(self, scope: str, operation_id: str) -> Operation: ...

    def start_revoke(self, a: Assignment, check: bool = True) -> str | None:
        """`check=False`: the caller knows the assignment is present, so no read comes first."""
        ...

    def revoke_status(self, scope: str, operation_id: str) -> Operation: ...

    def holds(self, a: Assignment) -> bool:
        """Read back: does AWS say the principal holds the entitlement on the account now?"""
        ...

    def holders(self, account_id: str, pset: PermissionSet) -> list[str]:
        """Principal ids holding `pset` on the account (the reconciler's view)."""
        ...

    def provisioned_accounts(self, pset: PermissionSet) -> list[str]:
        """Accounts where `pset` may be assigned at all (the reconciler's sweep walks these)."""
        ...
