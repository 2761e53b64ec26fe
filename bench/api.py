"""The API's hot path on PostgreSQL: list, eligibility, /metrics and create under concurrency.

Seeds its own PostgreSQL database (127.0.0.1:5432, trust) with ROWS request rows written
directly with SQL, moto with ACCOUNTS accounts x PSETS permission sets and POLICIES policies,
starts a Temporal dev server (no worker: a start only needs the server) and `elevate api`,
then prints per endpoint requests/s, p50 and p99 at 1 and 50 clients, and `POST /v1/requests`
against a bare Temporal `start_workflow` at the same concurrency, in the same run.

    .venv/bin/python bench/api.py                      # 10k rows, 300 x 20 x 50, 2 s a case
    .venv/bin/python bench/api.py --rows 100000        # the issue's size
    .venv/bin/python bench/api.py --code /tmp/base     # the API from another checkout (before)
    .venv/bin/python bench/api.py --api-workers 2      # one API process per core
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from temporalio.client import Client

from elevate import counters
from elevate.devstack import processes
from elevate.devstack.keys import ensure_dev_key, mint_token
from elevate.devstack.seed import USERS, seed_demo
from elevate.models import AccessRequest, Approval, StoredPolicy
from elevate.providers.aws import client

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STATUSES = (
    ["ended"] * 6 + ["revoked", "rejected", "cancelled", "expired", "active"] + ["pending_approval"]
)


def seed_org(accounts: int, psets: int) -> Any:
    org = seed_demo()
    orgs, sso = client("organizations", "us-east-1"), client("sso-admin", "us-east-1")
    root = orgs.list_roots()["Roots"][0]["Id"]
    ous = [
        orgs.create_organizational_unit(ParentId=root, Name=f"Unit{i}")["OrganizationalUnit"]["Id"]
        for i in range(10)
    ]
    for i in range(accounts - len(org.accounts)):
        made = orgs.create_account(AccountName=f"acct{i:04d}", Email=f"a{i}@example.com")
        account_id = made["CreateAccountStatus"]["AccountId"]
        orgs.move_account(
            AccountId=account_id, SourceParentId=root, DestinationParentId=ous[i % 10]
        )
    for i in range(psets - len(org.permission_sets)):
        sso.create_permission_set(InstanceArn=org.instance_arn, Name=f"Set{i:02d}")
    return org, ous


def seed_policies(engine: sa.Engine, org: Any, ous: list[str], n: int) -> None:
    """n policies: four in five eligibility (groups over OUs and accounts), the rest approval."""
    rows = []
    names = [f"Set{i:02d}" for i in range(17)] + ["ReadOnly"]
    for i in range(n):
        scope = {"accounts": [], "ous": [ous[i % 10]], "permission_sets": names[i % 6 : i % 6 + 4]}
        if i % 5 == 4:  # every OU has one, for every permission set
            scope = {"accounts": [], "ous": [ous[i // 5 % 10]], "permission_sets": []}
            body = {**scope, "approvers": [{"type": "group", "name": "elevate-approvers"}]}
            rows.append({"kind": "approval", "name": f"appr{i}", "body": body})
        else:
            group = ["developers", "elevate-admins", "others"][i % 3]
            body = {
                **scope,
                "principals": [{"type": "group", "name": group}],
                "max_duration": "PT4H",
                "approval_required": True,
                "ticket_required": False,
            }
            rows.append({"kind": "eligibility", "name": f"elig{i}", "body": body})
    everywhere = {"accounts": list(org.accounts.values()), "ous": [], "permission_sets": []}
    rows.append(
        {
            "kind": "approval",
            "name": "demo",
            "body": {**everywhere, "approvers": [{"type": "group", "name": "elevate-approvers"}]},
        }
    )
    now = datetime.now(UTC)
    rows = [{**r, "created_at": now, "updated_at": now} for r in rows]
    with engine.begin() as conn:
        conn.execute(sa.insert(StoredPolicy.__table__), rows)  # type: ignore[arg-type]


def seed_requests(engine: sa.Engine, org: Any, n: int) -> None:
    rnd, now, users = random.Random(12), datetime.now(UTC), list(USERS)
    approvers = [{"type": "group", "name": "elevate-approvers"}]
    for start in range(0, n, 5000):
        rows, approvals = [], []
        for _ in range(min(5000, n - start)):
            created = now - timedelta(seconds=rnd.uniform(60, 30 * 86400))
            rid, status = str(uuid.uuid4()), rnd.choice(STATUSES)
            done = status in ("ended", "revoked", "active")
            rows.append(
                {
                    "id": rid,
                    "requester": rnd.choice(users),
                    "principal_id": "p",
                    "account_id": org.accounts["prod"],
                    "account_name": "prod",
                    "permission_set": "ReadOnly",
                    "permission_set_arn": org.permission_sets["ReadOnly"],
                    "instance_arn": org.instance_arn,
                    "duration_seconds": 3600,
                    "start_at": None,
                    "end_at": created + timedelta(hours=1, seconds=30) if done else None,
                    "justification": "bench",
                    "ticket": None,
                    "status": status,
                    "approvers": approvers,
                    "approvals_required": 1,
                    "created_at": created,
                    "updated_at": created,
                    "approved_at": created + timedelta(seconds=30) if done else None,
                    "grant_due_at": created + timedelta(seconds=30) if done else None,
                    "granted_at": created + timedelta(seconds=31) if done else None,
                    "revoked_at": created + timedelta(hours=1, seconds=32) if done else None,
                    "workflow_id": f"access-request-{rid}",
                }
            )
            if done:
                approvals.append(
                    {
                        "request_id": rid,
                        "approver": "carol@example.com",
                        "comment": "ok",
                        "at": created + timedelta(seconds=30),
                    }
                )
        with engine.begin() as conn:
            conn.execute(sa.insert(AccessRequest.__table__), rows)  # type: ignore[arg-type]
            conn.execute(sa.insert(Approval.__table__), approvals)  # type: ignore[arg-type]


def spawn_elevate(args: list[str], env: dict[str, str], code: Path, log: Path) -> Any:
    full = {**os.environ, **env, "PYTHONPATH": str(code)}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "elevate", *args],
            cwd=code,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def load(call: Any, clients: int, seconds: float, max_calls: int = 10**9) -> dict[str, Any]:
    """`clients` loops calling `call` for `seconds`; requests/s, p50 and p99 in ms."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        while time.perf_counter() < deadline and len(latencies) < max_calls:
            t = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "rps": len(latencies) / elapsed,
        "p50": q[49] * 1000,
        "p99": q[98] * 1000,
        "n": len(latencies),
    }


