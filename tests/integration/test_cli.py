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


def bare(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`elevate …` from a fresh shell: no AWS credentials, no ELEVATE_* but those given."""
    home = Path(env.pop("HOME", "/nonexistent"))
    base = {"PATH": os.environ["PATH"], "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.run(
        [ELEVATE, *args], env={**base, **env}, cwd=home if home.exists() else None,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert (done.returncode, done.stdout) == (code, ""), (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("elevate: ")
    assert "; hint: " in lines[0]
    return lines[0]


def test_missing_aws_credentials_is_one_line_exit_2(tmp_path: Path) -> None:
    free = f"http://127.0.0.1:{processes.free_port()}"
    line = one_line(
        bare("assignments", "123456789012", AWS_ENDPOINT_URL=free, HOME=str(tmp_path)), 2
    )
    assert line.startswith("elevate: no AWS credentials found; hint: ")
    assert line.endswith("set -a; . .elevate/env; set +a")


def test_unreachable_endpoints_are_one_line_exit_3(tmp_path: Path) -> None:
    free = f"127.0.0.1:{processes.free_port()}"
    creds = {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    aws = one_line(
        bare("assignments", "123456789012", AWS_ENDPOINT_URL=f"http://{free}", **creds), 3
    )
    assert aws.startswith(f"elevate: cannot reach AWS at http://{free}")
    db = f"postgresql+psycopg://nobody@{free}/nothing"
    assert "the database is not answering" in one_line(
        bare("db", "current", ELEVATE_DATABASE_URL=db), 3
    )
    api = one_line(bare("policy", "export", "--url", f"http://{free}", "--token", "t"), 3)
    assert api.startswith(f"elevate: cannot reach http://{free}/")
    worker = bare(
        "worker", HOME=str(tmp_path), ELEVATE_TEMPORAL_ADDRESS=free,
        ELEVATE_WORKER_METRICS_PORT="0", AWS_ENDPOINT_URL=f"http://{free}",
        ELEVATE_MESSAGE_KEY="k" * 32, **creds,
    )  # fmt: skip
    assert worker.returncode == 3
    assert "Traceback" not in worker.stderr
    assert worker.stderr.splitlines()[-1].startswith("elevate: cannot reach Temporal: ")


def test_a_bad_setting_is_one_line_naming_it_exit_2() -> None:
    line = one_line(bare("db", "current", ELEVATE_MAX_DURATION="soon"), 2)
    assert line.startswith("elevate: bad configuration: ELEVATE_MAX_DURATION: ")


def test_a_bad_iam_catalog_is_one_line_exit_2(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("accounts: [{id: '12', name: x}]\npermission_sets: []\n")
    done = bare(
        "assignments", "123456789012", ELEVATE_PROVIDER="iam", ELEVATE_IAM_CATALOG=str(catalog)
    )
    assert "accounts" in one_line(done, 2)


class _AccessDenied(BaseHTTPRequestHandler):
    """AWS's JSON protocol refusing every call, as an IAM policy without sso:List* would."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"] or 0))
        body = b'{"__type": "AccessDeniedException", "message": "not authorized to list"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-ErrorType", "AccessDeniedException")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_aws_refusing_is_one_line_exit_1() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AccessDenied)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = bare(
            "assignments", "123456789012", AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.server_address[1]}",
            AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1",
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    line = one_line(done, 1)
    assert line.startswith(
        "elevate: AWS refused ListInstances: AccessDeniedException: not authorized"
    )
