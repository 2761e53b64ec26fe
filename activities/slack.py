"""Slack approvals from the worker: post the message with buttons, keep it up to date.

`pending_approval` posts one direct message per approver (or one message in the configured
channel); every later event updates what was posted. A retry posts only what is still missing,
so an approver never gets the same request twice.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify import _counted
from elevate import slack
from elevate.contracts import Notification, Status
from elevate.models import AccessRequest
from elevate.providers.base import Provider
from elevate.settings import Settings

log = logging.getLogger("elevate.slack")


class SlackActivities:
    def __init__(self, engine: sa.Engine, settings: Settings, provider: Provider) -> None:
        self._engine = engine
        self._settings = settings
        self._client = slack.web_client(settings)
        self._directory = slack.Directory(provider, settings.aws_region)

    @activity.defn
    def send_slack_approval(self, n: Notification) -> None:
        client = self._client
        if client is None:
            return  # Slack approvals are not configured on this worker
        with _counted("slack_app", n.event), Session(self._engine) as session:
            link = slack.request_link(self._settings, n.request_id)
            if n.event == "pending_approval":
                self._post(client, session, n.request_id, link)
            else:
                slack.refresh(session, client, n.request_id, link)

    def _post(self, client: WebClient, session: Session, request_id: str, link: str) -> None:
        row = session.get(AccessRequest, request_id)
        if row is None:
            raise ApplicationError(f"request {request_id} not in the database", type="NotFound")
        if row.status != Status.PENDING_APPROVAL.value:
            return  # decided before the messages went out: nothing left to ask anyone
        done = {m.target for m in slack.posted(session, request_id)}
        content = slack.render(session, row, link)
        for target in self._targets(client, row):
            if target in done:
                continue
            answer = client.chat_postMessage(channel=target, **content)
            slack.record(session, row, target, str(answer["channel"]), str(answer["ts"]))

    def _targets(self, client: WebClient, row: AccessRequest) -> list[str]:
        """The configured channel, or the Slack user id of each approver Slack knows."""
        if channel := self._settings.slack_approvals_channel:
            return [channel]
        emails = self._directory.approvers(row)
        return [uid for email in emails if (uid := _user_id(client, email)) is not None]


def _user_id(client: WebClient, email: str) -> str | None:
    try:
        return str(client.users_lookupByEmail(email=email)["user"]["id"])
    except SlackApiError as err:
        if err.response.get("error") != "users_not_found":
            raise
        log.warning("no Slack user has the email of approver %s", email)
        return None
