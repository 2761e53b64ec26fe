"""/metrics over HTTP: Prometheus text, no token, numbers that move with the requests."""

from __future__ import annotations

import re

import httpx

from tests.integration.test_lifecycle import request_access, status_of
from tests.stack import Stack, wait_for


def gauge(text: str, status: str) -> float:
    match = re.search(rf'^elevate_requests{{status="{status}"}} ([0-9.e+]+)$', text, re.M)
    assert match, text[:500]
    return float(match.group(1))


def test_metrics_count_requests_by_status(stack: Stack) -> None:
    before = httpx.get(f"{stack.base}/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    with stack.client("bob@example.com") as c:
        created = c.post(
            "/v1/requests",
            json={
                "account_id": stack.org.accounts["sandbox"],
                "permission_set": "ReadOnly",
                "duration": "PT1H",
                "justification": "metrics",
            },
        )
        assert created.status_code == 201
        after = httpx.get(f"{stack.base}/metrics").text
        assert gauge(after, "pending_approval") == gauge(before.text, "pending_approval") + 1
        c.post(f"/v1/requests/{created.json()['id']}/cancel")
    final = httpx.get(f"{stack.base}/metrics").text
    assert gauge(final, "cancelled") == gauge(before.text, "cancelled") + 1
    assert "elevate_audit_events_total" in final


def histogram_count(text: str, name: str) -> float:
    match = re.search(rf"^{name}_count ([0-9.e+]+)$", text, re.M)
    assert match, f"{name} missing"
    return float(match.group(1))


LATENCIES = (
    "elevate_approval_wait_seconds",
    "elevate_approve_to_active_seconds",
    "elevate_revoke_lag_seconds",
)


def test_latencies_count_a_lifecycle(stack: Stack) -> None:
    before = httpx.get(f"{stack.base}/metrics").text
    rid = request_access(stack, "erin@example.com", "staging", "ReadOnly", "PT2S")
    wait_for(lambda: status_of(stack, rid) == "ended", 30, 0.2)
    after = httpx.get(f"{stack.base}/metrics").text
    for name in LATENCIES:
        assert histogram_count(after, name) == histogram_count(before, name) + 1, name
    lag = re.search(r"^elevate_revoke_lag_seconds_sum ([0-9.e+]+)$", after, re.M)
    assert lag
    assert float(lag.group(1)) < 3600  # seconds, not a unit mix-up


def test_the_worker_serves_temporal_and_elevate_metrics(stack: Stack) -> None:
    port = stack.env["ELEVATE_WORKER_METRICS_PORT"]
    rid = request_access(stack, "bob@example.com", "sandbox", "ReadOnly", "PT1S")
    wait_for(lambda: status_of(stack, rid) == "ended", 30, 0.2)
    text = wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/metrics").text, 10)
    # The SDK's own, per activity: the acquire's lease message, and the grant on its lane.
    for activity in ("send_lease", "grant_assignment"):
        latency = rf'^temporal_activity_execution_latency\S*\{{.*activity_type="{activity}"'
        assert re.search(latency, text, re.M), activity
