"""Ending live Identity Center sessions: the deny in the permission set's inline policy, written
by one workflow per permission set (SessionGuardWorkflow), and the message that reaches it."""

from __future__ import annotations

import time
from datetime import timedelta

from pydantic import TypeAdapter
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.assignments import aws_errors
from elevate.contracts import (
    ApplyDenies,
    ApplyResult,
    DenyEntry,
    EndSessions,
    EndSessionsInput,
    SessionGuardState,
    session_guard_workflow_id,
)
from elevate.providers import session_policy
from elevate.providers.identity_center import IdentityCenterProvider

_DURATION = TypeAdapter(timedelta)
_AWS_DEFAULT_SESSION = timedelta(hours=1)


def _session_duration(text: str) -> timedelta:
    """ISO 8601 as AWS documents it; some emulators answer seconds; else AWS's default."""
    if text.isdigit():
        return timedelta(seconds=int(text))
    try:
        return _DURATION.validate_python(text)
    except ValueError:
        return _AWS_DEFAULT_SESSION


class SessionActivities:
    def __init__(
        self,
        provider: IdentityCenterProvider,
        client: Client,
        task_queue: str,
        keep: timedelta | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self._provider = provider
        self._client = client
        self._task_queue = task_queue
        self._keep = keep
        self._poll_interval = poll_interval

    @activity.defn
    async def send_end_sessions(self, inp: EndSessions) -> None:
        """Look up who and for how long, then hand it to the permission set's writer."""
        a = inp.assignment
        with aws_errors():
            username = self._provider.username_of(a.principal_id)
            keep = self._keep or _session_duration(
                self._provider.session_duration(a.instance_arn, a.permission_set_arn)
            )
        entry = DenyEntry(
            username, a.account_id, inp.ended_at, inp.ended_at + keep, [inp.request_id]
        )
        await self._client.start_workflow(
            "SessionGuardWorkflow",
            SessionGuardState(a.instance_arn, a.permission_set_arn),
            id=session_guard_workflow_id(a.permission_set_arn),
            task_queue=self._task_queue,
            start_signal="end_sessions",
            start_signal_args=[EndSessionsInput(a.instance_arn, a.permission_set_arn, entry)],
        )

    @activity.defn
    def apply_session_denies(self, inp: ApplyDenies) -> ApplyResult:
        """Make the inline policy hold exactly these denies (and what elevate did not write),
        then provision the permission set to the accounts they concern."""
        p = self._provider
        # A ConflictException (another change to the permission set under way) is retried.
        with aws_errors():
            current = p.inline_policy(inp.instance_arn, inp.permission_set_arn)
            original = inp.original
            if original is None and not session_policy.has_ours(current):
                original = current  # as elevate found it: put back byte for byte at the end
            text, dropped = session_policy.render(current, original, inp.entries)
            if text != current:
                p.write_inline_policy(inp.instance_arn, inp.permission_set_arn, text)
            for account in inp.accounts:
                self._provision(inp.instance_arn, inp.permission_set_arn, account)
        return ApplyResult(None if not inp.entries and text == original else original, dropped)

    def _provision(self, instance: str, pset_arn: str, account: str) -> None:
        op = self._provider.provision(instance, pset_arn, account)
        while op.status == "IN_PROGRESS" and op.request_id:
            activity.heartbeat(account)
            time.sleep(self._poll_interval)
            op = self._provider.provisioning_status(instance, op.request_id)
        if op.status == "FAILED":
            raise ApplicationError(
                f"provisioning to {account} failed: {op.reason or 'no reason given'}",
                type="ProvisioningFailed",
            )
