"""A burst of approvals: elevate against a bare Temporal workflow of the same shape.

One run, one Temporal dev server, one moto. N requests for N distinct principals on one account
and permission set (sandbox, ReadOnly) are approved together. The bare shape is a workflow
defined here (start -> `approve` update -> one grant activity: create, status, read-back ->
durable sleep -> one revoke activity: delete, status, read-back), run by a worker inside this
process; elevate is `elevate worker` + `elevate api` in their own processes, driven through the
API. Both reach moto through a counting proxy (elevate/devstack/awsproxy.py); a watcher
process polls moto directly (uncounted) and records when each principal's assignment appears
and disappears. Prints lifecycles/s, approve -> held and end_at -> gone, AWS calls per
lifecycle by operation, elevate against bare with the issue's targets, and where elevate's
worker waited (the SDK's schedule-to-start and execution latencies per task queue).

With --budget R the proxy throttles above R calls/s and elevate gets
ELEVATE_AWS_MAX_CALLS_PER_SECOND=R; only elevate runs (--bare adds the bare shape), and it
prints the final statuses, the revoke lag and the calls/s the proxy let through.

    .venv/bin/python bench/burst.py                        # 100 approved together, 10 s grants
    .venv/bin/python bench/burst.py --n 500 --budget 10    # AWS at 10 calls/s, 30 s grants
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import multiprocessing
import os
import queue
import secrets
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

# The sandbox re-runs this file for each workflow run; everything but temporalio comes from
# outside it, as in a workflow module of the product.
with workflow.unsafe.imports_passed_through():
    import boto3
    import httpx
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client, WorkflowHandle
    from temporalio.worker import Worker

    from elevate.devstack import processes
    from elevate.devstack.awsproxy import BudgetProxy
    from elevate.devstack.keys import ensure_dev_key, mint_token
    from elevate.devstack.seed import DemoOrg, add_users, seed_demo
    from elevate.providers.aws import CLIENT_CONFIG
    from workflows.options import lane_queue, message_queue

REGION = "us-east-1"
BARE_QUEUE = "burst-bare"
# As elevate's worker bounds each of its task queues (worker.MAX_CONCURRENT_ACTIVITIES).
BARE_ACTIVITIES = 16
FINAL = {"ended", "revoked", "rejected", "cancelled", "expired", "failed"}
SERVICES = {
    "SWBExternalService": "sso-admin",
    "AWSIdentityStore": "identitystore",
    "AWSOrganizationsV20161128": "organizations",
}


# --- the bare shape ---------------------------------------------------------------------------


@dataclass
class BareInput:
    instance_arn: str
    account_id: str
    permission_set_arn: str
    principal_id: str
    duration_seconds: float


@dataclass
class ApproveInput:
    approver: str


@workflow.defn
class BareShapeWorkflow:
    """start -> wait for `approve` -> grant -> sleep the duration -> revoke. Update: `approve`.
    Returns end_at (epoch seconds): when the grant returned plus the duration."""

    def __init__(self) -> None:
        self._approved = False

    @workflow.update
    def approve(self, inp: ApproveInput) -> None:
        self._approved = True

    @workflow.run
    async def run(self, inp: BareInput) -> float:
        await workflow.wait_condition(lambda: self._approved)
        timeout = timedelta(minutes=2)
        await workflow.execute_activity_method(
            BareActivities.grant_assignment, inp, start_to_close_timeout=timeout
        )
        end_at = workflow.now() + timedelta(seconds=inp.duration_seconds)
        await workflow.sleep(inp.duration_seconds)
        await workflow.execute_activity_method(
            BareActivities.revoke_assignment, inp, start_to_close_timeout=timeout
        )
        return end_at.timestamp()


class BareActivities:
    """Create (delete), poll the request's status until SUCCEEDED, read back: one activity."""

    def __init__(self, sso: Any) -> None:
        self._sso = sso

    @activity.defn
    def grant_assignment(self, inp: BareInput) -> None:
        status = self._sso.create_account_assignment(**_target(inp))
        self._wait(
            lambda: self._sso.describe_account_assignment_creation_status(
                InstanceArn=inp.instance_arn,
                AccountAssignmentCreationRequestId=status["AccountAssignmentCreationStatus"][
                    "RequestId"
                ],
            )["AccountAssignmentCreationStatus"]
        )
        self._read_back(inp, present=True)

    @activity.defn
    def revoke_assignment(self, inp: BareInput) -> None:
        status = self._sso.delete_account_assignment(**_target(inp))
        self._wait(
            lambda: self._sso.describe_account_assignment_deletion_status(
                InstanceArn=inp.instance_arn,
                AccountAssignmentDeletionRequestId=status["AccountAssignmentDeletionStatus"][
                    "RequestId"
                ],
            )["AccountAssignmentDeletionStatus"]
        )
        self._read_back(inp, present=False)

    def _wait(self, describe: Callable[[], dict[str, Any]]) -> None:
        while (status := describe())["Status"] != "SUCCEEDED":
            if status["Status"] == "FAILED":
                raise ApplicationError(str(status.get("FailureReason")), non_retryable=True)
            time.sleep(1)

    def _read_back(self, inp: BareInput, present: bool) -> None:
        listed = self._sso.list_account_assignments_for_principal(
            InstanceArn=inp.instance_arn,
            PrincipalId=inp.principal_id,
            PrincipalType="USER",
            Filter={"AccountId": inp.account_id},
        )["AccountAssignments"]
        if any(x["PermissionSetArn"] == inp.permission_set_arn for x in listed) != present:
            raise ApplicationError("read back does not match yet")


