"""Plain data shared by the API, the workflow and the activities.

Everything here must stay importable inside the workflow sandbox: stdlib and dataclasses only.
One input type per workflow, update, signal and activity, so fields can be added later
without breaking histories that are already running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    SCHEDULED = "scheduled"
    GRANTING = "granting"
    ACTIVE = "active"
    REVOKING = "revoking"
    ENDED = "ended"
    REVOKED = "revoked"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"


# The wait after an AWS call's n-th refusal (throttled, 5xx, network): 1 s, doubling, at most
# 30 s; whether Temporal retries the activity (workflows/options.py) or a round at AWS retries
# itself (activities/assignments.py).
AWS_FIRST_BACKOFF = timedelta(seconds=1)
AWS_MAX_BACKOFF = timedelta(seconds=30)
TERMINAL = frozenset(
    {
        Status.ENDED,
        Status.REVOKED,
        Status.REJECTED,
        Status.CANCELLED,
        Status.EXPIRED,
        Status.FAILED,
    }
)


@dataclass
class Principal:
    """A user or a group, as named in tokens and policies."""

    type: str  # "user" | "group"
    name: str


@dataclass
class Actor:
    """Who sends a message to a workflow, as the API authenticated them."""

    username: str
    groups: list[str] = field(default_factory=list)
    is_admin: bool = False


@dataclass
class Assignment:
    """One (principal, account, permission set) triple at IAM Identity Center."""

    instance_arn: str
    account_id: str
    permission_set_arn: str
    principal_id: str
    principal_type: str = "USER"


@dataclass
class KnownAssignment(Assignment):
    """An assignment as its owner sends it to AWS, with whether the owner knows its state there.

    `known` means the owner's belief is current (absent before a grant, present before a revoke),
    so the activity acts without reading first; after a failed round the owner reads again. Sent
    where an `Assignment` used to be: older histories and workers see an Assignment.
    """

    known: bool = False


# How long before end_at `ending_soon` is sent, unless the settings say otherwise.
ENDING_SOON_LEAD = timedelta(minutes=15)
LEASE_GRACE = timedelta(minutes=2)


@dataclass
class AccessRequestInput:
    request_id: str
    requester: str
    assignment: Assignment
    permission_set_name: str
    duration: timedelta
    start_at: datetime | None
    approvers: list[Principal]
    approvals_required: int
    approval_timeout: timedelta
    # Defaulted: inputs recorded before it existed still decode.
    ending_soon_lead: timedelta = ENDING_SOON_LEAD
    # How long past end_at the assignment's owner keeps a lease nobody gave back.
    lease_grace: timedelta = LEASE_GRACE
    # Slack approvals were configured when the request was made: its messages are sent.
    slack_app: bool = False
    # The notification channels configured when it was made ("webhook", "slack"): only those
    # get an activity per event. None (inputs recorded before it): both, as before.
    channels: list[str] | None = None


@dataclass
class DecisionInput:
    """Approve or reject."""

    actor: Actor
    comment: str | None = None
    deadline: datetime | None = None  # the API stopped waiting then: later, refuse it
    # HMAC by the API (elevate/proof.py); last and defaulted so recorded histories still decode.
    proof: str | None = None


@dataclass
class CancelInput:
    actor: Actor
    comment: str | None = None
    deadline: datetime | None = None
    proof: str | None = None


@dataclass
class RevokeInput:
    actor: Actor
    comment: str | None = None
    deadline: datetime | None = None
    proof: str | None = None


@dataclass
class StatusChange:
    """A status (and the timestamps that come with it) written to the projection, plus its event."""

    request_id: str
    event_id: str
    status: Status
    actor: str
    action: str
    details: dict[str, object] = field(default_factory=dict)
    start_at: datetime | None = None
    end_at: datetime | None = None
    granted_at: datetime | None = None
    revoked_at: datetime | None = None
    decided_by: str | None = None
    revoked_by: str | None = None
    failure: str | None = None


@dataclass
class Notification:
    """One event for every channel: its name and an id receivers dedupe retries by."""

    request_id: str
    event: str
    event_id: str
    # ending_soon: the end it announces (the projection may not show an extension's yet).
    end_at: datetime | None = None


@dataclass
class ApprovalRecord:
    request_id: str
    event_id: str
    approver: str
    comment: str | None


@dataclass
class EventRecord:
    """An audit event that changes no status (a failed revoke attempt, for instance)."""

    request_id: str
    event_id: str
    actor: str
    action: str
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class ProjectionBatch:
    """Writes a workflow decided at once, committed together: approvals, then status changes,
    then events that change no status."""

    approvals: list[ApprovalRecord] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)


@dataclass
class WaitInput:
    """Poll an asynchronous assignment operation until it leaves IN_PROGRESS."""

    instance_arn: str
    operation_id: str


@dataclass
class VerifyInput:
    assignment: Assignment
    present: bool


@dataclass
class LeaseInput:
    """A request taking (acquire) or giving back (release) its hold on an assignment."""

    request_id: str
    workflow_id: str
    assignment: Assignment
    release: bool = False
    repair: bool = False  # grant again even if the owner believes it granted (reconciler)
    # When the lease ends by itself: `end_at` when known (a scheduled start, an extension),
    # else `duration` from the grant; the owner drops it `grace` after that end.
    end_at: datetime | None = None
    duration: timedelta | None = None
    grace: timedelta = LEASE_GRACE
    proof: str | None = None  # HMAC by the worker's send_lease (elevate/proof.py)


@dataclass
class LeaseResult:
    """The assignment owner's answer, signalled back to the request's workflow."""

    request_id: str
    release: bool
    ok: bool = True
    failure: str | None = None
    still_covered: bool = False  # released, but another request still holds the assignment


@dataclass
class AssignmentState:
    """What the owner of one assignment carries across continue-as-new."""

    assignment: Assignment
    leases: dict[str, str] = field(default_factory=dict)  # request id -> its workflow id
    granted: bool = False
    queue: list[LeaseInput] = field(default_factory=list)
    # Since "lease-ends": when each lease lapses by itself (end + grace) ...
    expires: dict[str, datetime] = field(default_factory=dict)
    # ... the requests that gave their lease back (a late duplicate acquire is refused) ...
    released: dict[str, datetime] = field(default_factory=dict)
    # ... whether this owner already learned its leases from the projection, and whether a
    # revoke was still being retried when it continued as new.
    rebuilt: bool = False
    revoke_pending: bool = False
    # After each revoke, end the sessions issued under the assignment (Identity Center).
    end_sessions: bool = False


@dataclass
class CoveringLeases:
    """What a fresh owner learns from the projection, confirmed against each request's workflow."""

    leases: dict[str, str] = field(default_factory=dict)  # request id -> workflow id
    expires: dict[str, datetime] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)  # requests of this triple already done


