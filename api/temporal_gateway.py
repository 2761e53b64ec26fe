"""The API's side of Temporal: connect lazily, start workflows, send updates, map failures."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta
from typing import Any

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import Conflict, NotAllowed, Unavailable
from elevate import proof, temporal
from elevate.contracts import AccessRequestInput, Checkpoint
from elevate.models import utcnow
from elevate.settings import Settings
from workflows.access_request import AccessRequestWorkflow
from workflows.audit_checkpoint import WORKFLOW_ID as AUDIT_CHECKPOINT_ID
from workflows.audit_checkpoint import AuditCheckpointWorkflow

_VERDICTS = {"Conflict": Conflict, "NotAllowed": NotAllowed}
log = logging.getLogger("elevate.api")


_LATE = (
    "the request's workflow did not take the action in time (no worker is running, "
    "or Temporal is not answering); nothing was recorded, try again"
)


def _refused(err: WorkflowUpdateFailedError) -> Exception:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in _VERDICTS:
        return _VERDICTS[cause.type](cause.message)
    if isinstance(cause, ApplicationError) and cause.type == "Expired":
        return Unavailable(_LATE)  # reached the workflow after its deadline: not taken
    return Conflict(f"the request refused this action: {cause}")


# API.md "Outages": an action answers within 15 s; a 503 means nothing was recorded.
ACTION_TIMEOUT = 15.0


class TemporalGateway:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        """Connected on first use, so the API starts (and serves reads) while Temporal is down."""
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(temporal.connect(self._settings), 5)
                except (RuntimeError, OSError, TimeoutError) as err:
                    raise Unavailable(
                        f"Temporal is not answering: {err}", "temporal_unavailable"
                    ) from err
            return self._client

    async def check(self) -> None:
        client = await self.client()
        try:
            await client.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=3)
            )
        except RPCError as err:
            raise Unavailable(f"Temporal is not answering: {err}", "temporal_unavailable") from err

    async def start(self, inp: AccessRequestInput, memo: dict[str, str | None]) -> None:
        """Start the request's workflow, indexed for the UI's search; the memo shows the why."""
        client = await self.client()
        attrs = TypedSearchAttributes(
            [
                SearchAttributePair(temporal.REQUESTER, inp.requester),
                SearchAttributePair(temporal.ACCOUNT, inp.assignment.account_id),
                SearchAttributePair(temporal.PERMISSION_SET, inp.permission_set_name),
                SearchAttributePair(temporal.STATUS, "pending_approval"),
            ]
        )
        try:
            await client.start_workflow(
                AccessRequestWorkflow.run,
                inp,
                id=temporal.workflow_id(inp.request_id),
                task_queue=self._settings.task_queue,
                search_attributes=attrs,
                memo=memo,
            )
        except RPCError as err:
            raise Unavailable(
                f"the workflow could not be started: {err}", "temporal_unavailable"
            ) from err

    async def checkpoints(self) -> list[Checkpoint] | None:
        """The audit checkpoints the worker recorded, or None when Temporal cannot say."""
        try:
            client = await self.client()
            handle = client.get_workflow_handle(AUDIT_CHECKPOINT_ID)
            query = handle.query(AuditCheckpointWorkflow.checkpoints)
            return await asyncio.wait_for(query, 5)
        except (Unavailable, RPCError, WorkflowQueryFailedError, TimeoutError):
            return None

    async def update(self, request_id: str, update: Any, arg: Any) -> None:
        """Send a signed update (elevate/proof.py): its name and the workflow are covered."""
        client = await self.client()
        workflow_id = temporal.workflow_id(request_id)
        handle = client.get_workflow_handle(workflow_id)
        # Temporal may still hand the update to a worker after we gave up: past this deadline
        # the workflow's validator refuses it, so a 503 really recorded nothing. The deadline
        # comes a third of the wait early: a validator that passed just before it (by the
        # workflow task's clock) is heard of before the wait ends, however slow that task is.
        # The proof covers the deadline too.
        deadline = utcnow() + timedelta(seconds=ACTION_TIMEOUT * 2 / 3)
        arg = dataclasses.replace(arg, deadline=deadline)
        arg = proof.seal(arg, update.__name__, workflow_id, self._settings.signing_key())
        began = asyncio.get_running_loop().time()
        try:
            # Accepted: the validator passed within the deadline, so the action is taken and
            # the workflow will record it, however long its projection write then waits.
            accepted = await asyncio.wait_for(
                handle.start_update(update, arg, wait_for_stage=WorkflowUpdateStage.ACCEPTED),
                ACTION_TIMEOUT,
            )
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            raise Unavailable(_LATE) from err
        except WorkflowUpdateFailedError as err:
            raise _refused(err) from err
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise Conflict("the request has finished; nothing can change it now") from err
            raise Unavailable(f"Temporal is not answering: {err}", "temporal_unavailable") from err
        left = max(1.0, ACTION_TIMEOUT - (asyncio.get_running_loop().time() - began))
        try:
            await asyncio.wait_for(accepted.result(), left)
        except WorkflowUpdateFailedError as err:
            raise _refused(err) from err
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
            # Taken, not yet in the database: never a 503, which would say "nothing was
            # recorded"; the caller gets the request as it is stored now.
            log.warning("%s of %s accepted, not recorded yet", update.__name__, workflow_id)
