"""POST /v1/requests/{id}/extend: more time for an active request, approved like a new one."""

from __future__ import annotations

import uuid

import anyio.from_thread
from sqlmodel import Session

from api.auth import User
from api.errors import Conflict, NotAllowed, Unavailable
from api.schemas import ExtendBody, RequestOut
from api.services import policies
from api.services import settings as settings_service
from api.services.requests import load_visible, to_resource
from api.temporal_gateway import TemporalGateway
from elevate.contracts import Actor, ExtendInput, Status
from elevate.models import AccessRequest
from elevate.providers.base import Provider
from elevate.settings import Settings
from workflows.access_request import AccessRequestWorkflow


def check_extend(user: User, row: AccessRequest) -> None:
    if user.username != row.requester:
        raise NotAllowed("only the requester may extend a request")
    if row.status != Status.ACTIVE.value:
        raise Conflict(f"the request is {row.status}; only active requests can be extended")
    if row.pending_extension is not None:
        raise Conflict("an extension is already waiting for approval")


def extend(
    session: Session,
    user: User,
    request_id: str,
    body: ExtendBody,
    settings: Settings,
    catalog: Provider,
    gateway: TemporalGateway,
) -> RequestOut:
    row = load_visible(session, user, request_id)
    check_extend(user, row)
    account = catalog.find_account(row.account_id)
    pset = catalog.find_permission_set(row.permission_set_arn)
    if account is None or pset is None:
        raise Unavailable("the account or permission set is no longer in the organization")
    eff = settings_service.effective(session, settings)
    decision = policies.decide(session, user, policies.target_of(account, pset), eff, settings)
    policies.check_duration(body.duration, eff, decision)
    inp = ExtendInput(
        Actor(user.username, list(user.groups), user.is_admin),
        str(uuid.uuid4()),
        body.duration,
        body.justification,
        decision.approvers,
        decision.approvals_required,
        eff.approval_timeout,
    )
    session.rollback()  # no connection is held while the workflow decides (up to 15 s)
    anyio.from_thread.run(gateway.update, request_id, AccessRequestWorkflow.extend, inp)
    session.expire_all()
    return to_resource(session, load_visible(session, user, request_id))
