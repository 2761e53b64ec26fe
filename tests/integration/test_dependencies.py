"""When Temporal is away the API keeps serving reads and answers writes with 503, never 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from temporalio.client import Client

from elevate.devstack import processes
from elevate.temporal import data_converter
from tests.integration.test_lifecycle import request_access, status_of
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration
ALICE, CAROL = "alice@example.com", "carol@example.com"


@pytest.fixture
def api_without_temporal(stack: Stack) -> Iterator[str]:
    """A second API replica on the same database, pointed at a Temporal that does not answer."""
    port = processes.free_port()
    env = {**stack.env, "ELEVATE_TEMPORAL_ADDRESS": f"127.0.0.1:{processes.free_port()}"}
    proc = processes.start_elevate(["api", "--port", str(port)], env, stack.logs / "api-lonely.log")
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: processes.http_ok(f"{base}/healthz"), "the second API", 60, proc
        )
        yield base
    finally:
        processes.stop([proc])


def test_reads_work_and_writes_are_503_without_temporal(
    stack: Stack, api_without_temporal: str
) -> None:
    base = api_without_temporal
    auth = {"Authorization": f"Bearer {stack.token(ALICE)}"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["temporal"].startswith("unavailable")

    before = httpx.get(f"{base}/v1/requests", headers=auth, params={"limit": 500})
    assert before.status_code == 200
    body = {
        "account_id": stack.org.accounts["sandbox"],
        "permission_set": "ReadOnly",
        "duration": "PT1H",
        "justification": "while Temporal is down",
    }
    resp = httpx.post(f"{base}/v1/requests", headers=auth, json=body, timeout=30)
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "temporal_unavailable"
    after = httpx.get(f"{base}/v1/requests", headers=auth, params={"limit": 500})
    assert len(after.json()["items"]) == len(before.json()["items"])  # nothing half-created

    with stack.client(ALICE) as c:  # a request made through the healthy replica...
        rid = c.post("/v1/requests", json=body).json()["id"]
    carol = {"Authorization": f"Bearer {stack.token(CAROL)}"}
    refused = httpx.post(f"{base}/v1/requests/{rid}/approve", headers=carol, timeout=30)
    assert refused.status_code == 503  # ...cannot be approved through the cut-off one


def test_requests_are_searchable_in_temporal(stack: Stack) -> None:
    sandbox = stack.org.accounts["sandbox"]
    with stack.client(ALICE) as c:
        cancelled = c.post(
            "/v1/requests",
            json={
                "account_id": sandbox,
                "permission_set": "AdministratorAccess",
                "duration": "PT1H",
                "justification": "search me",
                "ticket": "OPS-7",
            },
        ).json()["id"]
        c.post(f"/v1/requests/{cancelled}/cancel")
    on_sandbox = request_access(stack, "bob@example.com", "sandbox", "ReadOnly", "PT30S")
    on_staging = request_access(stack, "bob@example.com", "staging", "ReadOnly", "PT30S")
    wait_for(lambda: status_of(stack, on_sandbox) == status_of(stack, on_staging) == "active")

    async def find(query: str) -> set[str]:
        client = await Client.connect(
            stack.env["ELEVATE_TEMPORAL_ADDRESS"], data_converter=data_converter
        )
        return {wf.id async for wf in client.list_workflows(query)}

    # The queries the README gives an SRE.
    active_on_sandbox = f"ElevateStatus = 'active' AND ElevateAccount = '{sandbox}'"
    found = wait_for(lambda: f"access-request-{on_sandbox}" in asyncio.run(find(active_on_sandbox)))
    assert found
    assert f"access-request-{on_staging}" not in asyncio.run(find(active_on_sandbox))
    by_requester = (
        "ElevateRequester = 'alice@example.com' AND ElevatePermissionSet = "
        "'AdministratorAccess' AND ElevateStatus = 'cancelled'"
    )
    wait_for(lambda: f"access-request-{cancelled}" in asyncio.run(find(by_requester)), 15, 0.5)

    async def memo() -> dict[str, object]:
        client = await Client.connect(stack.env["ELEVATE_TEMPORAL_ADDRESS"])
        described = await client.get_workflow_handle(f"access-request-{cancelled}").describe()
        return await described.memo()

    assert asyncio.run(memo()) == {"justification": "search me", "ticket": "OPS-7"}
    for rid in (on_sandbox, on_staging):
        with stack.client(CAROL) as c:
            c.post(f"/v1/requests/{rid}/revoke", json={"comment": "done"})
