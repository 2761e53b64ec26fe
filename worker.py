"""The Temporal worker: runs AccessRequestWorkflow and its activities."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.identity_center import IdentityCenterActivities
from activities.lease import LeaseActivities
from activities.store import StoreActivities
from elevate import temporal
from elevate.aws import client as aws_client
from elevate.db import make_engine, migrate
from elevate.settings import Settings, get_settings
from workflows.access_request import AccessRequestWorkflow
from workflows.assignment import AssignmentWorkflow

log = logging.getLogger("elevate.worker")

# Bounded so that a burst of expiries does not throttle itself at AWS.
MAX_CONCURRENT_ACTIVITIES = 16


def build_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor) -> Worker:
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = StoreActivities(engine)
    identity_center = IdentityCenterActivities(aws_client("sso-admin", settings.aws_region))
    lease = LeaseActivities(client, settings.task_queue)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[AccessRequestWorkflow, AssignmentWorkflow],
        activities=[
            lease.send_lease,
            store.record_status,
            store.record_approval,
            store.record_event,
            identity_center.create_assignment,
            identity_center.wait_assignment_created,
            identity_center.delete_assignment,
            identity_center.wait_assignment_deleted,
            identity_center.verify_assignment,
        ],
        activity_executor=executor,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
    )


async def run(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    client = await temporal.connect(settings)
    await temporal.register_search_attributes(client, settings.temporal_namespace)
    with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_ACTIVITIES) as executor:
        worker = build_worker(client, settings, executor)
        log.info(
            "worker polling task queue %s on %s", settings.task_queue, settings.temporal_address
        )
        await worker.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run())
