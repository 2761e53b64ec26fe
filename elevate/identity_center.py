"""The IAM Identity Center provider: permission sets assigned to identity-store users."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from elevate.aws import ErrorKind, classify, client
from elevate.catalog import Catalog, PermissionSet
from elevate.contracts import Assignment
from elevate.provider import Operation
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

    def start_grant(self, a: Assignment) -> str | None:
        if self.holds(a):
            return None
        try:
            resp = self._sso.create_account_assignment(**_target(a))
        except ClientError as err:
            if classify(err) is ErrorKind.CONFLICT:
                return None
            raise
        return str(resp["AccountAssignmentCreationStatus"]["RequestId"])

    def start_revoke(self, a: Assignment) -> str | None:
        if not self.holds(a):
            return None
        try:
            resp = self._sso.delete_account_assignment(**_target(a))
        except ClientError as err:
            if classify(err) is ErrorKind.CONFLICT:
                return None
            raise
        return str(resp["AccountAssignmentDeletionStatus"]["RequestId"])

    def grant_status(self, scope: str, operation_id: str) -> Operation:
        status = self._sso.describe_account_assignment_creation_status(
            InstanceArn=scope, AccountAssignmentCreationRequestId=operation_id
        )["AccountAssignmentCreationStatus"]
        return Operation(status["Status"], status.get("FailureReason"))

    def revoke_status(self, scope: str, operation_id: str) -> Operation:
        status = self._sso.describe_account_assignment_deletion_status(
            InstanceArn=scope, AccountAssignmentDeletionRequestId=operation_id
        )["AccountAssignmentDeletionStatus"]
        return Operation(status["Status"], status.get("FailureReason"))

    def holds(self, a: Assignment) -> bool:
        return any(
            x["PrincipalId"] == a.principal_id and x["PrincipalType"] == a.principal_type
            for x in self._assignments(a.instance_arn, a.account_id, a.permission_set_arn)
        )

    def holders(self, account_id: str, pset: PermissionSet) -> list[str]:
        return [
            x["PrincipalId"]
            for x in self._assignments(self.scope(), account_id, pset.arn)
            if x["PrincipalType"] == "USER"
        ]

    def _assignments(self, instance: str, account_id: str, pset_arn: str) -> list[Any]:
        pages = self._sso.get_paginator("list_account_assignments").paginate(
            InstanceArn=instance, AccountId=account_id, PermissionSetArn=pset_arn
        )
        return [x for page in pages for x in page["AccountAssignments"]]


def _target(a: Assignment) -> dict[str, str]:
    return {
        "InstanceArn": a.instance_arn,
        "TargetId": a.account_id,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": a.permission_set_arn,
        "PrincipalType": a.principal_type,
        "PrincipalId": a.principal_id,
    }
