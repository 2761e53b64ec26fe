"""AssignmentActivities on a stubbed sso-admin client: what AWS says, what Temporal sees."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.assignments import AssignmentActivities
from elevate.contracts import Assignment, KnownAssignment, VerifyInput, WaitInput
from elevate.providers.identity_center import IdentityCenterProvider
from elevate.settings import Settings

INSTANCE = "arn:aws:sso:::instance/ssoins-1111222233334444"
ACCOUNT = "111122223333"
PERMISSION_SET = "arn:aws:sso:::permissionSet/ssoins-1111222233334444/ps-aaaabbbbccccdddd"
PRINCIPAL = "90676e2b5c-4f1a2b3c-0000-0000-0000-000000000001"
OTHER_PRINCIPAL = "90676e2b5c-4f1a2b3c-0000-0000-0000-000000000002"
REQUEST_ID = "b2a7c7e0-1d2f-4c9e-9a43-5e4e5f6a7b8c"

OTHER_SET = "arn:aws:sso:::permissionSet/ssoins-1111222233334444/ps-eeeeffff00001111"

A = Assignment(INSTANCE, ACCOUNT, PERMISSION_SET, PRINCIPAL)
KNOWN = KnownAssignment(INSTANCE, ACCOUNT, PERMISSION_SET, PRINCIPAL, known=True)
LIST_PARAMS = {
    "InstanceArn": INSTANCE,
    "PrincipalId": PRINCIPAL,
    "PrincipalType": "USER",
    "Filter": {"AccountId": ACCOUNT},
}
TARGET = {
    "InstanceArn": INSTANCE,
    "TargetId": ACCOUNT,
    "TargetType": "AWS_ACCOUNT",
    "PermissionSetArn": PERMISSION_SET,
    "PrincipalType": "USER",
    "PrincipalId": PRINCIPAL,
}


@pytest.fixture
def sso() -> Any:
    # One attempt per call: each stubbed response is consumed by exactly one activity call.
    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    return boto3.session.Session().client("sso-admin", region_name="us-east-1", config=config)


@pytest.fixture
def stub(sso: Any) -> Iterator[Stubber]:
    with Stubber(sso) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def ic(sso: Any) -> AssignmentActivities:
    return AssignmentActivities(IdentityCenterProvider(Settings(), sso), poll_interval=0)


@pytest.fixture
def env() -> ActivityEnvironment:
    return ActivityEnvironment()


def listed(stub: Stubber, *principals: str) -> None:
    """These users are assigned the permission set on the account; the read back asks AWS for
    our principal's assignments in the account, which also lists another permission set."""
    assignments = [
        {
            "AccountId": ACCOUNT,
            "PermissionSetArn": arn,
            "PrincipalType": "USER",
            "PrincipalId": PRINCIPAL,
        }
        for arn in [OTHER_SET] + ([PERMISSION_SET] if PRINCIPAL in principals else [])
    ]
    stub.add_response(
        "list_account_assignments_for_principal", {"AccountAssignments": assignments}, LIST_PARAMS
    )


def operation(key: str, status: str, reason: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"Status": status, "RequestId": REQUEST_ID}
    if reason is not None:
        body["FailureReason"] = reason
    return {key: body}


def creation_status(stub: Stubber, status: str, reason: str | None = None) -> None:
    stub.add_response(
        "describe_account_assignment_creation_status",
        operation("AccountAssignmentCreationStatus", status, reason),
        {"InstanceArn": INSTANCE, "AccountAssignmentCreationRequestId": REQUEST_ID},
    )


def create_fails(stub: Stubber, code: str, message: str, http_status: int = 400) -> None:
    stub.add_client_error(
        "create_account_assignment",
        service_error_code=code,
        service_message=message,
        http_status_code=http_status,
        expected_params=TARGET,
    )


def create_starts(stub: Stubber) -> None:
    stub.add_response(
        "create_account_assignment",
        operation("AccountAssignmentCreationStatus", "IN_PROGRESS"),
        TARGET,
    )


