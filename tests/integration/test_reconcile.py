"""The reconciler against the real stack, for each provider: drift at AWS is noticed and
repaired within an interval.

The test stack runs it every 2 s and manages ReadOnly and AdministratorAccess; BreakGlass is
left to someone else.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from elevate.db import make_engine
from tests.rows import insert_request
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration
ERIN, CAROL, DAVE, AUDREY = (
    "erin@example.com",
    "carol@example.com",
    "dave@example.com",
    "audrey@example.com",
)


def test_orphan_is_removed_and_unmanaged_is_left_alone(any_stack: Stack) -> None:
    stack = any_stack
    stack.assign_directly("sandbox", "AdministratorAccess", ERIN)
    stack.assign_directly("sandbox", "BreakGlass", ERIN)
    assert stack.assigned("sandbox", "AdministratorAccess", ERIN)
    wait_for(lambda: not stack.assigned("sandbox", "AdministratorAccess", ERIN), 45, 0.2)
    time.sleep(4)  # two more intervals
    assert stack.assigned("sandbox", "BreakGlass", ERIN)
    with stack.client(AUDREY) as c:
        run = c.get("/v1/reconcile").json()
    assert run["mode"] == "revoke"
    assert all(f["permission_set"] != "BreakGlass" for f in run["findings"])
    with stack.client(AUDREY) as c:
        events = c.get("/v1/audit", params={"actor": "elevate-reconciler", "limit": 200}).json()
    removed = [e for e in events["items"] if e["action"] == "reconcile_orphan_revoked"]
    assert any(e["details"]["principal_id"] == stack.org.users[ERIN] for e in removed)
    assert all(e["details"].get("permission_set") != "BreakGlass" for e in events["items"])
    stack.unassign_directly("sandbox", "BreakGlass", ERIN)


def test_missing_assignment_of_an_active_request_is_granted_again(any_stack: Stack) -> None:
    stack = any_stack
    with stack.client(ERIN) as c:
        rid = c.post(
            "/v1/requests",
            json={
                "account_id": stack.org.accounts["staging"],
                "permission_set": "ReadOnly",
                "duration": "PT1H",
                "justification": "reconciler test",
            },
        ).json()["id"]
    with stack.client(CAROL) as c:
        assert c.post(f"/v1/requests/{rid}/approve").status_code == 200
    with stack.client(ERIN) as c:
        wait_for(lambda: c.get(f"/v1/requests/{rid}").json()["status"] == "active", 20)
        stack.unassign_directly("staging", "ReadOnly", ERIN)
        assert not stack.assigned("staging", "ReadOnly", ERIN)
        wait_for(lambda: stack.assigned("staging", "ReadOnly", ERIN), 45, 0.2)
    with stack.client(AUDREY) as c:

        def regrants() -> list[dict]:
            events = c.get("/v1/audit", params={"request_id": rid}).json()["items"]
            return [e for e in events if e["action"] == "reconcile_missing_regranted"]

        found = wait_for(regrants, 10)  # the owner writes it just after the grant
    assert found[0]["actor"] == "elevate-reconciler"
    with stack.client(ERIN) as c:
        assert c.post(f"/v1/requests/{rid}/revoke").status_code == 200
        wait_for(lambda: c.get(f"/v1/requests/{rid}").json()["status"] == "revoked", 20)
    assert not stack.assigned("staging", "ReadOnly", ERIN)


def test_reconcile_run_is_admin_and_auditor_only(stack: Stack) -> None:
    with stack.client(ERIN) as c:
        assert c.get("/v1/reconcile").status_code == 403
    with stack.client(DAVE) as c:
        assert c.get("/v1/reconcile").status_code in (200, 404)


def test_a_request_whose_workflow_never_started_is_failed_not_forgotten(stack: Stack) -> None:
    """The API wrote the request, then died before starting its workflow."""
    engine = make_engine(stack.env["ELEVATE_DATABASE_URL"])
    lost, fresh = (_row_without_workflow(engine, minutes) for minutes in (10, 0))
    with stack.client(DAVE) as c:
        failed = wait_for(
            lambda: (r := c.get(f"/v1/requests/{lost}").json())["status"] == "failed" and r, 45
        )
        assert "never started" in failed["failure"]
        assert c.get(f"/v1/requests/{fresh}").json()["status"] == "pending_approval"
    with stack.client(AUDREY) as c:
        events = c.get("/v1/audit", params={"request_id": lost}).json()["items"]
    assert [e["action"] for e in events] == ["start_lost"]
    engine.dispose()


def _row_without_workflow(engine: sa.Engine, minutes_old: int) -> str:
    created = datetime.now(UTC) - timedelta(minutes=minutes_old)
    return insert_request(engine, requester=ERIN, created_at=created, updated_at=created)


def test_the_sweep_reports_its_walk_over_the_provisioned_pairs(stack: Stack) -> None:
    """An out-of-band assignment provisions its pair; the sweep walks it and says how far."""
    stack.assign_directly("prod", "ReadOnly", ERIN)
    wait_for(lambda: not stack.assigned("prod", "ReadOnly", ERIN), 45, 0.2)

    def completed_walk() -> dict[str, object] | None:
        with stack.client(AUDREY) as c:
            sweep = c.get("/v1/reconcile").json()["sweep"]
        return sweep if sweep and sweep["completed_at"] else None

    sweep = wait_for(completed_walk, 45, 0.5)
    assert sweep["pairs_total"] >= 1
    assert sweep["pairs_checked"] >= sweep["pairs_total"]
    assert sweep["started_at"] <= sweep["completed_at"]
    assert set(sweep) == {"pairs_total", "pairs_checked", "started_at", "completed_at"}
