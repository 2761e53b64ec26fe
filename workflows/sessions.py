"""The single writer of one permission set's session denies (API.md "Live sessions")."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.sessions import SessionActivities
    from activities.store import StoreActivities
    from elevate.contracts import (
        ApplyDenies,
        DenyEntry,
        EndSessionsInput,
        EventRecord,
        ProjectionBatch,
        SessionGuardState,
    )
    from workflows.options import SYSTEM, aws, reason, record

# Before this patch each request a write covered heard of it by its own activity (a hundred
# revokes in a burst, a hundred writes); now one write tells every request at once.
BATCHED_TELLS = "batched-tells"
News = tuple[DenyEntry, str, dict[str, object]]  # a deny, the event, its details


@workflow.defn
class SessionGuardWorkflow:
    """Entity workflow, id `end-sessions-<permission set id>`.

    Holds the denies that end live sessions of users whose access to the permission set ended,
    writes them into its inline policy (with every statement elevate did not write) and
    provisions it, and removes each once the session duration has passed. Being the only
    writer of that policy, its edits and provisionings never interleave. Signal:
    `end_sessions` (EndSessionsInput). Query: `denies`. Continues as new when its history grows
    long; ends when no deny is left (the policy then is as it was found).
    """

    @workflow.init
    def __init__(self, state: SessionGuardState) -> None:
        self.state = state
        self._writes: list[workflow.ActivityHandle[None]] = []

    @workflow.signal
    def end_sessions(self, inp: EndSessionsInput) -> None:
        self.state.queue.append(inp)

    @workflow.query
    def denies(self) -> list[str]:
        return sorted(self.state.entries)

    @workflow.run
    async def run(self, state: SessionGuardState) -> None:
        while True:
            touched = self._take_queue() | self._drop_expired()
            if touched:
                await self._apply(touched)
            if not self.state.entries and not self.state.queue:
                await self._flush()
                return
            if workflow.info().is_continue_as_new_suggested():
                await self._flush()
                workflow.continue_as_new(self.state)
            await self._wait()

    def _take_queue(self) -> set[str]:
        touched = set()
        while self.state.queue:
            new = self.state.queue.pop(0).entry
            held = self.state.entries.get(new.key)
            if held is not None:  # the same user and account again: the later end covers both
                new.ended_at = max(new.ended_at, held.ended_at)
                new.remove_at = max(new.remove_at, held.remove_at)
                new.request_ids = held.request_ids + new.request_ids
            self.state.entries[new.key] = new
            touched.add(new.account_id)
        return touched

    def _drop_expired(self) -> set[str]:
        now = workflow.now()
        gone = [e for e in self.state.entries.values() if e.remove_at <= now]
        for e in gone:
            del self.state.entries[e.key]
        return {e.account_id for e in gone}

    async def _wait(self) -> None:
        due = min(e.remove_at for e in self.state.entries.values())
        delay = due - workflow.now()
        if delay <= timedelta(0):
            return
        try:
            await workflow.wait_condition(lambda: bool(self.state.queue), timeout=delay)
        except TimeoutError:
            pass

    async def _apply(self, accounts: set[str]) -> None:
        """Write and provision; AWS refusing is told to the requests and retried, never dropped."""
        backoff = timedelta(seconds=5)
        told: set[str] = set()  # a failure is told once per round of retries, not each try
        while True:
            inp = ApplyDenies(
                self.state.instance_arn,
                self.state.permission_set_arn,
                list(self.state.entries.values()),
                sorted(accounts),
                self.state.original,
            )
            try:
                result = await aws(SessionActivities.apply_session_denies, inp, "revoke")
            except ActivityError as err:
                failed: dict[str, object] = {"reason": reason(err)}
                fresh = [e for e in self.state.entries.values() if e.key not in told]
                told.update(e.key for e in fresh)
                self._tell([(e, "sessions_end_failed", failed) for e in fresh], keep=True)
                await workflow.sleep(backoff)
                backoff = min(backoff * 2, timedelta(minutes=5))
                accounts |= self._take_queue()
                continue
            self.state.original = result.original
            full: dict[str, object] = {
                "reason": "the permission set's inline policy has no room for another deny"
            }
            dropped: list[News] = [
                (self.state.entries.pop(key), "sessions_end_failed", full) for key in result.dropped
            ]
            ended: list[News] = [
                (e, "sessions_ended", {"until": e.remove_at.isoformat()})
                for e in self.state.entries.values()
            ]
            self._tell(dropped + ended)
            return

    def _tell(self, news: list[News], keep: bool = False) -> None:
        """An event on each request a deny is for; after success each hears it only once."""
        events = []
        for e, action, details in news:
            details = {
                "account_id": e.account_id,
                "username": e.username,
                "issued_before": e.ended_at.isoformat(),
                **details,
            }
            for request_id in e.request_ids:
                events.append(
                    EventRecord(request_id, str(workflow.uuid4()), SYSTEM, action, details)
                )
            if not keep:
                e.request_ids = []
        if not events:
            return
        if workflow.patched(BATCHED_TELLS):
            self._writes.append(
                record(StoreActivities.record_batch, ProjectionBatch(events=events))
            )
            return
        for event in events:
            self._writes.append(record(StoreActivities.record_event, event))

    async def _flush(self) -> None:
        writes, self._writes = self._writes, []
        for handle in writes:
            await handle
