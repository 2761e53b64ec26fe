"""N concurrently active requests: the worker's memory, and Temporal actions per lifecycle.

On the embedded stack (Temporal dev server, moto, SQLite, one `elevate worker`, one `elevate
api`): seeds enough identity-store users that N requests are N distinct (user, account,
permission set) triples, each with its own assignment owner; creates and approves them through
the API; waits until all are `active`; then samples the worker's RSS and the workflows Temporal
has running. Last, K short lifecycles run to the end and the events Temporal Cloud bills as
actions are counted in the histories of each request's workflow and of its assignment owner.

    .venv/bin/python bench/active.py                  # 10,000 active, 20 lifecycles
    .venv/bin/python bench/active.py --n 300 --k 5    # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import ContinueAsNewInitiator, EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus

from elevate.contracts import Assignment, assignment_workflow_id
from elevate.devstack import processes
from elevate.devstack.keys import ensure_dev_key, mint_token
from elevate.devstack.seed import USERS, DemoOrg, add_users, seed_demo
from elevate.providers.aws import client

ACCOUNTS = ("prod", "staging", "sandbox")
PERMISSION_SETS = ("ReadOnly", "AdministratorAccess")
Triple = tuple[str, str, str]  # username, account name, permission set name
# History events Temporal Cloud bills as one action each (docs.temporal.io/cloud/actions).
# Not in a history, so not counted: heartbeats, queries, rejected updates, schedule runs.
ACTIONS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "update accepted",
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity scheduled",
    EventType.EVENT_TYPE_TIMER_STARTED: "timer started",
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: "external signal initiated",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "child workflow started",
}
FROM_WORKFLOW = "signal received (from a workflow)"


def seed(users: int) -> tuple[DemoOrg, float]:
    """The demo org plus `users` identity-store users bench-00000@example.com …"""
    t = time.monotonic()
    org = seed_demo()
    add_users(org, "bench-", users)
    return org, time.monotonic() - t


def triples(count: int) -> list[Triple]:
    """`count` distinct triples, user-major: each user takes every account x permission set."""
    combos = [(a, p) for a in ACCOUNTS for p in PERMISSION_SETS]
    return [
        (f"bench-{i // len(combos):05d}@example.com", *combos[i % len(combos)])
        for i in range(count)
    ]


def owner_id(org: DemoOrg, t: Triple) -> str:
    user, account, pset = t
    a = Assignment(
        org.instance_arn, org.accounts[account], org.permission_sets[pset], org.users[user]
    )
    return assignment_workflow_id(a)


async def pooled(
    items: Iterable[Any], concurrency: int, fn: Callable[[Any], Awaitable[Any]]
) -> list[Any]:
    """fn over items with at most `concurrency` in flight; results in completion order."""
    todo, done = iter(items), []

    async def lane() -> None:
        for item in todo:  # one iterator shared by the lanes
            done.append(await fn(item))

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return done


class Bench:
    def __init__(self, c: httpx.AsyncClient, key: Path, org: DemoOrg, concurrency: int) -> None:
        self.c, self.org, self.concurrency = c, org, concurrency
        self._key = key
        self._tokens: dict[str, dict[str, str]] = {}
        self.carol, self.admin = self.headers("carol@example.com"), self.headers("dave@example.com")

    def headers(self, user: str) -> dict[str, str]:
        if user not in self._tokens:
            groups = USERS.get(user, ["developers"])
            t = mint_token(
                user, groups, issuer="elevate-dev", audience="elevate", key_path=self._key
            )
            self._tokens[user] = {"Authorization": f"Bearer {t}"}
        return self._tokens[user]

    async def request(self, t: Triple, duration: str) -> dict[str, Any]:
        """Create and approve one request; its id, workflow id, latencies and 503s seen."""
        user, account, pset = t
        body = {
            "account_id": self.org.accounts[account],
            "permission_set": pset,
            "duration": duration,
            "justification": "bench: active",
        }
        # The key makes a retried create safe (API.md): one request per triple and duration.
        key = {"Idempotency-Key": f"bench-{account}-{pset}-{duration}"}
        out: dict[str, Any] = {"triple": t, "error": None, "unavailable": 0, "landed": 0}
        t0 = time.perf_counter()
        r = None
        for _ in range(3):
            r = await self._send("POST", "/v1/requests", body, {**self.headers(user), **key})
            if r is not None and r.status_code < 500:
                break
        t1 = time.perf_counter()
        if r is None or r.status_code != 201:
            return {**out, "error": f"create {refusal(r)}"}
        out.update(id=r.json()["id"], workflow_id=r.json()["workflow_id"], create=t1 - t0)
        out["error"] = await self.approve(out)
        out["approve"] = time.perf_counter() - t1
        return out

    async def approve(self, out: dict[str, Any]) -> str | None:
        """As carol; a 503 (the API stopped waiting after 15 s) is re-read, then retried, as
        API.md says is safe. `landed` counts 503s whose approval was recorded all the same."""
        path = f"/v1/requests/{out['id']}"
        for _ in range(5):
            a = await self._send("POST", f"{path}/approve", None, self.carol)
            if a is not None and a.status_code == 200:
                return None
            if a is not None and a.status_code == 409 and out["unavailable"]:
                out["landed"] += 1  # "no longer pending": the approval that got a 503 landed
                return None
            if a is not None and a.status_code != 503:
                return f"approve {refusal(a)}"
            out["unavailable"] += 1
            seen = await self._send("GET", path, None, self.admin)
            if seen is not None and seen.status_code == 200:
                if seen.json()["approvals"] or seen.json()["status"] != "pending_approval":
                    out["landed"] += 1
                    return None
        return f"approve {refusal(a)} after 5 attempts"

    async def _send(
        self, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> httpx.Response | None:
        try:
            return await self.c.request(method, path, json=body, headers=headers)
        except httpx.HTTPError:
            return None  # reported as the caller's error

    async def create_all(self, ts: list[Triple], duration: str) -> list[dict[str, Any]]:
        t, finished = time.monotonic(), 0

        async def one(x: Triple) -> dict[str, Any]:
            nonlocal finished
            m = await self.request(x, duration)
            finished += 1
            if finished % 1000 == 0:  # progress, for the long runs
                print(f"  {time.monotonic() - t:6.0f} s: {finished} created + approved")
            return m

        made = await pooled(ts, self.concurrency, one)
        took = time.monotonic() - t
        ok = [m for m in made if m["error"] is None]
        errors = Counter(m["error"] for m in made if m["error"])
        print(
            f"created + approved {len(ok)} of {len(ts)} in {took:.1f} s at concurrency "
            f"{self.concurrency}: {len(ok) / took:.2f} requests/s; create p50 "
            f"{p50([m['create'] for m in ok])} ms, approve p50 "
            f"{p50([m['approve'] for m in ok])} ms (with retries)"
            + (f"; errors: {dict(errors)}" if errors else "")
        )
        unavailable = sum(m["unavailable"] for m in made)
        landed = sum(m["landed"] for m in made)
        if unavailable:
            print(
                f"  approve answered 503 {unavailable} times (the API stops waiting after 15 s); "
                f"{landed} of those approvals were recorded anyway (re-read after the 503)"
            )
        return ok

    async def count(self, status: str) -> int:
        """How many requests the API lists with `status` (every page, as an admin)."""
        n, cursor = 0, None
        while True:
            params: dict[str, Any] = {"status": status, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = (await self.c.get("/v1/requests", params=params, headers=self.admin)).json()
            n += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return n

    async def wait_active(self, n: int, stall: float = 180) -> tuple[int, float]:
        """Until n are active, or the count stops moving for `stall` s; (active, seconds)."""
        t = last_change = last_print = time.monotonic()
        seen = -1
        while True:
            active = await self.count("active")
            now = time.monotonic()
            if active != seen:
                seen, last_change = active, now
            if active >= n or now - last_change > stall:
                return active, now - t
            if now - last_print >= 60:
                print(f"  {now - t:5.0f} s: {active} active")
                last_print = now
            await asyncio.sleep(10)

    async def wait_status(self, rid: str, user: str, timeout: float = 300) -> str:
        deadline, status = time.monotonic() + timeout, "?"
        while time.monotonic() < deadline:
            r = await self.c.get(f"/v1/requests/{rid}", headers=self.headers(user))
            status = r.json()["status"]
            if status in ("ended", "revoked", "failed", "cancelled", "rejected", "expired"):
                return str(status)
            await asyncio.sleep(1)
        return status


def refusal(r: httpx.Response | None) -> str:
    if r is None:
        return "no answer (connection error or timeout)"
    try:
        return f"{r.status_code} {r.json().get('error')}"
    except ValueError:
        return f"{r.status_code} {r.text[:80]}"


def p50(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.0f}" if xs else "-"


def process_tree(pid: int) -> list[int]:
    """pid and its descendants, as ps lists them."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True)
    children: dict[int, list[int]] = defaultdict(list)
    for line in out.stdout.splitlines():
        child, parent = map(int, line.split())
        children[parent].append(child)
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children[p]
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(pids: list[int]) -> float:
    kb = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                kb += int(line.split()[1])
    return kb / 1024


