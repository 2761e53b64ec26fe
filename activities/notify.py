"""Notifications: each event POSTed as a signed webhook and as a Slack message.

One activity per channel, so Temporal retries a channel that is down without sending the
other one again. A channel without a URL sends nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from elevate.contracts import Notification
from elevate.models import AccessRequest, utcnow
from elevate.resources import to_resource
from elevate.settings import Settings
from elevate.slack import duration_words as _duration
from elevate.slack import escape as _escape

log = logging.getLogger("elevate.notify")
TIMEOUT_SECONDS = 10.0


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class NotifyActivities:
    def __init__(self, engine: sa.Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    def _link(self, request_id: str) -> str:
        return f"{self._settings.public_url.rstrip('/')}/requests/{request_id}"

    def _row(self, session: Session, request_id: str) -> AccessRequest:
        row = session.get(AccessRequest, request_id)
        if row is None:
            raise ApplicationError(f"request {request_id} not in the database", type="NotFound")
        return row

    def _body(self, n: Notification) -> bytes:
        with Session(self._engine) as session:
            resource = to_resource(session, self._row(session, n.request_id))
        if n.end_at is not None:
            resource = resource.model_copy(update={"end_at": n.end_at})
        payload = {
            "event": n.event,
            "at": utcnow().isoformat(),
            "request": resource.model_dump(mode="json"),
            "link": self._link(n.request_id),
        }
        return json.dumps(payload).encode()

    def _slack_body(self, n: Notification) -> bytes:
        with Session(self._engine) as session:
            row = self._row(session, n.request_id)
            message = slack_message(row, n, self._link(n.request_id))
        return json.dumps(message).encode()

    @activity.defn
    def send_notification(self, n: Notification) -> None:
        url = self._settings.notify_webhook_url
        if not url:
            return
        with _counted("webhook", n.event):
            body = self._body(n)
            headers = {"Content-Type": "application/json", "X-Elevate-Event-Id": n.event_id}
            if secret := self._settings.notify_webhook_secret:
                headers["X-Elevate-Signature"] = signature(secret, body)
            _post("webhook", url, body, headers, n.event)

    @activity.defn
    def send_slack_notification(self, n: Notification) -> None:
        url = self._settings.slack_webhook_url
        if not url:
            return
        with _counted("slack", n.event):
            body = self._slack_body(n)
            _post("slack", url, body, {"Content-Type": "application/json"}, n.event)


@contextmanager
def _counted(channel: str, event: str) -> Iterator[None]:
    """Counts every failed attempt; the exception goes on to Temporal, which retries it."""
    try:
        yield
    except Exception:
        failures = activity.metric_meter().create_counter(
            "elevate_notification_failures", "Notification deliveries that failed", "1"
        )
        failures.add(1, {"channel": channel, "event": event})
        raise


def _post(channel: str, url: str, body: bytes, headers: dict[str, str], event: str) -> None:
    # The URL's path or query may hold a token (a Slack webhook's always does): neither is
    # logged nor put in the failure, which Temporal keeps in the workflow's history.
    host = httpx.URL(url).host
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as err:
        log.warning("%s %s to %s: %s", channel, event, host, type(err).__name__)
        raise ApplicationError(
            f"the {channel} receiver at {host} could not be reached: {type(err).__name__}",
            type="WebhookUnreachable",
        ) from None
    if not response.is_success:
        log.warning("%s %s to %s answered %s", channel, event, host, response.status_code)
        raise ApplicationError(
            f"the {channel} receiver answered {response.status_code}", type="WebhookFailed"
        )


# --- Slack ---------------------------------------------------------------------------------


def slack_message(row: AccessRequest, n: Notification, link: str) -> dict[str, Any]:
    """An incoming-webhook message: who wants which access, what happened, when, and why."""
    end_at = n.end_at or row.end_at
    subject = f"{row.requester}'s request for {row.permission_set} on {row.account_name}"
    sentence = f"{subject} ({row.account_id}) {_happened(row, n.event, end_at)}"
    fields = {
        "Start": _utc(row.start_at) or "as soon as approved",
        "End": _utc(end_at) or f"{_duration(row.duration_seconds)} after the start",
        "Duration": _duration(row.duration_seconds),
        "Ticket": row.ticket or "none",
    }
    return {
        "text": f"{_escape(sentence)}: {link}",
        "blocks": [
            _section(f"*<{link}|Access request>*: {_escape(sentence)}"),
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{_escape(value)}"}
                    for name, value in fields.items()
                ],
            },
            _section(f"*Justification*\n{_escape(row.justification)}"),
        ],
    }


def _happened(row: AccessRequest, event: str, end_at: datetime | None) -> str:
    """The event in words, as the end of a sentence about the request."""
    end = _utc(end_at) or "its end"
    return {
        "pending_approval": f"waits for approval by {_approvers(row)}",
        "approved": f"was approved by {row.decided_by or 'its approvers'}",
        "rejected": f"was rejected by {row.decided_by or 'an approver'}",
        "expired": "expired: nobody approved it in time",
        "cancelled": "was cancelled",
        "active": f"is active until {end}",
        "ending_soon": f"ends soon, at {end}",
        "ended": "has ended",
        "revoked": f"was revoked by {row.revoked_by or 'elevate'}",
        "failed": f"failed: {row.failure or 'see the request'}",
    }.get(event, f"had the event {event}")


def _approvers(row: AccessRequest) -> str:
    names = [p["name"] if p["type"] == "user" else f"the {p['name']} group" for p in row.approvers]
    who = " or ".join(names) or "an admin"
    if row.approvals_required > 1:
        return f"{row.approvals_required} of {who}"
    return who


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _utc(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
