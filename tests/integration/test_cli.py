"""`elevate request|approve|reject` run as a person runs them, against the real stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from elevate.devstack import processes
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
ELEVATE = str(Path(sys.executable).parent / "elevate")


def cli(url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ELEVATE_URL": url, "ELEVATE_TOKEN": token}
    return subprocess.run(
        [ELEVATE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def as_user(stack: Stack, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(stack.base, stack.token(user), *args)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def create(stack: Stack, user: str, pset: str, *extra: str) -> dict[str, Any]:
    out = as_user(
        stack, user, "request", "create", "--account", "sandbox", "--permission-set", pset,
        "--duration", "PT1H", "--justification", "cli [INC-7] test", "--json", *extra,
    )  # fmt: skip
    return dict(json.loads(ok(out)))


def shown(stack: Stack, user: str, rid: str) -> dict[str, Any]:
    return dict(json.loads(ok(as_user(stack, user, "request", "show", rid, "--json"))))


def row(table: str, field: str) -> str:
    found = re.search(rf"^{field}\s+(.*?)\s*$", table, re.MULTILINE)
    assert found, table
    return found.group(1)


def test_a_request_goes_from_create_to_revoked_through_the_cli(stack: Stack) -> None:
    req = create(stack, ALICE, "AdministratorAccess", "--ticket", "INC-7")
    rid = req["id"]
    assert (req["account_id"], req["status"]) == (stack.org.accounts["sandbox"], "pending_approval")
    waiting = json.loads(ok(as_user(stack, CAROL, "request", "list", "--awaiting-me", "--json")))
    assert rid in [r["id"] for r in waiting["items"]]

    assert ok(as_user(stack, CAROL, "approve", rid, "--comment", "go")).startswith(f"{rid}: ")
    wait_for(lambda: shown(stack, ALICE, rid)["status"] == "active", 30, 0.2)
    assert stack.assigned("sandbox", "AdministratorAccess", ALICE)
    table = ok(as_user(stack, ALICE, "request", "show", rid))
    assert row(table, "status") == "active"
    assert row(table, "justification") == "cli [INC-7] test"  # shown as typed, not as markup
    assert row(table, "approvals") == "1 of 1: carol@example.com (go)"
    assert re.search(r"^\s*\d+\s.*\sgranted(\s|$)", table, re.MULTILINE)  # the timeline

    end = shown(stack, ALICE, rid)["end_at"]
    more = ("--duration", "PT30M", "--justification", "more")
    ext = ok(as_user(stack, ALICE, "request", "extend", rid, *more))
    assert ext == f"{rid}: active; extension waiting for approval (0 of 1)\n"
    ok(as_user(stack, CAROL, "approve", rid))
    new_end = wait_for(lambda: (e := shown(stack, ALICE, rid)["end_at"]) != end and e)
    assert datetime.fromisoformat(new_end) - datetime.fromisoformat(end) == timedelta(minutes=30)

    revoked = ok(as_user(stack, ALICE, "request", "revoke", rid, "--comment", "done"))
    assert re.fullmatch(rf"{rid}: revok(ing|ed)\n", revoked)
    wait_for(lambda: shown(stack, ALICE, rid)["status"] == "revoked", 30, 0.2)
    assert not stack.assigned("sandbox", "AdministratorAccess", ALICE)
    table = ok(as_user(stack, ALICE, "request", "show", rid))
    assert (row(table, "status"), row(table, "revoked_by")) == ("revoked", ALICE)
    listed = ok(as_user(stack, ALICE, "request", "list", "--status", "revoked"))
    assert re.search(rf"^{rid}\s+revoked\s+{re.escape(ALICE)}\s+sandbox\s", listed, re.MULTILINE)


def api_error(stack: Stack, user: str, path: str) -> str:
    with stack.client(user) as c:
        body = c.post(path, json={"comment": None}).json()
    return f"{body['error']}: {body['detail']}\n"


def test_a_refusal_exits_1_with_the_apis_detail_as_is(stack: Stack) -> None:
    rid = create(stack, ALICE, "ReadOnly")["id"]
    for user, action in ((ALICE, "approve"), (BOB, "reject")):
        refused = as_user(stack, user, action, rid)
        assert (refused.returncode, refused.stdout) == (1, "")
        assert refused.stderr == api_error(stack, user, f"/v1/requests/{rid}/{action}")
    assert ok(as_user(stack, ALICE, "request", "cancel", rid)) == f"{rid}: cancelled\n"
    again = as_user(stack, ALICE, "request", "cancel", rid)
    assert again.returncode == 1
    assert again.stderr == api_error(stack, ALICE, f"/v1/requests/{rid}/cancel")
    assert again.stderr.startswith("conflict: ")


def test_without_a_token_exits_1_and_says_to_set_one(stack: Stack) -> None:
    done = cli(stack.base, "", "request", "list")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "missing_token: send Authorization: Bearer <token>",
        "hint: set ELEVATE_TOKEN (or pass --token) to a valid bearer token",
    ]
    rid = create(stack, ALICE, "ReadOnly")["id"]
    flag = cli(stack.base, "", "request", "show", rid, "--json", "--token", stack.token(ALICE))
    assert json.loads(ok(flag))["status"] == "pending_approval"
    ok(as_user(stack, ALICE, "request", "cancel", rid))


def test_list_json_is_the_apis_page(stack: Stack) -> None:
    rid = create(stack, BOB, "ReadOnly")["id"]
    page = json.loads(ok(as_user(stack, BOB, "request", "list", "--json", "--limit", "1")))
    assert [r["id"] for r in page["items"]] == [rid]
    assert set(page) == {"items", "next_cursor"}
    ok(as_user(stack, BOB, "request", "cancel", rid))


def test_a_retried_create_with_the_same_key_creates_once(stack: Stack) -> None:
    first = create(stack, BOB, "ReadOnly", "--idempotency-key", "cli-test-key")
    second = create(stack, BOB, "ReadOnly", "--idempotency-key", "cli-test-key")
    assert first["id"] == second["id"]
    ok(as_user(stack, BOB, "request", "cancel", first["id"]))


def test_usage_errors_exit_2(stack: Stack) -> None:
    unknown = as_user(
        stack, ALICE, "request", "create", "--account", "nowhere", "--permission-set", "ReadOnly",
        "--duration", "PT1H", "--justification", "x",
    )  # fmt: skip
    assert unknown.returncode == 2
    assert "no account named 'nowhere'" in unknown.stderr
    assert as_user(stack, ALICE, "request", "list", "--status", "sleeping").returncode == 2


def test_an_unreachable_api_exits_3() -> None:
    url = f"http://127.0.0.1:{processes.free_port()}"
    done = cli(url, "token", "request", "show", "some-id")
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr.startswith(f"cannot reach {url}")


class _Unavailable(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"error": "database_unavailable", "detail": "the database is not answering"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def unavailable_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_api_answering_503_exits_3_with_its_detail(unavailable_api: str) -> None:
    done = cli(unavailable_api, "token", "request", "list")
    assert done.returncode == 3
    assert done.stderr == "database_unavailable: the database is not answering\n"
