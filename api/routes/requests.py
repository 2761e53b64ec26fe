"""/v1/requests: create, read, list, and the actions on one request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import (
    CatalogDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    TemporalDep,
    in_session,
)
from api.errors import responses
from api.pagination import Cursor, Limit
from api.schemas import Comment, ExtendBody, Page, RequestCreate, RequestDetail, RequestOut
from api.services import extensions
from api.services import requests as service
from elevate.contracts import Status

router = APIRouter(prefix="/v1/requests", tags=["requests"])
OptionalComment = Annotated[Comment | None, Body()]


@router.post("", status_code=201, response_model=RequestOut, responses=responses(403))
async def create_request(
    request: Request,
    body: RequestCreate,
    user: CurrentUser,
    settings: SettingsDep,
    catalog: CatalogDep,
    gateway: TemporalDep,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> Any:
    # The checks and the row in one hop through the pool; the start on the event loop.
    prepared = await in_session(
        request,
        service.prepare_request,
        user,
        body,
        idempotency_key,
        settings,
        catalog,
        pool="creates",
    )

    async def forget(request_id: str) -> None:
        await in_session(request, service.forget_request, request_id, pool="creates")

    return await service.start_prepared(prepared, gateway, forget)


@router.get("", response_model=Page[RequestOut])
async def list_requests(
    request: Request,
    user: CurrentUser,
    status: Status | None = None,
    requester: str | None = None,
    account_id: str | None = None,
    awaiting: Annotated[
        Literal["me"] | None, Query(description="'me': the requests you may decide")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    return await in_session(
        request,
        service.list_requests,
        user,
        status=status,
        requester=requester,
        account_id=account_id,
        awaiting=awaiting,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{request_id}", response_model=RequestDetail, responses=responses(403, 404))
async def get_request(request_id: str, request: Request, user: CurrentUser) -> Any:
    return await in_session(request, service.get_request, user, request_id)


@router.post("/{request_id}/extend", response_model=RequestOut, responses=responses(403, 404, 409))
def extend_request(
    request_id: str,
    body: ExtendBody,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    gateway: TemporalDep,
) -> Any:
    return extensions.extend(session, user, request_id, body, settings, catalog, gateway)


def _action(name: str) -> Any:
    # Async: the wait for the workflow's decision (up to 15 s) holds neither a thread of the
    # pool nor a database connection; the checks before and the read after take a thread each.
    async def handler(
        request_id: str,
        user: CurrentUser,
        session: SessionDep,
        gateway: TemporalDep,
        settings: SettingsDep,
        catalog: CatalogDep,
        body: OptionalComment = None,
    ) -> Any:
        comment = body.comment if body else None
        update, arg = await run_in_threadpool(
            service.prepare_act, session, user, request_id, name, comment, settings, catalog
        )
        await gateway.update(request_id, update, arg)
        return await run_in_threadpool(service.acted, session, request_id)

    handler.__name__ = f"{name}_request"
    return handler


for _name in ("approve", "reject", "cancel", "revoke"):
    router.add_api_route(
        f"/{{request_id}}/{_name}",
        _action(_name),
        methods=["POST"],
        response_model=RequestOut,
        responses=responses(403, 404, 409),
        summary=f"{_name.title()} a request",
    )