def _target(inp: BareInput) -> dict[str, str]:
    return {
        "InstanceArn": inp.instance_arn,
        "TargetId": inp.account_id,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": inp.permission_set_arn,
        "PrincipalType": "USER",
        "PrincipalId": inp.principal_id,
    }


# --- what both sides are measured with --------------------------------------------------------


def watch(endpoint: str, scope: tuple[str, str, str], interval: float, stop: Any, out: Any) -> None:
    """In its own process: list the account's assignments of the set straight at moto every
    `interval`; send (principal, "held" | "gone", time) when one appears or disappears."""
    sso = boto3.client("sso-admin", region_name=REGION, endpoint_url=endpoint)
    pages = sso.get_paginator("list_account_assignments")
    instance, account, pset = scope
    held: set[str] = set()
    while not stop.is_set():
        listed = pages.paginate(InstanceArn=instance, AccountId=account, PermissionSetArn=pset)
        now_held = {x["PrincipalId"] for page in listed for x in page["AccountAssignments"]}
        at = time.time()
        for p in now_held - held:
            out.put((p, "held", at))
        for p in held - now_held:
            out.put((p, "gone", at))
        held = now_held
        stop.wait(interval)


class Watcher:
    """The watcher process and what it saw: first time held, first time gone after that."""

    def __init__(self, endpoint: str, scope: tuple[str, str, str], interval: float) -> None:
        ctx = multiprocessing.get_context("spawn")  # not fork: this process runs threads
        self._stop, self._events = ctx.Event(), ctx.Queue()
        self._proc = ctx.Process(
            target=watch, args=(endpoint, scope, interval, self._stop, self._events), daemon=True
        )
        self.held: dict[str, float] = {}
        self.gone: dict[str, float] = {}
        self._lock = threading.Lock()
        self._proc.start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                principal, what, at = self._events.get(timeout=0.5)
            except queue.Empty:
                if not self._proc.is_alive():
                    return
                continue
            with self._lock:
                if what == "held":
                    self.held.setdefault(principal, at)
                elif principal in self.held:
                    self.gone.setdefault(principal, at)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def begin(self) -> tuple[dict[str, float], dict[str, float]]:
        """Forget what an earlier side left (its principals are the same); the dicts to read."""
        with self._lock:
            self.held, self.gone = {}, {}
            return self.held, self.gone

    async def all_gone(self, principals: Iterable[str], timeout: float = 60) -> None:
        """Until every principal seen held was seen gone (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        want = set(principals)
        while time.monotonic() < deadline:
            with self._lock:
                if all(p in self.gone for p in want & set(self.held)):
                    return
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._proc.join(5)


@dataclass
class Bench:
    """What both sides run against."""

    proxy: BudgetProxy
    watcher: Watcher
    org: DemoOrg
    users: dict[str, str]  # username -> principal id
    duration: float
    timeout: float


@dataclass
class Side:
    name: str
    duration: float
    sent: dict[str, float] = field(default_factory=dict)  # principal -> approve sent
    end_at: dict[str, float] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)  # operation -> accepted calls
    throttled: Counter[str] = field(default_factory=Counter)  # operation -> throttled calls
    window: tuple[float, float] = (0.0, 0.0)
    statuses: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)  # API answers retried
    held: dict[str, float] = field(default_factory=dict)  # principal -> first seen at moto
    gone: dict[str, float] = field(default_factory=dict)  # principal -> first seen gone after
    phases: dict[str, float] = field(default_factory=dict)  # what took how long, seconds
    steps: dict[str, list[float]] = field(default_factory=dict)  # "a -> b": seconds per request


class Window:
    """Into a Side: the proxy's counts between entering and leaving, what the watcher saw."""

    def __init__(self, b: Bench, side: Side) -> None:
        self.proxy, self.watcher, self.side = b.proxy, b.watcher, side

    def __enter__(self) -> Window:
        self.side.held, self.side.gone = self.watcher.begin()
        self._calls, self._at = self.proxy.calls(), time.time()
        return self

    def __exit__(self, *_: object) -> None:
        (calls, throttled), (calls0, throttled0) = self.proxy.calls(), self._calls
        self.side.calls, self.side.throttled = calls - calls0, throttled - throttled0
        self.side.window = (self._at, time.time())


