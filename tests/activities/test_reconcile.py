"""The reconciler's check and sweep against moto (provisioning as AWS does) and a real database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from moto import mock_aws
from temporalio.testing import ActivityEnvironment

from activities.reconcile import ReconcileActivities
from elevate.contracts import Assignment, ReconcileInput, ReconcileReport, SweepSlice
from elevate.devstack.moto_fidelity import install
from elevate.devstack.seed import DemoOrg, seed_demo
from elevate.models import utcnow
from elevate.providers.aws import client
from elevate.providers.identity_center import IdentityCenterProvider
from elevate.settings import Settings
from tests.rows import insert_request

REPORT = ReconcileInput("report")


@pytest.fixture
def org() -> Iterator[DemoOrg]:
    install()
    client.cache_clear()
    with mock_aws():
        yield seed_demo()
    client.cache_clear()


def _assign(org: DemoOrg, account: str, principal: str, pset: str = "ReadOnly") -> None:
    client("sso-admin", "us-east-1").create_account_assignment(
        InstanceArn=org.instance_arn,
        TargetId=org.accounts[account],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=org.permission_sets[pset],
        PrincipalType="USER",
        PrincipalId=principal,
    )


def _active(engine: sa.Engine, org: DemoOrg, account: str, principal: str) -> str:
    return insert_request(
        engine,
        status="active",
        principal_id=principal,
        account_id=org.accounts[account],
        account_name=account,
        permission_set_arn=org.permission_sets["ReadOnly"],
        instance_arn=org.instance_arn,
    )


def _activities(engine: sa.Engine, provider: IdentityCenterProvider) -> ReconcileActivities:
    # No time for a slice: each run walks exactly one pair, as a huge organization would.
    return ReconcileActivities(
        engine, provider, ["ReadOnly"], calls_per_second=1000, slice_time=timedelta(0)
    )


def _walk(acts: ReconcileActivities) -> list[SweepSlice]:
    """Runs until the walk completes, each recorded as the workflow records it."""
    slices: list[SweepSlice] = []
    while not slices or slices[-1].state.completed_at is None:
        walked = ActivityEnvironment().run(acts.sweep, REPORT)
        report = ReconcileReport(str(uuid.uuid4()), "report", utcnow(), 0, [], walked.state)
        acts.record_run(report)
        slices.append(walked)
        assert len(slices) < 50
    return slices


def test_the_sweep_walks_provisioned_pairs_a_slice_a_run_and_resumes(engine, org) -> None:
    stray, covered = f"stray-{uuid.uuid4()}", f"covered-{uuid.uuid4()}"
    _assign(org, "prod", stray)
    _assign(org, "staging", stray)
    _assign(org, "sandbox", covered)
    _active(engine, org, "sandbox", covered)
    _assign(org, "prod", stray, pset="BreakGlass")  # not managed: never walked
    acts = _activities(engine, IdentityCenterProvider(Settings()))

    slices = _walk(acts)

    assert [s.state.pairs_checked for s in slices] == [1, 2, 3]  # resumed where it stopped
    assert {s.state.pairs_total for s in slices} == {3}
    found = {
        (f.assignment.account_id, f.assignment.principal_id) for s in slices for f in s.findings
    }
    assert found == {(org.accounts["prod"], stray), (org.accounts["staging"], stray)}
    again = ActivityEnvironment().run(acts.sweep, REPORT)
    assert again.state.pairs_checked == 1
    assert again.state.started_at > slices[0].state.started_at  # a new walk begins


class GoneOnReread(IdentityCenterProvider):
    """AWS lists the assignment, then it is gone when read again (someone removed it)."""

    def holds(self, a: Assignment) -> bool:
        return False


def test_an_orphan_is_confirmed_at_aws_before_it_counts(engine, org) -> None:
    _assign(org, "prod", f"leaving-{uuid.uuid4()}")
    slices = _walk(_activities(engine, GoneOnReread(Settings())))
    assert [f for s in slices for f in s.findings] == []


def test_every_covering_request_is_checked_every_run(engine, org) -> None:
    held, lost = f"held-{uuid.uuid4()}", f"lost-{uuid.uuid4()}"
    _assign(org, "prod", held)
    held_id, lost_id = _active(engine, org, "prod", held), _active(engine, org, "staging", lost)
    acts = _activities(engine, IdentityCenterProvider(Settings()))

    report = ActivityEnvironment().run(acts.check, REPORT)

    missing = {f.request_id for f in report.findings if f.kind == "missing"}
    assert lost_id in missing
    assert held_id not in missing
    assert report.checked >= 2


class RevokedWhileRead(IdentityCenterProvider):
    """The request is revoked while its assignment is read: AWS answers "gone" because its
    owner just took it away, and the row has left `active` by the time the read returns."""

    def __init__(self, settings: Settings, engine: sa.Engine, request_id: str) -> None:
        super().__init__(settings)
        self._engine, self._request_id = engine, request_id

    def holds(self, a: Assignment) -> bool:
        with self._engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE access_requests SET status = 'revoking' WHERE id = :id"),
                {"id": self._request_id},
            )
        return False


def test_a_request_revoked_during_the_check_is_not_missing_anything(engine, org) -> None:
    rid = _active(engine, org, "staging", f"leaving-{uuid.uuid4()}")
    acts = _activities(engine, RevokedWhileRead(Settings(), engine, rid))

    report = ActivityEnvironment().run(acts.check, REPORT)

    assert rid not in {f.request_id for f in report.findings}


def test_a_repair_handed_to_the_owner_is_not_audited_by_the_run(engine, org) -> None:
    """The owner audits the regrant it makes; the run only lists the finding."""
    principal = f"lost-{uuid.uuid4()}"
    rid = _active(engine, org, "staging", principal)
    acts = _activities(engine, IdentityCenterProvider(Settings()))
    report = ActivityEnvironment().run(acts.check, ReconcileInput("revoke"))
    (finding,) = [f for f in report.findings if f.request_id == rid]
    finding.outcome = "handed"

    acts.record_run(report)

    with engine.connect() as conn:
        actions = conn.execute(
            sa.text("SELECT action FROM audit_events WHERE request_id = :id"), {"id": rid}
        ).scalars()
        assert list(actions) == []
        (findings,) = conn.execute(
            sa.text("SELECT findings FROM reconcile_runs WHERE id = :id"), {"id": report.run_id}
        ).one()
    assert rid in str(findings)