async def running(temporal: Client) -> str:
    """What Temporal's visibility counts as running: all, and by workflow type."""
    q = 'ExecutionStatus="Running"'
    total = (await temporal.count_workflows(q)).count
    kinds = []
    for kind in ("AccessRequestWorkflow", "AssignmentWorkflow"):
        counted = await temporal.count_workflows(f"{q} AND WorkflowType='{kind}'")
        kinds.append(f"{kind} {counted.count}")
    return f"{total} workflows running ({', '.join(kinds)})"


async def sample_memory(temporal: Client, procs: dict[str, Any], seconds: float = 30) -> None:
    worker = procs["worker"].pid
    tree = process_tree(worker)
    print(f"worker: pid {worker}, {len(tree)} process(es) {tree} (RSS summed over them)")
    samples, t = [], time.monotonic()
    while True:
        samples.append(rss_mb(process_tree(worker)))
        seen = await running(temporal)
        print(f"  {time.monotonic() - t:4.0f} s: worker RSS {samples[-1]:.1f} MB; {seen}")
        if time.monotonic() - t >= seconds:
            break
        await asyncio.sleep(5)
    low, high = min(samples), max(samples)
    print(f"worker RSS over {len(samples)} samples: min {low:.1f} MB, max {high:.1f} MB")
    print(f"worker RSS max {high:.1f} MB (target <= 300 MB)")
    trees = {k: process_tree(p.pid) for k, p in procs.items()}
    others = ", ".join(f"{k} {rss_mb(t):.0f} MB" for k, t in trees.items() if k != "worker")
    print(f"for comparison, RSS of {others}")
    print("CPU seconds so far: " + ", ".join(f"{k} {cpu_seconds(t):.0f}" for k, t in trees.items()))


