"""Slack approvals, shared by the worker (posts) and the API (clicks): the Web API client, who
is in which identity-store group, the approval message, and the messages posted per request.

API.md "Slack approvals". Both sides render the message from the projection, so whichever
writes last shows the newest state.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlmodel import Session, col, select

from elevate.contracts import Status
from elevate.identity import fold
from elevate.models import AccessRequest, Approval, AuditEvent, SlackMessage
from elevate.providers.aws import client as aws_client
from elevate.providers.base import Provider
from elevate.providers.catalog import Catalog
from elevate.settings import Settings

log = logging.getLogger("elevate.slack")
APPROVE, REJECT = "elevate_approve", "elevate_reject"
TIMEOUT_SECONDS = 10


def configured(settings: Settings) -> bool:
    """Slack approvals need both: the token to post, the secret to trust the clicks."""
    return bool(settings.slack_bot_token and settings.slack_signing_secret)


def web_client(settings: Settings) -> WebClient | None:
    """The bot's Web API client; None unless Slack approvals are configured."""
    if not configured(settings):
        return None
    base = settings.slack_api_url.rstrip("/") + "/"  # slack_sdk joins method names onto it
    web = WebClient(token=settings.slack_bot_token, base_url=base, timeout=TIMEOUT_SECONDS)
    # One wait as Slack's Retry-After says; a longer limit is left to the caller's own retry.
    web.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    return web


def request_link(settings: Settings, request_id: str) -> str:
    return f"{settings.public_url.rstrip('/')}/requests/{request_id}"


class Directory:
    """Group members and a user's groups as the identity store says (Identity Center only)."""

    def __init__(self, provider: Provider, region: str) -> None:
        self._catalog = provider if isinstance(provider, Catalog) else None
        self._region = region

    def _ids(self) -> tuple[Any, str] | None:
        if self._catalog is None:
            return None
        return aws_client("identitystore", self._region), self._catalog.instance().identity_store_id

    def members(self, group: str) -> list[str]:
        """Usernames of the group's members; empty when there is no such group."""
        if (found := self._ids()) is None:
            return []
        ids, store = found
        try:
            group_id = ids.get_group_id(
                IdentityStoreId=store,
                AlternateIdentifier={
                    "UniqueAttribute": {"AttributePath": "DisplayName", "AttributeValue": group}
                },
            )["GroupId"]
        except ids.exceptions.ResourceNotFoundException:
            return []
        pages = ids.get_paginator("list_group_memberships").paginate(
            IdentityStoreId=store, GroupId=group_id
        )
        user_ids = [m["MemberId"]["UserId"] for p in pages for m in p["GroupMemberships"]]
        return [
            fold(ids.describe_user(IdentityStoreId=store, UserId=u)["UserName"]) for u in user_ids
        ]

    def groups_of(self, username: str) -> list[str]:
        """The display names of the groups the user is in; empty for an unknown user."""
        if (found := self._ids()) is None or self._catalog is None:
            return []
        ids, store = found
        user_id = self._catalog.user_id(username)
        if user_id is None:
            return []
        pages = ids.get_paginator("list_group_memberships_for_member").paginate(
            IdentityStoreId=store, MemberId={"UserId": user_id}
        )
        group_ids = [m["GroupId"] for p in pages for m in p["GroupMemberships"]]
        return [
            ids.describe_group(IdentityStoreId=store, GroupId=g)["DisplayName"] for g in group_ids
        ]

    def approvers(self, row: AccessRequest) -> list[str]:
        """Everyone who may decide the request, groups expanded; never its requester."""
        names: set[str] = set()
        for p in row.approvers:
            names.update([fold(p["name"])] if p["type"] == "user" else self.members(p["name"]))
        names.discard(row.requester)
        return sorted(names)


