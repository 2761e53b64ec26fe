"""Settings: defaults from the environment, overrides stored in the database."""

from __future__ import annotations

from sqlmodel import Session, select

from api.auth import User
from api.errors import Invalid
from elevate.audit import commit_with_event
from elevate.models import SettingOverride, utcnow
from elevate.policy_schema import SettingsBody, SettingsPatch
from elevate.settings import Settings


def effective(session: Session, env: Settings) -> SettingsBody:
    base = SettingsBody(
        max_duration=env.max_duration,
        min_duration=env.min_duration,
        approval_timeout=env.approval_timeout,
        ticket_required=env.ticket_required,
        comment_required=env.comment_required,
    ).model_dump(mode="json")
    for row in session.exec(select(SettingOverride)):
        if row.key in base:
            base[row.key] = row.value
    return SettingsBody.model_validate(base)


def _check(merged: SettingsBody) -> None:
    zero = merged.min_duration * 0
    for name in ("min_duration", "max_duration", "approval_timeout"):
        if getattr(merged, name) <= zero:
            raise Invalid(f"{name} must be longer than zero", "invalid_setting", [name])
    if merged.min_duration > merged.max_duration:
        raise Invalid(
            "min_duration is longer than max_duration", "invalid_setting", ["min_duration"]
        )


def patch(session: Session, user: User, changes: SettingsPatch, env: Settings) -> SettingsBody:
    current = effective(session, env)
    wanted = changes.model_dump(mode="json", exclude_none=True)
    merged = SettingsBody.model_validate({**current.model_dump(mode="json"), **wanted})
    _check(merged)
    before, after = current.model_dump(mode="json"), merged.model_dump(mode="json")
    diff = {k: {"from": before[k], "to": after[k]} for k in wanted if before[k] != after[k]}
    if not diff:
        return current

    def apply(s: Session) -> None:
        for key in diff:
            row = s.get(SettingOverride, key) or SettingOverride(key=key, value=None)
            row.value, row.updated_at = after[key], utcnow()
            s.add(row)

    commit_with_event(
        lambda: Session(session.get_bind()),
        apply,
        actor=user.username,
        action="settings_changed",
        details=diff,
    )
    return merged
