"""`elevate api --workers N`: N processes serve one port, each a whole API of its own."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from elevate.devstack import processes
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration
ERIN, CAROL = "erin@example.com", "carol@example.com"


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def test_two_api_processes_serve_one_port(stack: Stack) -> None:
    port = processes.free_port()
    api = processes.start_elevate(
        ["api", "--port", str(port), "--workers", "2"], stack.env, stack.logs / "api-workers.log"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(lambda: processes.http_ok(f"{base}/readyz"), "the API", 60, api)
        wait_for(lambda: len(_children(api.pid)) >= 2, 30)
        erin = {"Authorization": f"Bearer {stack.token(ERIN)}"}
        carol = {"Authorization": f"Bearer {stack.token(CAROL)}"}
        body = {
            "account_id": stack.org.accounts["sandbox"],
            "permission_set": "ReadOnly",
            "duration": "PT2S",
            "justification": "two API processes",
        }
        with httpx.Client(base_url=base, timeout=30) as c:
            rid = c.post("/v1/requests", json=body, headers=erin).json()["id"]
            # Every answer is a whole API's, whichever process the connection reached.
            for _ in range(20):
                with httpx.Client(base_url=base, timeout=30) as fresh:
                    assert fresh.get(f"/v1/requests/{rid}", headers=erin).status_code == 200
            assert c.post(f"/v1/requests/{rid}/approve", headers=carol).status_code == 200
            wait_for(
                lambda: c.get(f"/v1/requests/{rid}", headers=erin).json()["status"] == "ended", 30
            )
        _a_web_session_holds_across_the_processes(base)
        log = (stack.logs / "api-workers.log").read_text()
        assert '"level": "ERROR"' not in log
        assert '"logger": "uvicorn.access"' in log or "GET /v1/requests" in log  # logged as one
    finally:
        processes.stop([api])
    assert not stack.assigned("sandbox", "ReadOnly", ERIN)


def _a_web_session_holds_across_the_processes(base: str) -> None:
    """Signed in through one process, still signed in at the others (one session key)."""
    cookies = httpx.Cookies()

    def fresh() -> httpx.Client:  # a new connection: any of the processes may answer it
        return httpx.Client(base_url=base, timeout=30, cookies=cookies)

    with fresh() as c:
        form = c.get("/dev/login")
        cookies.update(c.cookies)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text
    with fresh() as c:
        signed = c.post("/dev/login", data={"csrf_token": csrf.group(1), "username": ERIN})
        assert signed.status_code == 303, signed.text
        cookies.update(c.cookies)
    for _ in range(10):
        with fresh() as c:
            page = c.get("/requests")
            assert page.status_code == 200, page.status_code
            assert ERIN in page.text
