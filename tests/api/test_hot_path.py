"""The API's hot path: pages, eligibility and /metrics cost a fixed number of queries, not a
number that grows with the organization; the catalog loads once for concurrent misses."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from moto import mock_aws
from sqlmodel import Session

from api.auth import User
from api.services import policies
from api.services.metrics import ProjectionCollector
from api.services.requests import list_requests
from elevate.db import make_engine, migrate
from elevate.models import AccessRequest, Approval, StoredPolicy
from elevate.policy_schema import SettingsBody
from elevate.providers.aws import client
from elevate.providers.catalog import Account, Catalog, PermissionSet
from elevate.settings import Settings
from tests.databases import fresh_database

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ADMIN = User("dave@example.com", ("elevate-admins",), True, False)
CAROL = User("carol@example.com", ("elevate-approvers",), False, False)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    with fresh_database(tmp_path) as url:
        engine = make_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


@contextmanager
def counted(engine: sa.Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def add_request(session: Session, n: int, **over: Any) -> AccessRequest:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "requester": "alice@example.com",
        "principal_id": "p",
        "account_id": "111111111111",
        "account_name": "prod",
        "permission_set": "ReadOnly",
        "permission_set_arn": "arn:ps",
        "instance_arn": "arn:inst",
        "duration_seconds": 3600,
        "justification": "why",
        "status": "pending_approval",
        "approvers": [{"type": "group", "name": "elevate-approvers"}],
        "created_at": NOW - timedelta(minutes=n),
        "workflow_id": "wf",
    }
    row = AccessRequest(**{**fields, **over})
    session.add(row)
    return row


def test_a_page_reads_its_approvals_in_one_query(db: sa.Engine) -> None:
    with Session(db) as s:
        rows = [add_request(s, i, status="ended") for i in range(30)]
        for i, row in enumerate(rows):
            s.add(Approval(request_id=row.id, approver=f"u{i}@example.com", at=NOW))
        s.commit()
        with counted(db) as statements:
            page = list_requests(
                s, ADMIN, status=None, requester=None, account_id=None, awaiting=None,
                limit=20, cursor=None,
            )  # fmt: skip
        assert len(statements) <= 2, statements  # the page, then all of its approvals
        assert [r.id for r in page["items"]] == [r.id for r in rows[:20]]
        assert all(
            [a.approver for a in r.approvals] == [f"u{i}@example.com"]
            for i, r in enumerate(page["items"])
        )
        rest = list_requests(
            s, ADMIN, status=None, requester=None, account_id=None, awaiting=None,
            limit=20, cursor=page["next_cursor"],
        )  # fmt: skip
        assert [r.id for r in rest["items"]] == [r.id for r in rows[20:]]
        assert rest["next_cursor"] is None


def awaiting(s: Session, user: User, limit: int = 50, cursor: str | None = None) -> Any:
    return list_requests(
        s, user, status=None, requester=None, account_id=None, awaiting="me",
        limit=limit, cursor=cursor,
    )  # fmt: skip


def test_awaiting_me_lists_exactly_what_the_caller_may_decide(db: sa.Engine) -> None:
    with Session(db) as s:
        by_group = add_request(s, 1)
        by_name = add_request(s, 2, approvers=[{"type": "user", "name": "carol@example.com"}])
        add_request(s, 3, approvers=[{"type": "group", "name": "elevate_approvers"}])  # "_" ≠ "-"
        add_request(s, 4, approvers=[{"type": "user", "name": "elevate-approvers"}])  # not a user
        add_request(s, 5, status="active")
        add_request(s, 6, requester="carol@example.com")  # nobody decides their own
        decided = add_request(s, 7)
        s.add(Approval(request_id=decided.id, approver="carol@example.com", at=NOW))
        later = [add_request(s, 10 + i) for i in range(3)]
        s.commit()
        first = awaiting(s, CAROL, limit=2)
        rest = awaiting(s, CAROL, limit=50, cursor=first["next_cursor"])
    wanted = [by_group.id, by_name.id, *(r.id for r in later)]
    assert [r.id for r in first["items"] + rest["items"]] == wanted
    assert rest["next_cursor"] is None


def offers(session: Session, user: User, catalog: Any) -> list[dict[str, Any]]:
    eff = SettingsBody(
        max_duration=timedelta(hours=8),
        min_duration=timedelta(minutes=5),
        approval_timeout=timedelta(hours=1),
        ticket_required=False,
        comment_required=False,
    )
    return policies.my_eligibility(session, user, catalog, eff)


@dataclass
class Org:
    """The organization as the catalog reports it (AWS is not what this test is about)."""

    accts: list[Account]
    psets: list[PermissionSet]
    kind: str = "identity_center"

    def accounts(self, refresh: bool = False) -> list[Account]:
        return self.accts

    def permission_sets(self, refresh: bool = False) -> list[PermissionSet]:
        return self.psets

    def resolve_principal(self, username: str) -> str:
        return "u-" + username


def ou(n: int) -> str:
    return f"ou-abcd-{n:08d}"


def test_eligibility_costs_two_queries_and_matches_each_target(db: sa.Engine) -> None:
    org = Org(
        [Account(f"{i:012d}", f"a{i}", "/", (ou(i % 5), "r-root")) for i in range(40)],
        [PermissionSet(f"Set{j}", f"arn:{j}", None) for j in range(6)],
    )
    with Session(db) as s:
        for i in range(12):
            scope = {"accounts": [f"{i:012d}"] if i % 4 == 0 else [], "ous": [ou(i % 5)]}
            group = "developers" if i % 2 else "others"
            s.add(StoredPolicy(kind="eligibility", name=f"e{i}", body={
                **scope, "permission_sets": [f"Set{i % 6}"], "max_duration": f"PT{i + 1}H",
                "principals": [{"type": "group", "name": group}], "approval_required": i % 3 > 0,
                "ticket_required": False,
            }))  # fmt: skip
        s.add(StoredPolicy(kind="approval", name="a", body={
            "accounts": [], "ous": [ou(1), ou(3)], "permission_sets": [],
            "approvers": [{"type": "group", "name": "elevate-approvers"}], "approvals_required": 1,
        }))  # fmt: skip
        s.commit()
        alice = User("alice@example.com", ("developers",), False, False)
        with counted(db) as statements:
            got = offers(s, alice, org)
        assert len(statements) == 2, statements  # eligibility policies, approval policies
        eff = SettingsBody(
            max_duration=timedelta(hours=8), min_duration=timedelta(minutes=5),
            approval_timeout=timedelta(hours=1), ticket_required=False, comment_required=False,
        )  # fmt: skip
        approval = policies.load(s, "approval")
        expected = []
        for a in org.accts:
            for p in org.psets:
                target = policies.target_of(a, p)
                elig = policies.eligibility_for(s, alice, target, eff)
                if elig is None or (
                    elig.approval_required and not policies.policy.approval_rule(target, approval)
                ):
                    continue
                expected.append((a.id, p.name, elig.max_duration, elig.approval_required))
    assert expected  # the policies do offer something, and some of it waives approval
    assert [(o["account_id"], o["permission_set"], o["max_duration"], o["approval_required"])
            for o in got] == expected  # fmt: skip


def metric(families: list[Any], name: str) -> dict[str, float]:
    family = next(f for f in families if f.name == name)
    return {s.name + str(sorted(s.labels.items())): s.value for s in family.samples}


def test_metrics_histograms_are_aggregated_by_the_database(db: sa.Engine) -> None:
    with Session(db) as s:
        for i, lag in enumerate([0.05, 1.0, 7.0, 100000.0, -3.0]):
            add_request(s, i, status="ended", end_at=NOW, revoked_at=NOW + timedelta(seconds=lag))
        add_request(s, 9, status="revoked", end_at=NOW, revoked_at=NOW + timedelta(seconds=2))
        s.commit()
    with counted(db) as statements:
        families = list(ProjectionCollector(db).collect())
    assert len(statements) <= 8, statements
    lag = metric(families, "elevate_revoke_lag_seconds")
    bucket = lambda le: lag[f"elevate_revoke_lag_seconds_bucket[('le', '{le}')]"]  # noqa: E731
    assert (bucket("0.1"), bucket("1"), bucket("5"), bucket("10"), bucket("86400")) == (
        2, 3, 3, 4, 4,
    )  # fmt: skip
    assert bucket("+Inf") == 5
    assert lag["elevate_revoke_lag_seconds_count[]"] == 5
    assert lag["elevate_revoke_lag_seconds_sum[]"] == pytest.approx(100008.05, abs=0.01)


@pytest.fixture
def orgs() -> Iterator[Any]:
    client.cache_clear()
    with mock_aws():
        made = client("organizations", "us-east-1")
        made.create_organization(FeatureSet="ALL")
        made.create_account(AccountName="prod", Email="prod@example.com")
        yield made
    client.cache_clear()


def test_concurrent_misses_load_the_catalog_once(orgs: Any) -> None:
    calls: list[str] = []
    orgs.meta.events.register(
        "before-call.organizations.ListRoots", lambda **kw: calls.append("load")
    )
    catalog = Catalog(Settings(catalog_ttl_seconds=60))
    threads = [
        threading.Thread(target=catalog.find_account, args=("999999999999",)) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1  # the first load; the misses within the TTL are answered from it
    assert catalog.find_account("999999999999") is None
    assert len(calls) == 1
    prod = next(a for a in orgs.list_accounts()["Accounts"] if a["Name"] == "prod")
    assert catalog.find_account(prod["Id"]) is not None


def test_a_stale_catalog_is_answered_at_once_and_renewed_behind(orgs: Any) -> None:
    loads: list[str] = []
    renewal_may_finish = threading.Event()

    def on_load(**_: Any) -> None:
        loads.append("load")
        if len(loads) > 1:  # the renewal: held until the stale answer has been checked
            renewal_may_finish.wait(10)

    orgs.meta.events.register("before-call.organizations.ListRoots", on_load)
    catalog = Catalog(Settings(catalog_ttl_seconds=0))  # every value is stale at once
    before = {a.name for a in catalog.accounts()}
    orgs.create_account(AccountName="added", Email="added@example.com")
    # Past its TTL: answered from the cache while the reload waits, not after it.
    assert {a.name for a in catalog.accounts()} == before
    deadline = time.monotonic() + 10
    while len(loads) < 2:  # the renewal has reached AWS and is held there
        assert time.monotonic() < deadline, "no background load started"
        time.sleep(0.01)
    assert {a.name for a in catalog.accounts()} == before
    assert len(loads) == 2  # a renewal already running: no second one
    renewal_may_finish.set()
    deadline = time.monotonic() + 10
    while "added" not in {a.name for a in catalog.accounts()}:
        assert time.monotonic() < deadline, "the background load never renewed the catalog"
        time.sleep(0.05)
    assert loads.count("load") >= 2
