"""The business steps behind /v1/requests: validate, record, start and message workflows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.from_thread
import sqlalchemy as sa
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.auth import User
from api.errors import Conflict, Invalid, NotAllowed, NotFound, Unavailable
from api.pagination import decode, encode
from api.schemas import EventOut, RequestCreate, RequestDetail, RequestOut
from api.services import policies
from api.services import settings as settings_service
from api.temporal_gateway import TemporalGateway
from elevate import slack, temporal
from elevate.contracts import (
    AccessRequestInput,
    Actor,
    Assignment,
    CancelInput,
    DecisionInput,
    Principal,
    RevokeInput,
    Status,
)
from elevate.identity import InvalidName, canonical
from elevate.models import AccessRequest, Approval, AuditEvent, IdempotencyKey, utcnow
from elevate.policy import matches
from elevate.policy_schema import SettingsBody, iso
from elevate.providers.base import Provider
from elevate.resources import to_resource as to_resource
from elevate.resources import to_resources
from elevate.settings import Settings
from workflows.access_request import AccessRequestWorkflow

_START_SKEW = timedelta(minutes=1)  # a start_at this close to now counts as "now"


def _approvers(row: AccessRequest) -> list[Principal]:
    """The request's approvers, and those of an extension waiting for approval."""
    extension = (row.pending_extension or {}).get("approvers", [])
    return [Principal(p["type"], p["name"]) for p in [*row.approvers, *extension]]


def _deciding_extension(row: AccessRequest) -> bool:
    return row.status == Status.ACTIVE.value and row.pending_extension is not None


def is_approver_of(user: User, row: AccessRequest) -> bool:
    return matches(user.username, user.groups, _approvers(row))


def _check_visible(user: User, row: AccessRequest) -> None:
    if not (
        user.is_admin
        or user.is_auditor
        or user.username == row.requester
        or is_approver_of(user, row)
    ):
        raise NotAllowed("only the requester, its approvers, admins and auditors see this request")


def _load(session: Session, request_id: str) -> AccessRequest:
    row = session.get(AccessRequest, request_id)
    if row is None:
        raise NotFound(f"no request with id {request_id}")
    return row


def load_visible(session: Session, user: User, request_id: str) -> AccessRequest:
    row = _load(session, request_id)
    _check_visible(user, row)
    return row


def get_request(session: Session, user: User, request_id: str) -> RequestDetail:
    row = _load(session, request_id)
    _check_visible(user, row)
    events = session.exec(
        select(AuditEvent).where(AuditEvent.request_id == row.id).order_by(col(AuditEvent.seq))
    ).all()
    return RequestDetail(
        **to_resource(session, row).model_dump(),
        events=[
            EventOut(seq=e.seq, at=e.at, actor=e.actor, action=e.action, details=e.details)
            for e in events
        ],
    )


def _validate(body: RequestCreate, eff: SettingsBody, decision: policies.Decision) -> None:
    policies.check_duration(body.duration, eff, decision)
    if body.start_at is not None and body.start_at < utcnow() - _START_SKEW:
        raise Invalid("start_at is in the past", "start_in_past", ["start_at"])
    if decision.ticket_required and not body.ticket:
        raise Invalid("a ticket is required for this request", "ticket_required", ["ticket"])


def _check_start(body: RequestCreate, settings: Settings) -> None:
    if body.start_at is None:
        return
    now = utcnow()
    if body.start_at < now - _START_SKEW:
        raise Invalid("start_at is in the past", "start_in_past", ["start_at"])
    if body.start_at > now + settings.max_schedule_ahead:
        raise Invalid(
            f"start_at may be at most {iso(settings.max_schedule_ahead)} ahead",
            "start_too_late",
            ["start_at"],
        )


_USER_KIND = {"identity_center": "IAM Identity Center user", "iam": "IAM user"}


