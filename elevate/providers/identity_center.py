"""The IAM Identity Center provider: permission sets assigned to identity-store users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from elevate.contracts import Assignment
from elevate.providers.aws import ErrorKind, classify, client, error_code
from elevate.providers.base import Operation
from elevate.providers.catalog import Catalog, PermissionSet
from elevate.settings import Settings


class IdentityCenterProvider(Catalog):
    """Catalog reads (Organizations, Identity Center) plus the assignment calls.

    Creating and deleting an assignment is asynchronous at AWS: start_* return the request id
    that grant_status/revoke_status poll. A ConflictException means another operation on the
    same assignment is under way; read-back settles it, so it counts as started.
    """

    kind = "identity_center"

    def __init__(self, settings: Settings, sso_admin: Any | None = None) -> None:
        super().__init__(settings)
        self._sso = sso_admin or client("sso-admin", settings.aws_region)

    def scope(self) -> str:
        return self.instance().arn

    def resolve_principal(self, username: str) -> str | None:
        return self.user_id(username)

    def validate(self) -> None:
        """Nothing to check offline: the instance and catalog are read on first use."""

    def start_grant(self, a: Assignment, check: bool = True) -> str | None:
        """Creating an assignment that exists changes nothing at AWS (it holds one per
        principal, account and permission set), so the read first only saves a call."""
        if check and self.holds(a):
            return None
        create = self._sso.create_account_assignment
        return _started(lambda: create(**_target(a))["AccountAssignmentCreationStatus"])

    def start_revoke(self, a: Assignment, check: bool = True) -> str | None:
        """Deleting an assignment that is gone answers ResourceNotFound: nothing to wait for."""
        if check and not self.holds(a):
            return None
        delete = self._sso.delete_account_assignment
        try:
            return _started(lambda: delete(**_target(a))["AccountAssignmentDeletionStatus"])
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                return None
            raise

    def grant_status(self, scope: str, operation_id: str) -> Operation:
        return _operation(
            self._sso.describe_account_assignment_creation_status(
                InstanceArn=scope, AccountAssignmentCreationRequestId=operation_id
            )["AccountAssignmentCreationStatus"]
        )

    def revoke_status(self, scope: str, operation_id: str) -> Operation:
        return _operation(
            self._sso.describe_account_assignment_deletion_status(
                InstanceArn=scope, AccountAssignmentDeletionRequestId=operation_id
            )["AccountAssignmentDeletionStatus"]
        )

    def holds(self, a: Assignment) -> bool:
        """The principal's own assignments in the account: one page in practice, where listing
        the account and permission set pages through everyone who holds it."""
        pages = self._sso.get_paginator("list_account_assignments_for_principal").paginate(
            InstanceArn=a.instance_arn,
            PrincipalId=a.principal_id,
            PrincipalType=a.principal_type,
            Filter={"AccountId": a.account_id},
        )
        return any(
            x["PermissionSetArn"] == a.permission_set_arn and x["AccountId"] == a.account_id
            for page in pages
            for x in page["AccountAssignments"]
        )

    def holders(self, account_id: str, pset: PermissionSet) -> list[str]:
        return [
            x["PrincipalId"]
            for x in self._assignments(self.scope(), account_id, pset.arn)
            if x["PrincipalType"] == "USER"
        ]

    def provisioned_accounts(self, pset: PermissionSet) -> list[str]:
        """AWS provisions a permission set to every account it is assigned in."""
        pages = self._sso.get_paginator("list_accounts_for_provisioned_permission_set").paginate(
            InstanceArn=self.scope(), PermissionSetArn=pset.arn
        )
        return [a for page in pages for a in page["AccountIds"]]

    # --- ending live sessions (the inline policy of a permission set) ---------------------

    def username_of(self, principal_id: str) -> str:
        return self._cached(f"username:{principal_id}", lambda: self._load_username(principal_id))  # type: ignore[no-any-return]

    def _load_username(self, principal_id: str) -> str:
        ids = self._client("identitystore")
        user = ids.describe_user(
            IdentityStoreId=self.instance().identity_store_id, UserId=principal_id
        )
        return str(user["UserName"])

    def session_duration(self, instance: str, pset_arn: str) -> str:
        """Cached like the catalog: every revoke asks, the answer rarely changes."""
        load = lambda: self._load_session_duration(instance, pset_arn)  # noqa: E731
        return self._cached(f"session-duration:{pset_arn}", load)  # type: ignore[no-any-return]

    def _load_session_duration(self, instance: str, pset_arn: str) -> str:
        described = self._sso.describe_permission_set(
            InstanceArn=instance, PermissionSetArn=pset_arn
        )
        return str(described["PermissionSet"].get("SessionDuration") or "PT1H")

    def inline_policy(self, instance: str, pset_arn: str) -> str:
        got = self._sso.get_inline_policy_for_permission_set(
            InstanceArn=instance, PermissionSetArn=pset_arn
        )
        return str(got.get("InlinePolicy") or "")

    def write_inline_policy(self, instance: str, pset_arn: str, text: str) -> None:
        target = {"InstanceArn": instance, "PermissionSetArn": pset_arn}
        if text:
            self._sso.put_inline_policy_to_permission_set(**target, InlinePolicy=text)
        else:
            self._sso.delete_inline_policy_from_permission_set(**target)

    def provision(self, instance: str, pset_arn: str, account_id: str) -> Operation:
        status = self._sso.provision_permission_set(
            InstanceArn=instance,
            PermissionSetArn=pset_arn,
            TargetType="AWS_ACCOUNT",
            TargetId=account_id,
        )["PermissionSetProvisioningStatus"]
        return Operation(status["Status"], status.get("FailureReason"), status.get("RequestId"))

    def provisioning_status(self, instance: str, request_id: str) -> Operation:
        status = self._sso.describe_permission_set_provisioning_status(
            InstanceArn=instance, ProvisionPermissionSetRequestId=request_id
        )["PermissionSetProvisioningStatus"]
        return Operation(status["Status"], status.get("FailureReason"), request_id)

    def _assignments(self, instance: str, account_id: str, pset_arn: str) -> list[Any]:
        pages = self._sso.get_paginator("list_account_assignments").paginate(
            InstanceArn=instance, AccountId=account_id, PermissionSetArn=pset_arn
        )
        return [x for page in pages for x in page["AccountAssignments"]]


def _started(start: Callable[[], dict[str, Any]]) -> str | None:
    """The operation's request id; None on a conflict (one is already under way)."""
    try:
        return str(start()["RequestId"])
    except ClientError as err:
        if classify(err) is ErrorKind.CONFLICT:
            return None
        raise


def _operation(status: dict[str, Any]) -> Operation:
    return Operation(status["Status"], status.get("FailureReason"))


def _target(a: Assignment) -> dict[str, str]:
    return {
        "InstanceArn": a.instance_arn,
        "TargetId": a.account_id,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": a.permission_set_arn,
        "PrincipalType": a.principal_type,
        "PrincipalId": a.principal_id,
    }
