"""The reconciler's side effects: compare AWS with the active requests, record what it found."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select
from temporalio import activity

from activities.assignments import aws_errors
from elevate.audit import commit_with_event
from elevate.contracts import Assignment, Finding, ReconcileInput, ReconcileReport, Status
from elevate.models import AccessRequest, ReconcileRun, StoredPolicy, utcnow
from elevate.providers.base import Provider
from elevate.providers.catalog import PermissionSet

# A request in these states may hold the assignment; the reconciler leaves it alone.
COVERING = (Status.GRANTING.value, Status.ACTIVE.value, Status.REVOKING.value)
Triple = tuple[str, str, str]  # account, permission set ARN, principal id


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
    ) -> None:
        self._engine = engine
        self._provider = provider
        self._configured = managed
        self._grace = grace

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
                "orphan": "revoked" if acted else "reported",
                "missing": "regranted" if acted else "reported",
            }
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
                    )
                )
                session.commit()
