"""Removing a policy never silently opens access; the reconciler manages only what is named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from activities.reconcile import managed_names
from elevate.db import make_engine, migrate
from elevate.models import StoredPolicy
from tests.databases import fresh_database
from tests.stack import Stack, wait_for

DAVE = "dave@example.com"


def _body(stack: Stack, kind: str) -> dict[str, object]:
    where = {"accounts": [stack.org.accounts["sandbox"]], "permission_sets": ["ReadOnly"]}
    if kind == "eligibility":
        return {**where, "principals": [{"type": "group", "name": "developers"}]}
    return {**where, "approvers": [{"type": "group", "name": "elevate-approvers"}]}


@pytest.fixture
def admin(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(DAVE) as client:
        yield client
        for kind in ("eligibility", "approval"):
            for name in ("failsafe-a", "failsafe-b"):
                client.delete(f"/v1/policies/{kind}/{name}", params={"allow_bootstrap": "true"})


@pytest.mark.parametrize("kind", ["eligibility", "approval"])
def test_the_last_policy_of_a_kind_stays_unless_bootstrap_is_meant(
    stack: Stack, admin: httpx.Client, kind: str
) -> None:
    for name in ("failsafe-a", "failsafe-b"):
        assert admin.put(f"/v1/policies/{kind}/{name}", json=_body(stack, kind)).status_code == 201
    assert admin.delete(f"/v1/policies/{kind}/failsafe-a").status_code == 204
    refused = admin.delete(f"/v1/policies/{kind}/failsafe-b")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "last_policy"
    assert admin.get(f"/v1/policies/{kind}/failsafe-b").status_code == 200
    meant = admin.delete(f"/v1/policies/{kind}/failsafe-b", params={"allow_bootstrap": "true"})
    assert meant.status_code == 204
    assert admin.get(f"/v1/policies/{kind}").json()["items"] == []
    # The admin's own newest events (other requests' workflows write events meanwhile).
    mine = admin.get("/v1/audit", params={"limit": 2, "actor": DAVE}).json()["items"]
    assert [e["action"] for e in mine] == ["bootstrap_restored", "policy_deleted"]
    assert mine[0]["details"] == {"kind": kind, "deleted": "failsafe-b"}


def test_get_reconcile_names_the_managed_permission_sets(stack: Stack) -> None:
    with stack.client(DAVE) as c:
        run = wait_for(lambda: c.get("/v1/reconcile").json().get("managed_permission_sets"), 30)
    assert run == ["AdministratorAccess", "ReadOnly"]  # ELEVATE_RECONCILE_PERMISSION_SETS


def test_the_reconciler_never_manages_all_by_omission(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        engine = make_engine(url)
        migrate(engine)
        with Session(engine) as s:
            assert managed_names(s, []) == []  # no policy: nothing, not everything
            s.add(StoredPolicy(kind="eligibility", name="any-set", body={"permission_sets": []}))
            s.add(StoredPolicy(kind="approval", name="ro", body={"permission_sets": ["ReadOnly"]}))
            s.commit()
            assert managed_names(s, []) == ["ReadOnly"]
            assert managed_names(s, ["Billing"]) == ["Billing"]
        engine.dispose()
