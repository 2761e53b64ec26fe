"""Policies, quorum and settings over HTTP against the running stack.

Stored policies end bootstrap for every test in the session, so each test here removes all
policies (and setting overrides) it leaves behind.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.stack import Stack, wait_for

ALICE, BOB, CAROL, ERIN, DAVE, AUDREY = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "erin@example.com",
    "dave@example.com",
    "audrey@example.com",
)


def _wipe(admin: httpx.Client) -> None:
    for kind in ("eligibility", "approval"):
        for item in admin.get(f"/v1/policies/{kind}", params={"limit": 500}).json()["items"]:
            path = f"/v1/policies/{kind}/{item['name']}"
            assert admin.delete(path, params={"allow_bootstrap": "true"}).status_code == 204


@pytest.fixture
def admin(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(DAVE) as client:
        _wipe(client)
        yield client
        _wipe(client)
        client.patch("/v1/settings", json={"comment_required": False, "ticket_required": False})


def ask(
    stack: Stack,
    user: str,
    account: str,
    pset: str = "ReadOnly",
    duration: str = "PT1H",
    **extra: object,
) -> httpx.Response:
    with stack.client(user) as c:
        return c.post(
            "/v1/requests",
            json={
                "account_id": stack.org.accounts[account],
                "permission_set": pset,
                "duration": duration,
                "justification": "policy test",
                **extra,
            },
        )


def test_eligible_user_gets_201_and_others_403(stack: Stack, admin: httpx.Client) -> None:
    resp = admin.put(
        "/v1/policies/eligibility/devs-sandbox",
        json={
            "principals": [{"type": "group", "name": "developers"}],
            "ous": [stack.org.ous["Sandbox"]],
            "permission_sets": ["ReadOnly"],
            "max_duration": "PT2H",
        },
    )
    assert resp.status_code == 201, resp.text
    assert ask(stack, BOB, "sandbox").status_code == 201
    assert ask(stack, BOB, "prod").status_code == 403
    assert ask(stack, BOB, "sandbox", "AdministratorAccess").status_code == 403
    refused = ask(stack, CAROL, "sandbox")  # not a developer
    assert refused.status_code == 403
    assert refused.json()["error"] == "not_eligible"
    too_long = ask(stack, BOB, "sandbox", duration="PT3H")
    assert too_long.status_code == 422
    assert too_long.json()["fields"] == ["duration"]
    with stack.client(BOB) as c:
        mine = c.get("/v1/eligibility").json()["items"]
    assert [(e["account_name"], e["permission_set"], e["max_duration"]) for e in mine] == [
        ("sandbox", "ReadOnly", "PT2H")
    ]


def test_two_of_n_quorum(stack: Stack, admin: httpx.Client) -> None:
    assert (
        admin.put(
            "/v1/policies/approval/staging-two",
            json={
                "accounts": [stack.org.accounts["staging"]],
                "approvers": [{"type": "group", "name": "elevate-approvers"}],
                "approvals_required": 2,
            },
        ).status_code
        == 201
    )
    created = ask(stack, ALICE, "staging", "AdministratorAccess", "PT3S")
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert created.json()["approvals_required"] == 2
    with stack.client(CAROL) as carol:
        assert carol.post(f"/v1/requests/{rid}/approve").json()["status"] == "pending_approval"
        again = carol.post(f"/v1/requests/{rid}/approve")
        assert again.status_code == 200
        assert [a["approver"] for a in again.json()["approvals"]] == [CAROL]
        assert again.json()["status"] == "pending_approval"
    with stack.client(DAVE) as dave:  # an admin, but the policy does not name admins
        assert dave.post(f"/v1/requests/{rid}/approve").status_code == 403
    with stack.client(ERIN) as erin:
        assert erin.post(f"/v1/requests/{rid}/approve").status_code == 200
    with stack.client(ALICE) as c:
        wait_for(
            lambda: (
                c.get(f"/v1/requests/{rid}").json()["status"] in ("active", "revoking", "ended")
            ),
            20,
        )
        wait_for(lambda: c.get(f"/v1/requests/{rid}").json()["status"] == "ended", 30)
        approvals = c.get(f"/v1/requests/{rid}").json()["approvals"]
    assert sorted(a["approver"] for a in approvals) == [CAROL, ERIN]


def test_no_approver_and_waived_approval(stack: Stack, admin: httpx.Client) -> None:
    admin.put(
        "/v1/policies/approval/staging-only",
        json={
            "accounts": [stack.org.accounts["staging"]],
            "approvers": [{"type": "user", "name": CAROL}],
        },
    )
    refused = ask(stack, ALICE, "sandbox")
    assert refused.status_code == 422
    assert refused.json()["error"] == "no_approver"
    admin.put(
        "/v1/policies/eligibility/alice-sandbox-self",
        json={
            "principals": [{"type": "user", "name": ALICE}],
            "accounts": [stack.org.accounts["sandbox"]],
            "max_duration": "PT1H",
            "approval_required": False,
        },
    )
    waived = ask(stack, ALICE, "sandbox", duration="PT2S")
    assert waived.status_code == 201, waived.text
    assert waived.json()["approvals_required"] == 0
    with stack.client(ALICE) as c:
        wait_for(
            lambda: c.get(f"/v1/requests/{waived.json()['id']}").json()["status"] == "ended", 30
        )


def test_only_admins_write_policies_and_invalid_ones_are_422(
    stack: Stack, admin: httpx.Client
) -> None:
    body = {
        "principals": [{"type": "group", "name": "developers"}],
        "accounts": [stack.org.accounts["prod"]],
        "max_duration": "PT1H",
    }
    for user in (ALICE, AUDREY, CAROL):
        with stack.client(user) as c:
            assert c.put("/v1/policies/eligibility/sneaky", json=body).status_code == 403
    with stack.client(ALICE) as c:
        assert c.get("/v1/policies/eligibility").status_code == 403
    with stack.client(AUDREY) as c:
        assert c.get("/v1/policies/eligibility").status_code == 200
    cases = [
        ({"accounts": ["999999999999"]}, "accounts"),
        ({"accounts": [], "ous": ["ou-zzzz-nonexist"]}, "ous"),
        ({"permission_sets": ["NoSuchSet"]}, "permission_sets"),
        ({"max_duration": "four hours"}, "max_duration"),
        ({"principals": [{"type": "robot", "name": "x"}]}, "principals.0.type"),
    ]
    for over, field in cases:
        resp = admin.put("/v1/policies/eligibility/bad", json={**body, **over})
        assert resp.status_code == 422, (over, resp.text)
        assert field in resp.json()["fields"], (over, resp.json())
    assert admin.get("/v1/policies/eligibility/bad").status_code == 404


def test_settings_are_admin_only_validated_and_enforced(stack: Stack, admin: httpx.Client) -> None:
    with stack.client(ALICE) as c:
        assert c.get("/v1/settings").json()["max_duration"] == "PT9H"
        assert c.patch("/v1/settings", json={"comment_required": True}).status_code == 403
    bad = admin.patch("/v1/settings", json={"min_duration": "PT10H"})
    assert bad.status_code == 422
    assert bad.json()["fields"] == ["min_duration"]
    assert admin.patch("/v1/settings", json={"comment_required": True}).json()["comment_required"]
    rid = ask(stack, ALICE, "sandbox").json()["id"]
    with stack.client(CAROL) as c:
        resp = c.post(f"/v1/requests/{rid}/reject")
        assert resp.status_code == 422
        assert resp.json()["fields"] == ["comment"]
        assert c.post(f"/v1/requests/{rid}/reject", json={"comment": "no"}).status_code == 200
    with stack.client(AUDREY) as c:
        changes = c.get("/v1/audit", params={"actor": DAVE, "limit": 20}).json()["items"]
    patched = [e for e in changes if e["action"] == "settings_changed"]
    assert patched[0]["details"]["comment_required"] == {"from": False, "to": True}


def test_policy_apply_is_idempotent(stack: Stack, admin: httpx.Client, tmp_path: Path) -> None:
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(
        yaml.safe_dump(
            {
                "eligibility": {
                    "oncall": {
                        "principals": [{"type": "group", "name": "developers"}],
                        "ous": [stack.org.ous["Workloads"]],
                        "permission_sets": ["ReadOnly"],
                        "max_duration": "PT240M",
                    }
                },
                "approval": {
                    "workloads": {
                        "ous": [stack.org.ous["Workloads"]],
                        "approvers": [{"type": "group", "name": "elevate-approvers"}],
                        "approvals_required": 2,
                    }
                },
            }
        )
    )
    env = {"ELEVATE_URL": stack.base, "ELEVATE_TOKEN": stack.token(DAVE)}

    def run(*args: str, code: int = 0) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "elevate", "policy", *args],
            env={**stack.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == code, done.stderr
        return done.stdout + done.stderr

    assert "+ eligibility/oncall" in run("apply", str(policy_file), "--dry-run")
    assert admin.get("/v1/policies/eligibility").json()["items"] == []
    first = run("apply", str(policy_file))
    assert "+ eligibility/oncall" in first
    assert "+ approval/workloads" in first
    assert run("apply", str(policy_file)).strip() == "no changes"
    assert admin.get("/v1/policies/eligibility/oncall").json()["max_duration"] == "PT4H"
    exported = yaml.safe_load(run("export"))
    assert exported["approval"]["workloads"]["approvals_required"] == 2
    policy_file.write_text(yaml.safe_dump({"approval": exported["approval"]}))
    refused = run("apply", str(policy_file), code=1)
    assert "last_policy" in refused
    assert admin.get("/v1/policies/eligibility/oncall").status_code == 200
    removed = run("apply", str(policy_file), "--allow-bootstrap")
    assert removed.splitlines()[0] == "- eligibility/oncall"
