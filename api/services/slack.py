"""Slack interactions: trust only signed deliveries, then decide through the REST service.

`parse` runs while Slack waits (it must answer within 3 s): signature, retries, the payload.
`handle` runs after the answer: who clicked, the decision by `requests.act` (so self-approval,
quorum and the approver rules are the REST API's), then the messages or a word to the clicker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from sqlmodel import Session, select

from api.auth import User
from api.errors import ApiError, BadRequest, NotFound, Unauthorized
from api.services import requests
from api.services import settings as settings_service
from api.temporal_gateway import TemporalGateway
from elevate import slack
from elevate.identity import InvalidName, canonical
from elevate.models import AccessRequest, Approval
from elevate.providers.base import Provider
from elevate.settings import Settings

log = logging.getLogger("elevate.slack")
COMMENT_VIEW = "elevate_comment"  # the modal that asks for a decision's comment
_ACTIONS = {slack.APPROVE: "approve", slack.REJECT: "reject"}


@dataclass(frozen=True)
class Click:
    """A decision someone asked for in Slack."""

    action: str  # approve | reject
    request_id: str
    slack_user: str
    channel: str | None  # where a refusal is told to the clicker alone
    trigger_id: str | None = None
    comment: str | None = None
    from_modal: bool = False


@dataclass(frozen=True)
class SlackApp:
    settings: Settings
    engine: sa.Engine
    gateway: TemporalGateway
    client: WebClient
    directory: slack.Directory
    catalog: Provider


class Refused(Exception):
    """Told to the clicker only; the request and the messages stay as they are."""


def slack_app(state: Any) -> SlackApp:
    """What deciding needs, from the app's long-lived clients."""
    settings: Settings = state.settings
    client = slack.web_client(settings)
    if client is None:
        raise NotFound("Slack approvals are not configured", "slack_not_configured")
    provider: Provider = state.catalog
    directory = slack.Directory(provider, settings.aws_region)
    return SlackApp(settings, state.engine, state.temporal, client, directory, state.catalog)


# --- while Slack waits -------------------------------------------------------------------


def parse(settings: Settings, headers: Mapping[str, str], body: bytes) -> Click | None:
    """The click in a genuine first delivery; None for a retry or something not for us."""
    secret = settings.slack_signing_secret
    if not (secret and slack.configured(settings)):
        raise NotFound("Slack approvals are not configured", "slack_not_configured")
    if not _signed(secret, headers, body):
        raise Unauthorized(
            "the Slack signature is missing, wrong or older than 5 minutes", "invalid_signature"
        )
    if headers.get("x-slack-retry-num") is not None:
        return None  # Slack repeats a delivery it thinks we missed: the first one decides
    return _click(_payload(body))


def _signed(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    try:
        return SignatureVerifier(secret).is_valid(
            body, headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature")
        )
    except ValueError:  # a timestamp that is not a number
        return False


def _payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, ValueError) as err:
        raise BadRequest("the body has no Slack interaction payload") from err
    if not isinstance(payload, dict):
        raise BadRequest("the Slack payload is not an object")
    return payload


def _click(payload: dict[str, Any]) -> Click | None:
    user = str((payload.get("user") or {}).get("id", ""))
    if payload.get("type") == "block_actions":
        channel = (payload.get("channel") or {}).get("id")
        for action in payload.get("actions") or []:
            if (name := _ACTIONS.get(action.get("action_id"))) is not None:
                rid = str(action.get("value", ""))
                return Click(name, rid, user, channel, payload.get("trigger_id"))
    view = payload.get("view") or {}
    if payload.get("type") == "view_submission" and view.get("callback_id") == COMMENT_VIEW:
        return _submitted(view, user)
    return None