def wrk(url: str, clients: int, seconds: float, headers: dict[str, str]) -> dict[str, Any] | None:
    """The same figures from wrk (Debian's package), a load generator in C: with 50 clients a
    Python client is the bottleneck (httpx at 50 connections served /healthz 0.6x its one-client
    rate, where wrk against the same API measured 0.93x). None when wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    args = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, int(seconds))}s", "--latency", url]
    for k, v in headers.items():
        args[1:1] = ["-H", f"{k}: {v}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def ms(label: str) -> float:
        value = re.search(rf"^\s+{label}\s+([0-9.]+)(us|ms|s)\s*$", out, re.M)
        assert value, out
        return float(value.group(1)) * units[value.group(2)]

    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
    done = re.search(r"^\s+([0-9]+) requests in", out, re.M)
    assert rps, out
    assert done, out
    non2xx = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", out)
    assert non2xx is None, out
    return {"rps": float(rps.group(1)), "p50": ms("50%"), "p99": ms("99%"), "n": int(done.group(1))}


def row(name: str, r: dict[str, Any]) -> None:
    print(
        f"{name:<34} {r['rps']:8.1f} rps  p50 {r['p50']:8.1f} ms  p99 {r['p99']:8.1f} ms"
        f"  (n={r['n']})"
    )


async def measure(base: str, tok: Any, temporal_addr: str, seconds: float) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as c:

        def get(path: str, user: str | None = None) -> Any:
            headers = tok(user) if user else {}

            async def call() -> None:
                r = await c.get(path, headers=headers)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])

            return call

        admin = "dave@example.com"
        await get("/v1/eligibility?limit=500", "alice@example.com")()  # warm the catalog
        cases = [("/healthz", {}), ("/v1/requests?limit=50", tok(admin))]
        for path, headers in cases:
            by = {n: wrk(base + path, n, seconds, headers) for n in (1, 50)}
            one, many = by[1], by[50]
            if one is None or many is None:
                print("wrk not installed: the x50 figures below are bound by the Python client")
                break
            row(f"wrk {path}  x1", one)
            row(f"wrk {path}  x50", many)
            print(
                f"{'':<34} x50/x1 requests/s = {many['rps'] / one['rps']:.2f} (target >= 0.9); "
                f"x50 p99 {many['p99']:.0f} ms vs 50 x one client's p50 = "
                f"{50 * one['p50']:.0f} ms"
            )
        for clients in (1, 50):
            row(f"/healthz  x{clients}", await load(get("/healthz"), clients, seconds))
            row(
                f"list admin limit=50  x{clients}",
                await load(get("/v1/requests?limit=50", admin), clients, seconds),
            )
        row(
            "list own (alice)  x1", await load(get("/v1/requests", "alice@example.com"), 1, seconds)
        )
        row(
            "list awaiting=me (carol)  x1",
            await load(get("/v1/requests?awaiting=me", "carol@example.com"), 1, seconds),
        )
        row("/metrics  x1", await load(get("/metrics"), 1, seconds, 30))
        row(
            "eligibility page  x1",
            await load(get("/v1/eligibility?limit=500", "alice@example.com"), 1, seconds, 30),
        )
        body = {
            "account_id": "",
            "permission_set": "ReadOnly",
            "duration": "PT1H",
            "justification": "bench",
        }
        accounts = await c.get("/v1/eligibility?limit=500", headers=tok("alice@example.com"))
        offer = accounts.json()["items"][0]
        body["account_id"], body["permission_set"] = offer["account_id"], offer["permission_set"]
        alice = tok("alice@example.com")

        async def create() -> None:
            r = await c.post("/v1/requests", json=body, headers=alice)
            assert r.status_code == 201, r.text[:300]

        temporal = await Client.connect(temporal_addr)

        async def bare() -> None:
            await temporal.start_workflow("BareShape", id=str(uuid.uuid4()), task_queue="bare")

        for clients in (1, 50):
            e = await load(create, clients, seconds)
            b = await load(bare, clients, seconds)
            row(f"POST /v1/requests  x{clients}", e)
            row(f"bare start_workflow  x{clients}", b)
            print(f"{'':<34} POST p99 / bare p99 = {e['p99'] / b['p99']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--accounts", type=int, default=300)
    ap.add_argument("--psets", type=int, default=20)
    ap.add_argument("--policies", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--api-workers", type=int, default=1, help="elevate api --workers")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elevate-bench-api-"))
    key = work / "key.pem"
    jwks = ensure_dev_key(key)
    tport, uiport, mport, aport = (processes.free_port() for _ in range(4))
    # Not processes.start_moto: loading AWS managed policies into every new account's IAM
    # makes each create_account take seconds, and nothing here reads IAM.
    moto = processes.spawn([processes.binary("moto_server"), "-H", "127.0.0.1", "-p", str(mport)])
    procs = [processes.start_temporal(tport, uiport, work / "t.db"), moto]
    processes.wait_until(lambda: processes.http_ok(f"http://127.0.0.1:{mport}/moto-api/"), "moto")
    aws = processes.aws_env(mport)
    os.environ.update(aws)
    name = f"elevate_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        t = time.perf_counter()
        org, ous = seed_org(args.accounts, args.psets)
        env = {
            **aws,
            "ELEVATE_DATABASE_URL": url,
            "ELEVATE_TEMPORAL_ADDRESS": f"127.0.0.1:{tport}",
            "ELEVATE_AUTH_JWKS_URL": str(jwks),
            "ELEVATE_WORKER_METRICS_PORT": "0",
            "ELEVATE_MESSAGE_KEY": secrets.token_hex(32),
        }
        migrate = spawn_elevate(["db", "upgrade"], env, args.code, work / "migrate.log")
        assert migrate.wait(120) == 0, (work / "migrate.log").read_text()
        engine = sa.create_engine(url)
        seed_policies(engine, org, ous, args.policies)
        seed_requests(engine, org, args.rows)
        with engine.begin() as conn:  # rows written with SQL: counted as an upgrade counts them
            counters.rebuild(conn)
        engine.dispose()
        # A bulk load leaves the planner's statistics at "empty table" until autovacuum gets
        # to it (then approvals by request id is a sequential scan); a live database has them.
        analyzer = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with analyzer.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
        analyzer.dispose()
        print(
            f"seeded {args.rows} rows, {args.accounts} accounts x {args.psets} sets, "
            f"{args.policies} policies in {time.perf_counter() - t:.0f} s; code: {args.code}; "
            f"API processes: {args.api_workers}"
        )
        serve = ["api", "--port", str(aport), "--workers", str(args.api_workers)]
        procs.append(spawn_elevate(serve, env, args.code, work / "api.log"))
        base = f"http://127.0.0.1:{aport}"
        processes.wait_until(lambda: processes.http_ok(f"{base}/readyz"), "API", 60, procs[-1])

        def tok(user: str) -> dict[str, str]:
            token = mint_token(
                user, USERS[user], issuer="elevate-dev", audience="elevate", key_path=key
            )
            return {"Authorization": f"Bearer {token}"}

        asyncio.run(measure(base, tok, f"127.0.0.1:{tport}", args.seconds))
    finally:
        processes.stop(procs)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