# --- running each side ------------------------------------------------------------------------


async def run_bare(b: Bench, temporal: Client) -> Side:
    side = Side("bare", b.duration)
    sso = boto3.client(
        "sso-admin", region_name=REGION, endpoint_url=b.proxy.url, config=CLIENT_CONFIG
    )
    acts = BareActivities(sso)
    org = b.org
    account, pset = org.accounts["sandbox"], org.permission_sets["ReadOnly"]
    with ThreadPoolExecutor(BARE_ACTIVITIES) as pool:
        async with Worker(
            temporal,
            task_queue=BARE_QUEUE,
            workflows=[BareShapeWorkflow],
            activities=[acts.grant_assignment, acts.revoke_assignment],
            activity_executor=pool,
            max_concurrent_activities=BARE_ACTIVITIES,
        ):
            with Window(b, side):
                principals, began = list(b.users.values()), time.time()
                handles = await asyncio.gather(
                    *(
                        temporal.start_workflow(
                            BareShapeWorkflow.run,
                            BareInput(org.instance_arn, account, pset, p, b.duration),
                            id=f"burst-bare-{uuid.uuid4()}",
                            task_queue=BARE_QUEUE,
                        )
                        for p in principals
                    )
                )
                side.phases["start the workflows"] = time.time() - began

                async def approve(p: str, h: WorkflowHandle[Any, float]) -> None:
                    side.sent[p] = time.time()
                    await h.execute_update(BareShapeWorkflow.approve, ApproveInput("carol"))

                began = time.time()
                await asyncio.gather(
                    *(approve(p, h) for p, h in zip(principals, handles, strict=True))
                )
                side.phases["every approve update answered"] = time.time() - began
                ends = await asyncio.gather(*(h.result() for h in handles))
                side.end_at = dict(zip(principals, ends, strict=True))
                side.statuses = Counter({"ended": len(ends)})
                await b.watcher.all_gone(principals)
                await quiet(b.proxy)
    return side


