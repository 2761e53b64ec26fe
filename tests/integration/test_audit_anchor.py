"""The audit chain anchored outside the database (API.md "Audit"), on a stack of its own: it
takes a checkpoint every second into the workflow's history and an Object-Locked S3 bucket, and
these tests tamper with its database (as someone who owns the table), then put it back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from elevate.audit import event_hash
from elevate.db import make_engine
from elevate.models import AuditEvent
from tests.databases import fresh_database
from tests.stack import Stack, running_stack, wait_for

BUCKET = "elevate-audit-anchors"
DAVE = "dave@example.com"
EVENTS = AuditEvent.__table__
SEQ = EVENTS.c.seq


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("anchored")
    env = {"ELEVATE_AUDIT_CHECKPOINT_INTERVAL": "PT1S", "ELEVATE_AUDIT_ANCHOR_BUCKET": BUCKET}
    with fresh_database(work) as url, running_stack(work, url, "identity_center", env) as s:
        yield s


@pytest.fixture(scope="module")
def engine(anchored: Stack) -> Iterator[sa.Engine]:
    eng = make_engine(anchored.env["ELEVATE_DATABASE_URL"])
    yield eng
    eng.dispose()


def verify(stack: Stack, **params: str) -> dict[str, Any]:
    with stack.client(DAVE) as c:
        resp = c.get("/v1/audit/verify", params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def anchored_head(stack: Stack, events: int) -> dict[str, Any]:
    """Appends `events` audit events (setting changes), then waits for a checkpoint of them."""
    with stack.client(DAVE) as c:
        for i in range(events):
            assert c.patch("/v1/settings", json={"comment_required": i % 2 == 0}).is_success
    return wait_for(
        lambda: (d := verify(stack)).get("checkpoint", {}).get("seq") == d["events"] and d, 30
    )


@contextmanager
def owner(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A committed change as the table's owner, who can switch the append-only trigger off."""
    with engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        if pg:
            conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        yield conn
        if pg:
            conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


def rows(conn: sa.Connection, first: int = 1) -> list[dict[str, Any]]:
    return [
        dict(r._mapping) for r in conn.execute(sa.select(EVENTS).where(SEQ >= first).order_by(SEQ))
    ]


def test_deleted_newest_events_are_found_by_the_checkpoint(
    anchored: Stack, engine: sa.Engine
) -> None:
    head = anchored_head(anchored, 4)["events"]
    with owner(engine) as conn:
        removed = rows(conn, head - 1)
        conn.execute(sa.delete(EVENTS).where(SEQ >= head - 1))
    try:
        seen = verify(anchored)
        assert (seen["ok"], seen["first_broken_seq"]) == (False, head - 1)
        assert seen["checkpoint"]["seq"] == head
        # Without the worker the workflow cannot answer: the S3 anchors say the same.
        anchored.kill_worker()
        assert verify(anchored)["first_broken_seq"] == head - 1
    finally:
        with owner(engine) as conn:
            conn.execute(sa.insert(EVENTS), removed)
        if anchored.procs["worker"].poll() is not None:
            # Its metrics port may have gone to another process's connection meanwhile.
            anchored.start_worker(ELEVATE_WORKER_METRICS_PORT="0")
    assert verify(anchored)["ok"] is True


def test_a_recomputed_chain_is_found_by_the_checkpoint(anchored: Stack, engine: sa.Engine) -> None:
    head = anchored_head(anchored, 3)
    assert head["ok"] is True
    with owner(engine) as conn:
        original = rows(conn)
        prev = "0" * 64
        for r in original:  # rewrite event 1, then every hash after it, as a forger would
            actor = "mallory@example.com" if r["seq"] == 1 else r["actor"]
            digest = event_hash(
                r["seq"], r["at"], actor, r["action"], r["request_id"], r["details"], prev
            )
            conn.execute(
                sa.update(EVENTS)
                .where(SEQ == r["seq"])
                .values(actor=actor, prev_hash=prev, hash=digest)
            )
            prev = digest
    try:
        for params in ({}, {"full": "true"}):  # every hash recomputes: only the anchor knows
            seen = verify(anchored, **params)
            assert (seen["ok"], seen["first_broken_seq"]) == (False, 1)
            assert (seen["events"], seen["checkpoint"]["seq"]) == (head["events"],) * 2
    finally:
        with owner(engine) as conn:
            for r in original:
                values = {k: r[k] for k in ("actor", "prev_hash", "hash")}
                conn.execute(sa.update(EVENTS).where(SEQ == r["seq"]).values(**values))
    assert verify(anchored)["ok"] is True


def test_anchors_in_s3_cannot_be_deleted(anchored: Stack) -> None:
    anchored_head(anchored, 1)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=anchored.endpoint)
    versions = s3.list_object_versions(Bucket=BUCKET)["Versions"]
    assert versions
    newest = versions[0]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=BUCKET, Key=newest["Key"], VersionId=newest["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