def billable(events: Iterable[HistoryEvent]) -> Counter[str]:
    c: Counter[str] = Counter()
    for e in events:
        t = e.event_type
        if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            a = e.workflow_execution_started_event_attributes
            cont = a.initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW
            c["continue-as-new (new run)" if cont else "workflow started"] += 1
        elif t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            external = e.workflow_execution_signaled_event_attributes.HasField(
                "external_workflow_execution"
            )
            c[FROM_WORKFLOW if external else "signal received (client, signal-with-start)"] += 1
        elif t == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            retries = e.activity_task_started_event_attributes.attempt - 1
            c["activity retries (attempts beyond the first)"] += max(0, retries)
        elif t == EventType.EVENT_TYPE_MARKER_RECORDED:
            c[f"marker recorded ({e.marker_recorded_event_attributes.marker_name})"] += 1
        elif t == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes
            c[f"upsert search attributes ({', '.join(sorted(fields.indexed_fields))})"] += 1
        elif t in ACTIONS:
            c[ACTIONS[t]] += 1
    return c


async def actions_of(temporal: Client, wid: str) -> Counter[str]:
    """Billable events over every run of `wid` (continue-as-new makes more than one)."""
    c: Counter[str] = Counter()
    async for run in temporal.list_workflows(f'WorkflowId = "{wid}"'):
        history = await temporal.get_workflow_handle(wid, run_id=run.run_id).fetch_history()
        c.update(billable(history.events))
        c["(history events, all)"] += len(history.events)
    return c


async def wait_closed(temporal: Client, wid: str, timeout: float = 180) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            await temporal.get_workflow_handle(wid).describe()
        ).status != WorkflowExecutionStatus.RUNNING:
            return True
        await asyncio.sleep(1)
    return False


async def lifecycles(bench: Bench, temporal: Client, ts: list[Triple]) -> None:
    t = time.monotonic()
    made = await bench.create_all(ts, "PT5S")
    ends = await asyncio.gather(*(bench.wait_status(m["id"], m["triple"][0]) for m in made))
    pairs = [(m["workflow_id"], owner_id(bench.org, m["triple"])) for m in made]
    closed = await asyncio.gather(*(wait_closed(temporal, w) for pair in pairs for w in pair))
    print(
        f"{len(made)} short lifecycles (PT5S) done in {time.monotonic() - t:.0f} s: "
        f"{dict(Counter(ends))}; workflows closed {sum(closed)} of {len(closed)}"
    )
    request, owner = Counter[str](), Counter[str]()
    for wid, oid in pairs:
        request.update(await actions_of(temporal, wid))
        owner.update(await actions_of(temporal, oid))
    report_actions(request, owner, len(pairs))


