"""The real stack in separate processes: Temporal dev server, moto, worker and API."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from elevate.devstack import processes
from elevate.devstack.keys import KID, ensure_dev_key, mint_token
from elevate.devstack.seed import USERS, DemoOrg, seed_demo, write_dev_users
from elevate.devstack.seed_iam import ACCOUNTS as IAM_ACCOUNTS
from elevate.devstack.seed_iam import PERMISSION_SETS as IAM_PERMISSION_SETS
from elevate.devstack.seed_iam import seed_iam_demo
from elevate.providers.aws import client
from elevate.providers.iam_catalog import IamPermissionSet
from tests.databases import fresh_database
from tests.slackapp import slack_env

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
    provider: str = "identity_center"

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

    def iam(self, account: str) -> Any:
        """An IAM client in the account, as the IAM provider's worker reaches it."""
        entry = next(a for a in IAM_ACCOUNTS if a.name == account)
        kw: dict[str, Any] = {}
        if entry.role_arn:
            sts = boto3.client("sts", region_name="us-east-1", endpoint_url=self.endpoint)
            creds = sts.assume_role(RoleArn=entry.role_arn, RoleSessionName="tests")
            kw = {
                "aws_access_key_id": creds["Credentials"]["AccessKeyId"],
                "aws_secret_access_key": creds["Credentials"]["SecretAccessKey"],
                "aws_session_token": creds["Credentials"]["SessionToken"],
            }
        return boto3.client("iam", region_name="us-east-1", endpoint_url=self.endpoint, **kw)

    @property
    def endpoint(self) -> str:
        return self.env["AWS_ENDPOINT_URL"]

    def assigned(self, account: str, permission_set: str, user: str) -> bool:
        if self.provider == "iam":
            return _iam_holds(self.iam(account), permission_set, user)
        found = self.sso().list_account_assignments(
            InstanceArn=self.org.instance_arn,
            AccountId=self.org.accounts[account],
            PermissionSetArn=self.org.permission_sets[permission_set],
        )["AccountAssignments"]
        return any(a["PrincipalId"] == self.org.users[user] for a in found)

    def assign_directly(self, account: str, permission_set: str, user: str) -> None:
        """An assignment made behind elevate's back, as an admin in the AWS console would."""
        if self.provider == "iam":
            _iam_change(self.iam(account), permission_set, user, grant=True)
            return
        self.sso().create_account_assignment(
            InstanceArn=self.org.instance_arn,
            TargetId=self.org.accounts[account],
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=self.org.permission_sets[permission_set],
            PrincipalType="USER",
            PrincipalId=self.org.users[user],
        )

    def unassign_directly(self, account: str, permission_set: str, user: str) -> None:
        if self.provider == "iam":
            _iam_change(self.iam(account), permission_set, user, grant=False)
            return
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
        self.procs["worker"] = processes.start_elevate(
            ["worker"], {**self.env, **env}, self.logs / "worker.log"
        )

    def restart_temporal(self, down_seconds: float = 0) -> None:
        """Stop the Temporal dev server and start it again on the same port and SQLite file."""
        processes.stop([self.procs["temporal"]])
        time.sleep(down_seconds)
        port, ui_port, db_file = self.temporal_args
        self.procs["temporal"] = processes.start_temporal(
            port, ui_port, db_file, self.logs / "temporal.log"
        )

    def kill_worker(self) -> None:
        proc = self.procs["worker"]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _iam_entry(permission_set: str) -> IamPermissionSet:
    return next(p for p in IAM_PERMISSION_SETS if p.name == permission_set)


def _iam_holds(iam: Any, permission_set: str, user: str) -> bool:
    entry = _iam_entry(permission_set)
    if entry.group:
        return any(
            g["GroupName"] == entry.group for g in iam.list_groups_for_user(UserName=user)["Groups"]
        )
    attached = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    return any(p["PolicyArn"] == entry.policy_arn for p in attached)


def _iam_change(iam: Any, permission_set: str, user: str, grant: bool) -> None:
    entry = _iam_entry(permission_set)
    if entry.group:
        change = iam.add_user_to_group if grant else iam.remove_user_from_group
        change(GroupName=entry.group, UserName=user)
    else:
        change = iam.attach_user_policy if grant else iam.detach_user_policy
        change(PolicyArn=entry.policy_arn, UserName=user)


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


