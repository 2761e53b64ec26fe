"""The audit trail over HTTP against the running API (shared/API.md, "Audit")."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa

from api.pagination import encode
from tests.elevate.test_audit_chain import committed_edit
from tests.stack import Stack, wait_for

ALICE, DAVE, AUDREY = "alice@example.com", "dave@example.com", "audrey@example.com"
HEX64 = set("0123456789abcdef")


def cancelled_request(stack: Stack) -> tuple[str, list[dict[str, object]]]:
    """A request alice made and dave (an admin) cancelled; its events as the API lists them."""
    body = {
        "account_id": stack.org.accounts["sandbox"],
        "permission_set": "ReadOnly",
        "duration": "PT1H",
        "justification": "testing the audit trail",
    }
    with stack.client(ALICE) as c:
        created = c.post("/v1/requests", json=body)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    with stack.client(DAVE) as c:
        resp = c.post(f"/v1/requests/{rid}/cancel", json={"comment": "not needed"})
        assert resp.status_code == 200, resp.text

        def timeline() -> list[dict[str, object]] | None:
            items = c.get("/v1/audit", params={"request_id": rid}).json()["items"]
            return items if items and items[0]["action"] == "cancelled" else None

        return rid, wait_for(timeline)


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    data = resp.json()
    assert {"error", "detail"} <= set(data)
    if code:
        assert data["error"] == code
    return data


def test_a_requests_events_newest_first_with_their_hashes(stack: Stack) -> None:
    rid, items = cancelled_request(stack)
    assert [e["action"] for e in items] == ["cancelled", "requested"]
    assert [e["actor"] for e in items] == [DAVE, ALICE]
    seqs = [e["seq"] for e in items]
    assert seqs == sorted(seqs, reverse=True)
    for e in items:
        assert set(e) == {
            "seq",
            "at",
            "actor",
            "action",
            "request_id",
            "details",
            "hash",
            "prev_hash",
        }
        assert e["request_id"] == rid
        assert len(e["hash"]) == len(e["prev_hash"]) == 64
        assert set(e["hash"]) <= HEX64
        assert e["hash"] != e["prev_hash"]
        assert str(e["at"]).endswith("Z")
    assert items[0]["details"]["status"] == "cancelled"
    with stack.client(AUDREY) as c:  # auditors read it too, and see what the request shows
        assert c.get("/v1/audit", params={"request_id": rid}).json()["items"] == items
        detail = c.get(f"/v1/requests/{rid}").json()
    assert [(e["seq"], e["action"]) for e in detail["events"]] == [
        (e["seq"], e["action"]) for e in reversed(items)
    ]


def test_filters_by_actor_and_time(stack: Stack) -> None:
    rid, items = cancelled_request(stack)
    requested_at = datetime.fromisoformat(str(items[-1]["at"]))
    cancelled_at = datetime.fromisoformat(str(items[0]["at"]))
    plus_two = timezone(timedelta(hours=2))
    with stack.client(DAVE) as c:

        def actions(**params: str) -> list[object]:
            resp = c.get("/v1/audit", params={"request_id": rid, **params})
            assert resp.status_code == 200, resp.text
            return [e["action"] for e in resp.json()["items"]]

        assert actions(actor=DAVE) == ["cancelled"]
        assert actions(actor=ALICE) == ["requested"]
        assert actions(actor="nobody@example.com") == []
        assert actions(since=cancelled_at.astimezone(plus_two).isoformat()) == ["cancelled"]
        assert actions(until=cancelled_at.isoformat()) == ["requested"]
        assert actions(until=requested_at.isoformat()) == []
        later = (cancelled_at + timedelta(hours=1)).isoformat()
        assert actions(since=requested_at.isoformat(), until=later) == ["cancelled", "requested"]


def test_pages_follow_the_cursor_without_gaps_or_repeats(stack: Stack) -> None:
    seen: list[int] = []
    cursor = None
    with stack.client(AUDREY) as c:
        while c.get("/v1/audit/verify").json()["events"] < 7:  # three full pages and more
            cancelled_request(stack)
        for _ in range(3):
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/v1/audit", params=params).json()
            assert len(page["items"]) == 2
            seen += [e["seq"] for e in page["items"]]
            cursor = page["next_cursor"]
            assert cursor
        # Events are only ever appended above, so the pages' span is stable to compare against.
        everything = [e["seq"] for e in c.get("/v1/audit", params={"limit": 500}).json()["items"]]
    assert seen == [s for s in everything if min(seen) <= s <= max(seen)]
    assert seen == list(range(seen[0], seen[0] - 6, -1))


def test_the_last_page_has_no_cursor(stack: Stack) -> None:
    rid, items = cancelled_request(stack)
    with stack.client(DAVE) as c:
        first = c.get("/v1/audit", params={"request_id": rid, "limit": 1}).json()
        assert first["next_cursor"]
        second = c.get(
            "/v1/audit", params={"request_id": rid, "limit": 1, "cursor": first["next_cursor"]}
        ).json()
    assert second["next_cursor"] is None
    assert first["items"] + second["items"] == items


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"until": "2026-01-01T00:00:00"}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_parameters_are_422_naming_them(
    stack: Stack, params: dict[str, str], field: str
) -> None:
    with stack.client(DAVE) as c:
        data = assert_error(c.get("/v1/audit", params=params), 422)
    assert field in data["fields"], data


def test_a_cursor_of_another_list_is_422(stack: Stack) -> None:
    with stack.client(DAVE) as c:
        accounts = c.get("/v1/accounts", params={"limit": 1}).json()["next_cursor"]
        assert accounts
        for cursor in (accounts, encode(["requests", 5])):
            resp = c.get("/v1/audit", params={"cursor": cursor})
            assert_error(resp, 422, "invalid_cursor")


def test_only_admins_and_auditors_read_the_trail(stack: Stack) -> None:
    with stack.client(ALICE) as c:
        for path in ("/v1/audit", "/v1/audit/verify"):
            data = assert_error(c.get(path), 403, "forbidden")
            assert "audit" in str(data["detail"])
    assert_error(httpx.get(f"{stack.base}/v1/audit"), 401)
    for user in (DAVE, AUDREY):
        with stack.client(user) as c:
            assert c.get("/v1/audit/verify").status_code == 200


def test_verify_says_the_chain_is_intact(stack: Stack) -> None:
    _, items = cancelled_request(stack)
    with stack.client(AUDREY) as c:
        resp = c.get("/v1/audit/verify")
    assert resp.status_code == 200, resp.text
    data = resp.json()
    data.pop("checkpoint", None)  # once the worker has taken one
    assert data == {"ok": True, "events": data["events"]}
    assert data["events"] >= items[0]["seq"]


def test_verify_names_the_first_edited_event(stack: Stack, engine: sa.Engine) -> None:
    _, items = cancelled_request(stack)
    victim = int(str(items[-1]["seq"]))
    with committed_edit(engine, victim, actor="mallory@example.com"):
        with stack.client(DAVE) as c:
            # full: an edit that leaves the hashes alone may sit before the newest checkpoint
            data = c.get("/v1/audit/verify", params={"full": "true"}).json()
        assert data["ok"] is False
        assert data["first_broken_seq"] == victim
        assert data["events"] >= items[0]["seq"]
    with stack.client(DAVE) as c:
        assert c.get("/v1/audit/verify").json()["ok"] is True
