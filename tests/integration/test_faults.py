"""Faults against the real stack: every request still ends right and no access is left behind."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from elevate.devstack.awsproxy import FaultProxy
from tests.integration.test_lifecycle import CAROL, request_access, status_of
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration
USERS = ["alice@example.com", "bob@example.com", "erin@example.com"]
TRIPLES = [(u, a, "ReadOnly") for u in USERS for a in ("prod", "staging")]


@pytest.fixture
def flaky_aws(stack: Stack) -> Iterator[FaultProxy]:
    """The worker reaches AWS through a proxy: 30% throttling, 10% 500s on sso-admin."""
    with FaultProxy(stack.env["AWS_ENDPOINT_URL"], throttle=0.3, fail=0.1) as proxy:
        stack.kill_worker()
        stack.start_worker(AWS_ENDPOINT_URL=proxy.url)
        try:
            yield proxy
        finally:
            stack.kill_worker()
            stack.start_worker()


def test_throttling_and_server_errors_are_retried_to_the_right_end(
    stack: Stack, flaky_aws: FaultProxy
) -> None:
    rids = [request_access(stack, u, a, p, "PT4S") for u, a, p in TRIPLES]
    wait_for(lambda: all(status_of(stack, r) == "ended" for r in rids), 120, 0.5)
    assert flaky_aws.injected["ThrottlingException"] > 0
    assert flaky_aws.injected["InternalServerException"] > 0
    assert not any(stack.assigned(a, p, u) for u, a, p in TRIPLES)
    # Every refusal is counted by code on the worker's metrics, those botocore retried too.
    metrics = httpx.get(f"http://127.0.0.1:{stack.env['ELEVATE_WORKER_METRICS_PORT']}/metrics")
    throttled = re.findall(
        r'^elevate_aws_errors\{code="ThrottlingException".*service="sso-admin".*\} (\d+)',
        metrics.text,
        re.M,
    )
    assert sum(int(n) for n in throttled) > 0, metrics.text[-2000:]


def test_temporal_restart_loses_nothing(stack: Stack) -> None:
    rids = [request_access(stack, u, "sandbox", "ReadOnly", "PT8S") for u in USERS]
    wait_for(lambda: all(status_of(stack, r) == "active" for r in rids), 30, 0.2)
    stack.restart_temporal(down_seconds=2)
    with stack.client(CAROL) as c:  # reads keep working through it
        assert c.get("/v1/requests", params={"awaiting": "me"}).status_code == 200
    wait_for(lambda: all(status_of(stack, r) == "ended" for r in rids), 90, 0.5)
    assert not any(stack.assigned("sandbox", "ReadOnly", u) for u in USERS)


def test_worker_killed_while_granting_and_while_revoking(stack: Stack) -> None:
    rid = request_access(stack, "bob@example.com", "prod", "AdministratorAccess", "PT3S")
    wait_for(lambda: status_of(stack, rid) in ("granting", "active"), 20, 0.02)
    # A killed worker's activity is retried once its start-to-close timeout (10-30 s) passes.
    stack.kill_worker()
    stack.start_worker()
    wait_for(lambda: status_of(stack, rid) in ("revoking", "ended"), 90, 0.02)
    stack.kill_worker()
    stack.start_worker()
    wait_for(lambda: status_of(stack, rid) == "ended", 120, 0.2)
    assert not stack.assigned("prod", "AdministratorAccess", "bob@example.com")