# --- the message ---------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three control characters: user text must not form links or @-mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def duration_words(seconds: int) -> str:
    hours, minutes = divmod(seconds // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def render(session: Session, row: AccessRequest, link: str) -> dict[str, Any]:
    """chat.postMessage / chat.update arguments: who asks for what, the decisions so far, and
    the buttons while the request still waits for them."""
    approvals = session.exec(
        select(Approval).where(Approval.request_id == row.id).order_by(col(Approval.at))
    ).all()
    duration = duration_words(row.duration_seconds)
    asks = (
        f"*{escape(row.requester)}* asks for *{escape(row.permission_set)}* on "
        f"*{escape(row.account_name)}* ({row.account_id}) for *{duration}*"
    )
    fields = {
        "Justification": row.justification,
        "Ticket": row.ticket or "none",
        "Approvals": f"{len(approvals)} of {row.approvals_required}",
        "Status": row.status,
    }
    blocks: list[dict[str, Any]] = [
        _section(f"*<{link}|Access request>*: {asks}"),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n{escape(value)}"}
                for name, value in fields.items()
            ],
        },
    ]
    if decisions := _decisions(session, row, approvals):
        blocks.append(_section("\n".join(decisions)))
    if row.status == Status.PENDING_APPROVAL.value:
        blocks.append(_buttons(row.id))
    text = f"{row.requester} asks for {row.permission_set} on {row.account_name}: {row.status}"
    return {"text": text, "blocks": blocks}


def _decisions(session: Session, row: AccessRequest, approvals: Any) -> list[str]:
    lines = [f"Approved by {escape(a.approver)}" + _said(a.comment) for a in approvals]
    if row.status == Status.REJECTED.value:
        event = session.exec(
            select(AuditEvent).where(
                AuditEvent.request_id == row.id, AuditEvent.action == "rejected"
            )
        ).first()
        comment = event.details.get("comment") if event else None
        lines.append(f"Rejected by {escape(row.decided_by or 'an approver')}" + _said(comment))
    if row.status == Status.REVOKED.value:
        lines.append(f"Revoked by {escape(row.revoked_by or 'elevate')}")
    return lines


def _said(comment: object) -> str:
    return f": “{escape(str(comment))}”" if comment else ""


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _buttons(request_id: str) -> dict[str, Any]:
    def button(label: str, action_id: str, style: str) -> dict[str, Any]:
        text = {"type": "plain_text", "text": label}
        return {
            "type": "button",
            "text": text,
            "action_id": action_id,
            "value": request_id,
            "style": style,
        }

    return {
        "type": "actions",
        "block_id": "elevate_decision",
        "elements": [button("Approve", APPROVE, "primary"), button("Reject", REJECT, "danger")],
    }


# --- the messages posted for a request -----------------------------------------------------


def posted(session: Session, request_id: str) -> list[SlackMessage]:
    stmt = select(SlackMessage).where(SlackMessage.request_id == request_id)
    return list(session.exec(stmt).all())


def record(session: Session, row: AccessRequest, target: str, channel: str, ts: str) -> None:
    message = SlackMessage(
        request_id=row.id, target=target, channel=channel, ts=ts, shown_at=row.updated_at
    )
    session.add(message)
    session.commit()


def refresh(session: Session, slack: WebClient, request_id: str, link: str) -> int:
    """Update every message posted for the request to its current state; how many.

    The API (after a click) and the worker (after a status change) both update: each message
    is claimed for the state rendered first, so a slower writer with an older state skips it.
    """
    row = session.get(AccessRequest, request_id)
    if row is None:
        return 0
    content = render(session, row, link)
    updated = 0
    version = row.updated_at
    for m in posted(session, request_id):
        was = m.shown_at
        if was is not None and version <= was or not _claim(session, m, was, version):
            continue  # it shows this state or a newer one already
        try:
            slack.chat_update(channel=m.channel, ts=m.ts, **content)
        except SlackApiError as err:
            if err.response.get("error") != "message_not_found":
                _claim(session, m, version, was)  # not shown after all: a retry tries again
                raise
            log.info("slack message %s in %s is gone; not updated", m.ts, m.channel)
        except Exception:
            _claim(session, m, version, was)
            raise
        updated += 1
    return updated


def _claim(session: Session, m: SlackMessage, was: datetime | None, now: datetime | None) -> bool:
    """Move the message's shown state from `was` to `now`; False when another writer did."""
    table = SlackMessage.__table__  # type: ignore[attr-defined]
    shown = table.c.shown_at
    newer = shown.is_(None) if was is None else shown == was
    stmt = (
        sa.update(table)
        .where(table.c.request_id == m.request_id, table.c.target == m.target, newer)
        .values(shown_at=now)
    )
    claimed = bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]
    session.commit()
    return claimed