class Api:
    """elevate's REST API as the bench's users, carol (approver) and dave (admin) use it."""

    def __init__(self, base: str, key: Path) -> None:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        self.http = httpx.AsyncClient(base_url=base, timeout=120, limits=limits)
        self._key = key

    def auth(self, user: str, groups: list[str]) -> dict[str, str]:
        token = mint_token(
            user, groups, issuer="elevate-dev", audience="elevate", key_path=self._key
        )
        return {"Authorization": f"Bearer {token}"}

    async def post(
        self, side: Side, what: str, path: str, headers: dict[str, str], **kw: Any
    ) -> httpx.Response:
        """Retried while the API answers 5xx or not at all (counted in side.refusals)."""
        for attempt in range(20):
            try:
                r = await self.http.post(path, headers=headers, **kw)
                if r.status_code < 500:
                    return r
                side.refusals[f"{what} {r.status_code} {r.json().get('error')}"] += 1
            except httpx.TransportError as err:
                side.refusals[f"{what} {type(err).__name__}"] += 1
            await asyncio.sleep(min(2**attempt * 0.2, 5))
        raise RuntimeError(f"POST {path}: the API kept failing")

    async def steps(self, ids: list[str], admin: dict[str, str]) -> dict[str, list[float]]:
        """From each request's audit events: seconds between consecutive actions."""
        gaps: dict[str, list[float]] = {}
        reading = asyncio.Semaphore(20)

        async def one(rid: str) -> None:
            async with reading:
                events = (await self.http.get(f"/v1/requests/{rid}", headers=admin)).json()
            events = sorted(events.get("events", []), key=lambda e: e["seq"])
            for a, z in itertools.pairwise(events):
                took = datetime.fromisoformat(z["at"]) - datetime.fromisoformat(a["at"])
                gaps.setdefault(f"{a['action']} -> {z['action']}", []).append(took.total_seconds())

        await asyncio.gather(*(one(rid) for rid in ids))
        return gaps

    async def requests(self, ids: set[str], admin: dict[str, str]) -> list[dict[str, Any]]:
        """Every request of `ids`, newest first, through the admin's list pages."""
        found, cursor = [], None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = (await self.http.get("/v1/requests", params=params, headers=admin)).json()
            found += [r for r in page["items"] if r["id"] in ids]
            cursor = page.get("next_cursor")
            if not cursor or len(found) >= len(ids):
                return found


async def run_elevate(b: Bench, api: Api) -> Side:
    side = Side("elevate", b.duration)
    body = {
        "account_id": b.org.accounts["sandbox"],
        "permission_set": "ReadOnly",
        "duration": f"PT{b.duration:g}S",
        "justification": "bench burst",
    }
    carol = api.auth("carol@example.com", ["elevate-approvers"])
    admin = api.auth("dave@example.com", ["elevate-admins"])
    tokens = {u: api.auth(u, ["developers"]) for u in b.users}  # ~50 ms each: not in the window
    creating = asyncio.Semaphore(10)
    with Window(b, side):

        async def create(user: str) -> str:
            headers = {**tokens[user], "Idempotency-Key": str(uuid.uuid4())}
            async with creating:
                r = await api.post(side, "create", "/v1/requests", headers, json=body)
            if r.status_code != 201:
                raise RuntimeError(f"create for {user}: {r.status_code} {r.text[:300]}")
            return str(r.json()["id"])

        began = time.time()
        ids = await asyncio.gather(*(create(u) for u in b.users))
        side.phases["create the requests (API, 10 at a time)"] = time.time() - began
        principal = dict(zip(ids, b.users.values(), strict=True))

        async def approve(rid: str) -> None:
            side.sent[principal[rid]] = time.time()
            r = await api.post(side, "approve", f"/v1/requests/{rid}/approve", carol, json={})
            if r.status_code != 200:
                side.refusals[f"approve {r.status_code} {r.json().get('error')}"] += 1

        began = time.time()
        await asyncio.gather(*(approve(rid) for rid in ids))
        side.phases["every approve answered"] = time.time() - began
        rows = await wait_final(api, set(ids), admin, b.timeout)
        await b.watcher.all_gone(principal.values())
        await quiet(b.proxy)
    side.steps = await api.steps(ids, admin)
    side.statuses = Counter(r["status"] for r in rows)
    side.end_at = {
        principal[r["id"]]: datetime.fromisoformat(r["end_at"]).timestamp()
        for r in rows
        if r.get("end_at")
    }
    return side


