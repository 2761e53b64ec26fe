"""Schema migrations: `elevate db upgrade` from empty and from the previous revision, and the
API and the worker starting at the same moment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from elevate.db import (
    SchemaOutOfDate,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    prepare_schema,
)
from elevate.models import AccessRequest
from elevate.settings import Settings
from tests.databases import fresh_database


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_migrations_on_a_fresh_sqlite_file(tmp_path: Path, attempt: int) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = f"from elevate.db import make_engine, migrate; migrate(make_engine({url!r}))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)
    ]
    results = [
        (p.wait(timeout=60), p.stderr.read().decode()[-300:] if p.stderr else "") for p in procs
    ]
    assert all(code == 0 for code, _ in results), results


def elevate(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ELEVATE_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "elevate", *args], env=env, capture_output=True, text=True
    )


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path) as url:
        yield url


def test_db_upgrade_creates_the_schema_from_empty(empty_url: str) -> None:
    assert elevate("db", "current", url=empty_url).returncode == 1  # empty: not at head
    done = elevate("db", "upgrade", url=empty_url)
    assert done.returncode == 0, done.stderr
    assert f"upgraded from empty to revision {head_revision()}" in done.stdout
    assert elevate("db", "current", url=empty_url).returncode == 0
    again = elevate("db", "upgrade", url=empty_url)
    assert f"already at revision {head_revision()}" in again.stdout


def test_upgrade_from_the_previous_revision_keeps_the_requests(empty_url: str) -> None:
    engine = make_engine(empty_url)
    migrate(engine, "0005")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO access_requests (id, requester, principal_id, account_id,"
                " account_name, permission_set, permission_set_arn, instance_arn,"
                " duration_seconds, justification, status, approvers, approvals_required,"
                " created_at, updated_at, workflow_id) VALUES ('r1', 'alice@example.com', 'p',"
                " '111111111111', 'prod', 'ReadOnly', 'arn:ps', 'arn:i', 3600, 'why', 'active',"
                " '[]', 1, :now, :now, 'access-request-r1')"
            ),
            {"now": datetime.now(UTC)},
        )
    assert elevate("db", "upgrade", url=empty_url).returncode == 0
    assert current_revision(engine) == head_revision()
    with Session(engine) as session:
        row = session.get(AccessRequest, "r1")
        assert row is not None
        assert (row.status, row.approved_at) == ("active", None)
    engine.dispose()


def test_without_auto_migrate_an_old_schema_is_refused_with_the_fix(empty_url: str) -> None:
    engine = make_engine(empty_url)
    migrate(engine, "0004")
    with pytest.raises(SchemaOutOfDate, match="run `elevate db upgrade`"):
        prepare_schema(engine, Settings(auto_migrate=False))
    prepare_schema(engine, Settings(auto_migrate=True))
    assert current_revision(engine) == head_revision()
    engine.dispose()
