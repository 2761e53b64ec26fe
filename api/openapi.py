"""The OpenAPI document as the API answers: every error status a route can give, one error body.

FastAPI declares only a route's success and a 422 with its own `HTTPValidationError`. The
statuses that follow from how a route is built are added here, once: 401 and 403 from the
dependencies that raise them (api.deps.ANSWERS), 400 and 413 for a body, 422 for any input.
What only a service knows (404, 409, ...) a route declares with `errors.responses(...)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.deps import ANSWERS
from api.errors import WHEN, ErrorBody, flat_routes

_REF = "#/components/schemas/ErrorBody"
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def _document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for route in flat_routes(app):
        if (
            isinstance(getattr(route, "original_route", route), APIRoute)
            and route.include_in_schema
        ):
            for method in route.methods or ():
                operation = doc["paths"][route.path_format][method.lower()]
                _declare(operation["responses"], _statuses(route))
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_ONLY:
        schemas.pop(name, None)
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    return doc


def _statuses(route: Any) -> set[int]:
    """`route` is an APIRoute, or FastAPI's view of one inside an included router."""
    calls = [d.call for d in _dependencies(route.dependant) if d.call is not None]
    found = {s for call in calls for s in ANSWERS.get(call, ())}
    if route.body_field is not None:
        found |= {400, 413, 422}
    inputs = route.dependant
    if inputs.query_params or inputs.path_params or inputs.header_params or route.body_field:
        found.add(422)
    return found


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def _declare(responses: dict[str, Any], statuses: set[int]) -> None:
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": WHEN[status],
            "content": {"application/json": {"schema": {"$ref": _REF}}},
        }
