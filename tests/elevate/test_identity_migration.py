"""Migration 0007: rows stored before usernames were canonical become canonical."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from elevate.db import make_engine, migrate
from elevate.models import AccessRequest, Approval, IdempotencyKey, StoredPolicy
from tests.databases import fresh_database
from tests.rows import insert_request


@pytest.fixture
def old_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    with fresh_database(tmp_path) as url:
        engine = make_engine(url)
        migrate(engine, "0006")
        yield engine
        engine.dispose()


def test_stored_names_are_folded_and_duplicate_approvals_merge(old_engine: sa.Engine) -> None:
    rid = insert_request(
        old_engine,
        requester="Carol@Example.com",
        decided_by="ERIN@example.com",
        approvers=[{"type": "user", "name": "Dave@Example.com"}, {"type": "group", "name": "Ops"}],
    )
    with Session(old_engine) as s:
        s.add(Approval(request_id=rid, approver="ERIN@example.com"))
        s.add(Approval(request_id=rid, approver="erin@example.com"))
        s.add(IdempotencyKey(username="Carol@Example.com", key="k1", request_id=rid))
        s.add(
            StoredPolicy(
                kind="eligibility",
                name="p",
                body={"principals": [{"type": "user", "name": "Bob@Example.com"}]},
            )
        )
        s.commit()
    migrate(old_engine)
    with Session(old_engine) as s:
        row = s.get(AccessRequest, rid)
        assert row is not None
        assert (row.requester, row.decided_by) == ("carol@example.com", "erin@example.com")
        assert row.approvers == [
            {"type": "user", "name": "dave@example.com"},
            {"type": "group", "name": "Ops"},  # group names are not usernames: untouched
        ]
        approvals = s.exec(select(Approval).where(Approval.request_id == rid)).all()
        assert [a.approver for a in approvals] == ["erin@example.com"]
        assert s.get(IdempotencyKey, ("carol@example.com", "k1")) is not None
        policy = s.get(StoredPolicy, ("eligibility", "p"))
        assert policy is not None
        assert policy.body["principals"] == [{"type": "user", "name": "bob@example.com"}]
