"""The database away for a few seconds: reads answer 503 (not 500), requests still end right.

PostgreSQL only: a SQLite file cannot go away while processes hold it open.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.engine import make_url

from elevate.devstack import processes
from tests.integration.tcpproxy import TcpProxy
from tests.integration.test_lifecycle import CAROL, status_of
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration
BOB = "bob@example.com"


@pytest.fixture
def db_behind_proxy(stack: Stack) -> Iterator[tuple[TcpProxy, str]]:
    """The worker and a second API reach PostgreSQL through a proxy the test can cut."""
    url = make_url(stack.env["ELEVATE_DATABASE_URL"])
    if url.get_backend_name() != "postgresql":
        pytest.skip("needs PostgreSQL (ELEVATE_TEST_DATABASE=postgresql)")
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    port = processes.free_port()
    api = processes.start_elevate(
        ["api", "--port", str(port)],
        {**stack.env, "ELEVATE_DATABASE_URL": proxied},
        stack.logs / "api-proxied-db.log",
    )
    stack.kill_worker()
    stack.start_worker(ELEVATE_DATABASE_URL=proxied)
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: processes.http_ok(f"{base}/healthz"), "the proxied API", 60, api
        )
        yield proxy, base
    finally:
        proxy.restore()
        processes.stop([api])
        stack.kill_worker()
        stack.start_worker()
        proxy.close()


def test_requests_end_right_across_a_database_outage(
    stack: Stack, db_behind_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, base = db_behind_proxy
    with stack.client(BOB) as c:
        rid = c.post(
            "/v1/requests",
            json={
                "account_id": stack.org.accounts["staging"],
                "permission_set": "AdministratorAccess",
                "duration": "PT5S",
                "justification": "outage test",
            },
        ).json()["id"]
    with stack.client(CAROL) as c:
        assert c.post(f"/v1/requests/{rid}/approve").status_code == 200
    wait_for(lambda: status_of(stack, rid) == "active", 30, 0.1)
    with stack.client(BOB) as c:
        end_at = datetime.fromisoformat(c.get(f"/v1/requests/{rid}").json()["end_at"])
    auth = {"Authorization": f"Bearer {stack.token(BOB)}"}
    proxy.cut()
    try:
        down = httpx.get(f"{base}/v1/requests/{rid}", headers=auth, timeout=30)
        assert down.status_code == 503, down.text
        assert down.json()["error"] == "database_unavailable"
        # end_at passes while the worker cannot write: the revoke does not wait for it.
        wait_for(lambda: not stack.assigned("staging", "AdministratorAccess", BOB), 30, 0.1)
        lag = (datetime.now(UTC) - end_at).total_seconds()
        print(f"database down: end_at → access gone in {lag:.1f} s")  # noqa: T201
        assert lag < 10
    finally:
        proxy.restore()
    wait_for(lambda: status_of(stack, rid) == "ended", 90, 0.5)
    assert not stack.assigned("staging", "AdministratorAccess", BOB)
    assert httpx.get(f"{base}/v1/requests/{rid}", headers=auth, timeout=30).status_code == 200
