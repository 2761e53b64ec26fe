"""The metric counters move with every write of a request, and agree with a recount from rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from elevate import counters
from elevate.db import make_engine, migrate
from elevate.models import AccessRequest, AuditEvent
from tests.databases import fresh_database
from tests.rows import insert_request

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LAG = "elevate_revoke_lag_seconds"
TO_ACTIVE = "elevate_approve_to_active_seconds"


@pytest.fixture
def db(tmp_path: Path):
    with fresh_database(tmp_path) as url:
        engine = make_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


def values(engine: sa.Engine) -> dict[counters.Key, float]:
    with engine.connect() as conn:
        return {k: v for k, v in counters.read(conn).items() if v}


def update(engine: sa.Engine, rid: str, **fields: object) -> None:
    with Session(engine) as session:
        row = session.get(AccessRequest, rid)
        assert row is not None
        for name, value in fields.items():
            setattr(row, name, value)
        session.add(row)
        session.commit()


def test_a_lifecycle_moves_status_and_latencies(db):
    rid = insert_request(db, created_at=T0)
    assert values(db)[(counters.REQUESTS, "pending_approval")] == 1

    update(
        db,
        rid,
        status="active",
        approved_at=T0,
        grant_due_at=T0,
        granted_at=T0 + timedelta(seconds=2),
    )
    v = values(db)
    assert (counters.REQUESTS, "pending_approval") not in v
    assert v[(counters.REQUESTS, "active")] == 1
    assert v[(TO_ACTIVE, "count")] == 1
    assert v[(TO_ACTIVE, "sum")] == 2
    assert (TO_ACTIVE, "1") not in v
    assert v[(TO_ACTIVE, "2.5")] == 1
    assert (LAG, "count") not in v  # not ended yet

    end = T0 + timedelta(hours=1)
    update(db, rid, status="ended", end_at=end, revoked_at=end + timedelta(seconds=40))
    v = values(db)
    assert v[(counters.REQUESTS, "ended")] == 1
    assert (counters.REQUESTS, "active") not in v
    assert v[(LAG, "count")] == 1
    assert v[(LAG, "sum")] == 40
    assert v[(LAG, "60")] == 1
    assert (LAG, "30") not in v
    assert v[(TO_ACTIVE, "count")] == 1  # counted once, not again at the next write


def test_a_rolled_back_write_takes_its_counts_back(db):
    rid = insert_request(db)
    before = values(db)
    with Session(db) as session:
        row = session.get(AccessRequest, rid)
        row.status = "cancelled"
        session.add(row)
        session.flush()  # the counters moved inside the transaction ...
        session.rollback()  # ... and are taken back with it
    assert values(db) == before


def test_a_deleted_request_is_no_longer_counted(db):
    rid = insert_request(db)
    with Session(db) as session:
        session.delete(session.get(AccessRequest, rid))
        session.commit()
    assert (counters.REQUESTS, "pending_approval") not in values(db)


def test_rebuild_agrees_with_the_counts_kept_and_counts_rows_written_with_sql(db):
    a = insert_request(db, created_at=T0)
    update(
        db,
        a,
        status="active",
        approved_at=T0,
        grant_due_at=T0,
        granted_at=T0 + timedelta(seconds=1),
    )
    b = insert_request(db, created_at=T0)
    update(db, b, status="rejected")
    with Session(db) as session:
        session.add(
            AuditEvent(
                seq=1, at=T0, actor="x", action="reconcile_orphan_revoked", prev_hash="0", hash="1"
            )
        )
        session.commit()
    kept = values(db)
    assert kept[(counters.AUDIT_EVENTS, "")] == 1
    assert kept[(counters.FINDINGS, "reconcile_orphan_revoked")] == 1
    with db.begin() as conn:
        counters.rebuild(conn)
    assert values(db) == kept
    with db.begin() as conn:  # a bulk import bypasses the ORM: only a rebuild sees it
        conn.execute(sa.update(AccessRequest.__table__).values(status="ended"))
        counters.rebuild(conn)
    assert values(db)[(counters.REQUESTS, "ended")] == 2
