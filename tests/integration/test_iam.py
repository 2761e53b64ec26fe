"""What only the IAM provider has: a catalog file checked against AWS at start-up, and IAM
users as principals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_lifecycle import request_access, status_of
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration

BROKEN = """
accounts:
  - id: "123456789012"
    name: prod
  - id: "222222222222"
    name: sandbox
    role_arn: arn:aws:iam::222222222222:role/elevate-worker
permission_sets:
  - name: ReadOnly
    group: elevate-readonly
  - name: Ops
    group: elevate-ops
  - name: Billing
    policy_arn: arn:aws:iam::aws:policy/NoSuchPolicy
"""


@pytest.mark.parametrize("command", [["worker"], ["api", "--port", "0"]])
def test_a_catalog_naming_a_missing_group_stops_start_up(
    iam_stack: Stack, tmp_path: Path, command: list[str]
) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(BROKEN)
    env = {**iam_stack.env, "ELEVATE_IAM_CATALOG": str(catalog)}
    done = subprocess.run(
        [sys.executable, "-m", "elevate", *command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    for missing in (
        "group elevate-ops in account prod (123456789012)",
        "group elevate-ops in account sandbox (222222222222)",
        "policy arn:aws:iam::aws:policy/NoSuchPolicy in account prod",
    ):
        assert missing in done.stderr
    assert "elevate-readonly" not in done.stderr


def test_a_user_without_an_iam_user_gets_unknown_principal(iam_stack: Stack) -> None:
    with iam_stack.client("mallory@example.com", ["developers"]) as c:
        resp = c.post(
            "/v1/requests",
            json={
                "account_id": iam_stack.org.accounts["prod"],
                "permission_set": "ReadOnly",
                "duration": "PT1H",
                "justification": "who am I",
            },
        )
    assert resp.status_code == 422
    assert resp.json()["error"] == "unknown_principal"
    assert "IAM user" in resp.json()["detail"]


def test_the_catalog_is_what_the_api_serves(iam_stack: Stack) -> None:
    with iam_stack.client("alice@example.com") as c:
        accounts = c.get("/v1/accounts").json()["items"]
        sets = c.get("/v1/permission-sets").json()["items"]
    assert {a["name"]: a["id"] for a in accounts} == iam_stack.org.accounts
    assert {p["name"]: p["arn"] for p in sets} == iam_stack.org.permission_sets


def test_a_policy_grant_in_an_assumed_account(iam_stack: Stack) -> None:
    rid = request_access(iam_stack, "alice@example.com", "sandbox", "AdministratorAccess", "PT3S")
    wait_for(lambda: status_of(iam_stack, rid) == "active", 20, 0.05)
    assert iam_stack.assigned("sandbox", "AdministratorAccess", "alice@example.com")
    assert not iam_stack.assigned("prod", "AdministratorAccess", "alice@example.com")
    wait_for(lambda: status_of(iam_stack, rid) == "ended", 30, 0.1)
    assert not iam_stack.assigned("sandbox", "AdministratorAccess", "alice@example.com")
