"""Access ends when it ends, against the real stack: an operator terminating workflows, a
worker that is down. The test stack reconciles every 2 s with the default 2-minute grace."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import tool
from tests.integration.test_lifecycle import CAROL, DAVE, request_access, status_of
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration
BOB, ERIN = "bob@example.com", "erin@example.com"


def terminate(stack: Stack, workflow_id: str) -> None:
    """What an SRE does from the Temporal UI or CLI."""
    subprocess.run(
        [
            tool("temporal"),
            "workflow",
            "terminate",
            "--address",
            stack.env["ELEVATE_TEMPORAL_ADDRESS"],
            "--workflow-id",
            workflow_id,
            "--reason",
            "pressed by an SRE",
        ],
        check=True,
        capture_output=True,
    )


def detail(stack: Stack, rid: str) -> dict:  # type: ignore[type-arg]
    with stack.client(DAVE) as c:
        return c.get(f"/v1/requests/{rid}").json()  # type: ignore[no-any-return]


def owner_id(stack: Stack, account: str, pset: str, user: str) -> str:
    arn = stack.org.permission_sets[pset].rsplit("/", 1)[-1]
    return f"assignment-{stack.org.accounts[account]}-{arn}-{stack.org.users[user]}"


def test_a_terminated_request_loses_its_access_and_fails(stack: Stack) -> None:
    rid = request_access(stack, ERIN, "prod", "ReadOnly", "PT1H")
    wait_for(lambda: status_of(stack, rid) == "active", 30, 0.1)
    assert stack.assigned("prod", "ReadOnly", ERIN)
    terminate(stack, f"access-request-{rid}")
    cut = time.monotonic()
    wait_for(lambda: not stack.assigned("prod", "ReadOnly", ERIN), 30, 0.2)
    print(f"terminated → access gone in {time.monotonic() - cut:.1f} s")  # noqa: T201
    wait_for(lambda: status_of(stack, rid) == "failed", 30, 0.2)
    body = detail(stack, rid)
    assert "workflow was terminated" in body["failure"]
    assert "workflow_lost" in [e["action"] for e in body["events"]]


def test_a_terminated_owner_never_cuts_another_request_short(stack: Stack) -> None:
    first = request_access(stack, BOB, "staging", "ReadOnly", "PT1H")
    second = request_access(stack, BOB, "staging", "ReadOnly", "PT12S")
    wait_for(lambda: status_of(stack, second) == "active", 30, 0.1)
    wait_for(lambda: status_of(stack, first) == "active", 30, 0.1)
    terminate(stack, owner_id(stack, "staging", "ReadOnly", BOB))  # its state is lost
    with stack.client(BOB) as c:
        assert c.post(f"/v1/requests/{first}/revoke").status_code == 200
    wait_for(lambda: status_of(stack, first) == "revoked", 30, 0.1)
    end_at = datetime.fromisoformat(detail(stack, second)["end_at"])
    premature = 0
    while datetime.now(UTC) < end_at - timedelta(seconds=0.5):
        premature += not stack.assigned("staging", "ReadOnly", BOB)
        time.sleep(0.2)
    assert premature == 0  # the second request kept its access until its own end
    wait_for(lambda: status_of(stack, second) == "ended", 30, 0.2)
    assert not stack.assigned("staging", "ReadOnly", BOB)


def test_without_a_worker_reads_answer_and_actions_are_503_in_time(stack: Stack) -> None:
    body = {
        "account_id": stack.org.accounts["sandbox"],
        "permission_set": "AdministratorAccess",
        "duration": "PT4S",
        "justification": "worker outage",
    }
    with stack.client(ERIN) as c:
        pending = [c.post("/v1/requests", json=body).json()["id"] for _ in range(20)]
    wait_for(lambda: status_of(stack, pending[-1]) == "pending_approval", 30, 0.1)
    active = request_access(stack, BOB, "sandbox", "AdministratorAccess", "PT4S")
    wait_for(lambda: status_of(stack, active) == "active", 30, 0.1)
    stack.kill_worker()
    try:
        carol = {"Authorization": f"Bearer {stack.token(CAROL)}"}

        def approve(rid: str) -> tuple[int, float]:
            began = time.monotonic()
            r = httpx.post(f"{stack.base}/v1/requests/{rid}/approve", headers=carol, timeout=60)
            return r.status_code, time.monotonic() - began

        with ThreadPoolExecutor(len(pending)) as pool:
            answers = pool.map(approve, pending)  # more than the database pool holds
            time.sleep(2)
            began = time.monotonic()
            assert httpx.get(f"{stack.base}/healthz").status_code == 200
            with stack.client(ERIN) as c:
                assert c.get("/v1/requests", params={"limit": 5}).status_code == 200
            assert time.monotonic() - began < 5  # not stuck behind the waiting actions
            results = list(answers)
        assert {code for code, _ in results} == {503}
        assert max(took for _, took in results) < 20
        assert all(status_of(stack, rid) == "pending_approval" for rid in pending)
    finally:
        stack.start_worker()
    wait_for(lambda: status_of(stack, active) == "ended", 60, 0.2)  # ends right after all
    assert not stack.assigned("sandbox", "AdministratorAccess", BOB)
    with stack.client(CAROL) as c:  # safe to repeat: the same approval now goes through
        assert c.post(f"/v1/requests/{pending[0]}/approve").status_code == 200
    wait_for(lambda: status_of(stack, pending[0]) == "ended", 60, 0.2)
    assert not stack.assigned("sandbox", "AdministratorAccess", ERIN)
    with stack.client(ERIN) as c:
        for rid in pending[1:]:
            assert c.post(f"/v1/requests/{rid}/cancel").status_code == 200
