"""Dependencies: `Annotated` aliases so routes declare what they need and tests can override it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api.auth import JwksVerifier, User
from api.errors import NotAllowed, Unauthorized
from api.temporal_gateway import TemporalGateway
from elevate.providers.base import Provider
from elevate.settings import Settings


# Dependencies that only read app state are `async def`: a sync one costs each request a hop
# through the thread pool, which is what queues under concurrency.
async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


async def _temporal(request: Request) -> TemporalGateway:
    gateway: TemporalGateway = request.app.state.temporal
    return gateway


async def _catalog(request: Request) -> Provider:
    catalog: Provider = request.app.state.catalog
    return catalog


_bearer = HTTPBearer(auto_error=False)
# Work on the database that takes one hop through the thread pool (in_session) goes a few at a
# time, first come first served: with 50 clients, 40 threads taking turns with the GIL served a
# third fewer lists a second than one client got, and the last in line waited longest. Creates
# have their own few (they may ask AWS who the requester is), so a slow AWS never holds up reads.
HOPS = {"reads": 2, "creates": 2}
T = TypeVar("T")


async def _current_user(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    if creds is None:
        raise Unauthorized("send Authorization: Bearer <token>", "missing_token")
    verifier: JwksVerifier = request.app.state.verifier
    # A token verified before is answered from the cache, without a hop through the pool; a new
    # one is verified there (it may have to fetch the signing keys).
    known = verifier.known_user(creds.credentials)
    if known is not None:
        return known
    return await run_in_threadpool(verifier.user, creds.credentials)


async def in_session(
    request: Request, work: Callable[..., T], *args: Any, pool: str = "reads", **kwargs: Any
) -> T:
    """`work(session, *args, **kwargs)` in one hop through the thread pool with a session of its
    own, closed before the hop ends; at most HOPS[pool] at once, in arrival order."""
    state = request.app.state
    if getattr(state, "hops", None) is None:  # made in the event loop they serve
        state.hops = {name: anyio.CapacityLimiter(n) for name, n in HOPS.items()}

    def run() -> T:
        with Session(state.engine, expire_on_commit=False) as session:
            return work(session, *args, **kwargs)

    return await anyio.to_thread.run_sync(run, limiter=state.hops[pool])


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
TemporalDep = Annotated[TemporalGateway, Depends(_temporal)]
CatalogDep = Annotated[Provider, Depends(_catalog)]
CurrentUser = Annotated[User, Depends(_current_user)]


async def _admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise NotAllowed("only admins may change this")
    return user


def check_admin_or_auditor(user: User) -> User:
    if not (user.is_admin or user.is_auditor):
        raise NotAllowed("only admins and auditors may read this")
    return user


async def _admin_or_auditor(user: CurrentUser) -> User:
    return check_admin_or_auditor(user)


Admin = Annotated[User, Depends(_admin)]
AdminOrAuditor = Annotated[User, Depends(_admin_or_auditor)]

# The error statuses each dependency can answer, for the OpenAPI document (api.openapi).
ANSWERS: dict[Callable[..., object], tuple[int, ...]] = {
    _current_user: (401, 503),  # 503: the signing keys could not be loaded
    _session: (503,),
    _temporal: (503,),
    _catalog: (503,),
    _admin: (403,),
    _admin_or_auditor: (403,),
}