def _resolve(catalog: Provider, body: RequestCreate, username: str) -> tuple[Any, Any, str, str]:
    try:
        account = catalog.find_account(body.account_id)
        if account is None:
            raise Invalid(
                f"account {body.account_id} is not in the organization",
                "unknown_account",
                ["account_id"],
            )
        pset = catalog.find_permission_set(body.permission_set)
        if pset is None:
            raise Invalid(
                f"no permission set named {body.permission_set}",
                "unknown_permission_set",
                ["permission_set"],
            )
        principal_id = catalog.resolve_principal(username)
        if principal_id is None:
            raise Invalid(f"{username} has no {_USER_KIND[catalog.kind]}", "unknown_principal")
        instance_arn = catalog.scope()
    except (ClientError, BotoCoreError, LookupError) as err:
        raise Unavailable(f"AWS could not be asked: {err}", "aws_unavailable") from err
    return account, pset, principal_id, instance_arn


def _idempotent_hit(session: Session, user: User, key: str | None) -> AccessRequest | None:
    if key is None:
        return None
    hit = session.get(IdempotencyKey, (user.username, key))
    return session.get(AccessRequest, hit.request_id) if hit else None


@dataclass
class Prepared:
    """A request checked and written, and the workflow to start for it (None: the idempotency
    key named one made before)."""

    resource: RequestOut
    start: tuple[AccessRequestInput, dict[str, str | None]] | None = None


async def start_prepared(
    prepared: Prepared, gateway: TemporalGateway, forget: Callable[[str], Awaitable[None]]
) -> RequestOut:
    """Start the workflow of a prepared request; `forget` removes its row when Temporal cannot
    be reached (see forget_request)."""
    if prepared.start is not None:
        try:
            await gateway.start(*prepared.start)
        except Unavailable:
            await forget(prepared.resource.id)
            raise
    return prepared.resource


def prepare_request(
    session: Session,
    user: User,
    body: RequestCreate,
    idempotency_key: str | None,
    settings: Settings,
    catalog: Provider,
) -> Prepared:
    """Check a new request and write its row; the caller starts the workflow (and calls
    forget_request if it cannot)."""
    existing = _idempotent_hit(session, user, idempotency_key)
    if existing is not None:
        return Prepared(to_resource(session, existing))
    _check_start(body, settings)
    account, pset, principal_id, instance_arn = _resolve(catalog, body, user.username)
    eff = settings_service.effective(session, settings)
    decision = policies.decide(session, user, policies.target_of(account, pset), eff, settings)
    _validate(body, eff, decision)
    approvers = decision.approvers
    rid = str(uuid.uuid4())
    row = AccessRequest(
        id=rid,
        requester=user.username,
        principal_id=principal_id,
        account_id=account.id,
        account_name=account.name,
        permission_set=pset.name,
        permission_set_arn=pset.arn,
        instance_arn=instance_arn,
        duration_seconds=int(body.duration.total_seconds()),
        start_at=body.start_at,
        end_at=body.start_at + body.duration if body.start_at else None,
        justification=body.justification,
        ticket=body.ticket,
        status=(Status.PENDING_APPROVAL if decision.approvals_required else Status.SCHEDULED).value,
        approvers=[{"type": p.type, "name": p.name} for p in approvers],
        approvals_required=decision.approvals_required,
        workflow_id=temporal.workflow_id(rid),
    )
    session.add(row)
    if idempotency_key is not None:
        session.add(IdempotencyKey(username=user.username, key=idempotency_key, request_id=rid))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # the same key raced us: answer with the first request
        existing = _idempotent_hit(session, user, idempotency_key)
        if existing is None:
            raise
        return Prepared(to_resource(session, existing))
    inp = AccessRequestInput(
        request_id=rid,
        requester=user.username,
        assignment=Assignment(instance_arn, account.id, pset.arn, principal_id),
        permission_set_name=pset.name,
        duration=body.duration,
        start_at=body.start_at,
        approvers=approvers,
        approvals_required=decision.approvals_required,
        approval_timeout=eff.approval_timeout,
        ending_soon_lead=settings.notify_ending_soon_lead,
        lease_grace=settings.lease_grace,
        slack_app=slack.configured(settings),
        channels=settings.notification_channels(),
    )
    memo: dict[str, str | None] = {"justification": body.justification, "ticket": body.ticket}
    return Prepared(to_resource(session, row), (inp, memo))


