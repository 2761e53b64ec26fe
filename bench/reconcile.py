"""The reconciler at the size of an organization, within one AWS budget (issue 12).

moto (provisioning as AWS does) seeded with ACCOUNTS accounts and SETS managed permission sets,
each provisioned to a SUBSET of them; the worker and API reach it through a proxy that counts
every AWS call per second and answers ThrottlingException above the budget. Prints: AWS calls/s,
the max over any 10 s window against ELEVATE_AWS_MAX_CALLS_PER_SECOND (the target: at most
1.2x), the time one full sweep took, how long an out-of-band assignment stayed, and whether
every run checked every covering request.

    .venv/bin/python bench/reconcile.py                       # small: 40 accounts, ~3 minutes
    .venv/bin/python bench/reconcile.py --accounts 1000       # the issue's size (about an hour)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import httpx

from elevate.devstack import processes
from elevate.devstack.awsproxy import BudgetProxy
from elevate.devstack.keys import ensure_dev_key, mint_token
from elevate.devstack.seed import USERS, seed_demo
from elevate.providers.aws import client


def seed(args: argparse.Namespace, rng: random.Random) -> tuple[Any, list[tuple[str, str]]]:
    """The demo org plus the bench's accounts and managed sets; the provisioned pairs."""
    org = seed_demo()
    orgs, sso = client("organizations", "us-east-1"), client("sso-admin", "us-east-1")
    accounts = list(org.accounts.values())
    for i in range(args.accounts - len(accounts)):
        made = orgs.create_account(AccountName=f"bench-{i:04d}", Email=f"b{i}@example.com")
        accounts.append(made["CreateAccountStatus"]["AccountId"])
    pairs: list[tuple[str, str]] = []
    for k in range(args.sets):
        arn = sso.create_permission_set(
            InstanceArn=org.instance_arn, Name=f"Managed{k:02d}", SessionDuration="PT1H"
        )["PermissionSet"]["PermissionSetArn"]
        for account in rng.sample(accounts, max(1, int(args.subset * len(accounts)))):
            sso.provision_permission_set(
                InstanceArn=org.instance_arn,
                PermissionSetArn=arn,
                TargetType="AWS_ACCOUNT",
                TargetId=account,
            )
            pairs.append((arn, account))
    return org, pairs


def runs(db: Path) -> list[tuple[str, int, dict[str, Any] | None]]:
    with sqlite3.connect(db) as c:
        rows = c.execute(
            "SELECT started_at, checked, sweep FROM reconcile_runs ORDER BY started_at"
        )
        return [(s, n, json.loads(w) if w else None) for s, n, w in rows.fetchall()]


def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="elevate-bench-reconcile-"))
    key = work / "key.pem"
    jwks = ensure_dev_key(key)
    tport, uiport, mport, aport = (processes.free_port() for _ in range(4))
    procs = [
        processes.start_temporal(tport, uiport, work / "t.db"),
        processes.start_moto(mport, work / "moto.log", managed_policies=False),
    ]
    moto = processes.aws_env(mport)
    os.environ.update(moto)
    t = time.monotonic()
    org, pairs = seed(args, rng)
    print(
        f"seeded {args.accounts} accounts, {args.sets} managed sets, {len(pairs)} provisioned "
        f"pairs in {time.monotonic() - t:.0f} s"
    )
    client.cache_clear()
    proxy = BudgetProxy(moto["AWS_ENDPOINT_URL"], args.budget)
    env = {
        **moto,
        "AWS_ENDPOINT_URL": proxy.url,  # the worker and the API see AWS at the budget
        "ELEVATE_WORKER_METRICS_PORT": "0",
        "ELEVATE_DATABASE_URL": f"sqlite:///{work}/e.db",
        "ELEVATE_TEMPORAL_ADDRESS": f"127.0.0.1:{tport}",
        "ELEVATE_AUTH_JWKS_URL": str(jwks),
        "ELEVATE_MESSAGE_KEY": secrets.token_hex(32),
        "ELEVATE_AWS_MAX_CALLS_PER_SECOND": str(args.budget),
        "ELEVATE_RECONCILE_INTERVAL": f"PT{args.interval}S",
        "ELEVATE_RECONCILE_PERMISSION_SETS": ",".join(f"Managed{k:02d}" for k in range(args.sets)),
    }
    procs += [
        processes.start_elevate(["worker"], env, work / "worker.log"),
        processes.start_elevate(["api", "--port", str(aport)], env, work / "api.log"),
    ]
    base = f"http://127.0.0.1:{aport}"
    try:
        processes.wait_until(lambda: processes.http_ok(f"{base}/readyz"), "API", 60)
        covering = request_access(base, key, org, args.requests)
        active_since = time.time()  # runs before this could not find every request active
        sso = boto3.client(
            "sso-admin", region_name="us-east-1", endpoint_url=moto["AWS_ENDPOINT_URL"]
        )
        arn, account = rng.choice(pairs)
        target = {
            "InstanceArn": org.instance_arn,
            "TargetId": account,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": arn,
            "PrincipalType": "USER",
            "PrincipalId": org.users["erin@example.com"],
        }
        sso.create_account_assignment(**target)  # out of band, straight at moto
        placed = time.monotonic()
        removed = None
        deadline = placed + args.timeout
        while time.monotonic() < deadline:
            listed = sso.list_account_assignments(
                InstanceArn=org.instance_arn, AccountId=account, PermissionSetArn=arn
            )["AccountAssignments"]
            if removed is None and not listed:
                removed = time.monotonic() - placed
            walks = [w for _, _, w in runs(work / "e.db") if w and w["completed_at"]]
            if removed is not None and walks:
                break
            time.sleep(1)
        report(args, proxy, runs(work / "e.db"), covering, removed, active_since)
    finally:
        processes.stop(procs)


