"""IAM Identity Center assignment calls. Each activity is idempotent: check, act, read back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from elevate.aws import NETWORK_ERRORS, ErrorKind, classify, error_code, error_message
from elevate.contracts import Assignment, VerifyInput, WaitInput

T = TypeVar("T")


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn AWS errors into Temporal's terms: permanent ones must not be retried."""
    try:
        yield
    except ClientError as err:
        permanent = classify(err) is ErrorKind.PERMANENT
        raise ApplicationError(
            error_message(err), type=error_code(err), non_retryable=permanent
        ) from err
    except NETWORK_ERRORS as err:
        raise ApplicationError(str(err), type="NetworkError") from err


class IdentityCenterActivities:
    def __init__(self, sso_admin: Any, poll_interval: float = 1.0) -> None:
        self._sso = sso_admin
        self._poll_interval = poll_interval

    def _exists(self, a: Assignment) -> bool:
        paginator = self._sso.get_paginator("list_account_assignments")
        pages = paginator.paginate(
            InstanceArn=a.instance_arn,
            AccountId=a.account_id,
            PermissionSetArn=a.permission_set_arn,
        )
        return any(
            x["PrincipalId"] == a.principal_id and x["PrincipalType"] == a.principal_type
            for page in pages
            for x in page["AccountAssignments"]
        )

    def _target(self, a: Assignment) -> dict[str, str]:
        return {
            "InstanceArn": a.instance_arn,
            "TargetId": a.account_id,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": a.permission_set_arn,
            "PrincipalType": a.principal_type,
            "PrincipalId": a.principal_id,
        }

    @activity.defn
    def create_assignment(self, a: Assignment) -> str | None:
        """Start creating the assignment; None when it exists already (nothing to wait for)."""
        with aws_errors():
            if self._exists(a):
                return None
            try:
                resp = self._sso.create_account_assignment(**self._target(a))
            except ClientError as err:
                if classify(err) is ErrorKind.CONFLICT:
                    return None  # already being assigned; verify_assignment confirms it
                raise
            return str(resp["AccountAssignmentCreationStatus"]["RequestId"])

    @activity.defn
    def delete_assignment(self, a: Assignment) -> str | None:
        """Start deleting the assignment; None when it is already gone."""
        with aws_errors():
            if not self._exists(a):
                return None
            try:
                resp = self._sso.delete_account_assignment(**self._target(a))
            except ClientError as err:
                if classify(err) is ErrorKind.CONFLICT:
                    return None  # a deletion is under way; verify_assignment confirms it
                raise
            return str(resp["AccountAssignmentDeletionStatus"]["RequestId"])

    @activity.defn
    def wait_assignment_created(self, inp: WaitInput) -> None:
        self._wait(
            lambda: self._sso.describe_account_assignment_creation_status(
                InstanceArn=inp.instance_arn, AccountAssignmentCreationRequestId=inp.operation_id
            )["AccountAssignmentCreationStatus"]
        )

    @activity.defn
    def wait_assignment_deleted(self, inp: WaitInput) -> None:
        self._wait(
            lambda: self._sso.describe_account_assignment_deletion_status(
                InstanceArn=inp.instance_arn, AccountAssignmentDeletionRequestId=inp.operation_id
            )["AccountAssignmentDeletionStatus"]
        )

    def _wait(self, describe: Callable[[], dict[str, Any]]) -> None:
        """Poll until the operation leaves IN_PROGRESS; FAILED is permanent, with AWS's reason."""
        while True:
            with aws_errors():
                status = describe()
            if status["Status"] == "SUCCEEDED":
                return
            if status["Status"] == "FAILED":
                reason = status.get("FailureReason", "no reason given")
                raise ApplicationError(reason, type="AssignmentFailed", non_retryable=True)
            activity.heartbeat(status["Status"])
            time.sleep(self._poll_interval)

    @activity.defn
    def verify_assignment(self, inp: VerifyInput) -> None:
        """Read the assignment back; a mismatch is retried (AWS is eventually consistent)."""
        with aws_errors():
            exists = self._exists(inp.assignment)
        if exists != inp.present:
            want = "present" if inp.present else "gone"
            raise ApplicationError(
                f"assignment read back is not {want} yet", type="AssignmentMismatch"
            )
