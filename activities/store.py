"""Database writes of the projection and the audit trail, idempotent under retries."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from elevate.audit import commit_with_event
from elevate.contracts import ApprovalRecord, EventRecord, ExtensionChange, Status, StatusChange
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

    @activity.defn
    def record_status(self, change: StatusChange) -> None:
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
        commit_with_event(
            self._session,
            apply,
            actor=change.actor,
            action=change.action,
            request_id=change.request_id,
            details=details,
            dedupe_key=change.event_id,
        )

    @activity.defn
    def record_approval(self, rec: ApprovalRecord) -> None:
        def apply(session: Session) -> None:
            row = self._request(session, rec.request_id)
            row.updated_at = utcnow()
            session.add(row)
            session.add(
                Approval(request_id=rec.request_id, approver=rec.approver, comment=rec.comment)
            )

        commit_with_event(
            self._session,
            apply,
            actor=rec.approver,
            action="approval",
            request_id=rec.request_id,
            details={"comment": rec.comment},
            dedupe_key=rec.event_id,
        )

    @activity.defn
    def record_event(self, rec: EventRecord) -> None:
        commit_with_event(
            self._session,
            lambda _s: None,
            actor=rec.actor,
            action=rec.action,
            request_id=rec.request_id,
            details=rec.details,
            dedupe_key=rec.event_id,
        )

    @activity.defn
    def record_extension(self, change: ExtensionChange) -> None:
        def apply(session: Session) -> None:
            row = self._request(session, change.request_id)
            row.pending_extension = change.pending
            row.updated_at = utcnow()
            if change.end_at is not None:
                row.end_at = change.end_at
            session.add(row)

        commit_with_event(
            self._session,
            apply,
            actor=change.actor,
            action=change.action,
            request_id=change.request_id,
            details=change.details,
            dedupe_key=change.event_id,
        )
