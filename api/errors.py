"""Domain errors that carry their HTTP status, and the handlers that render `{error, detail}`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("elevate.api")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="a machine-readable code, e.g. not_found, invalid_duration")
    detail: str = Field(description="what went wrong, in a sentence for a human")
    fields: list[str] = Field(
        default_factory=list, description="422 only: the paths of the offending fields"
    )


WHEN = {
    400: "the body is not JSON, or not a JSON object",
    401: "no bearer token, or an invalid or expired one",
    403: "authenticated, but not allowed to do this",
    404: "no such id",
    409: "the request's state does not allow this action",
    413: "the body is larger than 1 MiB",
    422: "well-formed but invalid; `fields` names what is wrong",
    503: "a dependency (database, Temporal, AWS, the signing keys) is unavailable; retry",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the error answers its service can give, beyond those that
    api.openapi derives from the route's dependencies and parameters."""
    return {s: {"model": ErrorBody, "description": WHEN[s]} for s in statuses}


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, detail: str, code: str | None = None, fields: list[str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.code
        self.fields = fields


class BadRequest(ApiError):
    status, code = 400, "malformed_body"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class NotAllowed(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooLarge(ApiError):
    status, code = 413, "body_too_large"


class Invalid(ApiError):
    status, code = 422, "invalid"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


def error_response(
    status: int, code: str, detail: str, fields: list[str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=code, detail=detail, fields=fields or [])
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(exclude_defaults=True), status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.detail, exc.fields)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_body", "the body is not valid JSON")
    if any(e.get("type") == "model_attributes_type" and e.get("loc") == ("body",) for e in errors):
        return error_response(400, "malformed_body", "the body must be a JSON object")
    fields = [".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]) for e in errors]
    detail = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, errors, strict=True))
    return error_response(422, "invalid", detail, fields)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = "no such path" if exc.status_code == 404 else str(exc.detail)
    response = error_response(exc.status_code, code, detail)
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette names only the first route's."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in flat_routes(request.app):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def flat_routes(app: FastAPI) -> Iterator[Any]:
    """Every route of the app, those of included routers too (newer FastAPI includes lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.16x: included routes are copied into app.routes
        return iter(app.routes)
    return iter(iter_route_contexts(app.routes))


async def _db_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return error_response(
        503, "database_unavailable", "the database is not answering; retry shortly"
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "something went wrong on our side")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _db_down)
    app.add_exception_handler(PoolTimeout, _db_down)  # every connection busy: as good as down
    app.add_exception_handler(Exception, _unexpected)
