"""SQL tables: the queryable projection of what the workflows decide, and the audit chain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Column, Field, Index, SQLModel, UniqueConstraint


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in and out, on SQLite (which keeps no offset) as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class AccessRequest(SQLModel, table=True):
    __tablename__ = "access_requests"
    # Keyset pages of the request list (migration 0008).
    __table_args__ = (
        Index("ix_access_requests_page", "created_at", "id"),
        Index("ix_access_requests_requester_page", "requester", "created_at", "id"),
        Index("ix_access_requests_status_page", "status", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    requester: str = Field(index=True, max_length=320)
    principal_id: str = Field(max_length=64)
    account_id: str = Field(index=True, max_length=12)
    account_name: str = Field(max_length=256)
    permission_set: str = Field(max_length=64)
    permission_set_arn: str = Field(max_length=256)
    instance_arn: str = Field(max_length=256)
    duration_seconds: int
    start_at: datetime | None = _ts()
    end_at: datetime | None = _ts()
    justification: str
    ticket: str | None = Field(default=None, max_length=256)
    status: str = Field(index=True, max_length=32)
    approvers: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON))
    approvals_required: int = 1
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    # approved_at: quorum reached (or approval waived); grant_due_at: the later of that and the
    # requested start. granted_at - grant_due_at is the approve->active latency.
    approved_at: datetime | None = _ts()
    grant_due_at: datetime | None = _ts()
    granted_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()
    decided_by: str | None = Field(default=None, max_length=320)
    revoked_by: str | None = Field(default=None, max_length=320)
    failure: str | None = None
    workflow_id: str = Field(max_length=64)
    # An extension waiting for approval, as the workflow last reported it.
    pending_extension: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )


class Approval(SQLModel, table=True):
    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="access_requests.id", index=True, max_length=36)
    approver: str = Field(max_length=320)
    comment: str | None = None
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class AuditEvent(SQLModel, table=True):
    """Append-only. `hash` covers the event and `prev_hash`, chaining each row to the one before."""

    __tablename__ = "audit_events"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor: str = Field(index=True, max_length=320)
    action: str = Field(max_length=64)
    request_id: str | None = Field(default=None, index=True, max_length=36)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # Written by retried activities: the same key twice means the event is already there.
    dedupe_key: str | None = Field(default=None, unique=True, max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    username: str = Field(primary_key=True, max_length=320)
    key: str = Field(primary_key=True, max_length=256)
    request_id: str = Field(foreign_key="access_requests.id", max_length=36)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class StoredPolicy(SQLModel, table=True):
    """An eligibility or approval policy; `body` is its validated wire shape (policy_schema)."""

    __tablename__ = "policies"

    kind: str = Field(primary_key=True, max_length=16)  # "eligibility" | "approval"
    name: str = Field(primary_key=True, max_length=64)
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class SettingOverride(SQLModel, table=True):
    """A setting changed through the API; absent keys fall back to the environment."""

    __tablename__ = "setting_overrides"

    key: str = Field(primary_key=True, max_length=64)
    value: Any = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class ReconcileRun(SQLModel, table=True):
    """One pass of the reconciler: what it compared and what it found."""

    __tablename__ = "reconcile_runs"

    id: str = Field(primary_key=True, max_length=64)
    mode: str = Field(max_length=16)
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    finished_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    checked: int
    findings: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # The sweep's progress after this run (SweepState as JSON); the next run resumes from it.
    sweep: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class SlackMessage(SQLModel, table=True):
    """A Slack message about a request, kept so that later changes update it in place."""

    __tablename__ = "slack_messages"

    request_id: str = Field(foreign_key="access_requests.id", primary_key=True, max_length=36)
    # The Slack user id of a direct message's approver, or the configured channel.
    target: str = Field(primary_key=True, max_length=255)
    channel: str = Field(max_length=255)  # as chat.postMessage answered: what chat.update needs
    ts: str = Field(max_length=64)
    posted_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    # The request's updated_at the message shows: an older state is never written over a newer.
    shown_at: datetime | None = _ts()


class MetricCount(SQLModel, table=True):
    """A pre-aggregated metric (elevate/counters.py): /metrics reads these, not the requests."""

    __tablename__ = "metric_counts"

    name: str = Field(primary_key=True, max_length=64)
    label: str = Field(primary_key=True, max_length=64)
    value: float = 0.0
