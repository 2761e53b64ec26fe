"""Messages from a request to the owner of its assignment (signal-with-start)."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from elevate import proof
from elevate.contracts import AssignmentState, LeaseInput, assignment_workflow_id
from workflows.assignment import AssignmentWorkflow


class LeaseActivities:
    def __init__(self, client: Client, task_queue: str, message_key: str = "") -> None:
        self._client = client
        self._task_queue = task_queue
        self._message_key = message_key

    @activity.defn
    async def send_lease(self, lease: LeaseInput) -> None:
        """Start the owner if it is not running, and hand it the acquire or release.

        Safe to retry: the owner treats a repeated acquire or release of the same request as one.
        """
        owner = assignment_workflow_id(lease.assignment)
        kind = "release" if lease.release else "acquire"
        if self._message_key:  # the owner checks it: proof that the worker sent this lease
            lease = proof.seal(lease, kind, owner, self._message_key)
        await self._client.start_workflow(
            AssignmentWorkflow.run,
            AssignmentState(lease.assignment),
            id=owner,
            task_queue=self._task_queue,
            start_signal=kind,
            start_signal_args=[lease],
        )
