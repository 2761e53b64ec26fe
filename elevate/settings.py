"""The one settings class. Every knob is an `ELEVATE_` environment variable."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from elevate.contracts import ENDING_SOON_LEAD, LEASE_GRACE

STATE_DIR = Path(".elevate")


class MissingMessageKey(RuntimeError):
    """The API or the worker was started without ELEVATE_MESSAGE_KEY."""


class Settings(BaseSettings):
    # Empty variables count as unset (compose passes `${VAR:-}` through as "").
    model_config = SettingsConfigDict(env_prefix="ELEVATE_", extra="ignore", env_ignore_empty=True)

    database_url: str = f"sqlite:///{STATE_DIR}/elevate.db"
    # The API and the worker upgrade the schema at start-up; with false they only check that
    # `elevate db upgrade` has run (the compose stack runs it as its own step).
    auto_migrate: bool = True
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_api_key: str | None = None
    temporal_tls: bool = False
    # mTLS to a self-hosted frontend: the client certificate, its key, and the server's CA.
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    task_queue: str = "elevate"

    auth_jwks_url: str = str(STATE_DIR / "jwks.json")
    auth_issuer: str = "elevate-dev"
    auth_audience: str = "elevate"
    auth_username_claim: str = "email"
    auth_groups_claim: str = "groups"
    auth_leeway_seconds: int = 30

    # The HMAC key the API and the worker sign workflow messages with (elevate/proof.py); both
    # refuse to start without it. Comma-separated: the first signs, all verify (rotation).
    message_key: str | None = None

    def message_keys(self) -> list[str]:
        return [k.strip() for k in (self.message_key or "").split(",") if k.strip()]

    def notification_channels(self) -> list[str]:
        """The channels a request made now notifies ("webhook", "slack"): those with a URL."""
        urls = {"webhook": self.notify_webhook_url, "slack": self.slack_webhook_url}
        return [channel for channel, url in urls.items() if url]

    def signing_key(self) -> str:
        keys = self.message_keys()
        if not keys:
            raise MissingMessageKey(
                "ELEVATE_MESSAGE_KEY is not set: messages to workflows could not prove who sent "
                "them (generate one with: python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return keys[0]

    admin_group: str = "elevate-admins"
    auditor_group: str = "elevate-auditors"
    approver_group: str = "elevate-approvers"

    min_duration: timedelta = timedelta(minutes=15)
    max_duration: timedelta = timedelta(hours=9)
    approval_timeout: timedelta = timedelta(hours=3)
    ticket_required: bool = False
    comment_required: bool = False
    # A start_at further ahead is 422 `start_too_late`: a grant scheduled for 2999 is a typo or
    # a way to hold an approval that outlives every policy change.
    max_schedule_ahead: timedelta = timedelta(days=30)

    # Where access is granted: IAM Identity Center, or plain IAM described by a catalog file.
    provider: Literal["identity_center", "iam"] = "identity_center"
    iam_catalog: Path | None = None
    sso_instance_arn: str | None = None
    aws_region: str = Field(default="us-east-1")
    catalog_ttl_seconds: int = 60
    # AWS API calls per second for the whole fleet (API.md "AWS budget"): worker.py splits it
    # between the revoke, grant and sweep lanes.
    aws_max_calls_per_second: float = Field(default=10.0, gt=0)

    # The reconciler compares AWS with the active requests every interval. `revoke` removes
    # assignments no request covers; `report` only records them. Managed permission sets are
    # these names, else those a stored policy lists; never all of them by omission.
    reconcile_interval: timedelta = timedelta(minutes=5)
    reconcile_mode: Literal["revoke", "report"] = "revoke"
    reconcile_permission_sets: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("reconcile_permission_sets", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return (
            [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        )

    # Access never outlives end_at by more than this, even when the request's workflow is gone:
    # the assignment's owner drops a lease nobody gave back this long after its end.
    lease_grace: timedelta = LEASE_GRACE

    # Identity Center: when access ends, sessions already issued under it stop working (a deny
    # in the permission set's inline policy), kept for the permission set's session duration
    # unless `end_sessions_keep` says otherwise.
    end_sessions: bool = True
    end_sessions_keep: timedelta | None = None
    # The audit chain's head is recorded this often in a workflow's history and, with a bucket,
    # in S3 under Object Lock COMPLIANCE for `audit_anchor_retention` (API.md "Audit").
    audit_checkpoint_interval: timedelta = timedelta(minutes=5)
    audit_anchor_bucket: str | None = None
    audit_anchor_prefix: str = "elevate/audit/"
    audit_anchor_retention: timedelta = timedelta(days=400)

    # Revoke never gives up; this only spaces its attempts once AWS keeps refusing.
    revoke_retry_max_interval: timedelta = timedelta(minutes=5)
    public_url: str = "http://localhost:8000"

    # The web app (API.md "Web app"): its OpenID Connect client, the key that signs its session
    # cookie (set it when several API replicas serve the app; else each process makes one), and
    # the dev sign-in, a YAML file `username: [groups]`, which `elevate dev` turns on.
    ui_client_id: str | None = None
    ui_client_secret: str | None = None
    ui_session_secret: str | None = None
    ui_session_hours: int = 8
    ui_dev_login: bool = False
    ui_dev_users: Path | None = None

    # Workflows a worker keeps in memory between their tasks; one evicted replays its history
    # when it next wakes. Bounds the worker's memory however many requests are active.
    worker_max_cached_workflows: int = Field(default=300, ge=0)
    # The worker serves Prometheus metrics (Temporal SDK's and elevate's) here; 0 turns it off.
    worker_metrics_port: int = 9464
    # json: one JSON object per line; plain: for a terminal; auto: plain on a terminal.
    log_format: Literal["json", "plain", "auto"] = "auto"
    log_level: str = "INFO"

    # Every status change is POSTed here (API.md "Notifications"); signed when a secret is set.
    notify_webhook_url: str | None = None
    notify_webhook_secret: str | None = None
    # A Slack incoming webhook gets the same events as readable messages. The URL is a secret.
    slack_webhook_url: str | None = None
    # Slack approvals (API.md "Slack approvals"): with both the bot token and the signing secret,
    # approvers get messages with Approve/Reject buttons, answered at /v1/slack/interactions.
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    # One message in this channel instead of a direct message to each approver.
    slack_approvals_channel: str | None = None
    # `ending_soon` goes out this long before end_at (an end nearer than this gets none); 0: never.
    notify_ending_soon_lead: timedelta = ENDING_SOON_LEAD


@lru_cache
def get_settings() -> Settings:
    return Settings()