@dataclass
class LostRequest:
    """A covering request whose workflow closed without giving its access back, or is stuck."""

    request_id: str
    workflow_id: str
    assignment: Assignment
    cause: str


def assignment_workflow_id(a: Assignment) -> str:
    """One owner per (principal, account, permission set): the id is derived from the triple."""
    return f"assignment-{a.account_id}-{a.permission_set_arn.rsplit('/', 1)[-1]}-{a.principal_id}"


@dataclass
class ReconcileInput:
    mode: str = "revoke"  # "revoke" | "report"


@dataclass
class Finding:
    """A difference between AWS and the active requests."""

    kind: str  # "orphan": nobody covers it; "missing": an active request's assignment is gone
    assignment: Assignment
    permission_set_name: str
    request_id: str | None = None
    request_workflow_id: str | None = None
    # What the owner did with an orphan handed to it: "revoked", "kept" (a request covers it
    # now) or "pending" (no answer in time); None before the reconciler waited for answers.
    # A missing one handed to its owner is "handed": the owner audits a regrant it makes.
    outcome: str | None = None


@dataclass
class SweepState:
    """The walk over every managed (account, permission set) pair provisioned at AWS, in
    (permission set ARN, account id) order; kept across runs so each run walks one slice."""

    started_at: datetime
    pairs_total: int
    pairs_checked: int = 0
    completed_at: datetime | None = None
    last_pset_arn: str = ""  # the last pair walked: the next slice starts after it
    last_account_id: str = ""


@dataclass
class SweepSlice:
    state: SweepState
    findings: list[Finding] = field(default_factory=list)


@dataclass
class ReconcileReport:
    run_id: str
    mode: str
    started_at: datetime
    checked: int
    findings: list[Finding] = field(default_factory=list)
    sweep: SweepState | None = None


@dataclass
class ExtendInput:
    """Ask to move `end_at` later; approved like a new request unless the policy waives it."""

    actor: Actor
    extension_id: str
    duration: timedelta
    justification: str
    approvers: list[Principal]
    approvals_required: int
    approval_timeout: timedelta
    deadline: datetime | None = None
    proof: str | None = None  # HMAC by the API (elevate/proof.py)


@dataclass
class ExtensionChange:
    """The pending extension (or None once decided) and, when approved, the new end."""

    request_id: str
    event_id: str
    actor: str
    action: str
    pending: dict[str, object] | None
    end_at: datetime | None = None
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class EndSessions:
    """The owner revoked an assignment at `ended_at`: sessions issued before must stop."""

    assignment: Assignment
    ended_at: datetime
    request_id: str


@dataclass
class DenyEntry:
    """One user's deny on one account in a permission set's inline policy, until `remove_at`."""

    username: str
    account_id: str
    ended_at: datetime
    remove_at: datetime
    request_ids: list[str] = field(default_factory=list)  # still to be told `sessions_ended`

    @property
    def key(self) -> str:
        return f"{self.username}|{self.account_id}"


@dataclass
class EndSessionsInput:
    """What the per-permission-set writer is asked to add (username and keep already looked up)."""

    instance_arn: str
    permission_set_arn: str
    entry: DenyEntry


@dataclass
class SessionGuardState:
    instance_arn: str
    permission_set_arn: str
    entries: dict[str, DenyEntry] = field(default_factory=dict)
    # The inline policy as it was before elevate wrote into it, restored byte for byte after.
    original: str | None = None
    queue: list[EndSessionsInput] = field(default_factory=list)


@dataclass
class ApplyDenies:
    instance_arn: str
    permission_set_arn: str
    entries: list[DenyEntry]
    accounts: list[str]  # where the permission set is provisioned again
    original: str | None


@dataclass
class ApplyResult:
    original: str | None
    dropped: list[str] = field(default_factory=list)  # entry keys that did not fit


def session_guard_workflow_id(permission_set_arn: str) -> str:
    """One writer per permission set: its inline policy is edited by nobody else."""
    return f"end-sessions-{permission_set_arn.rsplit('/', 1)[-1]}"


@dataclass
class Checkpoint:
    """The audit chain's head at one moment, kept where the database's writers cannot reach."""

    seq: int
    hash: str
    at: datetime  # when it was taken


@dataclass
class CheckpointState:
    """What the audit checkpoint workflow carries across continue-as-new: the newest ones."""

    interval: timedelta
    recent: list[Checkpoint] = field(default_factory=list)


@dataclass
class CheckpointInput:
    previous: Checkpoint | None = None
