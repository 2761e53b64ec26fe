"""When Temporal is away the API keeps serving reads and answers writes with 503, never 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from elevate import devstack
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration
ALICE, CAROL = "alice@example.com", "carol@example.com"


@pytest.fixture
def api_without_temporal(stack: Stack) -> Iterator[str]:
    """A second API replica on the same database, pointed at a Temporal that does not answer."""
    port = devstack.free_port()
    env = {**stack.env, "ELEVATE_TEMPORAL_ADDRESS": f"127.0.0.1:{devstack.free_port()}"}
    proc = devstack.start_elevate(["api", "--port", str(port)], env, stack.logs / "api-lonely.log")
    base = f"http://127.0.0.1:{port}"
    try:
        devstack.wait_until(lambda: devstack.http_ok(f"{base}/healthz"), "the second API", 60, proc)
        yield base
    finally:
        devstack.stop([proc])


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
    with stack.client(ALICE) as c:
        rid = c.post(
            "/v1/requests",
            json={
                "account_id": stack.org.accounts["sandbox"],
                "permission_set": "AdministratorAccess",
                "duration": "PT1H",
                "justification": "search me",
            },
        ).json()["id"]
        c.post(f"/v1/requests/{rid}/cancel")

    async def find() -> list[str]:
        client = await Client.connect(
            stack.env["ELEVATE_TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter
        )
        query = (
            "ElevateRequester = 'alice@example.com' AND ElevatePermissionSet = "
            "'AdministratorAccess' AND ElevateStatus = 'cancelled'"
        )
        return [wf.id async for wf in client.list_workflows(query)]

    found = wait_for(lambda: f"access-request-{rid}" in asyncio.run(find()), 15, 0.5)
    assert found
