"""/metrics over HTTP: Prometheus text, no token, numbers that move with the requests."""

from __future__ import annotations

import re

import httpx

from tests.stack import Stack


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
