"""Cursor pagination, newest first: `?limit=&cursor=` → `{items, next_cursor}`."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query

from api.errors import Invalid

Limit = Annotated[int, Query(ge=1, le=500, description="page size: 1 to 500, default 50")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1024,
        description="the next_cursor of the previous page, as given (opaque); one this API "
        "did not issue is 422 invalid_cursor; empty or absent: the first page",
    ),
]


def encode(position: list[Any]) -> str:
    raw = json.dumps(
        position, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """The position a cursor names; anything not made by `encode` with `shape` is 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
        if not isinstance(position, list) or len(position) != len(shape):
            raise ValueError("wrong shape")
        return [_field(v, t) for v, t in zip(position, shape, strict=True)]
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        raise Invalid(
            "the cursor is not one this API issued", "invalid_cursor", ["cursor"]
        ) from err


def _field(value: Any, kind: type) -> Any:
    """One position field, exactly as `encode` writes it: anything else is a crafted cursor."""
    if kind is datetime:
        if not isinstance(value, str):
            raise TypeError("not a timestamp")
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError("a naive timestamp")
        return at.astimezone(UTC)
    if kind is int:
        if type(value) is not int or not 0 <= value < 2**31:
            raise ValueError("not a position")
        return value
    if not isinstance(value, str):
        raise TypeError("not a key")
    return kind(value)


def offset_page(items: list[Any], limit: int, cursor: str | None) -> dict[str, Any]:
    """Paginate a small in-memory list (catalog data) by offset."""
    start = decode(cursor, (int,))[0] if cursor else 0
    if start < 0:
        raise Invalid("the cursor is not one this API issued", "invalid_cursor", ["cursor"])
    end = start + limit
    return {"items": items[start:end], "next_cursor": encode([end]) if end < len(items) else None}
