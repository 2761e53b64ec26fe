"""/audit and /audit.csv: the trail with filters, its verify result, and a CSV export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import anyio.from_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlmodel import Session

from api.deps import SessionDep, check_admin_or_auditor
from api.errors import ApiError
from api.services import audit as service
from api.web.forms import local_start
from api.web.render import page, refusal
from api.web.session import WebUser

router = APIRouter(include_in_schema=False)
COLUMNS = ("seq", "at", "actor", "action", "request_id", "details", "hash", "prev_hash")
_FILTERS = ("since", "until", "request_id", "actor", "tz_offset")


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    offset = q.get("tz_offset", "0")
    return {
        "since": local_start(q.get("since", ""), offset),
        "until": local_start(q.get("until", ""), offset),
        "request_id": q.get("request_id") or None,
        "actor": q.get("actor") or None,
    }


@router.get("/audit")
def audit_page(
    request: Request, user: WebUser, session: SessionDep, cursor: str | None = None
) -> Response:
    try:
        check_admin_or_auditor(user)
        found = service.list_events(session, **_filters(request), limit=100, cursor=cursor)
        checkpoints = anyio.from_thread.run(request.app.state.temporal.checkpoints)
        verified = service.verify(session, request.app.state.settings, checkpoints, False)
    except ApiError as err:
        return refusal(request, err.status, err.detail)
    query = {k: request.query_params[k] for k in _FILTERS if request.query_params.get(k)}
    return page(
        request,
        "audit.html",
        items=found["items"],
        next_cursor=found["next_cursor"],
        verified=verified,
        query=query,
        query_string=urlencode(query),
    )


@router.get("/audit.csv")
def audit_csv(request: Request, user: WebUser) -> Response:
    try:
        check_admin_or_auditor(user)
        filters = _filters(request)
    except ApiError as err:
        return refusal(request, err.status, err.detail)
    return StreamingResponse(
        _rows(request.app.state.engine, filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="elevate-audit.csv"'},
    )


def _rows(engine: Any, filters: dict[str, Any]) -> Iterator[str]:
    """Every matching event, a page at a time, newest first like the API's list."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    cursor = None
    with Session(engine) as session:
        while True:
            found = service.list_events(session, **filters, limit=500, cursor=cursor)
            for e in found["items"]:
                row = e.model_dump(mode="json")
                row["details"] = json.dumps(row["details"], sort_keys=True)
                writer.writerow(row[c] for c in COLUMNS)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            cursor = found["next_cursor"]
            if cursor is None:
                return
