"""The embedded stack: Temporal dev server, moto standing in for AWS, API and worker processes.

Used by `elevate dev` and by the integration tests, so both run the same thing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from elevate import temporal


def binary(name: str) -> str:
    """A binary installed by a wheel into this virtualenv (temporal, moto_server)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed; run: pip install -e '.[dev]'")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(
    check: object, what: str, timeout: float = 30, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f}s")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def spawn(
    args: Sequence[str], env: Mapping[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(
        list(args),
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_temporal(
    port: int, ui_port: int, db_file: Path, log: Path | None = None
) -> subprocess.Popen[bytes]:
    args = [
        binary("temporal"),
        "server",
        "start-dev",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_file),
        # Write-ahead log, synced at checkpoints: SQLite's default (a rollback journal, synced at
        # every commit) made each of the server's transactions several fsyncs, and a burst of
        # lifecycles waited on them: half the throughput. A crash of the machine may lose the
        # last commits of this development server; its file is never corrupted.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=NORMAL",
        "--log-level",
        "error",
        "--ip",
        "127.0.0.1",
    ]
    for key in temporal.SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    proc = spawn(args, log=log)
    wait_until(lambda: port_open("127.0.0.1", port), "the Temporal dev server", 60, proc)
    return proc


def start_moto(
    port: int, log: Path | None = None, managed_policies: bool = True
) -> subprocess.Popen[bytes]:
    """`managed_policies=False` for a bench that makes many accounts and reads no IAM: moto
    loads every AWS managed policy into each new account, seconds per account."""
    # AWS managed policies (arn:aws:iam::aws:policy/...) exist only when moto loads them.
    env = {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true" if managed_policies else "false"}
    # moto_server, patched to provision permission sets as AWS does (the sweep walks them).
    serve = [sys.executable, "-m", "elevate.devstack.moto_fidelity"]
    proc = spawn([*serve, "-H", "127.0.0.1", "-p", str(port)], env, log)
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/moto-api/"), "the moto server", 30, proc)
    return proc


def aws_env(moto_port: int) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_ACCESS_KEY_ID": "dev",
        "AWS_SECRET_ACCESS_KEY": "dev",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def start_elevate(
    command: Sequence[str], env: Mapping[str, str], log: Path | None = None
) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, "-m", "elevate", *command], env=env, log=log)


def run_elevate(command: Sequence[str], env: Mapping[str, str], log: Path) -> None:
    """Run an `elevate` command to completion; its output goes to `log`."""
    proc = start_elevate(command, env, log)
    if proc.wait(timeout=120) != 0:
        raise RuntimeError(f"elevate {' '.join(command)} failed; see {log}")


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in reversed(procs):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
