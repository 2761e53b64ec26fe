"""Grant, revoke and read back one assignment, through whichever provider the worker runs.

Each activity is idempotent: check, act, read back. Activity names are part of recorded
histories: keep them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, cast

from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from elevate.contracts import (
    AWS_FIRST_BACKOFF,
    AWS_MAX_BACKOFF,
    Assignment,
    KnownAssignment,
    VerifyInput,
    WaitInput,
)
from elevate.providers.aws import NETWORK_ERRORS, ErrorKind, classify, error_code, error_message
from elevate.providers.base import Operation, Provider


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


def _known(a: Assignment) -> bool:
    """Whether the owner said it knows the state at AWS; a plain Assignment (a direct caller)
    did not."""
    return isinstance(a, KnownAssignment) and a.known


class AssignmentActivities:
    def __init__(self, provider: Provider, poll_interval: float = 1.0) -> None:
        self._provider = provider
        self._poll_interval = poll_interval

    @activity.defn
    def create_assignment(self, a: KnownAssignment) -> str | None:
        """Start granting; None when there is nothing to wait for (done, or already under way)."""
        with aws_errors():
            return self._provider.start_grant(a, check=not _known(a))

    @activity.defn
    def delete_assignment(self, a: KnownAssignment) -> str | None:
        """Start revoking; None when it is already gone (or a deletion is under way)."""
        with aws_errors():
            return self._provider.start_revoke(a, check=not _known(a))

    @activity.defn
    def grant_assignment(self, a: KnownAssignment) -> None:
        """Start granting, wait for AWS to finish, read the assignment back: the owner's whole
        grant in one activity (workflows/assignment.py AWS_ROUND)."""

        def finish(operation: str | None) -> None:
            if operation is not None:
                self.wait_assignment_created(WaitInput(a.instance_arn, operation))
            self.verify_assignment(VerifyInput(a, True))

        self._round(lambda: self.create_assignment(a), finish)

    @activity.defn
    def revoke_assignment(self, a: KnownAssignment) -> None:
        """Start revoking, wait for AWS to finish, read back that it is gone, in one activity."""

        def finish(operation: str | None) -> None:
            if operation is not None:
                self.wait_assignment_deleted(WaitInput(a.instance_arn, operation))
            self.verify_assignment(VerifyInput(a, False))

        self._round(lambda: self.delete_assignment(a), finish)

    def _round(self, start: Callable[[], str | None], finish: Callable[[str | None], None]) -> None:
        """An attempt makes at most three calls (start, status, read-back; a read first when the
        owner does not know the state). An IN_PROGRESS status or a read-back that disagrees is a
        retry: it finds the operation it already started in the heartbeat and polls it instead
        of starting another. A refusal for now (throttled, 5xx, the network) backs off by this
        round's own count of them, not by the attempt number, which IN_PROGRESS polls raise."""
        details = activity.info().heartbeat_details
        kept: dict[str, Any] = {}
        if details:
            kept = dict(details[0]) if isinstance(details[0], dict) else {"operation": details[0]}
        try:
            if "operation" not in kept:
                kept["operation"] = start()
                activity.heartbeat(kept)
            finish(cast("str | None", kept["operation"]))
        except ApplicationError as err:
            if err.non_retryable or err.next_retry_delay is not None:
                raise  # permanent, or an IN_PROGRESS poll paced by the poll interval
            refused = int(kept.get("refused", 0))
            kept["refused"] = refused + 1
            activity.heartbeat(kept)
            delay = min(AWS_FIRST_BACKOFF * 2**refused, AWS_MAX_BACKOFF)
            raise ApplicationError(err.message, type=err.type, next_retry_delay=delay) from err

    @activity.defn
    def wait_assignment_created(self, inp: WaitInput) -> None:
        self._wait(lambda: self._provider.grant_status(inp.instance_arn, inp.operation_id))

    @activity.defn
    def wait_assignment_deleted(self, inp: WaitInput) -> None:
        self._wait(lambda: self._provider.revoke_status(inp.instance_arn, inp.operation_id))

    def _wait(self, describe: Callable[[], Operation]) -> None:
        """One poll an attempt: IN_PROGRESS is retried after the poll interval, so every AWS
        call of a lane is an activity start that its task queue's rate paces (worker.py);
        FAILED is permanent, with AWS's reason."""
        with aws_errors():
            status = describe()
        if status.status == "SUCCEEDED":
            return
        if status.status == "FAILED":
            reason = status.reason or "no reason given"
            raise ApplicationError(reason, type="AssignmentFailed", non_retryable=True)
        raise ApplicationError(
            f"AWS is still working on it ({status.status})",
            type="OperationInProgress",
            next_retry_delay=timedelta(seconds=max(self._poll_interval, 0.01)),
            category=ApplicationErrorCategory.BENIGN,
        )

    @activity.defn
    def verify_assignment(self, inp: VerifyInput) -> None:
        """Read the assignment back; a mismatch is retried (AWS is eventually consistent)."""
        with aws_errors():
            holds = self._provider.holds(inp.assignment)
        if holds != inp.present:
            want = "present" if inp.present else "gone"
            raise ApplicationError(
                f"assignment read back is not {want} yet", type="AssignmentMismatch"
            )
