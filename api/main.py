"""App factory and lifespan: long-lived clients are made once here and reached via deps."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors, openapi, web
from api.auth import JwksVerifier
from api.routes import audit, catalog, health, metrics, policies, reconcile, requests, slack
from api.routes import settings as settings_routes
from api.services.metrics import ProjectionCollector
from api.temporal_gateway import TemporalGateway
from elevate.db import make_engine, prepare_schema
from elevate.logs import current_request_id, request_id_from_path
from elevate.providers.factory import make_provider
from elevate.settings import Settings, get_settings

MAX_BODY = 1024 * 1024


class BodyLimit:
    """413 for a body over 1 MiB, whether it declares its length or streams."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            await _too_large(scope, receive, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise errors.TooLarge("the body is larger than 1 MiB")
            return message

        await self.app(scope, counting, send)


class RequestContext:
    """Log records made while serving /v1/requests/<id>... carry that request's id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_from_path(scope["path"]) if scope["type"] == "http" else None
        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send)
        finally:
            current_request_id.reset(token)


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = errors.error_response(413, "body_too_large", "the body is larger than 1 MiB")
    await response(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.signing_key()  # no key: workflows would refuse every action; say so at start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        prepare_schema(engine, settings)
        app.state.engine = engine
        app.state.metrics = CollectorRegistry()
        app.state.metrics.register(ProjectionCollector(engine))
        yield
        engine.dispose()

    app = FastAPI(
        title="elevate",
        version="1",
        description="Temporary elevated access for AWS IAM Identity Center.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.temporal = TemporalGateway(settings)
    app.state.catalog = make_provider(settings)
    app.state.catalog.validate()  # a bad IAM catalog stops the API here, naming the problem
    app.state.verifier = JwksVerifier(settings)
    errors.install(app)
    openapi.install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestContext)
    for module in (health, metrics, requests, catalog, policies, settings_routes, reconcile, audit):
        app.include_router(module.router)
    web.install(app, settings)
    app.include_router(slack.router)
    return app


def served_app() -> FastAPI:
    """The app of one of several API processes (`elevate api --workers N`): each logs as the
    first does and makes its own clients and caches."""
    from elevate.logs import configure

    settings = get_settings()
    configure(settings)
    app = create_app(settings)
    tune_gc()
    return app


def tune_gc() -> None:
    """For a process that serves the API, once its app is made. What start-up made lives as long
    as the process: frozen, no collection walks it again. Young objects are collected every
    10,000 allocations, not every 700: a list of 50 requests makes thousands, and with 50
    clients the collections' pauses were the slowest 1 % of the answers (bench/api.py: p99
    320 -> 218 ms)."""
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