def report_actions(request: Counter[str], owner: Counter[str], k: int) -> None:
    print(
        f"Temporal actions per lifecycle, mean over {k} (request workflow + its assignment owner):"
    )
    history = "(history events, all)"
    kinds = sorted((set(request) | set(owner)) - {history})
    w = max(len(kind) for kind in [*kinds, history])
    print(f"  {'':{w}s} {'request':>8s} {'owner':>8s} {'total':>8s}")
    for kind in [*kinds, history]:
        r, o = request[kind] / k, owner[kind] / k
        print(f"  {kind:{w}s} {r:8.2f} {o:8.2f} {r + o:8.2f}")
    r = sum(v for n, v in request.items() if n != history) / k
    o = sum(v for n, v in owner.items() if n != history) / k
    print(f"  {'total actions':{w}s} {r:8.2f} {o:8.2f} {r + o:8.2f}")
    once = r + o - (request[FROM_WORKFLOW] + owner[FROM_WORKFLOW]) / k
    print(
        f"  total with a workflow-to-workflow signal counted once (sent, not received): {once:.2f}"
    )


def statuses(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, count(*) FROM access_requests GROUP BY status")
        return dict(rows.fetchall())


async def measure(
    args: argparse.Namespace,
    base: str,
    key: Path,
    org: DemoOrg,
    procs: dict[str, Any],
    tport: int,
    db: Path,
) -> None:
    temporal = await Client.connect(f"127.0.0.1:{tport}")
    limits = httpx.Limits(max_connections=args.concurrency + 4)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as c:
        bench = Bench(c, key, org, args.concurrency)
        print(f"worker RSS before any request: {rss_mb(process_tree(procs['worker'].pid)):.1f} MB")
        every = triples(args.n + args.k)
        made = await bench.create_all(every[: args.n], "PT4H")
        active, took = await bench.wait_active(len(made))
        print(f"{active} of {len(made)} active {took:.0f} s after the last approval")
        if active < len(made):
            print(f"not all active; statuses in the database: {statuses(db)}")
        await sample_memory(temporal, procs)
        await lifecycles(bench, temporal, every[args.n :])


def main(args: argparse.Namespace) -> None:
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="elevate-bench-active-"))
    key = work / "key.pem"
    jwks = ensure_dev_key(key)
    tport, uiport, mport, aport = (processes.free_port() for _ in range(4))
    procs = [processes.start_temporal(tport, uiport, work / "t.db"), processes.start_moto(mport)]
    try:
        aws = processes.aws_env(mport)
        os.environ.update(aws)
        users = math.ceil((args.n + args.k) / (len(ACCOUNTS) * len(PERMISSION_SETS)))
        org, seeded = seed(users)
        client.cache_clear()
        print(
            f"seeded the demo org + {users} users ({len(ACCOUNTS)} accounts x "
            f"{len(PERMISSION_SETS)} permission sets each: {args.n + args.k} distinct triples) "
            f"in {seeded:.1f} s"
        )
        env = {
            **aws,
            "ELEVATE_WORKER_METRICS_PORT": "0",
            "ELEVATE_DATABASE_URL": f"sqlite:///{work}/e.db",
            "ELEVATE_TEMPORAL_ADDRESS": f"127.0.0.1:{tport}",
            "ELEVATE_AUTH_JWKS_URL": str(jwks),
            "ELEVATE_MIN_DURATION": "PT1S",
            "ELEVATE_MESSAGE_KEY": secrets.token_hex(32),
            "ELEVATE_AWS_MAX_CALLS_PER_SECOND": "1000",  # moto is local; no budget measured here
        }
        worker = processes.start_elevate(["worker"], env, work / "worker.log")
        api = processes.start_elevate(["api", "--port", str(aport)], env, work / "api.log")
        procs += [worker, api]
        base = f"http://127.0.0.1:{aport}"
        processes.wait_until(lambda: processes.http_ok(f"{base}/readyz"), "API", 60, api)
        log = work / "worker.log"
        processes.wait_until(lambda: "worker polling" in log.read_text(), "worker", 60, worker)
        named = {"worker": worker, "api": api, "temporal": procs[0], "moto": procs[1]}
        asyncio.run(measure(args, base, key, org, named, tport, work / "e.db"))
    finally:
        processes.stop(procs)
        print(f"total {time.monotonic() - began:.0f} s; logs in {work}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="requests active at once")
    p.add_argument("--k", type=int, default=20, help="short lifecycles whose actions are counted")
    p.add_argument("--concurrency", type=int, default=16, help="API calls in flight")
    main(p.parse_args())
