"""Workflow tests: the time-skipping server, real activities on a real database and moto."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa
from moto import mock_aws
from sqlmodel import Session
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.assignments import AssignmentActivities
from activities.lease import LeaseActivities
from activities.notify import NotifyActivities
from activities.sessions import SessionActivities
from activities.store import StoreActivities
from elevate.contracts import AccessRequestInput, Assignment, Principal
from elevate.devstack.seed import DemoOrg, seed_demo
from elevate.models import AccessRequest
from elevate.providers.aws import client
from elevate.providers.identity_center import IdentityCenterProvider
from elevate.settings import Settings
from elevate.temporal import data_converter
from tests.conftest import tool
from worker import LANE_SHARES, Fleet
from workflows.access_request import AccessRequestWorkflow
from workflows.assignment import AssignmentWorkflow
from workflows.options import lane_queue, message_queue
from workflows.sessions import SessionGuardWorkflow

TASK_QUEUE = "test-elevate"
LANES = tuple(LANE_SHARES)


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=tool("temporal-test-server"),
        data_converter=data_converter,
    ) as environment:
        yield environment


@pytest.fixture(scope="module")
def org() -> Iterator[DemoOrg]:
    client.cache_clear()  # a cached client may point at another test's moto server
    with mock_aws():
        yield seed_demo()
    client.cache_clear()


@pytest.fixture
def sso(org: DemoOrg) -> object:
    return client("sso-admin", "us-east-1")


def provider_for(sso: object) -> IdentityCenterProvider:
    """The Identity Center provider over the given sso-admin client (moto, or a wrapper)."""
    return IdentityCenterProvider(Settings(), sso)


def activities_of(
    engine: sa.Engine,
    identity_center: AssignmentActivities,
    client: Client,
    settings: Settings | None = None,
    sessions: SessionActivities | None = None,
) -> list[object]:
    """Every activity of the worker; notifications go nowhere unless `settings` names a URL."""
    store = StoreActivities(engine)
    ic = identity_center
    quiet = Settings(notify_webhook_url=None, slack_webhook_url=None)  # whatever the env says
    notify = NotifyActivities(engine, settings or quiet)
    lease = LeaseActivities(client, TASK_QUEUE, engine, end_sessions=sessions is not None)
    ending = [] if sessions is None else [sessions.send_end_sessions, sessions.apply_session_denies]
    return [
        *ending,
        lease.send_lease,
        lease.covering_leases,
        notify.send_notification,
        notify.send_slack_notification,
        store.record_status,
        store.record_approval,
        store.record_batch,
        store.record_event,
        store.record_extension,
        ic.grant_assignment,
        ic.revoke_assignment,
        ic.create_assignment,
        ic.wait_assignment_created,
        ic.delete_assignment,
        ic.wait_assignment_deleted,
        ic.verify_assignment,
    ]


def fleet(
    client: Client, workflows: list[type], activities: list[object], executor: ThreadPoolExecutor
) -> Fleet:
    """A worker on the test queue plus one per AWS lane and one for lease messages, every
    activity on each."""
    main = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=workflows,
        activities=activities,
        activity_executor=executor,
    )
    queues = [lane_queue(TASK_QUEUE, lane) for lane in LANES] + [message_queue(TASK_QUEUE)]
    lanes = [
        Worker(client, task_queue=queue, activities=activities, activity_executor=executor)
        for queue in queues
    ]
    return Fleet([main, *lanes])


@pytest.fixture
async def worker_for(env: WorkflowEnvironment, engine: sa.Engine, sso: object):
    """Start a worker with the given AssignmentActivities (default: against moto)."""
    executor = ThreadPoolExecutor(max_workers=8)
    workers: list[Fleet] = []

    def make(
        identity_center: AssignmentActivities | None = None,
        settings: Settings | None = None,
        sessions: SessionActivities | None = None,
    ) -> Worker:
        ic = identity_center or AssignmentActivities(provider_for(sso), poll_interval=0.01)
        w = fleet(
            env.client,
            [AccessRequestWorkflow, AssignmentWorkflow, SessionGuardWorkflow],
            activities_of(engine, ic, env.client, settings, sessions),
            executor,
        )
        workers.append(w)
        return w

    yield make
    executor.shutdown(wait=False)


def new_request(
    engine: sa.Engine,
    org: DemoOrg,
    *,
    username: str = "alice@example.com",
    duration: timedelta = timedelta(hours=8),
    start_at=None,
    approvals_required: int = 1,
    account: str = "prod",
    permission_set: str = "ReadOnly",
    approval_timeout: timedelta = timedelta(hours=3),
) -> AccessRequestInput:
    """Insert the row the API would insert and return the workflow input for it."""
    rid = str(uuid.uuid4())
    assignment = Assignment(
        instance_arn=org.instance_arn,
        account_id=org.accounts[account],
        permission_set_arn=org.permission_sets[permission_set],
        principal_id=org.users[username],
    )
    with Session(engine) as session:
        session.add(
            AccessRequest(
                id=rid,
                requester=username,
                principal_id=assignment.principal_id,
                account_id=assignment.account_id,
                account_name=account,
                permission_set=permission_set,
                permission_set_arn=assignment.permission_set_arn,
                instance_arn=org.instance_arn,
                duration_seconds=int(duration.total_seconds()),
                start_at=start_at,
                justification="test",
                status="pending_approval",
                approvers=[{"type": "group", "name": "elevate-approvers"}],
                approvals_required=approvals_required,
                workflow_id=f"access-request-{rid}",
            )
        )
        session.commit()
    return AccessRequestInput(
        request_id=rid,
        requester=username,
        assignment=assignment,
        permission_set_name=permission_set,
        duration=duration,
        start_at=start_at,
        approvers=[Principal("group", "elevate-approvers")],
        approvals_required=approvals_required,
        approval_timeout=approval_timeout,
    )