async def quiet(proxy: BudgetProxy, for_seconds: float = 3) -> None:
    """Until no AWS call went through for a while: trailing calls (ending sessions) count."""
    last, still = proxy.calls()[0], time.monotonic()
    while time.monotonic() - still < for_seconds:
        await asyncio.sleep(0.5)
        if (now := proxy.calls()[0]) != last:
            last, still = now, time.monotonic()


async def wait_final(
    api: Api, ids: set[str], admin: dict[str, str], timeout: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await api.requests(ids, admin)
        if len(rows) == len(ids) and all(r["status"] in FINAL for r in rows):
            return rows
        if time.monotonic() > deadline:
            print(f"timed out: {Counter(r['status'] for r in rows)}")
            return rows
        await asyncio.sleep(1)


# --- report -----------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of them at or below it."""
    xs = sorted(xs)
    return xs[max(0, math.ceil(q * len(xs)) - 1)] if xs else math.nan


def figures(side: Side) -> dict[str, float]:
    ps, held_at, gone_at = list(side.sent), side.held, side.gone
    held = [held_at[p] - side.sent[p] for p in ps if p in held_at]
    lag = [gone_at[p] - side.end_at[p] for p in ps if p in gone_at and p in side.end_at]
    last_gone = max((gone_at[p] for p in ps if p in gone_at), default=math.nan)
    n = len(ps)
    sso = sum(c for op, c in side.calls.items() if op.startswith("SWBExternalService."))
    return {
        "n": n,
        "held_n": len(held),
        "lag_n": len(lag),
        "rate": n / (last_gone - min(side.sent.values()) - side.duration),
        "held_p50": pct(held, 0.5),
        "held_p99": pct(held, 0.99),
        "lag_p50": pct(lag, 0.5),
        "lag_p99": pct(lag, 0.99),
        "lag_max": max(lag, default=math.nan),
        "sso": sso / n,
        "aws": sum(side.calls.values()) / n,
    }


def print_side(side: Side) -> dict[str, float]:
    f = figures(side)
    start, end = side.window
    print(f"\n{side.name}: {f['n']:.0f} lifecycles, counted window {end - start:.1f} s")
    print(f"  final statuses: {dict(side.statuses)}")
    print("  " + "; ".join(f"{what}: {took:.1f} s" for what, took in side.phases.items()))
    if side.refusals:
        print(f"  API answers retried or refused: {dict(side.refusals)}")
    print(f"  lifecycles/s             {f['rate']:8.2f}")
    print(
        f"  approve -> held at moto  p50 {f['held_p50'] * 1000:7.0f} ms  p99 "
        f"{f['held_p99'] * 1000:7.0f} ms  (n={f['held_n']:.0f})"
    )
    print(
        f"  end_at -> gone at moto   p50 {f['lag_p50'] * 1000:7.0f} ms  p99 "
        f"{f['lag_p99'] * 1000:7.0f} ms  max {f['lag_max'] * 1000:.0f} ms  (n={f['lag_n']:.0f})"
    )
    if side.steps:
        print("  elevate's steps (audit events), p50 / p99 over the requests:")
        for step, gaps in side.steps.items():
            if len(gaps) >= f["n"] / 2:
                p50, p99 = pct(gaps, 0.5) * 1000, pct(gaps, 0.99) * 1000
                print(f"    {step:34s} {p50:7.0f} / {p99:7.0f} ms")
    print_calls(side, f)
    return f


def print_calls(side: Side, f: dict[str, float]) -> None:
    throttled = sum(side.throttled.values())
    print(
        f"  AWS calls per lifecycle through the proxy: sso-admin {f['sso']:.2f}, all services "
        f"{f['aws']:.2f}; throttled by the proxy: {throttled}"
    )
    for op in sorted(side.calls | side.throttled, key=lambda op: -side.calls[op]):
        service, _, name = op.partition(".")
        refused = f"  throttled {side.throttled[op]}" if side.throttled[op] else ""
        print(
            f"    {SERVICES.get(service, service or '(no X-Amz-Target)'):14s} {name:40s} "
            f"{side.calls[op] / f['n']:6.2f}  ({side.calls[op]}){refused}"
        )


def print_comparison(bare: dict[str, float], elevate: dict[str, float]) -> None:
    Met = Callable[[float, float], bool]  # (elevate/bare, elevate) -> within the target
    rows: list[tuple[str, str, int, str, Met]] = [
        ("lifecycles/s", "rate", 1, ">= 0.5x bare", lambda r, _: r >= 0.5),
        ("approve -> held p50 (ms)", "held_p50", 1000, "<= 3x bare", lambda r, _: r <= 3),
        ("end_at -> gone p99 (ms)", "lag_p99", 1000, "<= 3x bare", lambda r, _: r <= 3),
        ("sso-admin calls per lifecycle", "sso", 1, "elevate <= 8", lambda _, e: e <= 8),
    ]
    print(f"\n{'':32s}{'bare':>10s}{'elevate':>10s}{'elevate/bare':>14s}  target        met")
    for label, key, scale, target, met in rows:
        b, e = bare[key] * scale, elevate[key] * scale
        ratio = e / b if b else math.inf
        print(
            f"{label:32s}{b:10.2f}{e:10.2f}{ratio:14.2f}  {target:13s} "
            f"{'yes' if met(ratio, e) else 'NO'}"
        )


def print_budget(side: Side, proxy: BudgetProxy, budget: float) -> None:
    start, end = side.window
    window = proxy.max_window(10, start, end)
    total, refused = sum(side.calls.values()), sum(side.throttled.values())
    print(
        f"\nbudget {budget:g} calls/s: proxy throttled {refused} calls; let through "
        f"{total} over {end - start:.0f} s (mean {total / max(end - start, 1):.2f}/s), "
        f"max over any 10 s window {window:.2f}/s = {window / budget:.2f}x budget"
    )
    bad = {s: c for s, c in side.statuses.items() if s != "ended"}
    print(f"all {sum(side.statuses.values())} ended: {not bad}; failed: {side.statuses['failed']}")


# --- the run ----------------------------------------------------------------------------------


async def wait_for_pollers(temporal: Client, queues: list[str], timeout: float = 60) -> None:
    """Until elevate's worker polls every queue: its start-up stays out of the window."""
    deadline = time.monotonic() + timeout
    kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    pending = [(q, k) for q in queues for k in kinds[1:]] + [(queues[0], kinds[0])]
    while pending and time.monotonic() < deadline:
        q, kind = pending[0]
        got = await temporal.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace="default", task_queue=TaskQueue(name=q), task_queue_type=kind
            )
        )
        if got.pollers:
            pending.pop(0)
        else:
            await asyncio.sleep(0.5)