def failure_of(env: ActivityEnvironment, fn: Any, arg: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as err:
        env.run(fn, arg)
    return err.value


def test_create_then_wait_until_succeeded(env, stub, ic):
    listed(stub, OTHER_PRINCIPAL)  # someone else holds it; our user does not
    create_starts(stub)
    creation_status(stub, "IN_PROGRESS")
    creation_status(stub, "SUCCEEDED")

    assert env.run(ic.create_assignment, A) == REQUEST_ID
    # One poll an attempt: Temporal retries it, paced by the lane like every other AWS call.
    err = failure_of(env, ic.wait_assignment_created, WaitInput(INSTANCE, REQUEST_ID))
    assert err.type == "OperationInProgress"
    assert not err.non_retryable
    assert err.next_retry_delay is not None
    env.run(ic.wait_assignment_created, WaitInput(INSTANCE, REQUEST_ID))


def test_failed_creation_is_permanent_with_aws_reason(env, stub, ic):
    creation_status(stub, "IN_PROGRESS")
    creation_status(stub, "FAILED", "Permission set is not provisioned to the account")

    assert not failure_of(
        env, ic.wait_assignment_created, WaitInput(INSTANCE, REQUEST_ID)
    ).non_retryable
    err = failure_of(env, ic.wait_assignment_created, WaitInput(INSTANCE, REQUEST_ID))

    assert err.type == "AssignmentFailed"
    assert err.non_retryable
    assert "Permission set is not provisioned to the account" in err.message


def test_throttling_is_retryable_and_the_retry_succeeds(env, stub, ic):
    listed(stub)
    create_fails(stub, "ThrottlingException", "Rate exceeded")
    listed(stub)
    create_starts(stub)

    err = failure_of(env, ic.create_assignment, A)
    assert err.type == "ThrottlingException"
    assert not err.non_retryable
    # Temporal retries the activity; the second attempt goes through.
    assert env.run(ic.create_assignment, A) == REQUEST_ID


def test_server_error_is_retryable(env, stub, ic):
    listed(stub)
    create_fails(stub, "InternalServerException", "We are sorry", http_status=500)

    err = failure_of(env, ic.create_assignment, A)

    assert err.type == "InternalServerException"
    assert not err.non_retryable


def test_conflict_means_already_being_assigned(env, stub, ic):
    listed(stub)
    create_fails(stub, "ConflictException", "An assignment operation is in progress")

    assert env.run(ic.create_assignment, A) is None


def test_existing_assignment_is_not_created_again(env, stub, ic):
    listed(stub, OTHER_PRINCIPAL, PRINCIPAL)  # no create response queued: a call would fail

    assert env.run(ic.create_assignment, A) is None


def test_access_denied_is_permanent_with_aws_message(env, stub, ic):
    listed(stub)
    create_fails(stub, "AccessDeniedException", "User is not authorized to perform CreateAccount")

    err = failure_of(env, ic.create_assignment, A)

    assert err.non_retryable
    assert err.type == "AccessDeniedException"
    assert "User is not authorized to perform CreateAccount" in err.message


def test_delete_of_missing_assignment_does_nothing(env, stub, ic):
    listed(stub, OTHER_PRINCIPAL)  # no delete response queued: a call would fail

    assert env.run(ic.delete_assignment, A) is None


def test_delete_returns_operation_and_read_back_waits_until_gone(env, stub, ic):
    listed(stub, PRINCIPAL)
    stub.add_response(
        "delete_account_assignment",
        operation("AccountAssignmentDeletionStatus", "IN_PROGRESS"),
        TARGET,
    )
    listed(stub, PRINCIPAL)  # AWS is eventually consistent: still listed right after
    listed(stub)

    assert env.run(ic.delete_assignment, A) == REQUEST_ID
    err = failure_of(env, ic.verify_assignment, VerifyInput(A, present=False))
    assert err.type == "AssignmentMismatch"
    assert not err.non_retryable
    env.run(ic.verify_assignment, VerifyInput(A, present=False))  # retried: now it is gone


def test_an_owner_that_knows_it_is_absent_creates_without_reading_first(env, stub, ic):
    create_starts(stub)  # no list queued: a read would fail

    assert env.run(ic.create_assignment, KNOWN) == REQUEST_ID


def test_an_owner_that_knows_it_is_present_deletes_without_reading_first(env, stub, ic):
    stub.add_response(
        "delete_account_assignment",
        operation("AccountAssignmentDeletionStatus", "IN_PROGRESS"),
        TARGET,
    )

    assert env.run(ic.delete_assignment, KNOWN) == REQUEST_ID


def test_a_known_delete_of_an_assignment_already_gone_does_nothing(env, stub, ic):
    stub.add_client_error(
        "delete_account_assignment",
        service_error_code="ResourceNotFoundException",
        service_message="Assignment not found",
        expected_params=TARGET,
    )

    assert env.run(ic.delete_assignment, KNOWN) is None


def test_a_known_delete_that_aws_refuses_is_permanent(env, stub, ic):
    stub.add_client_error(
        "delete_account_assignment",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform DeleteAccountAssignment",
        expected_params=TARGET,
    )

    err = failure_of(env, ic.delete_assignment, KNOWN)

    assert err.non_retryable
    assert err.type == "AccessDeniedException"


def test_a_whole_grant_is_one_activity_whose_retry_polls_what_it_started(env, stub, ic):
    create_starts(stub)
    creation_status(stub, "IN_PROGRESS")
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    err = failure_of(env, ic.grant_assignment, KNOWN)
    assert err.type == "OperationInProgress"
    assert not err.non_retryable
    assert beats == [({"operation": REQUEST_ID},)]  # the retry finds it here

    creation_status(stub, "SUCCEEDED")
    listed(stub, PRINCIPAL)
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, heartbeat_details=beats[-1], attempt=2)
    retry.run(ic.grant_assignment, KNOWN)  # no second create: the stub would refuse it


