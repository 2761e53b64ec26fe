"""Bad input is a 4xx with the error body, never a 500 (API.md "Conventions")."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.stack import Stack

DAVE = "dave@example.com"


def _cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _ask(stack: Stack, **over: object) -> dict[str, object]:
    return {
        "account_id": stack.org.accounts["sandbox"],
        "permission_set": "ReadOnly",
        "duration": "PT1H",
        "justification": "bad input test",
        **over,
    }


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


BAD_CURSOR = "invalid_cursor"
NAIVE, FAR = "2026-01-01T00:00:00", "9999-12-31T23:59:59-23:00"
CASES: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    ("POST", "/v1/requests", {"body": {"start_at": "9999-12-31T23:00:00Z"}}, 422, "start_too_late"),
    ("POST", "/v1/requests", {"body": {"start_at": "2999-12-31T23:00:00Z"}}, 422, "start_too_late"),
    ("POST", "/v1/requests", {"body": {"start_at": FAR}}, 422, None),
    ("POST", "/v1/requests", {"body": {"duration": "P99999999D"}}, 422, None),
    ("GET", "/v1/requests", {"params": {"cursor": _cursor([NAIVE, "x"])}}, 422, BAD_CURSOR),
    ("GET", "/v1/requests", {"params": {"cursor": _cursor([FAR, "x"])}}, 422, BAD_CURSOR),
    ("GET", "/v1/requests", {"params": {"cursor": _cursor([[1], {"a": 2}])}}, 422, BAD_CURSOR),
    (
        "GET",
        "/v1/requests",
        {"params": {"cursor": base64.urlsafe_b64encode(b"[" * 700).decode()}},
        422,
        BAD_CURSOR,
    ),
    ("GET", "/v1/requests", {"params": {"cursor": "x" * 5000}}, 422, None),
    ("GET", "/v1/accounts", {"params": {"cursor": _cursor([1e400])}}, 422, BAD_CURSOR),
    ("GET", "/v1/accounts", {"params": {"cursor": _cursor([10**30])}}, 422, BAD_CURSOR),
    ("GET", "/v1/accounts", {"params": {"cursor": _cursor([True])}}, 422, BAD_CURSOR),
    (
        "GET",
        "/v1/policies/eligibility",
        {"params": {"cursor": _cursor([NAIVE, "x"])}},
        422,
        BAD_CURSOR,
    ),
    ("GET", "/v1/audit", {"params": {"cursor": _cursor(["x"])}}, 422, BAD_CURSOR),
    ("GET", "/v1/audit", {"params": {"since": FAR}}, 422, None),
    ("GET", "/v1/audit", {"params": {"since": NAIVE}}, 422, None),
    ("GET", "/v1/requests", {"params": {"limit": "9" * 30}}, 422, None),
    (
        "GET",
        "/v1/requests",
        {"params": {"requester": "alice@example.com\x00"}},
        422,
        "invalid_filter",
    ),
    ("PATCH", "/v1/settings", {"json": {"max_duration": "P99999999D"}}, 422, None),
    (
        "POST",
        "/v1/requests",
        {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
        400,
        None,
    ),
    ("POST", "/v1/requests", {"body": {}, "headers": {"Idempotency-Key": "k" * 300}}, 422, None),
]


@pytest.mark.parametrize(("method", "path", "kw", "status", "code"), CASES)
def test_bad_input_is_4xx_with_the_error_body(
    stack: Stack, method: str, path: str, kw: dict[str, Any], status: int, code: str | None
) -> None:
    kw = dict(kw)
    if "body" in kw:
        kw["json"] = _ask(stack, **kw.pop("body"))
    with stack.client(DAVE) as c:  # a fresh connection each: a 500 closes it
        resp = c.request(method, path, **kw)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert {"error", "detail"} <= set(body)
    if code:
        assert body["error"] == code


def test_a_start_within_the_schedule_limit_is_accepted(stack: Stack) -> None:
    with stack.client("alice@example.com") as c:
        assert c.post("/v1/requests", json=_ask(stack, start_at=_in(29))).status_code == 201
        late = c.post("/v1/requests", json=_ask(stack, start_at=_in(31)))
    assert late.status_code == 422
    assert late.json() | {"detail": ""} == {
        "error": "start_too_late",
        "detail": "",
        "fields": ["start_at"],
    }


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Basic YWxpY2U6cHc=",
        "Bearer a.b.c",
        "Bearer " + "x" * 10000,
        "Bearer e30.e30.e30",
        "Bearer W10.e30.e30",
        "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6W119.e30.e30",
        "Bearer eyJhbGciOlsiUlMyNTYiXX0.e30.e30",
    ],
)
def test_malformed_authorization_is_401(stack: Stack, header: str) -> None:
    resp = httpx.get(f"{stack.base}/v1/requests", headers={"Authorization": header}, timeout=30)
    assert resp.status_code == 401, resp.text
    assert {"error", "detail"} <= set(resp.json())