def elevate_env(
    args: argparse.Namespace, work: Path, tport: int, aws: dict[str, str]
) -> dict[str, str]:
    return {
        **aws,
        "ELEVATE_WORKER_METRICS_PORT": str(args.worker_metrics_port),
        "ELEVATE_DATABASE_URL": args.database_url or f"sqlite:///{work}/e.db",
        "ELEVATE_TEMPORAL_ADDRESS": f"127.0.0.1:{tport}",
        "ELEVATE_AUTH_JWKS_URL": str(work / "jwks.json"),
        "ELEVATE_MIN_DURATION": "PT1S",
        "ELEVATE_MESSAGE_KEY": secrets.token_hex(32),
        "ELEVATE_AWS_MAX_CALLS_PER_SECOND": f"{args.budget or 1000:g}",
        "ELEVATE_RECONCILE_INTERVAL": "PT1H",  # the reconciler stays out of the window
    }


def headline(args: argparse.Namespace, duration: float) -> None:
    budget = (
        f"{args.budget:g} calls/s (the proxy throttles above it; ELEVATE_AWS_MAX_CALLS_PER_SECOND)"
        if args.budget
        else "none on either side (proxy unlimited; ELEVATE_AWS_MAX_CALLS_PER_SECOND=1000)"
    )
    print(
        f"{args.n} requests approved together, {duration:g} s grants, {args.n} principals on one "
        f"account + permission set; AWS budget: {budget}; watcher every "
        f"{args.watch * 1000:.0f} ms; {os.cpu_count()} cores"
    )
    print("lifecycles/s = N / (last assignment gone - first approve sent - duration)")


