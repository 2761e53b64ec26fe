"""Database writes of the projection and the audit trail, idempotent under retries."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from elevate.audit import Step, commit_with_events
from elevate.contracts import (
    ApprovalRecord,
    EventRecord,
    ExtensionChange,
    ProjectionBatch,
    Status,
    StatusChange,
)
from elevate.models import AccessRequest, Approval, utcnow

_STATUS_FIELDS = (
    "start_at",
    "end_at",
    "granted_at",
    "revoked_at",
    "decided_by",
    "revoked_by",
    "failure",
)


def _mark_approved(row: AccessRequest) -> None:
    """Approved now (or waived): the grant is due now, or at the requested start if later."""
    row.approved_at = utcnow()
    requested_start = row.start_at  # still the requested one: the grant has not set it yet
    row.grant_due_at = max(row.approved_at, requested_start or row.approved_at)


class StoreActivities:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    def _request(self, session: Session, request_id: str) -> AccessRequest:
        row = session.get(AccessRequest, request_id)
        if row is None:
            raise ApplicationError(f"request {request_id} not in the database", type="NotFound")
        return row

    def _status_step(self, change: StatusChange) -> Step:
        def apply(session: Session) -> None:
            row = self._request(session, change.request_id)
            row.status = str(change.status)
            row.updated_at = utcnow()
            if change.status == Status.SCHEDULED and row.approved_at is None:
                _mark_approved(row)
            for name in _STATUS_FIELDS:
                value = getattr(change, name)
                if value is not None:
                    setattr(row, name, value)
            session.add(row)

        details: dict[str, Any] = {"status": str(change.status), **change.details}
        if change.failure:
            details["failure"] = change.failure
        return Step(apply, change.actor, change.action, change.request_id, details, change.event_id)

    def _approval_step(self, rec: ApprovalRecord) -> Step:
        def apply(session: Session) -> None:
            row = self._request(session, rec.request_id)
            row.updated_at = utcnow()
            session.add(row)
            session.add(
                Approval(request_id=rec.request_id, approver=rec.approver, comment=rec.comment)
            )

        details = {"comment": rec.comment}
        return Step(apply, rec.approver, "approval", rec.request_id, details, rec.event_id)

    @activity.defn
    def record_status(self, change: StatusChange) -> None:
        commit_with_events(self._session, [self._status_step(change)])

    @activity.defn
    def record_approval(self, rec: ApprovalRecord) -> None:
        commit_with_events(self._session, [self._approval_step(rec)])

    def _event_step(self, rec: EventRecord) -> Step:
        return Step(
            lambda _s: None, rec.actor, rec.action, rec.request_id, rec.details, rec.event_id
        )

    @activity.defn
    def record_batch(self, batch: ProjectionBatch) -> None:
        """Approvals, status changes, then events, in one transaction: one round trip where a
        workflow decided several things at once (the approval that completes the quorum,
        `approved` and `granting`; the sessions ended of every request a write covered)."""
        steps = [self._approval_step(a) for a in batch.approvals]
        steps += [self._status_step(c) for c in batch.changes]
        steps += [self._event_step(e) for e in batch.events]
        commit_with_events(self._session, steps)

    @activity.defn
    def record_event(self, rec: EventRecord) -> None:
        commit_with_events(self._session, [self._event_step(rec)])

    @activity.defn
    def record_extension(self, change: ExtensionChange) -> None:
        def apply(session: Session) -> None:
            row = self._request(session, change.request_id)
            row.pending_extension = change.pending
            row.updated_at = utcnow()
            if change.end_at is not None:
                row.end_at = change.end_at
            session.add(row)

        details = change.details
        step = Step(apply, change.actor, change.action, change.request_id, details, change.event_id)
        commit_with_events(self._session, [step])
