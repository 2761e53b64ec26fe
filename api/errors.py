"""Domain errors that carry their HTTP status, and the handlers that render `{error, detail}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("elevate.api")


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
    body: dict[str, object] = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


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


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = "no such path" if exc.status_code == 404 else str(exc.detail)
    return error_response(exc.status_code, code, detail)


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
