"""NotifyActivities against a local receiver: webhook and Slack bodies, failures counted."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from temporalio.exceptions import ApplicationError
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from elevate.contracts import Notification
from elevate.models import AccessRequest
from elevate.settings import Settings
from tests.rows import insert_request
from tests.sink import webhook_sink

SECRET = "s3cret-for-tests"
FAILURES = "elevate_notification_failures"


@pytest.fixture
def request_id(engine: sa.Engine) -> str:
    return insert_request(engine)


def _settings(url: str | None, secret: str | None = SECRET) -> Settings:
    return Settings(
        notify_webhook_url=url, notify_webhook_secret=secret, public_url="https://elevate.test"
    )


def test_delivers_signed_resource_and_link(engine, request_id):
    with webhook_sink() as sink:
        activities = NotifyActivities(engine, _settings(sink.url))
        n = Notification(request_id, "pending_approval", "evt-1")
        ActivityEnvironment().run(activities.send_notification, n)
    [delivery] = sink.received
    expected = "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Elevate-Signature"] == expected
    assert delivery.headers["X-Elevate-Event-Id"] == "evt-1"
    body = delivery.json
    assert body["event"] == "pending_approval"
    assert body["link"] == f"https://elevate.test/requests/{request_id}"
    assert body["request"]["id"] == request_id
    assert body["request"]["status"] == "pending_approval"
    assert body["request"]["duration"] == "PT1H"
    assert body["at"].endswith("+00:00")


def test_no_signature_without_a_secret(engine, request_id):
    with webhook_sink() as sink:
        activities = NotifyActivities(engine, _settings(sink.url, secret=None))
        ActivityEnvironment().run(
            activities.send_notification, Notification(request_id, "approved", "evt-2")
        )
    [delivery] = sink.received
    assert "X-Elevate-Signature" not in delivery.headers
    assert delivery.json["event"] == "approved"


def test_an_error_answer_raises_so_temporal_retries(engine, request_id):
    with webhook_sink(status=500) as sink:
        activities = NotifyActivities(engine, _settings(sink.url))
        with pytest.raises(ApplicationError, match="500") as info:
            ActivityEnvironment().run(
                activities.send_notification, Notification(request_id, "active", "evt-3")
            )
    assert not info.value.non_retryable
    assert len(sink.received) == 1


def test_an_unreachable_receiver_raises(engine, request_id):
    with webhook_sink() as sink:
        url = sink.url  # closed when the block ends: nothing listens there any more
    activities = NotifyActivities(engine, _settings(url))
    with pytest.raises(ApplicationError, match="could not be reached: ConnectError") as info:
        ActivityEnvironment().run(
            activities.send_notification, Notification(request_id, "active", "evt-4")
        )
    assert info.value.type == "WebhookUnreachable"
    assert not info.value.non_retryable


def test_no_url_sends_nothing(engine, request_id):
    with webhook_sink() as sink:
        activities = NotifyActivities(engine, _settings(None))
        ActivityEnvironment().run(
            activities.send_notification, Notification(request_id, "ended", "evt-5")
        )
    assert sink.received == []


# --- Slack ---------------------------------------------------------------------------------

BEGIN = datetime(2026, 11, 29, 14, 5, tzinfo=UTC)


def _slack(url: str | None) -> Settings:
    return Settings(notify_webhook_url=None, slack_webhook_url=url, public_url="https://e.test/")


def _update(engine: sa.Engine, request_id: str, **fields: object) -> None:
    with Session(engine) as session:
        row = session.get(AccessRequest, request_id)
        assert row is not None
        for name, value in fields.items():
            setattr(row, name, value)
        session.add(row)
        session.commit()


def _slack_message(engine: sa.Engine, n: Notification) -> dict[str, object]:
    with webhook_sink() as sink:
        ActivityEnvironment().run(
            NotifyActivities(engine, _slack(sink.url)).send_slack_notification, n
        )
    [delivery] = sink.received
    assert delivery.headers["Content-Type"] == "application/json"
    return delivery.json


def test_slack_message_says_who_what_when_and_links_the_request(engine, request_id):
    _update(engine, request_id, start_at=BEGIN, end_at=BEGIN + timedelta(hours=1), ticket="INC-7")
    message = _slack_message(engine, Notification(request_id, "active", "evt-6"))
    link = f"https://e.test/requests/{request_id}"
    assert message["text"] == (
        "alice@example.com's request for ReadOnly on prod (111122223333) is active until "
        f"2026-11-29 15:05 UTC: {link}"
    )
    headline, facts, why = message["blocks"]
    assert headline["text"]["type"] == "mrkdwn"
    assert headline["text"]["text"].startswith(f"*<{link}|Access request>*: alice@example.com's")
    assert [f["text"] for f in facts["fields"]] == [
        "*Start*\n2026-11-29 14:05 UTC",
        "*End*\n2026-11-29 15:05 UTC",
        "*Duration*\n1 h",
        "*Ticket*\nINC-7",
    ]
    assert why["text"]["text"] == "*Justification*\nincident 42"


def test_slack_pending_approval_names_the_approvers(engine, request_id):
    approvers = [{"type": "user", "name": "carol@example.com"}, {"type": "group", "name": "sre"}]
    _update(engine, request_id, approvers=approvers, approvals_required=2)
    message = _slack_message(engine, Notification(request_id, "pending_approval", "evt-7"))
    assert (
        "(111122223333) waits for approval by 2 of carol@example.com or the sre group"
        in (message["text"])
    )
    facts = [f["text"] for f in message["blocks"][1]["fields"]]
    assert facts[:2] == ["*Start*\nas soon as approved", "*End*\n1 h after the start"]
    assert facts[3] == "*Ticket*\nnone"


def test_slack_ending_soon_announces_the_end_it_was_sent_for(engine, request_id):
    # An extension's new end may not be in the projection yet: the notification carries it.
    _update(engine, request_id, start_at=BEGIN, end_at=BEGIN + timedelta(hours=1))
    new_end = datetime(2026, 11, 29, 17, 5, tzinfo=timezone(timedelta(hours=2)))
    n = Notification(request_id, "ending_soon", "evt-8", end_at=new_end)
    message = _slack_message(engine, n)
    assert "ends soon, at 2026-11-29 15:05 UTC" in message["text"]


def test_slack_escapes_what_users_typed(engine, request_id):
    _update(engine, request_id, justification="<!channel> fix <https://evil.test|this> & that")
    message = _slack_message(engine, Notification(request_id, "approved", "evt-9"))
    why = message["blocks"][2]["text"]["text"]
    assert why == "*Justification*\n&lt;!channel&gt; fix &lt;https://evil.test|this&gt; &amp; that"


def test_slack_without_a_url_sends_nothing(engine, request_id):
    with webhook_sink() as sink:
        activities = NotifyActivities(engine, _slack(None))
        ActivityEnvironment().run(
            activities.send_slack_notification, Notification(request_id, "ended", "evt-10")
        )
    assert sink.received == []


@pytest.mark.parametrize("channel", ["webhook", "slack"])
def test_a_failed_delivery_is_counted_and_logged_without_the_secret_path(
    engine, request_id, caplog, channel
):
    buffer = MetricBuffer(100)
    env = ActivityEnvironment()
    env.metric_meter = Runtime(telemetry=TelemetryConfig(metrics=buffer)).metric_meter
    with webhook_sink(status=500) as sink, caplog.at_level(logging.WARNING, "elevate.notify"):
        url = f"{sink.url}/services/T000/B000/XXXXsecretXXXX"
        activities = NotifyActivities(
            engine, Settings(notify_webhook_url=url, slack_webhook_url=url)
        )
        send = (
            activities.send_slack_notification
            if channel == "slack"
            else activities.send_notification
        )
        with pytest.raises(ApplicationError, match="500") as info:
            env.run(send, Notification(request_id, "active", "evt-11"))
    assert not info.value.non_retryable  # Temporal retries it, with backoff, for a while
    assert f"{channel} active to 127.0.0.1 answered 500" in caplog.text
    assert "secret" not in caplog.text
    assert "secret" not in str(info.value)
    [update] = [u for u in buffer.retrieve_updates() if u.metric.name == FAILURES]
    assert update.value == 1
    assert update.attributes["channel"] == channel
    assert update.attributes["event"] == "active"