@contextmanager
def running_stack(
    work: Path, database_url: str, provider: str, extra_env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """Temporal dev server, moto, the worker and the API, each its own process, seeded with
    the demo for `provider`; `extra_env` adds settings (an audit anchor bucket is created)."""
    logs = work / "logs"
    logs.mkdir()
    key_path = work / "signing-key.pem"
    jwks = ensure_dev_key(key_path)
    temporal_port, ui_port, moto_port, api_port, metrics_port = (
        processes.free_port() for _ in range(5)
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            processes.start_temporal(
                temporal_port, ui_port, work / "temporal.db", logs / "temporal.log"
            )
        )
        procs.append(processes.start_moto(moto_port, logs / "moto.log"))
        aws = processes.aws_env(moto_port)
        saved = {k: os.environ.get(k) for k in aws}
        os.environ.update(aws)
        try:
            org, provider_env = _seed(provider, work)
            if bucket := (extra_env or {}).get("ELEVATE_AUDIT_ANCHOR_BUCKET"):
                client("s3", "us-east-1").create_bucket(
                    Bucket=bucket, ObjectLockEnabledForBucket=True
                )
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
            "ELEVATE_MESSAGE_KEY": secrets.token_hex(32),
            "ELEVATE_MIN_DURATION": "PT1S",
            "ELEVATE_TASK_QUEUE": "elevate-it",
            "ELEVATE_RECONCILE_INTERVAL": "PT2S",
            # The suite runs many lifecycles in seconds, some through a throttling proxy; the
            # budget's own behaviour is measured by bench/reconcile.py, not waited for here.
            "ELEVATE_AWS_MAX_CALLS_PER_SECOND": "50",
            "ELEVATE_RECONCILE_PERMISSION_SETS": "ReadOnly,AdministratorAccess",
            "ELEVATE_WORKER_METRICS_PORT": str(metrics_port),
            # As in production: a migration step first, the API and worker only check it.
            "ELEVATE_AUTO_MIGRATE": "false",
            # The web app, signed in through the dev sign-in with the demo's people.
            "ELEVATE_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
            "ELEVATE_UI_DEV_LOGIN": "true",
            "ELEVATE_UI_DEV_USERS": str(write_dev_users(work / "dev-users.yaml")),
            **slack_env(),
            **provider_env,
            **(extra_env or {}),
        }
        processes.run_elevate(["db", "upgrade"], env, logs / "migrate.log")
        s = Stack(f"http://127.0.0.1:{api_port}", org, key_path, env, logs, provider=provider)
        s.temporal_args = (temporal_port, ui_port, work / "temporal.db")
        s.procs["temporal"], s.procs["moto"] = procs[0], procs[1]
        s.start_worker()
        s.procs["api"] = processes.start_elevate(
            ["api", "--port", str(api_port)], env, logs / "api.log"
        )
        processes.wait_until(
            lambda: processes.http_ok(f"{s.base}/readyz"), "the API", 60, s.procs["api"]
        )
        yield s
    finally:
        started = getattr(locals().get("s"), "procs", {})
        processes.stop(
            [*procs, *(p for name, p in started.items() if name not in ("temporal", "moto"))]
        )
        if "temporal" in started:
            processes.stop([started["temporal"]])
        for log in sorted(logs.glob("*.log")):
            tail = log.read_text(errors="replace")[-3000:]
            if "Traceback" in tail:
                print(f"--- {log.name} (tail) ---\n{tail}")  # noqa: T201 - shown on failure


def _seed(provider: str, work: Path) -> tuple[DemoOrg, dict[str, str]]:
    if provider == "iam":
        catalog = work / "iam-catalog.yaml"
        org = seed_iam_demo(catalog)
        return org, {"ELEVATE_PROVIDER": "iam", "ELEVATE_IAM_CATALOG": str(catalog)}
    return seed_demo(), {}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Stack]:
    """The Identity Center stack, on the session's database."""
    with running_stack(tmp_path_factory.mktemp("stack"), database_url, "identity_center") as s:
        yield s


@pytest.fixture(scope="session")
def iam_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The IAM-provider stack, on a database of its own."""
    work = tmp_path_factory.mktemp("iam-stack")
    with fresh_database(work) as url, running_stack(work, url, "iam") as s:
        yield s


@pytest.fixture(params=["identity_center", "iam"])
def any_stack(request: pytest.FixtureRequest) -> Stack:
    """Runs a test once per provider."""
    name = "stack" if request.param == "identity_center" else "iam_stack"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


__all__ = ["KID", "Stack", "any_stack", "iam_stack", "stack", "wait_for"]
