"""/v1/settings: everyone authenticated reads the limits; admins change them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import Admin, CurrentUser, SessionDep, SettingsDep
from api.services import settings as service
from elevate.policy_schema import SettingsBody, SettingsPatch

router = APIRouter(prefix="/v1/settings", tags=["settings"])


@router.get("", response_model=SettingsBody)
def get_settings(_: CurrentUser, session: SessionDep, env: SettingsDep) -> Any:
    return service.effective(session, env)


@router.patch("", response_model=SettingsBody)
def patch_settings(body: SettingsPatch, user: Admin, session: SessionDep, env: SettingsDep) -> Any:
    return service.patch(session, user, body, env)