def _submitted(view: dict[str, Any], user: str) -> Click:
    """The comment modal's submission; its metadata is what `_ask_comment` put there."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        action, rid, channel = meta["action"], meta["request_id"], meta.get("channel")
    except (ValueError, KeyError, TypeError) as err:
        raise BadRequest("the dialog's metadata is not elevate's") from err
    if action not in _ACTIONS.values():
        raise BadRequest("the dialog's metadata is not elevate's")
    values = view.get("state", {}).get("values", {})
    comment = values.get("comment", {}).get("comment", {}).get("value")
    return Click(action, rid, user, channel, comment=comment, from_modal=True)


# --- after the answer --------------------------------------------------------------------


def handle(app: SlackApp, click: Click) -> None:
    """Decide, then update the messages for everyone, or tell the clicker why not."""
    try:
        with Session(app.engine, expire_on_commit=False) as session:
            _decide(app, session, click)
    except Refused as refusal:
        _tell(app, click, str(refusal))
    except Exception:
        log.exception("the Slack %s of request %s failed", click.action, click.request_id)
        _tell(app, click, "elevate could not take your decision; try again, or use the web app")


def _decide(app: SlackApp, session: Session, click: Click) -> None:
    user = _clicker(app, click.slack_user)
    if _wants_comment(app, session, user, click):
        _ask_comment(app, click)
        return
    if click.action == "approve" and _approved_by(session, click.request_id, user.username):
        raise Refused("you have already approved this request; it counts once")
    try:
        requests.act(
            session,
            user,
            click.request_id,
            click.action,
            click.comment,
            app.gateway,
            app.settings,
            app.catalog,
        )
    except ApiError as err:
        raise Refused(f"elevate refused: {err.detail}") from err
    link = slack.request_link(app.settings, click.request_id)
    try:
        slack.refresh(session, app.client, click.request_id, link)
    except Exception:  # decided all the same; the worker's next update shows it
        log.warning("slack messages of %s not updated after the click", click.request_id)


def _clicker(app: SlackApp, slack_user: str) -> User:
    """The Slack user as elevate knows them: email, canonical, groups from the identity store."""
    try:
        profile = app.client.users_info(user=slack_user)["user"].get("profile", {})
    except SlackApiError as err:
        raise Refused("Slack did not say who you are, so nothing was decided") from err
    email = profile.get("email")
    if not email:
        raise Refused("your Slack profile shows no email, so elevate cannot tell who you are")
    try:
        username = canonical(email)
    except InvalidName as err:
        raise Refused(f"your Slack email cannot name one person here: {err}") from err
    groups = tuple(app.directory.groups_of(username))
    s = app.settings
    return User(username, groups, s.admin_group in groups, s.auditor_group in groups)


def _approved_by(session: Session, request_id: str, username: str) -> bool:
    stmt = select(Approval).where(Approval.request_id == request_id, Approval.approver == username)
    return session.exec(stmt).first() is not None


def _wants_comment(app: SlackApp, session: Session, user: User, click: Click) -> bool:
    """A comment is required and this person may decide: ask for it before deciding."""
    if click.from_modal or click.trigger_id is None:
        return False
    if not settings_service.effective(session, app.settings).comment_required:
        return False
    row = session.get(AccessRequest, click.request_id)
    return row is not None and user.username != row.requester and requests.is_approver_of(user, row)


def _ask_comment(app: SlackApp, click: Click) -> None:
    verb = click.action.title()
    meta = {"action": click.action, "request_id": click.request_id, "channel": click.channel}
    field = {"type": "plain_text_input", "action_id": "comment", "multiline": True}
    app.client.views_open(
        trigger_id=click.trigger_id or "",
        view={
            "type": "modal",
            "callback_id": COMMENT_VIEW,
            "private_metadata": json.dumps(meta),
            "title": {"type": "plain_text", "text": f"{verb} request"},
            "submit": {"type": "plain_text", "text": verb},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": "comment",
                    "label": {"type": "plain_text", "text": "Comment"},
                    "element": field,
                }
            ],
        },
    )


def _tell(app: SlackApp, click: Click, text: str) -> None:
    if click.channel is None:
        log.info("slack refusal for %s not shown (no channel): %s", click.slack_user, text)
        return
    try:
        app.client.chat_postEphemeral(channel=click.channel, user=click.slack_user, text=text)
    except (SlackApiError, OSError) as err:  # OSError: Slack unreachable
        log.warning("slack ephemeral to %s failed: %s", click.slack_user, err)