def test_a_whole_revoke_reads_back_until_gone_without_deleting_twice(env, stub, ic):
    stub.add_response(
        "delete_account_assignment",
        operation("AccountAssignmentDeletionStatus", "SUCCEEDED"),
        TARGET,
    )
    stub.add_response(
        "describe_account_assignment_deletion_status",
        operation("AccountAssignmentDeletionStatus", "SUCCEEDED"),
        {"InstanceArn": INSTANCE, "AccountAssignmentDeletionRequestId": REQUEST_ID},
    )
    listed(stub, PRINCIPAL)  # eventually consistent: still listed right after
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    err = failure_of(env, ic.revoke_assignment, KNOWN)
    assert err.type == "AssignmentMismatch"
    assert not err.non_retryable

    stub.add_response(
        "describe_account_assignment_deletion_status",
        operation("AccountAssignmentDeletionStatus", "SUCCEEDED"),
        {"InstanceArn": INSTANCE, "AccountAssignmentDeletionRequestId": REQUEST_ID},
    )
    listed(stub)
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, heartbeat_details=beats[-1], attempt=2)
    retry.run(ic.revoke_assignment, KNOWN)


def test_a_round_backs_off_by_its_own_refusals_not_by_its_polls(env, stub, ic):
    """Five IN_PROGRESS polls make attempt 7; a throttle then still waits one second, then two."""
    for _ in range(2):
        stub.add_client_error(
            "describe_account_assignment_creation_status",
            service_error_code="ThrottlingException",
            service_message="Rate exceeded",
            http_status_code=400,
        )
    beats: list[Any] = []
    kept: Any = [{"operation": REQUEST_ID}]
    delays = []
    for attempt in (7, 8):
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(retry.info, heartbeat_details=kept, attempt=attempt)
        retry.on_heartbeat = lambda *details: beats.append(details)
        err = failure_of(retry, ic.grant_assignment, KNOWN)
        assert err.type == "ThrottlingException"
        assert not err.non_retryable
        delays.append(err.next_retry_delay)
        kept = beats[-1]
    assert delays == [timedelta(seconds=1), timedelta(seconds=2)]
    assert kept == ({"operation": REQUEST_ID, "refused": 2},)
