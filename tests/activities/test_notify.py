"""NotifyActivities against a local receiver: the body, its signature, and failures retried."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from elevate.contracts import Notification
from elevate.models import AccessRequest
from elevate.settings import Settings
from tests.sink import webhook_sink

SECRET = "s3cret-for-tests"


@pytest.fixture
def request_id(engine: sa.Engine) -> str:
    rid = str(uuid.uuid4())
    with Session(engine) as session:
        session.add(
            AccessRequest(
                id=rid,
                requester="alice@example.com",
                principal_id="p-1",
                account_id="111122223333",
                account_name="prod",
                permission_set="ReadOnly",
                permission_set_arn="arn:aws:sso:::permissionSet/ssoins-1/ps-1",
                instance_arn="arn:aws:sso:::instance/ssoins-1",
                duration_seconds=3600,
                justification="incident 42",
                status="pending_approval",
                approvers=[{"type": "group", "name": "elevate-approvers"}],
                workflow_id=f"access-request-{rid}",
            )
        )
        session.commit()
    return rid


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
    assert body["link"] == f"https://elevate.test/v1/requests/{request_id}"
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
    with pytest.raises(httpx.ConnectError):
        ActivityEnvironment().run(
            activities.send_notification, Notification(request_id, "active", "evt-4")
        )


def test_no_url_sends_nothing(engine, request_id):
    with webhook_sink() as sink:
        activities = NotifyActivities(engine, _settings(None))
        ActivityEnvironment().run(
            activities.send_notification, Notification(request_id, "ended", "evt-5")
        )
    assert sink.received == []
