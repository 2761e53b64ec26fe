"""The real stack in separate processes: Temporal dev server, moto, worker and API."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from elevate import devstack
from elevate.aws import client
from elevate.devkeys import KID, ensure_dev_key, mint_token
from elevate.seed import USERS, DemoOrg, seed_demo

ISSUER = "https://idp.test.example"
AUDIENCE = "elevate-tests"


@dataclass
class Stack:
    base: str
    org: DemoOrg
    key_path: Path
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    temporal_args: tuple[int, int, Path] = (0, 0, Path())

    def token(self, user: str, groups: list[str] | None = None, **kw: Any) -> str:
        return mint_token(
            user,
            USERS.get(user, []) if groups is None else groups,
            issuer=ISSUER,
            audience=AUDIENCE,
            key_path=self.key_path,
            **kw,
        )

    def client(self, user: str, groups: list[str] | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base,
            timeout=30,
            headers={"Authorization": f"Bearer {self.token(user, groups)}"},
        )

    def sso(self) -> Any:
        return boto3.client(
            "sso-admin", region_name="us-east-1", endpoint_url=self.env["AWS_ENDPOINT_URL"]
        )

    def assigned(self, account: str, permission_set: str, user: str) -> bool:
        found = self.sso().list_account_assignments(
            InstanceArn=self.org.instance_arn,
            AccountId=self.org.accounts[account],
            PermissionSetArn=self.org.permission_sets[permission_set],
        )["AccountAssignments"]
        return any(a["PrincipalId"] == self.org.users[user] for a in found)

    def assign_directly(self, account: str, permission_set: str, user: str) -> None:
        """An assignment made behind elevate's back, as an admin in the AWS console would."""
        self.sso().create_account_assignment(
            InstanceArn=self.org.instance_arn,
            TargetId=self.org.accounts[account],
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=self.org.permission_sets[permission_set],
            PrincipalType="USER",
            PrincipalId=self.org.users[user],
        )

    def unassign_directly(self, account: str, permission_set: str, user: str) -> None:
        self.sso().delete_account_assignment(
            InstanceArn=self.org.instance_arn,
            TargetId=self.org.accounts[account],
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=self.org.permission_sets[permission_set],
            PrincipalType="USER",
            PrincipalId=self.org.users[user],
        )

    def start_worker(self, **env: str) -> None:
        """Start (again) the worker; keyword arguments override its environment."""
        self.procs["worker"] = devstack.start_elevate(
            ["worker"], {**self.env, **env}, self.logs / "worker.log"
        )

    def restart_temporal(self, down_seconds: float = 0) -> None:
        """Stop the Temporal dev server and start it again on the same port and SQLite file."""
        devstack.stop([self.procs["temporal"]])
        time.sleep(down_seconds)
        port, ui_port, db_file = self.temporal_args
        self.procs["temporal"] = devstack.start_temporal(
            port, ui_port, db_file, self.logs / "temporal.log"
        )

    def kill_worker(self) -> None:
        proc = self.procs["worker"]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for(check: Any, timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll until `check()` is truthy; returns its value, or fails the test with the last one."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s (last value: {value!r})")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("stack")
    logs = work / "logs"
    logs.mkdir()
    key_path = work / "signing-key.pem"
    jwks = ensure_dev_key(key_path)
    temporal_port, ui_port, moto_port, api_port, metrics_port = (
        devstack.free_port() for _ in range(5)
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            devstack.start_temporal(
                temporal_port, ui_port, work / "temporal.db", logs / "temporal.log"
            )
        )
        procs.append(devstack.start_moto(moto_port, logs / "moto.log"))
        aws = devstack.aws_env(moto_port)
        saved = {k: os.environ.get(k) for k in aws}
        os.environ.update(aws)
        try:
            org = seed_demo()
        finally:
            client.cache_clear()  # the cached clients point at this moto; forget them
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        env = {
            **aws,
            "ELEVATE_DATABASE_URL": database_url,
            "ELEVATE_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
            "ELEVATE_AUTH_JWKS_URL": str(jwks),
            "ELEVATE_AUTH_ISSUER": ISSUER,
            "ELEVATE_AUTH_AUDIENCE": AUDIENCE,
            "ELEVATE_MIN_DURATION": "PT1S",
            "ELEVATE_TASK_QUEUE": "elevate-it",
            "ELEVATE_RECONCILE_INTERVAL": "PT2S",
            "ELEVATE_RECONCILE_PERMISSION_SETS": "ReadOnly,AdministratorAccess",
            "ELEVATE_WORKER_METRICS_PORT": str(metrics_port),
            # As in production: a migration step first, the API and worker only check it.
            "ELEVATE_AUTO_MIGRATE": "false",
        }
        devstack.run_elevate(["db", "upgrade"], env, logs / "migrate.log")
        s = Stack(f"http://127.0.0.1:{api_port}", org, key_path, env, logs)
        s.temporal_args = (temporal_port, ui_port, work / "temporal.db")
        s.procs["temporal"], s.procs["moto"] = procs[0], procs[1]
        s.start_worker()
        s.procs["api"] = devstack.start_elevate(
            ["api", "--port", str(api_port)], env, logs / "api.log"
        )
        devstack.wait_until(
            lambda: devstack.http_ok(f"{s.base}/readyz"), "the API", 60, s.procs["api"]
        )
        yield s
    finally:
        started = getattr(locals().get("s"), "procs", {})
        devstack.stop(
            [*procs, *(p for name, p in started.items() if name not in ("temporal", "moto"))]
        )
        if "temporal" in started:
            devstack.stop([started["temporal"]])
        for log in sorted(logs.glob("*.log")):
            tail = log.read_text(errors="replace")[-3000:]
            if "Traceback" in tail:
                print(f"--- {log.name} (tail) ---\n{tail}")  # noqa: T201 - shown on failure


__all__ = ["KID", "Stack", "stack", "wait_for"]