def request_access(base: str, key: Path, org: Any, n: int) -> int:
    """n active requests (distinct accounts where possible) for the check to read back."""

    def tok(u: str) -> dict[str, str]:
        t = mint_token(u, USERS[u], issuer="elevate-dev", audience="elevate", key_path=key)
        return {"Authorization": f"Bearer {t}"}

    alice, carol = tok("alice@example.com"), tok("carol@example.com")
    names = ["prod", "staging", "sandbox"]
    ids = []
    # The first request loads the catalog: at 1,000 accounts over a budget of a few calls per
    # second (Organizations' ListParents per account), that takes minutes.
    with httpx.Client(base_url=base, timeout=600) as c:
        for i in range(n):
            body = {
                "account_id": org.accounts[names[i % len(names)]],
                "permission_set": ["ReadOnly", "AdministratorAccess"][i // len(names) % 2],
                "duration": "PT1H",
                "justification": "bench",
            }
            rid = c.post("/v1/requests", headers=alice, json=body).json().get("id")
            if rid and c.post(f"/v1/requests/{rid}/approve", headers=carol).status_code == 200:
                ids.append(rid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = {c.get(f"/v1/requests/{r}", headers=alice).json()["status"] for r in ids}
            if states <= {"active"}:
                break
            time.sleep(0.5)
    return len(set(ids))


def report(
    args: argparse.Namespace,
    proxy: BudgetProxy,
    done: list[Any],
    covering: int,
    removed: float | None,
    active_since: float,
) -> None:
    window = proxy.max_window()
    total = sum(proxy.accepted.values())
    span = max(1, max(proxy.accepted) - min(proxy.accepted) + 1) if proxy.accepted else 1
    print(
        f"budget {args.budget:g} calls/s; AWS calls {total} over {span} s "
        f"(mean {total / span:.2f}/s), max over any 10 s window {window:.2f}/s "
        f"= {window / args.budget:.2f}x budget (target <= 1.2x); throttled by the proxy: "
        f"{proxy.throttled}"
    )
    walks = [w for _, _, w in done if w and w["completed_at"]]
    if walks:
        w = walks[0]
        took = _seconds(w["completed_at"]) - _seconds(w["started_at"])
        print(
            f"one full sweep: {w['pairs_checked']} of {w['pairs_total']} pairs in {took:.0f} s "
            f"({w['pairs_checked'] / max(took, 1):.2f} pairs/s)"
        )
    else:
        last = next((w for _, _, w in reversed(done) if w), None)
        print(f"no full sweep within {args.timeout} s; last progress: {last}")
    print(
        "out-of-band assignment removed after "
        + (f"{removed:.0f} s" if removed is not None else f"more than {args.timeout} s")
    )
    after = [(s, n) for s, n, _ in done if _seconds(s) >= active_since]
    checked = [n for _, n in after]
    every = all(n >= covering for n in checked)
    print(
        f"runs: {len(done)}, {len(after)} since all {covering} covering requests were active; "
        f"checked per run min "
        f"{min(checked, default=0)} max {max(checked, default=0)} -> every run checked every "
        f"covering request: {every}"
    )


def _seconds(iso: str) -> float:
    from datetime import UTC, datetime

    at = datetime.fromisoformat(iso)  # SQLite keeps UTC without an offset
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--accounts", type=int, default=40)
    p.add_argument("--sets", type=int, default=20)
    p.add_argument("--subset", type=float, default=0.25, help="share of accounts per set")
    p.add_argument("--budget", type=float, default=10.0, help="ELEVATE_AWS_MAX_CALLS_PER_SECOND")
    p.add_argument("--interval", type=int, default=30, help="reconcile interval, seconds")
    p.add_argument("--requests", type=int, default=6, help="covering requests to check")
    p.add_argument("--timeout", type=int, default=900, help="give up waiting after, seconds")
    p.add_argument("--seed", type=int, default=12)
    main(p.parse_args())
