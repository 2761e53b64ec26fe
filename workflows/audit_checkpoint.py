"""Keeps the audit chain's head where a database writer cannot change it: this history."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.audit_checkpoint import AuditActivities
    from elevate.contracts import Checkpoint, CheckpointInput, CheckpointState

WORKFLOW_ID = "elevate-audit-checkpoint"
KEEP = 500  # checkpoints held for verify; S3 (when configured) keeps every one
_RUNS_PER_HISTORY = 200


@workflow.defn
class AuditCheckpointWorkflow:
    """Long-lived, id `elevate-audit-checkpoint`: every interval an activity reads and checks the
    chain's head and the result (the checkpoint) is recorded in this history. Continues as new
    with the newest checkpoints. Signal: `set_interval`. Query: `checkpoints` (oldest first)."""

    @workflow.init
    def __init__(self, state: CheckpointState) -> None:
        self.state = state

    @workflow.signal
    def set_interval(self, interval: timedelta) -> None:
        """The worker's setting, sent at every worker start; applies from the next sleep."""
        self.state.interval = interval

    @workflow.query
    def checkpoints(self) -> list[Checkpoint]:
        return list(self.state.recent)

    @workflow.run
    async def run(self, state: CheckpointState) -> None:
        for _ in range(_RUNS_PER_HISTORY):
            previous = self.state.recent[-1] if self.state.recent else None
            cp = await workflow.execute_activity_method(
                AuditActivities.take_checkpoint,
                CheckpointInput(previous),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            if cp is not None:
                self.state.recent = [*self.state.recent, cp][-KEEP:]
            await workflow.sleep(self.state.interval)
        workflow.continue_as_new(self.state)
