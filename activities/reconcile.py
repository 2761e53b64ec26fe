"""The reconciler's side effects: compare AWS with the active requests, record what it found."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlmodel import Session, col, select
from temporalio import activity

from activities.assignments import aws_errors
from elevate.audit import commit_with_event
from elevate.contracts import (
    Assignment,
    Finding,
    ReconcileInput,
    ReconcileReport,
    Status,
    SweepSlice,
    SweepState,
)
from elevate.models import AccessRequest, ReconcileRun, StoredPolicy, utcnow
from elevate.providers.base import Provider
from elevate.providers.catalog import PermissionSet

# A request in these states may hold the assignment; the reconciler leaves it alone.
COVERING = (Status.GRANTING.value, Status.ACTIVE.value, Status.REVOKING.value)
Triple = tuple[str, str, str]  # account, permission set ARN, principal id
T = TypeVar("T")
_SWEEP = TypeAdapter(SweepState)


class Pacer:
    """Spaces AWS calls to at most `rate` a second: the reconciler's share of the budget.

    One reconciler run at a time (the schedule skips overlaps), so pacing inside the process
    is pacing for the fleet; the sweep lane's task-queue rate bounds how often runs start.
    """

    def __init__(self, rate: float) -> None:
        self._gap = 1.0 / rate
        self._next = 0.0

    def __call__(self, call: Callable[..., T], *args: object) -> T:
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self._gap
        with aws_errors():
            return call(*args)


def managed_names(session: Session, configured: list[str]) -> list[str]:
    """The permission sets the reconciler may revoke: the configured names, else every name a
    stored policy lists. Never "all": an empty list (or no policy) leaves standing access that
    elevate never granted alone rather than revoking it across the organization."""
    if configured:
        return sorted(set(configured))
    bodies = session.exec(select(StoredPolicy.body)).all()
    return sorted({n for b in bodies for n in b.get("permission_sets") or []})


class ReconcileActivities:
    def __init__(
        self,
        engine: sa.Engine,
        provider: Provider,
        managed: list[str],
        grace: timedelta = timedelta(minutes=2),
        calls_per_second: float = 2.0,
        slice_time: timedelta = timedelta(minutes=4),
    ) -> None:
        self._engine = engine
        self._provider = provider
        self._configured = managed
        self._grace = grace
        self._aws = Pacer(calls_per_second)
        self._slice = slice_time.total_seconds()

    def managed(self, session: Session, all_sets: list[PermissionSet]) -> list[PermissionSet]:
        names = set(managed_names(session, self._configured))
        return [p for p in all_sets if p.name in names]

    @activity.defn
    def scan(self, inp: ReconcileInput) -> ReconcileReport:
        started = utcnow()
        with aws_errors():
            scope = self._provider.scope()
            accounts = self._provider.accounts(refresh=True)
            all_sets = self._provider.permission_sets(refresh=True)
        with Session(self._engine) as session:
            managed = self.managed(session, all_sets)
            rows = session.exec(
                select(AccessRequest).where(col(AccessRequest.status).in_(COVERING))
            ).all()
        # A request past its end (plus the grace) covers nothing, whatever its row says.
        deadline = started - self._grace
        covered = {
            (r.account_id, r.permission_set_arn, r.principal_id)
            for r in rows
            if r.end_at is None or r.end_at > deadline
        }
        present: set[Triple] = set()
        findings: list[Finding] = []
        for account in accounts:
            activity.heartbeat(account.id)
            for pset in managed:
                with aws_errors():
                    holders = self._provider.holders(account.id, pset)
                for principal in holders:
                    triple = (account.id, pset.arn, principal)
                    present.add(triple)
                    if triple not in covered:
                        assignment = Assignment(scope, account.id, pset.arn, principal)
                        findings.append(Finding("orphan", assignment, pset.name))
        managed_arns = {p.arn for p in managed}
        for r in rows:
            triple = (r.account_id, r.permission_set_arn, r.principal_id)
            if (
                r.status == Status.ACTIVE.value
                and r.permission_set_arn in managed_arns
                and triple not in present
            ):
                assignment = Assignment(
                    r.instance_arn, r.account_id, r.permission_set_arn, r.principal_id
                )
                findings.append(
                    Finding("missing", assignment, r.permission_set, r.id, r.workflow_id)
                )
        info = activity.info()
        run_id = info.workflow_run_id or info.workflow_id or "manual"
        return ReconcileReport(run_id, inp.mode, started, len(present), findings)

    @activity.defn
    def record_run(self, report: ReconcileReport) -> None:
        """The run's summary plus one audit event per finding (idempotent by run id)."""
        acted = report.mode == "revoke"
        for i, f in enumerate(report.findings):
            verb = {
                "orphan": _orphan_verb(f.outcome) if acted else "reported",
                "missing": _missing_verb(f.outcome) if acted else "reported",
            }
            if verb[f.kind] is None:
                continue  # the owner kept it, or audits itself what it did
            commit_with_event(
                lambda: Session(self._engine),
                lambda _s: None,
                actor="elevate-reconciler",
                action=f"reconcile_{f.kind}_{verb[f.kind]}",
                request_id=f.request_id,
                details={
                    "account_id": f.assignment.account_id,
                    "permission_set": f.permission_set_name,
                    "principal_id": f.assignment.principal_id,
                    "mode": report.mode,
                },
                dedupe_key=f"{report.run_id}-{i}",
            )
        with Session(self._engine) as session:
            if session.get(ReconcileRun, report.run_id) is None:
                session.add(
                    ReconcileRun(
                        id=report.run_id,
                        mode=report.mode,
                        started_at=report.started_at,
                        finished_at=utcnow(),
                        checked=report.checked,
                        findings=[
                            {
                                "kind": f.kind,
                                "account_id": f.assignment.account_id,
                                "permission_set": f.permission_set_name,
                                "principal_id": f.assignment.principal_id,
                                "request_id": f.request_id,
                            }
                            for f in report.findings
                        ],
                        sweep=stored_sweep(report.sweep),
                    )
                )
                session.commit()

    # --- check + sweep (DESIGN.md "Round 2"): what each run costs fits the sweep's share ----

    def _covering(self, session: Session, *where: sa.ColumnElement[bool]) -> list[AccessRequest]:
        """Requests that may hold their assignment now (past end_at + grace covers nothing)."""
        query = select(AccessRequest).where(col(AccessRequest.status).in_(COVERING), *where)
        deadline = utcnow() - self._grace
        return [r for r in session.exec(query).all() if r.end_at is None or r.end_at > deadline]

    @activity.defn
    def check(self, inp: ReconcileInput) -> ReconcileReport:
        """Read back the assignment of every covering request, one read per triple; an active
        request whose assignment is gone is a `missing` finding."""
        started = utcnow()
        with Session(self._engine) as session:
            rows = self._covering(session)
        held: dict[Triple, bool] = {}
        findings: list[Finding] = []
        for r in rows:
            a = Assignment(r.instance_arn, r.account_id, r.permission_set_arn, r.principal_id)
            triple = (r.account_id, r.permission_set_arn, r.principal_id)
            if triple not in held:
                activity.heartbeat(len(held))
                held[triple] = self._aws(self._provider.holds, a)
            if r.status == Status.ACTIVE.value and not held[triple]:
                findings.append(Finding("missing", a, r.permission_set, r.id, r.workflow_id))
        findings = self._still_active(findings)
        return ReconcileReport(_run_id(), inp.mode, started, len(held), findings)

    def _still_active(self, findings: list[Finding]) -> list[Finding]:
        """Read the database again after AWS: a request revoked while its assignment was read
        is not missing anything (its owner took the assignment away on purpose)."""
        if not findings:
            return findings
        ids = [f.request_id for f in findings]
        with Session(self._engine) as session:
            query = select(AccessRequest.id).where(
                col(AccessRequest.id).in_(ids), AccessRequest.status == Status.ACTIVE.value
            )
            active = set(session.exec(query).all())
        return [f for f in findings if f.request_id in active]

    @activity.defn
    def sweep(self, inp: ReconcileInput) -> SweepSlice:
        """Walk the next slice of provisioned (permission set, account) pairs for assignments
        no request covers; resumes after the last pair the previous run (or try) walked."""
        deadline = time.monotonic() + self._slice
        with Session(self._engine) as session:
            managed = sorted(self.managed(session, self._provider.permission_sets()), key=_arn)
            state = _resumed() or _last_sweep(session)
        if state is None or state.completed_at is not None:
            state = self._new_walk(managed)
        findings: list[Finding] = []
        walked = state.pairs_checked
        for pset, account in self._pairs_after(managed, state):
            if time.monotonic() > deadline and state.pairs_checked > walked:
                return SweepSlice(state, findings)  # at least one pair a run: always progress
            findings += self._orphans(account, pset)
            state.last_pset_arn, state.last_account_id = pset.arn, account
            state.pairs_checked += 1
            activity.heartbeat(state)
        state.completed_at = utcnow()
        return SweepSlice(state, findings)

    def _new_walk(self, managed: list[PermissionSet]) -> SweepState:
        listed = self._provider.provisioned_accounts
        total = sum(len(self._aws(listed, p)) for p in managed)
        return SweepState(started_at=utcnow(), pairs_total=total)

    def _pairs_after(
        self, managed: list[PermissionSet], state: SweepState
    ) -> Iterator[tuple[PermissionSet, str]]:
        for pset in managed:
            if pset.arn < state.last_pset_arn:
                continue  # walked earlier in this sweep: no call
            accounts = self._aws(self._provider.provisioned_accounts, pset)
            for account in sorted(accounts):
                if (pset.arn, account) > (state.last_pset_arn, state.last_account_id):
                    yield pset, account

    def _orphans(self, account: str, pset: PermissionSet) -> list[Finding]:
        """List AWS first, then the database: a request granted meanwhile is seen as covering.
        Each candidate is read again at AWS before it counts (it may be going already)."""
        holders = self._aws(self._provider.holders, account, pset)
        if not holders:
            return []
        with Session(self._engine) as session:
            rows = self._covering(
                session,
                col(AccessRequest.account_id) == account,
                col(AccessRequest.permission_set_arn) == pset.arn,
            )
        covered = {r.principal_id for r in rows}
        scope = self._provider.scope()
        found: list[Finding] = []
        for principal in sorted(set(holders) - covered):
            a = Assignment(scope, account, pset.arn, principal)
            if self._aws(self._provider.holds, a):
                found.append(Finding("orphan", a, pset.name))
        return found


