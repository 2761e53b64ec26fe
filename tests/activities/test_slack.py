"""SlackActivities against the Slack stand-in and moto's identity store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from moto import mock_aws
from slack_sdk.errors import SlackApiError
from sqlmodel import Session
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment

from activities.slack import SlackActivities
from elevate.contracts import Notification
from elevate.devstack.seed import USERS, seed_demo
from elevate.devstack.slack_standin import SlackStandIn, serving
from elevate.models import AccessRequest, utcnow
from elevate.providers.aws import client
from elevate.providers.identity_center import IdentityCenterProvider
from elevate.settings import Settings
from tests.rows import insert_request

APPROVERS = {"carol@example.com", "erin@example.com", "dave@example.com"}
BOOTSTRAP = [
    {"type": "group", "name": "elevate-approvers"},
    {"type": "group", "name": "elevate-admins"},
]


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityCenterProvider]:
    client.cache_clear()  # a cached client may point at another test's moto server
    with mock_aws():
        seed_demo()
        yield IdentityCenterProvider(Settings())
    client.cache_clear()


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with serving(USERS) as s:
        yield s


def _activities(engine, provider, standin, **settings) -> SlackActivities:
    configured = Settings(
        slack_bot_token="xoxb-unit",
        slack_signing_secret="unit-secret",
        slack_api_url=standin.url,
        **settings,
    )
    return SlackActivities(engine, configured, provider)


def _pending(engine: sa.Engine) -> Notification:
    rid = insert_request(engine, approvers=BOOTSTRAP)
    return Notification(rid, "pending_approval", "evt-1")


def _dms(standin: SlackStandIn) -> set[str]:
    return {standin.users[a["channel"]] for a in standin.calls_of("chat.postMessage")}


def test_each_approver_gets_one_dm_even_when_the_activity_is_retried(engine, provider, standin):
    activities = _activities(engine, provider, standin)
    n = _pending(engine)
    ActivityEnvironment().run(activities.send_slack_approval, n)
    ActivityEnvironment().run(activities.send_slack_approval, n)  # Temporal's retry
    assert _dms(standin) == APPROVERS  # groups expanded, the requester left out
    assert len(standin.calls_of("chat.postMessage")) == 3


def test_an_approver_slack_does_not_know_is_skipped(engine, provider):
    known = [u for u in USERS if u != "erin@example.com"]
    with serving(known) as standin:
        ActivityEnvironment().run(
            _activities(engine, provider, standin).send_slack_approval, _pending(engine)
        )
    assert _dms(standin) == APPROVERS - {"erin@example.com"}


def test_with_a_channel_one_message_goes_there_instead(engine, provider, standin):
    activities = _activities(engine, provider, standin, slack_approvals_channel="C0APPROVE")
    ActivityEnvironment().run(activities.send_slack_approval, _pending(engine))
    assert [a["channel"] for a in standin.calls_of("chat.postMessage")] == ["C0APPROVE"]
    assert standin.calls_of("users.lookupByEmail") == []


def test_later_events_update_the_messages_posted(engine, provider, standin):
    activities = _activities(engine, provider, standin)
    n = _pending(engine)
    ActivityEnvironment().run(activities.send_slack_approval, n)
    with Session(engine) as session:  # as the workflow's store activity writes it
        row = session.get(AccessRequest, n.request_id)
        assert row is not None
        row.status, row.updated_at = "expired", utcnow()
        session.add(row)
        session.commit()
    ActivityEnvironment().run(
        activities.send_slack_approval, Notification(n.request_id, "expired", "evt-2")
    )
    updates = standin.calls_of("chat.update")
    assert len(updates) == 3
    assert all("expired" in u["text"] for u in updates)
    assert all(b["type"] != "actions" for u in updates for b in u["blocks"])  # no buttons left


def test_a_slack_outage_fails_the_attempt_and_is_counted(engine, provider, standin):
    standin.failing = True
    buffer = MetricBuffer(100)
    env = ActivityEnvironment()
    env.metric_meter = Runtime(telemetry=TelemetryConfig(metrics=buffer)).metric_meter
    with pytest.raises(SlackApiError):
        env.run(_activities(engine, provider, standin).send_slack_approval, _pending(engine))
    [update] = [
        u for u in buffer.retrieve_updates() if u.metric.name == "elevate_notification_failures"
    ]
    assert (update.attributes["channel"], update.attributes["event"]) == (
        "slack_app",
        "pending_approval",
    )


def test_without_the_bot_token_nothing_is_sent(engine, provider, standin):
    quiet = SlackActivities(engine, Settings(slack_api_url=standin.url), provider)
    ActivityEnvironment().run(quiet.send_slack_approval, _pending(engine))
    assert standin.calls == []


def test_a_request_decided_before_the_post_asks_nobody(engine, provider, standin):
    rid = insert_request(engine, approvers=BOOTSTRAP, status="scheduled")
    activities = _activities(engine, provider, standin)
    ActivityEnvironment().run(
        activities.send_slack_approval, Notification(rid, "pending_approval", "evt-3")
    )
    assert standin.calls_of("chat.postMessage") == []
