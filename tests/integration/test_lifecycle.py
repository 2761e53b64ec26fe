"""The whole lifecycle over HTTP against real servers in separate processes, checked at moto."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL, DAVE = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.com",
)


def request_access(stack: Stack, user: str, account: str, pset: str, duration: str) -> str:
    with stack.client(user) as c:
        resp = c.post(
            "/v1/requests",
            json={
                "account_id": stack.org.accounts[account],
                "permission_set": pset,
                "duration": duration,
                "justification": "integration test",
            },
        )
    assert resp.status_code == 201, resp.text
    rid: str = resp.json()["id"]
    with stack.client(CAROL) as c:
        approved = c.post(f"/v1/requests/{rid}/approve", json={"comment": "go"})
    assert approved.status_code == 200, approved.text
    # The approval that completes the quorum answers with the decided request.
    assert approved.json()["status"] in ("scheduled", "granting", "active"), approved.text
    return rid


def actions_of(stack: Stack, rid: str) -> list[str]:
    with stack.client(DAVE) as c:
        return [e["action"] for e in c.get(f"/v1/requests/{rid}").json()["events"]]


def status_of(stack: Stack, rid: str) -> str:
    with stack.client(DAVE) as c:  # an admin sees every request
        return str(c.get(f"/v1/requests/{rid}").json()["status"])


def test_grant_is_visible_at_aws_while_active_and_gone_after(any_stack: Stack) -> None:
    stack = any_stack
    rid = request_access(stack, ALICE, "prod", "AdministratorAccess", "PT4S")
    wait_for(lambda: status_of(stack, rid) == "active", 20, 0.05)
    assert stack.assigned("prod", "AdministratorAccess", ALICE)
    wait_for(lambda: status_of(stack, rid) == "ended", 30, 0.1)
    assert not stack.assigned("prod", "AdministratorAccess", ALICE)
    with stack.client(ALICE) as c:
        detail = c.get(f"/v1/requests/{rid}").json()
    lifecycle = [e["action"] for e in detail["events"] if e["action"] != "sessions_ended"]
    assert lifecycle == [
        "requested",
        "approval",
        "approved",
        "granting",
        "granted",
        "revoking",
        "ended",
    ]
    if stack.provider == "identity_center":  # sessions issued under it were ended too
        wait_for(lambda: "sessions_ended" in actions_of(stack, rid), 30, 0.2)
    assert detail["granted_at"]
    assert detail["revoked_at"]
    assert detail["revoked_by"] is None


def test_early_revoke_by_an_approver_removes_access(any_stack: Stack) -> None:
    stack = any_stack
    rid = request_access(stack, BOB, "prod", "ReadOnly", "PT1H")
    wait_for(lambda: status_of(stack, rid) == "active", 20, 0.05)
    assert stack.assigned("prod", "ReadOnly", BOB)
    with stack.client(CAROL) as c:
        resp = c.post(f"/v1/requests/{rid}/revoke", json={"comment": "incident over"})
    assert resp.status_code == 200, resp.text
    wait_for(lambda: status_of(stack, rid) == "revoked", 20, 0.1)
    assert not stack.assigned("prod", "ReadOnly", BOB)
    with stack.client(BOB) as c:
        assert c.get(f"/v1/requests/{rid}").json()["revoked_by"] == CAROL


def test_overlapping_requests_keep_access_until_the_last_ends(any_stack: Stack) -> None:
    stack = any_stack
    short = request_access(stack, BOB, "staging", "ReadOnly", "PT3S")
    long = request_access(stack, BOB, "staging", "ReadOnly", "PT9S")
    wait_for(lambda: status_of(stack, short) == status_of(stack, long) == "active", 20, 0.05)
    wait_for(lambda: status_of(stack, short) == "ended", 30, 0.1)
    assert stack.assigned("staging", "ReadOnly", BOB)  # the longer request still covers it
    assert status_of(stack, long) == "active"
    wait_for(lambda: status_of(stack, long) == "ended", 30, 0.1)
    assert not stack.assigned("staging", "ReadOnly", BOB)


def test_worker_killed_while_active_still_ends_and_revokes(stack: Stack) -> None:
    rid = request_access(stack, ALICE, "staging", "AdministratorAccess", "PT5S")
    wait_for(lambda: status_of(stack, rid) == "active", 20, 0.05)
    stack.kill_worker()
    try:
        time.sleep(6)  # end_at passes while no worker runs
        assert status_of(stack, rid) == "active"
        assert stack.assigned("staging", "AdministratorAccess", ALICE)
    finally:
        stack.start_worker()
    wait_for(lambda: status_of(stack, rid) == "ended", 60, 0.2)
    assert not stack.assigned("staging", "AdministratorAccess", ALICE)


def test_extension_over_http_keeps_access_past_the_old_end(stack: Stack) -> None:
    rid = request_access(stack, DAVE, "sandbox", "ReadOnly", "PT6S")
    wait_for(lambda: status_of(stack, rid) == "active", 20, 0.05)
    with stack.client(DAVE) as c:
        before = c.get(f"/v1/requests/{rid}").json()
        ext = c.post(
            f"/v1/requests/{rid}/extend", json={"duration": "PT6S", "justification": "more"}
        )
        assert ext.status_code == 200, ext.text
        assert ext.json()["extension"]["approvals_required"] == 1
        assert ext.json()["extension"]["duration"] == "PT6S"  # ISO 8601, as everywhere
        again = c.post(
            f"/v1/requests/{rid}/extend", json={"duration": "PT6S", "justification": "x"}
        )
        assert again.status_code == 409
    with stack.client(ALICE) as c:  # not the requester
        assert (
            c.post(
                f"/v1/requests/{rid}/extend", json={"duration": "PT6S", "justification": "x"}
            ).status_code
            == 403
        )
    with stack.client(CAROL) as c:
        decided = c.post(f"/v1/requests/{rid}/approve", json={"comment": "fine"})
        assert decided.status_code == 200, decided.text
    after = wait_for(lambda: (r := _detail(stack, rid))["end_at"] != before["end_at"] and r, 10)
    assert after["extension"] is None
    old_end = datetime.fromisoformat(before["end_at"])
    assert datetime.fromisoformat(after["end_at"]) - old_end == timedelta(seconds=6)
    while datetime.now(UTC) < old_end + timedelta(seconds=1):
        time.sleep(0.2)
    assert status_of(stack, rid) == "active"
    assert stack.assigned("sandbox", "ReadOnly", DAVE)
    wait_for(lambda: status_of(stack, rid) == "ended", 30, 0.2)
    assert not stack.assigned("sandbox", "ReadOnly", DAVE)


def _detail(stack: Stack, rid: str) -> dict[str, object]:
    with stack.client(DAVE) as c:
        return dict(c.get(f"/v1/requests/{rid}").json())
