"""/v1/accounts and /v1/permission-sets: what the organization offers."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter

from api.deps import CatalogDep, CurrentUser, SessionDep, SettingsDep
from api.errors import Unavailable
from api.pagination import Cursor, Limit, offset_page
from api.schemas import AccountOut, EligibilityOut, Page, PermissionSetOut
from api.services import policies
from api.services import settings as settings_service

router = APIRouter(prefix="/v1", tags=["catalog"])


def _read(load: Any) -> list[Any]:
    try:
        return list(load())
    except (ClientError, BotoCoreError, LookupError) as err:
        raise Unavailable(f"AWS could not be asked: {err}", "aws_unavailable") from err


@router.get("/accounts", response_model=Page[AccountOut])
def list_accounts(
    _: CurrentUser, catalog: CatalogDep, limit: Limit = 50, cursor: Cursor = None
) -> Any:
    accounts = [
        AccountOut(id=a.id, name=a.name, ou_path=a.ou_path) for a in _read(catalog.accounts)
    ]
    return offset_page(accounts, limit, cursor)


@router.get("/permission-sets", response_model=Page[PermissionSetOut])
def list_permission_sets(
    _: CurrentUser, catalog: CatalogDep, limit: Limit = 50, cursor: Cursor = None
) -> Any:
    items = [
        PermissionSetOut(name=p.name, arn=p.arn, description=p.description)
        for p in _read(catalog.permission_sets)
    ]
    return offset_page(items, limit, cursor)


@router.get("/eligibility", response_model=Page[EligibilityOut])
def my_eligibility(
    user: CurrentUser,
    catalog: CatalogDep,
    session: SessionDep,
    env: SettingsDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    eff = settings_service.effective(session, env)
    return offset_page(policies.my_eligibility(session, user, catalog, eff), limit, cursor)
