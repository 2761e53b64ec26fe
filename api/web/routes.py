"""The web app's pages for requests and approvals; each calls the service its REST route calls."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from api.auth import User
from api.deps import CatalogDep, SessionDep, SettingsDep, TemporalDep
from api.errors import ApiError, NotFound
from api.schemas import Comment
from api.services import extensions, policies
from api.services import requests as service
from api.services import settings as settings_service
from api.web import forms
from api.web.render import page, refusal
from api.web.session import CsrfChecked, WebUser

router = APIRouter(include_in_schema=False)
ACTIONS = ("approve", "reject", "cancel", "revoke", "extend")


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


FormData = Annotated[dict[str, str], Depends(_form)]


@router.get("/")
def home() -> Response:
    return RedirectResponse("/requests", status_code=303)


@router.get("/requests")
def my_requests(
    request: Request,
    user: WebUser,
    session: SessionDep,
    cursor: str | None = None,
    part: str | None = None,
) -> Response:
    return _listing(request, session, user, "requests.html", part, cursor, mine=True)


@router.get("/approvals")
def approvals(
    request: Request,
    user: WebUser,
    session: SessionDep,
    cursor: str | None = None,
    part: str | None = None,
) -> Response:
    return _listing(request, session, user, "approvals.html", part, cursor, mine=False)


def _listing(
    request: Request,
    session: Session,
    user: User,
    name: str,
    part: str | None,
    cursor: str | None,
    *,
    mine: bool,
) -> Response:
    try:
        found = service.list_requests(
            session,
            user,
            status=None,
            requester=user.username if mine else None,
            account_id=None,
            awaiting=None if mine else "me",
            limit=50,
            cursor=cursor,
        )
    except ApiError as err:
        return refusal(request, err.status, err.detail)
    template = "request_rows.html" if part == "rows" else name
    return page(
        request,
        template,
        items=found["items"],
        next_cursor=found["next_cursor"],
        show_requester=not mine,
    )


@router.get("/requests/new")
def new_request(
    request: Request,
    user: WebUser,
    session: SessionDep,
    settings: SettingsDep,
    catalog: CatalogDep,
) -> Response:
    return _request_form(request, session, user, settings, catalog, {})


def _request_form(
    request: Request,
    session: Session,
    user: User,
    settings: Any,
    catalog: Any,
    values: dict[str, str],
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    eff = settings_service.effective(session, settings)
    try:
        options = policies.my_eligibility(session, user, catalog, eff)
    except ApiError as err:
        return refusal(request, err.status, err.detail)
    longest = max((o["max_duration"] for o in options), default=eff.max_duration)
    return page(
        request,
        "new.html",
        status_code,
        options=options,
        values=values,
        alert=alert,
        accounts={o["account_id"]: o["account_name"] for o in options},
        permission_sets=sorted({o["permission_set"] for o in options}),
        durations=forms.durations(eff.min_duration, longest),
        longest=longest,
        idem=str(uuid.uuid4()),
    )


@router.post("/requests", dependencies=[CsrfChecked])
def create_request(
    request: Request,
    user: WebUser,
    session: SessionDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    gateway: TemporalDep,
    form: FormData,
) -> Response:
    try:
        body = forms.request_body(form)
        key = form.get("idempotency_key") or None
        prepared = service.prepare_request(session, user, body, key, settings, catalog)

        async def forget(request_id: str) -> None:
            await anyio.to_thread.run_sync(service.forget_request, session, request_id)

        created = anyio.from_thread.run(service.start_prepared, prepared, gateway, forget)
    except ApiError as err:
        return _request_form(
            request, session, user, settings, catalog, form, err.detail, err.status
        )
    return RedirectResponse(f"/requests/{created.id}", status_code=303)


@router.get("/requests/{request_id}")
def request_page(
    request: Request, request_id: str, user: WebUser, session: SessionDep, part: str | None = None
) -> Response:
    return _request_view(request, session, user, request_id, part)


def _request_view(
    request: Request,
    session: Session,
    user: User,
    request_id: str,
    part: str | None = None,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        detail = service.get_request(session, user, request_id)
    except ApiError as err:  # not visible: the refusal and none of the request's data
        return refusal(request, err.status, err.detail)
    row = service.load_visible(session, user, request_id)
    actions = service.allowed_actions(user, row, request.app.state.catalog)
    try:
        extensions.check_extend(user, row)
        actions.append("extend")
    except ApiError:
        pass
    template = {"live": "request_live.html"}.get(part or "", "request.html")
    return page(
        request,
        template,
        status_code,
        r=detail,
        actions=actions,
        alert=alert,
        extend_durations=forms.CHOICES[:6],
    )


@router.post("/requests/{request_id}/{action}", dependencies=[CsrfChecked])
def request_action(
    request: Request,
    request_id: str,
    action: str,
    user: WebUser,
    session: SessionDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    gateway: TemporalDep,
    form: FormData,
) -> Response:
    try:
        if action not in ACTIONS:
            raise NotFound(f"there is no action {action}")
        if action == "extend":
            body = forms.extend_body(form)
            extensions.extend(session, user, request_id, body, settings, catalog, gateway)
        else:
            comment: Comment = forms.parse(Comment, {"comment": form.get("comment") or None})
            service.act(
                session, user, request_id, action, comment.comment, gateway, settings, catalog
            )
    except ApiError as err:
        session.rollback()
        return _request_view(
            request, session, user, request_id, alert=err.detail, status_code=err.status
        )
    return RedirectResponse(f"/requests/{request_id}", status_code=303)
