"""Templates and the filters that make times and durations readable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.responses import Response

from api.web.session import csrf_token, current
from elevate.policy_schema import iso

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
TERMINAL = {"ended", "revoked", "rejected", "cancelled", "expired", "failed"}


def duration_words(value: timedelta | None) -> str:
    """As people say it: 2 hours, 1 hour 30 minutes, 1 day."""
    if value is None:
        return ""
    left, parts = int(value.total_seconds()), []
    for name, size in _UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return " ".join(parts[:2]) or "0 seconds"


def time_tag(value: datetime | None) -> Markup:
    """UTC in the markup; app.js shows it in the viewer's zone and keeps UTC on hover."""
    if value is None:
        return Markup("–")
    at = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    iso, shown = at.isoformat().replace("+00:00", "Z"), at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, shown, escape(shown))


templates.env.filters["duration"] = duration_words
templates.env.filters["time"] = time_tag
templates.env.filters["iso"] = iso


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(
        request,
        name,
        {"user": current(request), "csrf": csrf_token(request), "terminal": TERMINAL, **context},
        status_code=status_code,
    )


def refusal(request: Request, status_code: int, detail: str, title: str = "Refused") -> Response:
    """A page that says why, in role="alert", and nothing else."""
    return page(request, "refusal.html", status_code, title=title, detail=detail)
