"""Shared fixtures: a database (SQLite or PostgreSQL), emulated AWS, the time-skipping server."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from elevate.db import make_engine, migrate
from tests.databases import fresh_database

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def tool(name: str) -> str:
    """A binary from a wheel in this virtualenv (temporal, temporal-test-server, moto_server)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


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


# Session fixtures: the real stack over HTTP, per provider.
from tests.stack import any_stack, iam_stack, stack  # noqa: E402,F401
