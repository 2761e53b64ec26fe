"""Schema migrations when the API and the worker start at the same moment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


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
