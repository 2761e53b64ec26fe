"""ReconcileWorkflow on the time-skipping server: check + sweep on the sweep lane, orphans handed
to their owner, and only what the owner did audited."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from temporalio.worker import Replayer

from activities.assignments import AssignmentActivities
from activities.reconcile import ReconcileActivities
from activities.sweep import SweepActivities
from elevate.contracts import ReconcileInput
from elevate.db import make_engine, migrate
from elevate.devstack.moto_fidelity import install
from elevate.devstack.seed import DemoOrg
from elevate.models import AuditEvent, ReconcileRun
from elevate.providers.aws import client
from elevate.temporal import data_converter
from tests.workflows.conftest import TASK_QUEUE, activities_of, fleet, provider_for
from workflows.access_request import AccessRequestWorkflow
from workflows.assignment import AssignmentWorkflow
from workflows.reconcile import ReconcileWorkflow

# Recorded with ELEVATE_RECORD_HISTORY=<dir> into histories/ (test_replay replays them);
# reconcile_v1: one scan of every pair, before check + sweep.
RECORD_AS = "reconcile_v2_run"
install()  # before the module's moto starts: assignments provision their pair, as at AWS


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A database of its own: the reconciler acts on every covering row it finds."""
    engine = make_engine(f"sqlite:///{tmp_path}/reconcile.db")
    migrate(engine)
    yield engine
    engine.dispose()


def _held(org: DemoOrg, principal: str) -> bool:
    listed = client("sso-admin", "us-east-1").list_account_assignments(
        InstanceArn=org.instance_arn,
        AccountId=org.accounts["sandbox"],
        PermissionSetArn=org.permission_sets["ReadOnly"],
    )["AccountAssignments"]
    return any(x["PrincipalId"] == principal for x in listed)


async def test_an_orphan_is_revoked_by_its_owner_and_audited_once(env, org, sso, own_engine):
    stray = f"stray-{uuid.uuid4()}"
    client("sso-admin", "us-east-1").create_account_assignment(
        InstanceArn=org.instance_arn,
        TargetId=org.accounts["sandbox"],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=org.permission_sets["ReadOnly"],
        PrincipalType="USER",
        PrincipalId=stray,
    )
    provider = provider_for(sso)
    reconcile = ReconcileActivities(own_engine, provider, ["ReadOnly"], calls_per_second=1000)
    sweep = SweepActivities(own_engine, env.client)
    ic = AssignmentActivities(provider, poll_interval=0.01)
    activities = [
        *activities_of(own_engine, ic, env.client),
        reconcile.scan,  # what runs recorded before check + sweep called
        reconcile.check,
        reconcile.sweep,
        reconcile.record_run,
        sweep.find_lost,
        sweep.fail_lost,
        sweep.fail_unstarted,
    ]
    workflows = [ReconcileWorkflow, AssignmentWorkflow, AccessRequestWorkflow]
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with fleet(env.client, workflows, activities, executor):
            handle = await env.client.start_workflow(
                ReconcileWorkflow.run,
                ReconcileInput("revoke"),
                id=f"reconcile-{uuid.uuid4()}",
                task_queue=TASK_QUEUE,
            )
            assert await handle.result() >= 1
    history = await handle.fetch_history()
    if record := os.environ.get("ELEVATE_RECORD_HISTORY"):
        (Path(record) / f"{RECORD_AS}.json").write_text(history.to_json())
    assert not _held(org, stray)
    with Session(own_engine) as session:
        actions = session.exec(select(AuditEvent.action, AuditEvent.details)).all()
        run = session.exec(select(ReconcileRun)).one()
    revoked = [d for a, d in actions if a == "reconcile_orphan_revoked"]
    assert [d["principal_id"] for d in revoked] == [stray]
    assert run.sweep is not None
    assert run.sweep["completed_at"] is not None
    replayer = Replayer(workflows=[ReconcileWorkflow], data_converter=data_converter)
    await replayer.replay_workflow(history)
