"""Databases for tests: a SQLite file, or one created on the local PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

# ELEVATE_TEST_DATABASE=postgresql runs the suite on the local PostgreSQL server instead.
PG_ADMIN_URL = os.environ.get(
    "ELEVATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


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