def _orphan_verb(outcome: str | None) -> str | None:
    """Audit what the owner did: it revoked, or it has the orphan and has not answered yet."""
    return {None: "revoked", "revoked": "revoked", "pending": "released"}.get(outcome)


def _missing_verb(outcome: str | None) -> str | None:
    """A missing assignment handed to its owner is audited by the owner, if it regrants."""
    return None if outcome == "handed" else "regranted"


def _arn(pset: PermissionSet) -> str:
    return pset.arn


def _run_id() -> str:
    info = activity.info()
    return info.workflow_run_id or info.workflow_id or "manual"


def _resumed() -> SweepState | None:
    """A retried slice goes on from the last pair its previous try walked."""
    details = activity.info().heartbeat_details
    if not details or not isinstance(details[0], dict):
        return None
    return _state(details[0])


def _last_sweep(session: Session) -> SweepState | None:
    query = (
        select(ReconcileRun.sweep)
        .where(col(ReconcileRun.sweep).is_not(None))
        .order_by(col(ReconcileRun.started_at).desc())
        .limit(1)
    )
    stored = session.exec(query).first()
    return None if stored is None else _state(stored)


def _state(stored: object) -> SweepState:
    return _SWEEP.validate_python(stored)


def stored_sweep(state: SweepState | None) -> dict[str, Any] | None:
    return None if state is None else _SWEEP.dump_python(state, mode="json")