def forget_request(session: Session, request_id: str) -> None:
    """No workflow means no request: remove the row so nothing shows a request that never ran."""
    for key in session.exec(select(IdempotencyKey).where(IdempotencyKey.request_id == request_id)):
        session.delete(key)
    row = session.get(AccessRequest, request_id)
    if row is not None:
        session.delete(row)
    session.commit()


def list_requests(
    session: Session,
    user: User,
    *,
    status: str | None,
    requester: str | None,
    account_id: str | None,
    awaiting: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    stmt = select(AccessRequest)
    if awaiting is not None:
        if awaiting != "me":
            raise Invalid("awaiting only accepts 'me'", "invalid_filter", ["awaiting"])
        stmt = _awaiting_candidates(stmt, user)
    elif not (user.is_admin or user.is_auditor):
        stmt = stmt.where(AccessRequest.requester == user.username)
    if status is not None:
        if status not in {s.value for s in Status}:
            raise Invalid(f"unknown status {status}", "invalid_filter", ["status"])
        stmt = stmt.where(AccessRequest.status == status)
    if requester is not None:
        stmt = stmt.where(AccessRequest.requester == _canonical_filter(requester))
    if account_id is not None:
        stmt = stmt.where(AccessRequest.account_id == account_id)
    if cursor:
        at, rid = decode(cursor, (datetime, str))
        stmt = stmt.where(
            (col(AccessRequest.created_at) < at)
            | ((col(AccessRequest.created_at) == at) & (col(AccessRequest.id) < rid))
        )
    stmt = stmt.order_by(col(AccessRequest.created_at).desc(), col(AccessRequest.id).desc())
    if awaiting is None:
        rows = list(session.exec(stmt.limit(limit + 1)).all())
    else:
        rows = _take_awaiting(session, user, stmt, limit + 1)
    page = rows[:limit]
    next_cursor = encode([page[-1].created_at, page[-1].id]) if len(rows) > limit else None
    return {"items": to_resources(session, page), "next_cursor": next_cursor}


def _canonical_filter(requester: str) -> str:
    try:
        return canonical(requester)
    except InvalidName as err:
        raise Invalid(f"requester: {err}", "invalid_filter", ["requester"]) from err


def _like_name(name: str) -> str:
    """A LIKE pattern for `"name": "<name>"` in the stored approvers JSON."""
    quoted = json.dumps(name)[1:-1]
    escaped = quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%"name": "{escaped}"%'


def _awaiting_candidates(stmt: Any, user: User) -> Any:
    """Pending requests of others whose approvers name the caller or one of their groups.

    Approvers are JSON, so SQL narrows the scan to rows whose text names the caller (a superset:
    `is_approver_of` checks the principal's type), instead of reading every pending request.
    """
    text = sa.cast(col(AccessRequest.approvers), sa.Text)
    names = [user.username, *user.groups]
    named = sa.or_(*(text.like(_like_name(n), escape="\\") for n in names))
    return stmt.where(
        AccessRequest.status == Status.PENDING_APPROVAL.value,
        AccessRequest.requester != user.username,
        named,
    )


def _take_awaiting(session: Session, user: User, stmt: Any, n: int) -> list[AccessRequest]:
    """The first n candidates the caller may still decide, in batches of one query each."""
    out: list[AccessRequest] = []
    offset, size = 0, max(n, 100)
    while len(out) < n:
        batch = session.exec(stmt.offset(offset).limit(size)).all()
        decided = set(
            session.exec(
                select(Approval.request_id).where(
                    col(Approval.request_id).in_([r.id for r in batch]),
                    Approval.approver == user.username,
                )
            ).all()
        )
        out.extend(r for r in batch if is_approver_of(user, r) and r.id not in decided)
        if len(batch) < size:
            break
        offset += len(batch)
    return out[:n]


_ACTIONS = {
    "approve": (AccessRequestWorkflow.approve, DecisionInput),
    "reject": (AccessRequestWorkflow.reject, DecisionInput),
    "cancel": (AccessRequestWorkflow.cancel, CancelInput),
    "revoke": (AccessRequestWorkflow.revoke, RevokeInput),
}
_PAST = {"approve": "approved", "reject": "rejected", "cancel": "cancelled", "revoke": "revoked"}
_ALLOWED_FROM = {
    "approve": {Status.PENDING_APPROVAL},
    "reject": {Status.PENDING_APPROVAL},
    "cancel": {Status.PENDING_APPROVAL, Status.SCHEDULED, Status.GRANTING},
    "revoke": {Status.SCHEDULED, Status.GRANTING, Status.ACTIVE},
}


def _check_not_own(user: User, row: AccessRequest, catalog: Provider) -> None:
    """Self-decision is refused by name and by the identity-store user the name resolves to, so
    a second username that maps to the requester's own principal is the requester too."""
    if user.username == row.requester:
        raise NotAllowed("nobody may decide their own request")
    try:
        principal = catalog.resolve_principal(user.username)
    except (ClientError, BotoCoreError, LookupError) as err:
        raise Unavailable(f"AWS could not be asked: {err}", "aws_unavailable") from err
    if principal is not None and principal == row.principal_id:
        raise NotAllowed("nobody may decide their own request: you are its principal")


def _check_action(user: User, row: AccessRequest, action: str, catalog: Provider) -> None:
    """The API's verdict from the projection; the workflow's validator has the last word."""
    if action in ("approve", "reject"):
        _check_not_own(user, row, catalog)
        if not is_approver_of(user, row):
            raise NotAllowed("you are not an approver of this request")
        if _deciding_extension(row):
            return  # deciding the pending extension of an active request
    elif action == "cancel" and not (user.username == row.requester or user.is_admin):
        raise NotAllowed("only the requester or an admin may cancel a request")
    elif action == "revoke" and not (
        user.username == row.requester or user.is_admin or is_approver_of(user, row)
    ):
        raise NotAllowed("only the requester, an approver of the request or an admin may revoke it")
    if Status(row.status) not in _ALLOWED_FROM[action]:
        raise Conflict(f"the request is {row.status}; it cannot be {_PAST[action]} now")


def allowed_actions(user: User, row: AccessRequest, catalog: Provider) -> list[str]:
    """What the caller may do to the request now, by the rules `act` applies (for the web app)."""
    allowed = []
    for action in _ACTIONS:
        try:
            _check_action(user, row, action, catalog)
        except (NotAllowed, Conflict, Unavailable):
            continue
        allowed.append(action)
    return allowed


def prepare_act(
    session: Session,
    user: User,
    request_id: str,
    action: str,
    comment: str | None,
    settings: Settings,
    catalog: Provider,
) -> tuple[Any, Any]:
    """The API's checks of an action; the update to send and its input. Holds no connection
    after it returns: the workflow may take up to 15 s to decide."""
    row = _load(session, request_id)
    _check_visible(user, row)
    _check_action(user, row, action, catalog)
    needs_comment = action in ("approve", "reject", "revoke")
    if (
        needs_comment
        and not comment
        and settings_service.effective(session, settings).comment_required
    ):
        raise Invalid(f"a comment is required to {action}", "comment_required", ["comment"])
    update, input_type = _ACTIONS[action]
    actor = Actor(user.username, list(user.groups), user.is_admin)
    session.rollback()  # no connection is held while the workflow decides
    return update, input_type(actor, comment)


def acted(session: Session, request_id: str) -> RequestOut:
    """The request as stored after an action."""
    session.expire_all()
    return to_resource(session, _load(session, request_id))


def act(
    session: Session,
    user: User,
    request_id: str,
    action: str,
    comment: str | None,
    gateway: TemporalGateway,
    settings: Settings,
    catalog: Provider,
) -> RequestOut:
    """An action from a worker thread (the web app, Slack); the REST route awaits instead."""
    update, arg = prepare_act(session, user, request_id, action, comment, settings, catalog)
    anyio.from_thread.run(gateway.update, request_id, update, arg)
    return acted(session, request_id)
