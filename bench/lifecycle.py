"""Latency of the lifecycle on the embedded stack (Temporal dev server, moto, API, worker).

Prints, over N requests run one after another: approve → `active` (as the API reports it,
assignment read back at AWS) and `end_at` → assignment gone at moto.

    .venv/bin/python bench/lifecycle.py [N] [identity_center|iam]
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import boto3
import httpx

from elevate.devstack import processes
from elevate.devstack.keys import ensure_dev_key, mint_token
from elevate.devstack.seed import USERS, seed_demo
from elevate.devstack.seed_iam import seed_iam_demo
from elevate.providers.aws import client


def poll(check, interval: float = 0.01, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(interval)
    raise TimeoutError("condition not met")


def main(n: int, provider: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="elevate-bench-"))
    key = work / "key.pem"
    jwks = ensure_dev_key(key)
    tport, uiport, mport, aport = (processes.free_port() for _ in range(4))
    procs = [processes.start_temporal(tport, uiport, work / "t.db"), processes.start_moto(mport)]
    aws = processes.aws_env(mport)
    os.environ.update(aws)
    catalog = work / "iam-catalog.yaml"
    org = seed_iam_demo(catalog) if provider == "iam" else seed_demo()
    client.cache_clear()
    env = {
        "ELEVATE_PROVIDER": provider,
        "ELEVATE_IAM_CATALOG": str(catalog),
        "ELEVATE_WORKER_METRICS_PORT": "0",
        **aws,
        "ELEVATE_DATABASE_URL": f"sqlite:///{work}/e.db",
        "ELEVATE_TEMPORAL_ADDRESS": f"127.0.0.1:{tport}",
        "ELEVATE_AUTH_JWKS_URL": str(jwks),
        "ELEVATE_MIN_DURATION": "PT1S",
        "ELEVATE_MESSAGE_KEY": secrets.token_hex(32),
    }
    procs += [
        processes.start_elevate(["worker"], env),
        processes.start_elevate(["api", "--port", str(aport)], env),
    ]
    base = f"http://127.0.0.1:{aport}"
    try:
        processes.wait_until(lambda: processes.http_ok(f"{base}/readyz"), "API", 60)

        def tok(u: str) -> dict[str, str]:
            t = mint_token(u, USERS[u], issuer="elevate-dev", audience="elevate", key_path=key)
            return {"Authorization": f"Bearer {t}"}

        alice, carol = tok("alice@example.com"), tok("carol@example.com")
        sso = boto3.client(
            "sso-admin", region_name="us-east-1", endpoint_url=aws["AWS_ENDPOINT_URL"]
        )
        iam = boto3.client("iam", region_name="us-east-1", endpoint_url=aws["AWS_ENDPOINT_URL"])
        acct, pset = org.accounts["prod"], org.permission_sets["ReadOnly"]

        def status(c: httpx.Client, rid: str) -> str:
            return str(c.get(f"/v1/requests/{rid}", headers=alice).json()["status"])

        def assigned() -> bool:
            if provider == "iam":  # prod is the worker's own account; ReadOnly is a group
                groups = iam.list_groups_for_user(UserName="alice@example.com")["Groups"]
                return any(g["GroupName"] == "elevate-readonly" for g in groups)
            return bool(
                sso.list_account_assignments(
                    InstanceArn=org.instance_arn, AccountId=acct, PermissionSetArn=pset
                )["AccountAssignments"]
            )

        to_active, to_gone = [], []
        with httpx.Client(base_url=base, timeout=30) as c:
            for _ in range(n):
                rid = c.post(
                    "/v1/requests",
                    headers=alice,
                    json={
                        "account_id": acct,
                        "permission_set": "ReadOnly",
                        "duration": "PT2S",
                        "justification": "bench",
                    },
                ).json()["id"]
                t0 = time.time()
                c.post(f"/v1/requests/{rid}/approve", headers=carol).raise_for_status()
                t1 = poll(lambda r=rid: status(c, r) == "active")
                end_at = datetime.fromisoformat(
                    c.get(f"/v1/requests/{rid}", headers=alice).json()["end_at"]
                )
                gone = poll(lambda: not assigned())
                poll(lambda r=rid: status(c, r) == "ended")
                to_active.append(t1 - t0)
                to_gone.append(gone - end_at.timestamp())
        print(f"provider: {provider}")
        for name, xs in (("approve -> active", to_active), ("end_at -> assignment gone", to_gone)):
            xs = sorted(xs)
            print(
                f"{name:28s} n={len(xs)} median={statistics.median(xs) * 1000:.0f} ms "
                f"p95={xs[int(0.95 * (len(xs) - 1))] * 1000:.0f} ms max={xs[-1] * 1000:.0f} ms"
            )
    finally:
        processes.stop(procs)


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 20,
        sys.argv[2] if len(sys.argv) > 2 else "identity_center",
    )
