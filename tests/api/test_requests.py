"""The REST contract for requests, over HTTP against the running API (shared/API.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.stack import Stack, wait_for

ALICE, BOB, CAROL, ERIN, DAVE, AUDREY = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "erin@example.com",
    "dave@example.com",
    "audrey@example.com",
)


def body(stack: Stack, **over: object) -> dict[str, object]:
    b: dict[str, object] = {
        "account_id": stack.org.accounts["sandbox"],
        "permission_set": "ReadOnly",
        "duration": "PT1H",
        "justification": "testing the API",
    }
    b.update(over)
    return {k: v for k, v in b.items() if v is not None}


def create(stack: Stack, user: str = ALICE, **over: object) -> dict[str, object]:
    with stack.client(user) as c:
        resp = c.post("/v1/requests", json=body(stack, **over))
    assert resp.status_code == 201, resp.text
    return resp.json()


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    data = resp.json()
    assert {"error", "detail"} <= set(data)
    if code:
        assert data["error"] == code
    return data


def test_create_returns_the_resource(stack: Stack) -> None:
    r = create(stack, ticket="INC-7")
    assert r["status"] == "pending_approval"
    assert r["requester"] == ALICE
    assert r["account_name"] == "sandbox"
    assert r["duration"] == "PT1H"
    assert r["start_at"] is None
    assert r["end_at"] is None
    assert r["approvals"] == []
    assert r["approvals_required"] == 1
    assert r["workflow_id"] == f"access-request-{r['id']}"
    assert r["created_at"].endswith("Z")


def test_permission_set_by_arn(stack: Stack) -> None:
    r = create(stack, permission_set=stack.org.permission_sets["ReadOnly"])
    assert r["permission_set"] == "ReadOnly"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"account_id": "12345"}, "account_id"),
        ({"account_id": "999999999999"}, "account_id"),
        ({"permission_set": "NoSuchSet"}, "permission_set"),
        ({"duration": "PT0S"}, "duration"),
        ({"duration": "P2D"}, "duration"),
        ({"duration": "two hours"}, "duration"),
        ({"duration": 3600}, "duration"),
        ({"justification": "   "}, "justification"),
        ({"justification": None}, "justification"),
        ({"start_at": "2020-01-01T00:00:00Z"}, "start_at"),
        ({"start_at": "2030-01-01T00:00:00"}, "start_at"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_field_is_422_naming_it(stack: Stack, over: dict[str, object], field: str) -> None:
    with stack.client(ALICE) as c:
        resp = c.post("/v1/requests", json=body(stack, **over))
    data = assert_error(resp, 422)
    assert field in data["fields"], data


def test_requester_unknown_to_identity_center_is_422(stack: Stack) -> None:
    with stack.client("mallory@example.com", ["developers"]) as c:
        resp = c.post("/v1/requests", json=body(stack))
    assert_error(resp, 422, "unknown_principal")


def test_malformed_and_oversized_bodies(stack: Stack) -> None:
    with stack.client(ALICE) as c:
        headers = {"Content-Type": "application/json"}
        assert_error(c.post("/v1/requests", content=b"{not json", headers=headers), 400)
        assert_error(c.post("/v1/requests", content=b"[1, 2]", headers=headers), 400)
        big = b'{"justification": "' + b"x" * (1024 * 1024 + 10) + b'"}'
        assert_error(c.post("/v1/requests", content=big, headers=headers), 413)


def test_unknown_ids_and_paths_are_404(stack: Stack) -> None:
    with stack.client(ALICE) as c:
        assert_error(c.get("/v1/requests/does-not-exist"), 404, "not_found")
        assert_error(c.post("/v1/requests/does-not-exist/cancel"), 404, "not_found")
        assert_error(c.get("/v1/nothing-here"), 404, "not_found")


def test_self_approval_and_strangers_are_403(stack: Stack) -> None:
    r = create(stack, user=CAROL)  # carol is an approver, but not of her own request
    with stack.client(CAROL) as c:
        assert_error(c.post(f"/v1/requests/{r['id']}/approve", json={}), 403)
    with stack.client(BOB) as c:
        assert_error(c.get(f"/v1/requests/{r['id']}"), 403)
        assert_error(c.post(f"/v1/requests/{r['id']}/approve"), 403)
        assert_error(c.post(f"/v1/requests/{r['id']}/cancel"), 403)
    with stack.client(AUDREY) as c:  # auditors read everything, change nothing
        assert c.get(f"/v1/requests/{r['id']}").status_code == 200
        assert_error(c.post(f"/v1/requests/{r['id']}/cancel"), 403)


def test_same_approver_twice_counts_once_then_decisions_are_409(stack: Stack) -> None:
    r = create(stack, duration="PT5S", account_id=stack.org.accounts["staging"])
    with stack.client(ERIN) as c:
        first = c.post(f"/v1/requests/{r['id']}/approve", json={"comment": "fine"})
        assert first.status_code == 200, first.text
        assert [a["approver"] for a in first.json()["approvals"]] == [ERIN]
        again = c.post(f"/v1/requests/{r['id']}/approve", json={"comment": "fine"})
        assert again.status_code in (200, 409)
    with stack.client(CAROL) as c:
        assert_error(c.post(f"/v1/requests/{r['id']}/approve"), 409, "conflict")
        assert_error(c.post(f"/v1/requests/{r['id']}/reject"), 409, "conflict")
    with stack.client(ALICE) as c:
        final = wait_for(lambda: c.get(f"/v1/requests/{r['id']}").json()["status"] == "ended", 30)
        assert final
        detail = c.get(f"/v1/requests/{r['id']}").json()
    assert [a["approver"] for a in detail["approvals"]] == [ERIN]
    assert_error(
        httpx.post(
            f"{stack.base}/v1/requests/{r['id']}/approve",
            headers={"Authorization": f"Bearer {stack.token(CAROL)}"},
        ),
        409,
    )


def test_reject_and_cancel(stack: Stack) -> None:
    rejected, cancelled = create(stack), create(stack)
    with stack.client(CAROL) as c:
        resp = c.post(f"/v1/requests/{rejected['id']}/reject", json={"comment": "no ticket"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "rejected"
        assert resp.json()["decided_by"] == CAROL
    with stack.client(ALICE) as c:
        resp = c.post(f"/v1/requests/{cancelled['id']}/cancel")
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "cancelled"
        assert_error(c.post(f"/v1/requests/{cancelled['id']}/cancel"), 409)
        assert_error(c.post(f"/v1/requests/{rejected['id']}/revoke"), 409)
        events = c.get(f"/v1/requests/{rejected['id']}").json()["events"]
    assert [e["action"] for e in events] == ["requested", "rejected"]
    assert events[-1]["details"]["comment"] == "no ticket"


def test_idempotency_key_returns_the_first_request(stack: Stack) -> None:
    key = {"Idempotency-Key": f"k-{datetime.now(UTC).timestamp()}"}
    with stack.client(BOB) as c:
        first = c.post("/v1/requests", json=body(stack), headers=key)
        second = c.post("/v1/requests", json=body(stack), headers=key)
    assert first.status_code == 201
    assert second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    with stack.client(ALICE) as c:  # the same key from another user is another request
        other = c.post("/v1/requests", json=body(stack), headers=key)
    assert other.json()["id"] != first.json()["id"]


def test_lists_are_scoped_paginated_and_filtered(stack: Stack) -> None:
    mine = [create(stack, user=BOB)["id"] for _ in range(3)]
    with stack.client(BOB) as c:
        page1 = c.get("/v1/requests", params={"limit": 2}).json()
        assert len(page1["items"]) == 2
        assert page1["next_cursor"]
        page2 = c.get("/v1/requests", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
        seen = [r["id"] for r in page1["items"] + page2["items"]]
        assert seen[:3] == list(reversed(mine))  # newest first
        assert {r["requester"] for r in page1["items"] + page2["items"]} == {BOB}
        assert_error(c.get("/v1/requests", params={"cursor": "garbage!"}), 422, "invalid_cursor")
        assert_error(c.get("/v1/requests", params={"limit": 501}), 422)
        assert_error(c.get("/v1/requests", params={"status": "bogus"}), 422)
    with stack.client(CAROL) as c:
        awaiting = {
            r["id"]
            for r in c.get("/v1/requests", params={"awaiting": "me", "limit": 500}).json()["items"]
        }
    assert set(mine) <= awaiting
    with stack.client(DAVE) as c:
        by_bob = c.get("/v1/requests", params={"requester": BOB, "limit": 500}).json()["items"]
    assert set(mine) <= {r["id"] for r in by_bob}


def test_scheduled_request_is_scheduled_with_fixed_end(stack: Stack) -> None:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    r = create(stack, start_at=start.isoformat(), duration="PT2H")
    assert r["end_at"] is not None
    with stack.client(CAROL) as c:
        approved = c.post(f"/v1/requests/{r['id']}/approve").json()
    assert approved["status"] in ("pending_approval", "scheduled")
    with stack.client(ALICE) as c:
        wait_for(lambda: c.get(f"/v1/requests/{r['id']}").json()["status"] == "scheduled")
        assert c.post(f"/v1/requests/{r['id']}/revoke").json()["status"] == "revoked"


def test_catalog(stack: Stack) -> None:
    with stack.client(ALICE) as c:
        accounts = c.get("/v1/accounts").json()["items"]
        psets = c.get("/v1/permission-sets", params={"limit": 1}).json()
    assert {"prod", "staging", "sandbox"} <= {a["name"] for a in accounts}
    prod = next(a for a in accounts if a["name"] == "prod")
    assert prod["ou_path"] == "/Workloads/Prod"
    assert len(psets["items"]) == 1
    assert psets["next_cursor"]


def test_health(stack: Stack) -> None:
    assert httpx.get(f"{stack.base}/healthz").status_code == 200
    ready = httpx.get(f"{stack.base}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}
