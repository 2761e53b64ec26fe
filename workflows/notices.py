"""A request's notifications: one activity per event and channel, started and never awaited."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from activities.slack import SlackActivities
    from elevate.contracts import Notification, Status, StatusChange
    from workflows.options import notify

# Each patch marks where histories recorded before it have no such activities to replay.
NOTIFY_PATCH = "notify-webhook"
SLACK_PATCH = "notify-slack"
ENDING_SOON_PATCH = "notify-ending-soon"
SLACK_APP_PATCH = "slack-approvals"
# Statuses whose event (API.md "Notifications") has the status's name.
_NOTIFIED = frozenset(
    {
        Status.PENDING_APPROVAL,
        Status.REJECTED,
        Status.EXPIRED,
        Status.CANCELLED,
        Status.ACTIVE,
        Status.ENDED,
        Status.REVOKED,
        Status.FAILED,
    }
)
_GRACE = timedelta(minutes=1)  # how long a finished request waits for its deliveries


def event_of(change: StatusChange) -> str | None:
    if change.status is Status.SCHEDULED:
        return "approved" if change.action == "approved" else None
    return str(change.status) if change.status in _NOTIFIED else None


class Notices:
    """Sends the request's events to every channel and plans its `ending_soon`.

    `ending_soon` goes out once per end_at, `lead` before it. An end nearer than `lead` when it
    is set (a request shorter than the lead, a small extension close to the end) gets none: the
    heads-up could no longer come `lead` ahead, and `active` already said when access ends.
    """

    def __init__(
        self,
        request_id: str,
        lead: timedelta,
        slack_app: bool = False,
        channels: list[str] | None = None,
    ) -> None:
        self._request_id = request_id
        # None: a request made before the API said which channels it had (both, as then).
        self._channels = None if channels is None else frozenset(channels)
        self._lead = lead
        self._slack_app = slack_app  # only requests made with Slack approvals configured
        self._handles: list[workflow.ActivityHandle[None]] = []
        self._planned_end: datetime | None = None  # the end_at the reminder was planned for
        self._remind_at: datetime | None = None  # None: sent already, or none wanted

    def status_changed(self, change: StatusChange) -> None:
        if (event := event_of(change)) is not None:
            self._send(Notification(self._request_id, event, change.event_id))

    def _send(self, n: Notification) -> None:
        if not workflow.patched(NOTIFY_PATCH):
            return
        # Separate activities: a channel that is down is retried without repeating the other.
        # A channel nobody configured costs nothing: no activity at all.
        if self._wants("webhook"):
            self._handles.append(notify(NotifyActivities.send_notification, n))
        if self._wants("slack") and workflow.patched(SLACK_PATCH):
            self._handles.append(notify(NotifyActivities.send_slack_notification, n))
        # ending_soon changes nothing an approval message shows.
        if self._slack_app and n.event != "ending_soon" and workflow.patched(SLACK_APP_PATCH):
            self._handles.append(notify(SlackActivities.send_slack_approval, n))

    def _wants(self, channel: str) -> bool:
        return self._channels is None or channel in self._channels

    def approval_counted(self) -> None:
        """An approval short of the quorum: only the Slack messages show the new count."""
        if self._slack_app and workflow.patched(SLACK_APP_PATCH):
            n = Notification(self._request_id, "approval", str(workflow.uuid4()))
            self._handles.append(notify(SlackActivities.send_slack_approval, n))

    def remind(self, end_at: datetime, now: datetime) -> datetime | None:
        """Sends `ending_soon` when it is due; answers when the next one is due, if any."""
        if end_at != self._planned_end:
            self._planned_end = end_at
            due = end_at - self._lead
            wanted = self._lead > timedelta(0) and due >= now
            self._remind_at = due if wanted and workflow.patched(ENDING_SOON_PATCH) else None
        if self._remind_at is not None and now >= self._remind_at:
            self._remind_at = None
            self._send(Notification(self._request_id, "ending_soon", str(workflow.uuid4()), end_at))
        return self._remind_at

    async def drain(self) -> None:
        """Give deliveries still retrying a bounded grace; their failures never fail the request."""
        pending = [h for h in self._handles if not h.done()]
        if pending:
            await workflow.wait(pending, timeout=_GRACE.total_seconds())
        for handle in self._handles:
            if handle.done() and not handle.cancelled():
                handle.exception()  # retrieved, so asyncio does not log it as unhandled
