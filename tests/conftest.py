"""Shared fixtures: a database (SQLite or PostgreSQL), emulated AWS, the time-skipping server."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from elevate.db import make_engine, migrate

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# ELEVATE_TEST_DATABASE=postgresql runs the suite on the local PostgreSQL server instead.
PG_ADMIN_URL = os.environ.get(
    "ELEVATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def tool(name: str) -> str:
    """A binary from a wheel in this virtualenv (temporal, temporal-test-server, moto_server)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


@contextmanager
def fresh_database(tmp: Path) -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file, or one on the PostgreSQL server."""
    if os.environ.get("ELEVATE_TEST_DATABASE", "sqlite") != "postgresql":
        yield f"sqlite:///{tmp / 'elevate.db'}"
        return
    name = f"elevate_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()


from tests.stack import stack  # noqa: E402,F401  (session fixture: the real stack over HTTP)