async def run(args: argparse.Namespace, work: Path, procs: list[Any]) -> None:
    key = work / "key.pem"
    ensure_dev_key(key)
    tport, uiport, mport, aport = (processes.free_port() for _ in range(4))
    procs += [processes.start_temporal(tport, uiport, work / "t.db"), processes.start_moto(mport)]
    moto = processes.aws_env(mport)
    os.environ.update(moto)
    org = seed_demo()
    users = add_users(org, "burst", args.n, REGION)
    proxy = BudgetProxy(moto["AWS_ENDPOINT_URL"], args.budget or math.inf)
    scope = (org.instance_arn, org.accounts["sandbox"], org.permission_sets["ReadOnly"])
    watcher = Watcher(moto["AWS_ENDPOINT_URL"], scope, args.watch)
    duration = args.duration or (30 if args.budget else 10)
    bench = Bench(proxy, watcher, org, users, duration, args.timeout)
    headline(args, duration)
    temporal = await Client.connect(f"127.0.0.1:{tport}")
    cpu = Cpu({"temporal": procs[0].pid, "moto": procs[1].pid, "bench": os.getpid()})
    cpu.watch("watcher", watcher.pid)
    try:
        sides: list[Side] = []
        if args.bare or not args.budget:
            sides.append(await cpu.during("bare", run_bare(bench, temporal)))
        env = elevate_env(args, work, tport, {**moto, "AWS_ENDPOINT_URL": proxy.url})
        procs += [
            processes.start_elevate(["worker"], env, work / "worker.log"),
            processes.start_elevate(["api", "--port", str(aport)], env, work / "api.log"),
        ]
        base = f"http://127.0.0.1:{aport}"
        processes.wait_until(lambda: processes.http_ok(f"{base}/readyz"), "API", 60, procs[-1])
        lanes = [lane_queue("elevate", lane) for lane in ("grant", "revoke")]
        await wait_for_pollers(temporal, ["elevate", message_queue("elevate"), *lanes])
        cpu.watch("worker", procs[-2].pid)
        cpu.watch("api", procs[-1].pid)
        api = Api(base, key)
        sides.append(await cpu.during("elevate", run_elevate(bench, api)))
        await api.http.aclose()
        waits = worker_waits(f"http://127.0.0.1:{args.worker_metrics_port}/metrics")
        shown = [print_side(s) for s in sides]
        if len(shown) == 2:
            print_comparison(*shown)
        if args.budget:
            print_budget(sides[-1], proxy, args.budget)
        print_waits(waits)
        cpu.print()
    finally:
        watcher.stop()


