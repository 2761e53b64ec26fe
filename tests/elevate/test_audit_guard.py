"""Migration 0002: PostgreSQL refuses UPDATE, DELETE and TRUNCATE of audit_events; SQLite can't."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from elevate.db import MIGRATIONS
from tests.elevate.test_audit_chain import EVENTS, SEQ, append, is_pg, refused, row, tampering


def migration() -> ModuleType:
    path = MIGRATIONS / "versions" / "0002_audit_guard.py"
    spec = importlib.util.spec_from_file_location("audit_guard", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def triggers(conn: sa.Connection) -> int:
    if is_pg(conn):
        sql = "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass"
        return int(conn.execute(sa.text(sql + " AND NOT tgisinternal")).scalar_one())
    sql = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'"
    return int(conn.execute(sa.text(sql)).scalar_one())


def test_postgresql_refuses_every_change_and_truncate(engine: sa.Engine) -> None:
    if not is_pg(engine):
        pytest.skip("the append-only trigger exists on PostgreSQL only")
    seq = append(engine, 1)[0]
    with tampering(engine) as conn:
        refused(conn, sa.update(EVENTS).where(SEQ == seq).values(actor="mallory@example.com"))
        refused(conn, sa.delete(EVENTS).where(SEQ == seq))
        refused(conn, sa.text("TRUNCATE audit_events"))
        assert row(conn, seq).actor != "mallory@example.com"


def test_sqlite_has_no_guard(engine: sa.Engine) -> None:
    """Whoever can write the file can drop a trigger too; `verify` is the guarantee there."""
    if is_pg(engine):
        pytest.skip("PostgreSQL has the guard")
    seq = append(engine, 1)[0]
    with tampering(engine) as conn:
        assert triggers(conn) == 0
        edit = sa.update(EVENTS).where(SEQ == seq).values(actor="mallory@example.com")
        assert conn.execute(edit).rowcount == 1


def test_downgrade_drops_the_guard_and_upgrade_restores_it(engine: sa.Engine) -> None:
    expected = 2 if is_pg(engine) else 0
    module = migration()
    # DDL is transactional on both databases: the rollback of `tampering` undoes it.
    with tampering(engine) as conn, Operations.context(MigrationContext.configure(conn)):
        assert triggers(conn) == expected
        module.downgrade()
        assert triggers(conn) == 0
        module.upgrade()
        assert triggers(conn) == expected
