"""Webhook notifications: the request's resource, POSTed and signed, retried by Temporal."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import httpx
import sqlalchemy as sa
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from elevate.contracts import Notification
from elevate.models import AccessRequest, utcnow
from elevate.resources import to_resource
from elevate.settings import Settings

log = logging.getLogger("elevate.notify")
TIMEOUT_SECONDS = 10.0


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class NotifyActivities:
    def __init__(self, engine: sa.Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    def _body(self, n: Notification) -> bytes:
        with Session(self._engine) as session:
            row = session.get(AccessRequest, n.request_id)
            if row is None:
                raise ApplicationError(
                    f"request {n.request_id} not in the database", type="NotFound"
                )
            resource = to_resource(session, row).model_dump(mode="json")
        payload = {
            "event": n.event,
            "at": utcnow().isoformat(),
            "request": resource,
            "link": f"{self._settings.public_url.rstrip('/')}/v1/requests/{n.request_id}",
        }
        return json.dumps(payload).encode()

    @activity.defn
    def send_notification(self, n: Notification) -> None:
        url = self._settings.notify_webhook_url
        if not url:
            return
        body = self._body(n)
        headers = {"Content-Type": "application/json", "X-Elevate-Event-Id": n.event_id}
        if secret := self._settings.notify_webhook_secret:
            headers["X-Elevate-Signature"] = signature(secret, body)
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
        except httpx.HTTPError as err:
            # The URL may carry a token in its query: log the host only.
            log.warning("webhook %s for %s: %s", n.event, httpx.URL(url).host, type(err).__name__)
            raise
        if not response.is_success:
            log.warning(
                "webhook %s for %s answered %s", n.event, httpx.URL(url).host, response.status_code
            )
            raise ApplicationError(
                f"the webhook answered {response.status_code}", type="WebhookFailed"
            )
