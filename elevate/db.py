"""Database engine, sessions and schema migrations (Alembic)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

from elevate import counters  # noqa: F401 - every Session keeps the metric counters
from elevate.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_423_001  # PostgreSQL advisory lock id: one migrator at a time


# As many connections as the API's thread pool (anyio's 40) can ask for at once: a burst of
# requests waits for the database, not for a pool slot (30 s, then a 503).
POOL = {"pool_size": 20, "max_overflow": 20}


def make_engine(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect = {"check_same_thread": False, "timeout": 30}
        pool = POOL if parsed.database and parsed.database != ":memory:" else {}
        engine = create_engine(url, connect_args=connect, **pool)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, **POOL)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while the worker writes; busy_timeout waits instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


@contextmanager
def session_scope(engine: sa.Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


class SchemaOutOfDate(RuntimeError):
    pass


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe when several processes start at once."""
    cfg = _config()
    with _sqlite_migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def head_revision() -> str:
    return str(ScriptDirectory.from_config(_config()).get_current_head())


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def prepare_schema(engine: sa.Engine, settings: Settings) -> None:
    """Migrate at start-up (the embedded default), or insist that `elevate db upgrade` ran."""
    if settings.auto_migrate:
        migrate(engine)
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database schema is at revision {current or 'none'}, this elevate needs "
            f"{head}: run `elevate db upgrade` first"
        )


@contextmanager
def _sqlite_migration_lock(engine: sa.Engine) -> Iterator[None]:
    """SQLite runs DDL outside transactions, so the API and the worker starting together
    would both create the tables; a lock file next to the database takes turns."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ping(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
