"""Dependencies: `Annotated` aliases so routes declare what they need and tests can override it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
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


def _current_user(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    if creds is None:
        raise Unauthorized("send Authorization: Bearer <token>", "missing_token")
    verifier: JwksVerifier = request.app.state.verifier
    return verifier.user(creds.credentials)


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
TemporalDep = Annotated[TemporalGateway, Depends(_temporal)]
CatalogDep = Annotated[Provider, Depends(_catalog)]
CurrentUser = Annotated[User, Depends(_current_user)]


def _admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise NotAllowed("only admins may change this")
    return user


def _admin_or_auditor(user: CurrentUser) -> User:
    if not (user.is_admin or user.is_auditor):
        raise NotAllowed("only admins and auditors may read this")
    return user


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