class Cpu:
    """CPU seconds each process used while a side ran (/proc: user + system), against the
    wall time: on a saturated box the process nearest one core (or all of them) is the limit."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = dict(pids)
        self._used: dict[str, dict[str, float]] = {}
        self._wall: dict[str, float] = {}

    def watch(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self._pids[name] = pid

    def _now(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        found = {}
        for name, pid in self._pids.items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return found

    async def during(self, side: str, work: Any) -> Any:
        before, began = self._now(), time.monotonic()
        result = await work
        after = self._now()
        self._wall[side] = time.monotonic() - began
        self._used[side] = {n: after[n] - before[n] for n in after if n in before}
        return result

    def print(self) -> None:
        print(f"\nCPU seconds used while each side ran ({os.cpu_count()} cores):")
        for side, used in self._used.items():
            wall = self._wall[side]
            parts = ", ".join(f"{n} {v:.1f} ({v / wall:.0%})" for n, v in used.items())
            every = sum(used.values()) / wall
            print(f"  {side}: {wall:.1f} s wall; {parts}; all {every:.2f} cores")


# Where a lifecycle waits, from the SDK's histograms on elevate's worker (seconds): a task waits
# for a worker slot from schedule to start, then runs for the execution latency.
_WAITS = (
    "temporal_workflow_task_schedule_to_start_latency",
    "temporal_workflow_task_execution_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_activity_execution_latency",
)


Waits = dict[tuple[str, str], tuple[float, float]]


def worker_waits(url: str) -> Waits:
    """(metric, where) -> (count, total seconds); `where` is the task queue, and for activities
    of the main queue also the activity type, summed over the other labels."""
    text = httpx.get(url, timeout=10).text
    found: dict[tuple[str, str], list[float]] = {}
    for line in text.splitlines():
        name = next((n for n in _WAITS if line.startswith(n)), None)
        if name is None or "{" not in line:
            continue
        metric, rest = line.split("{", 1)
        body, value = rest.rsplit("} ", 1)
        labels = dict(p.split("=", 1) for p in body.split(",") if "=" in p)
        where = labels.get("task_queue", "?").strip('"')
        if where == "elevate" and "activity_type" in labels:
            where += " " + labels["activity_type"].strip('"')
        kind = {"_count": 0, "_sum": 1}.get(metric[metric.rfind("_") :])
        if kind is not None:
            found.setdefault((name, where), [0.0, 0.0])[kind] += float(value)
    return {k: (v[0], v[1]) for k, v in found.items()}


def print_waits(waits: Waits) -> None:
    print("\nelevate's worker over the whole run (SDK histograms): count, mean")
    for name in _WAITS:
        for (metric, where), (count, total) in sorted(waits.items()):
            if metric == name and count:
                step = name.removeprefix("temporal_").replace("_", " ")
                print(f"  {step:46s} {where:36s} {count:6.0f} {total / count * 1000:8.1f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=100, help="requests (distinct principals)")
    p.add_argument(
        "--worker-metrics-port", type=int, default=0, help="elevate worker's (default: a free one)"
    )
    p.add_argument("--duration", type=float, help="seconds of access (10; 30 with --budget)")
    p.add_argument("--budget", type=float, help="AWS calls/s: the proxy throttles above it")
    p.add_argument("--bare", action="store_true", help="with --budget, run the bare shape too")
    p.add_argument("--watch", type=float, default=0.02, help="watcher poll interval, seconds")
    p.add_argument("--timeout", type=float, default=3600, help="give up waiting after, seconds")
    p.add_argument("--database-url", help="elevate's database (default: SQLite in a temp dir)")
    args = p.parse_args()
    args.worker_metrics_port = args.worker_metrics_port or processes.free_port()
    work = Path(tempfile.mkdtemp(prefix="elevate-bench-burst-"))
    procs: list[Any] = []
    began = time.monotonic()
    try:
        asyncio.run(run(args, work, procs))
    finally:
        processes.stop(procs)
        print(f"\nran {time.monotonic() - began:.0f} s; logs in {work}")


if __name__ == "__main__":
    main()
