"""The OpenAPI document tells the truth: schemathesis, every check, against the real stack."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import Stack

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
ADMIN = "dave@example.com"
EXAMPLES = 10  # per operation and phase: ~30 s on a 2-core box


def _policies(c: httpx.Client) -> dict[str, dict[str, dict[str, Any]]]:
    meta = ("name", "created_at", "updated_at")
    return {
        kind: {
            p["name"]: {k: v for k, v in p.items() if k not in meta}
            for p in c.get(f"/v1/policies/{kind}", params={"limit": 500}).json()["items"]
        }
        for kind in ("eligibility", "approval")
    }


@pytest.fixture
def admin(stack: Stack) -> Iterator[httpx.Client]:
    """An admin's client; what schemathesis changes (settings, policies) is put back after,
    so the session's other tests still run in bootstrap mode with their limits."""
    with stack.client(ADMIN) as c:
        settings, policies = c.get("/v1/settings").json(), _policies(c)
        yield c
        assert c.patch("/v1/settings", json=settings).status_code == 200
        for kind, now in _policies(c).items():
            for name in now:
                if name not in policies[kind]:
                    c.delete(f"/v1/policies/{kind}/{name}", params={"allow_bootstrap": "true"})
            for name, body in policies[kind].items():
                if now.get(name) != body:
                    c.put(f"/v1/policies/{kind}/{name}", json=body)
        assert _policies(c) == policies


def test_schemathesis_finds_nothing(stack: Stack, admin: httpx.Client, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
    }
    args = [
        SCHEMATHESIS, "--config-file", str(HERE / "schemathesis.toml"), "run",
        f"{stack.base}/openapi.json", "-H", f"Authorization: Bearer {stack.token(ADMIN)}",
        "--checks", "all", "--max-examples", str(EXAMPLES), "--no-color", "--seed", "1",
    ]  # fmt: skip
    done = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "failure" not in lines[-1], lines[-1]
    print(*lines[lines.index("Test cases:") :], sep="\n")  # noqa: T201 - the figures, with -s


def test_errors_are_declared_with_the_body_the_api_sends(stack: Stack) -> None:
    doc = httpx.get(f"{stack.base}/openapi.json").json()
    assert not {"HTTPValidationError", "ValidationError"} & set(doc["components"]["schemas"])
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == error_body, (method, path, status)
    answers = doc["paths"]["/v1/requests/{request_id}/approve"]["post"]["responses"]
    assert set(answers) == {"200", "400", "401", "403", "404", "409", "413", "422", "503"}
    assert set(doc["paths"]["/v1/settings"]["get"]["responses"]) == {"200", "401", "503"}


def test_the_schema_states_what_the_api_refuses(stack: Stack) -> None:
    doc = httpx.get(f"{stack.base}/openapi.json").json()
    params = {p["name"]: p["schema"] for p in doc["paths"]["/v1/requests"]["get"]["parameters"]}
    assert params["awaiting"]["anyOf"][0] == {"type": "string", "const": "me"}
    limit = params["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 500, 50)
    for body in ("EligibilityBody", "ApprovalBody"):
        scope = doc["components"]["schemas"][body]["anyOf"]
        assert {tuple(s["required"]) for s in scope} == {("accounts",), ("ous",)}
    with stack.client(ADMIN) as c:
        empty = c.put(
            "/v1/policies/approval/nowhere", json={"approvers": [{"type": "user", "name": ADMIN}]}
        )
        assert (empty.status_code, empty.json()["error"]) == (422, "invalid")
        assert c.get("/v1/requests", params={"awaiting": ""}).status_code == 422


def test_a_wrong_method_is_405_naming_every_method_of_the_path(stack: Stack) -> None:
    with stack.client(ADMIN) as c:
        resp = c.request("PATCH", "/v1/policies/approval/some-name")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "DELETE, GET, PUT"
    assert resp.json() == {"error": "method_not_allowed", "detail": "Method Not Allowed"}
