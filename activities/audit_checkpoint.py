"""The audit checkpoint's side effects: read and check the chain's head, anchor it in S3."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlmodel import Session
from temporalio import activity

from elevate import audit_anchor
from elevate.contracts import Checkpoint, CheckpointInput
from elevate.providers.aws import client
from elevate.settings import Settings

log = logging.getLogger("elevate.audit")


class AuditActivities:
    def __init__(self, engine: sa.Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    @activity.defn
    def take_checkpoint(self, inp: CheckpointInput) -> Checkpoint | None:
        """The chain's new head, once the events since the previous checkpoint verify; None when
        nothing was appended, or when the chain is broken (a tampered head is never anchored)."""
        with Session(self._engine) as session:
            broken = audit_anchor.verify_since(session, inp.previous)
            if broken is not None:
                log.error("audit chain broken at seq %s: no checkpoint taken", broken)
                return None
            cp = audit_anchor.head(session)
        if cp is None or (inp.previous is not None and cp.seq == inp.previous.seq):
            return None
        s = self._settings
        if s.audit_anchor_bucket:
            s3 = client("s3", s.aws_region)
            audit_anchor.put_anchor(
                s3, s.audit_anchor_bucket, s.audit_anchor_prefix, cp, s.audit_anchor_retention
            )
        return cp
