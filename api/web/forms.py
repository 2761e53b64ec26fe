"""Form fields to the REST contract's bodies: the same models, so the same validation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError

from api.errors import Invalid
from api.schemas import ExtendBody, RequestCreate

# Durations the form offers; those outside the caller's limits are left out.
CHOICES = [timedelta(minutes=m) for m in (15, 30, 60, 120, 240, 480)] + [
    timedelta(hours=h) for h in (9, 12, 24)
]


def durations(low: timedelta, high: timedelta) -> list[timedelta]:
    offered = [d for d in CHOICES if low <= d <= high]
    return offered if high in offered else [*offered, high]


def local_start(value: str, offset_minutes: str) -> datetime | None:
    """A datetime-local field, in the zone the browser reported (minutes west of UTC, as JS)."""
    if not value.strip():
        return None
    try:
        naive = datetime.fromisoformat(value)
        offset = timedelta(minutes=-int(offset_minutes or 0))
    except ValueError as err:
        raise Invalid(f"Start: {err}", "invalid", ["start_at"]) from err
    return naive.replace(tzinfo=timezone(offset))


def parse(model: Any, data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise Invalid(detail, "invalid", [str(e["loc"][0]) for e in err.errors()]) from err


def request_body(form: dict[str, str]) -> RequestCreate:
    data: dict[str, Any] = {
        "account_id": form.get("account_id", ""),
        "permission_set": form.get("permission_set", ""),
        "duration": form.get("duration", ""),
        "start_at": local_start(form.get("start_at", ""), form.get("tz_offset", "0")),
        "justification": form.get("justification", ""),
        "ticket": form.get("ticket") or None,
    }
    body: RequestCreate = parse(RequestCreate, data)
    return body


def extend_body(form: dict[str, str]) -> ExtendBody:
    data = {"duration": form.get("duration", ""), "justification": form.get("justification", "")}
    body: ExtendBody = parse(ExtendBody, data)
    return body
