"""The audit chain: `verify` finds edited, deleted and forged events; appends never fork it.

The database is shared with every other test of the session (and, once started, the stack's
worker and API append to it too), so tampering happens inside a transaction that keeps other
writers out and is always rolled back: nobody else ever sees a broken chain. Assertions name
the seqs of events this module wrote, never absolute positions.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from elevate.audit import (
    GENESIS,
    VerifyResult,
    commit_with_event,
    event_hash,
    stage_event,
    verify,
)
from elevate.db import make_engine, migrate
from elevate.models import AuditEvent

EVENTS = SQLModel.metadata.tables["audit_events"]
SEQ = EVENTS.c.seq


def is_pg(conn: sa.Connection | sa.Engine) -> bool:
    return conn.dialect.name == "postgresql"


def append(engine: sa.Engine, n: int, actor: str | None = None) -> list[int]:
    """Append n events through the real write path; their seqs, oldest first."""
    actor = actor or f"chain-{uuid.uuid4().hex[:12]}@example.com"
    for i in range(n):
        written = commit_with_event(
            lambda: Session(engine),
            lambda _s: None,
            actor=actor,
            action="chain_test",
            details={"i": i, "note": "written by test_audit_chain"},
        )
        assert written
    return seqs_of(engine, actor)


def seqs_of(engine: sa.Engine, actor: str) -> list[int]:
    with Session(engine) as s:
        stmt = select(AuditEvent.seq).where(AuditEvent.actor == actor).order_by(AuditEvent.seq)
        return list(s.exec(stmt))


def check(bind: sa.Engine | sa.Connection, batch_size: int = 1000) -> VerifyResult:
    with Session(bind=bind) as s:
        return verify(s, batch_size=batch_size)


def row(conn: sa.Connection, seq: int) -> sa.Row[Any]:
    return conn.execute(sa.select(EVENTS).where(SEQ == seq)).one()


def tail(conn: sa.Connection) -> sa.Row[Any]:
    return conn.execute(sa.select(EVENTS).order_by(SEQ.desc()).limit(1)).one()


@contextmanager
def tampering(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that holds other writers off, starts from an intact chain, and is rolled
    back whatever happens, so every tampering inside it is undone."""
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            if is_pg(conn):
                # Taken first and whole: asking for it later while an appender holds a read
                # lock on the table would deadlock with that appender.
                conn.execute(sa.text("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE"))
            else:
                conn.execute(sa.text("DELETE FROM audit_events WHERE 0 = 1"))  # the write lock
            assert check(conn).ok
            yield conn
        finally:
            tx.rollback()


def refused(conn: sa.Connection, stmt: sa.Executable) -> None:
    """On PostgreSQL the trigger of migration 0002 refuses the change; SQLite has no guard."""
    if not is_pg(conn):
        return
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), conn.begin_nested():
        conn.execute(stmt)


def as_attacker(conn: sa.Connection) -> None:
    """Someone who owns the table can switch its triggers off (undone by the rollback)."""
    if is_pg(conn):
        conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))


@contextmanager
def committed_edit(engine: sa.Engine, seq: int, **values: Any) -> Iterator[None]:
    """Commit an edit of one event, as an attacker would, and restore the original values after."""
    with engine.connect() as conn:
        original = {k: getattr(row(conn, seq), k) for k in values}
        conn.rollback()
    _force_update(engine, seq, values)
    try:
        yield
    finally:
        _force_update(engine, seq, original)


def _force_update(engine: sa.Engine, seq: int, values: dict[str, Any]) -> None:
    with engine.begin() as conn:
        if is_pg(conn):
            conn.execute(sa.text("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE"))
            conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(sa.update(EVENTS).where(SEQ == seq).values(**values))
        if is_pg(conn):
            conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


@pytest.fixture
def mine(engine: sa.Engine) -> list[int]:
    """Five fresh events; tests tamper with the middle one so there are intact ones on each side."""
    seqs = append(engine, 5)
    assert len(seqs) == 5
    return seqs


def test_appended_events_verify(engine: sa.Engine, mine: list[int]) -> None:
    result = check(engine)
    assert result == VerifyResult(ok=True, events=result.events, first_broken_seq=None)
    assert result.events >= mine[-1]
    with engine.connect() as conn:
        assert row(conn, 1).prev_hash == GENESIS
        for seq in mine[1:]:
            assert row(conn, seq).prev_hash == row(conn, seq - 1).hash


@pytest.mark.parametrize(
    "values",
    [
        {"actor": "mallory@example.com"},
        {"action": "nothing_happened"},
        {"details": {"i": 2, "note": "written by someone else"}},
        {"details": None},
        {"request_id": "00000000-0000-0000-0000-000000000000"},
        {"at": datetime(2020, 1, 1, tzinfo=UTC)},
        {"hash": "f" * 64},
        {"prev_hash": GENESIS},
    ],
    ids=lambda v: next(iter(v)),
)
def test_an_edited_field_breaks_the_chain_at_that_event(
    engine: sa.Engine, mine: list[int], values: dict[str, Any]
) -> None:
    victim = mine[2]
    with tampering(engine) as conn:
        edit = sa.update(EVENTS).where(SEQ == victim).values(**values)
        refused(conn, edit)
        as_attacker(conn)
        assert conn.execute(edit).rowcount == 1
        result = check(conn)
    assert not result.ok
    assert result.first_broken_seq == victim
    assert check(engine).ok  # the rollback repaired it


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_a_deleted_event_is_reported_as_its_missing_seq(
    engine: sa.Engine, mine: list[int], batch_size: int
) -> None:
    victim = mine[2]
    with tampering(engine) as conn:
        delete = sa.delete(EVENTS).where(SEQ == victim)
        refused(conn, delete)
        as_attacker(conn)
        total = conn.execute(sa.select(sa.func.count()).select_from(EVENTS)).scalar_one()
        assert conn.execute(delete).rowcount == 1
        result = check(conn, batch_size)
    assert result == VerifyResult(ok=False, events=total - 1, first_broken_seq=victim)
    assert check(engine).ok


def test_deleting_the_first_event_is_seen(engine: sa.Engine, mine: list[int]) -> None:
    with tampering(engine) as conn:
        as_attacker(conn)
        conn.execute(sa.delete(EVENTS).where(SEQ == 1))
        result = check(conn)
    assert (result.ok, result.first_broken_seq) == (False, 1)


def test_a_well_formed_replacement_is_caught_at_the_next_event(
    engine: sa.Engine, mine: list[int]
) -> None:
    """Replace an event with a forgery whose hash is right: the next event's link gives it away."""
    victim = mine[2]
    with tampering(engine) as conn:
        as_attacker(conn)
        before = row(conn, victim - 1)
        conn.execute(sa.delete(EVENTS).where(SEQ == victim))
        conn.execute(sa.insert(EVENTS).values(**forged(victim, before.hash)))
        result = check(conn)
    assert (result.ok, result.first_broken_seq) == (False, victim + 1)


def forged(seq: int, prev_hash: str, **over: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "seq": seq,
        "at": datetime.now(UTC),
        "actor": "mallory@example.com",
        "action": "approved",
        "request_id": None,
        "details": {"comment": "looks fine"},
        "dedupe_key": None,
        "prev_hash": prev_hash,
    }
    fields = ("seq", "at", "actor", "action", "request_id", "details", "prev_hash")
    event["hash"] = event_hash(*(event[f] for f in fields))
    event.update(over)
    return event


@pytest.mark.parametrize(
    "how",
    ["hash not computed", "linked to the genesis", "numbered before the first"],
)
def test_a_forged_event_is_caught(engine: sa.Engine, mine: list[int], how: str) -> None:
    with tampering(engine) as conn:
        last = tail(conn)
        if how == "hash not computed":
            event = forged(last.seq + 1, last.hash, hash="a" * 64)
        elif how == "linked to the genesis":
            event = forged(last.seq + 1, GENESIS)
        else:
            event = forged(0, GENESIS)
        conn.execute(sa.insert(EVENTS).values(**event))  # an INSERT: the trigger allows it
        result = check(conn)
    assert not result.ok
    assert result.first_broken_seq == event["seq"]


def test_committed_tampering_is_seen_by_a_new_session(engine: sa.Engine, mine: list[int]) -> None:
    victim = mine[2]
    with committed_edit(engine, victim, actor="mallory@example.com"):
        result = check(engine)
        assert (result.ok, result.first_broken_seq) == (False, victim)
    assert check(engine).ok


def test_a_session_that_read_the_events_before_still_sees_the_edit(
    engine: sa.Engine, mine: list[int]
) -> None:
    """An event already in a session's identity map must be read again as stored."""
    victim = mine[2]
    with tampering(engine) as conn, Session(bind=conn) as session:
        assert session.get(AuditEvent, victim) is not None
        assert verify(session).ok
        as_attacker(conn)
        conn.execute(sa.update(EVENTS).where(SEQ == victim).values(actor="mallory@example.com"))
        assert verify(session).first_broken_seq == victim


def test_verify_reads_in_batches(engine: sa.Engine, mine: list[int]) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    with engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", count)
        result = check(conn, batch_size=2)
        sa.event.remove(conn, "before_cursor_execute", count)
    assert result.ok
    assert len(statements) == result.events // 2 + 1


def test_undecodable_values_are_a_break_not_a_crash(engine: sa.Engine, mine: list[int]) -> None:
    if is_pg(engine):
        pytest.skip("PostgreSQL's json and timestamptz columns refuse values they cannot decode")
    victim = mine[2]
    with tampering(engine) as conn:
        conn.execute(
            sa.text("UPDATE audit_events SET details = '{not json' WHERE seq = :s"), {"s": victim}
        )
        result = check(conn, batch_size=2)
    assert (result.ok, result.first_broken_seq) == (False, victim)


def test_an_empty_trail_verifies(tmp_path: Path) -> None:
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    migrate(empty)
    assert check(empty) == VerifyResult(ok=True, events=0)
    empty.dispose()


def append_pairs(engine: sa.Engine, n: int, actor: str) -> None:
    """Transactions of two events, the first staged by the change itself (as deleting the last
    policy stages `policy_deleted` before `bootstrap_restored`)."""
    for i in range(n):

        def apply(s: Session, i: int = i) -> None:
            stage_event(s, actor=actor, action="chain_test", details={"i": i, "first": True})

        commit_with_event(
            lambda: Session(engine), apply, actor=actor, action="chain_test", details={"i": i}
        )


@pytest.mark.parametrize("events_per_commit", [1, 2])
def test_concurrent_appends_never_fork_the_chain(engine: sa.Engine, events_per_commit: int) -> None:
    threads, each = 8, 25
    actor = f"concurrent-{uuid.uuid4().hex[:12]}@example.com"
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            start.wait()
            if events_per_commit == 1:
                append(engine, each, actor)
            else:
                append_pairs(engine, each, actor)
        except BaseException as err:  # surfaced below: a thread's exception is otherwise lost
            failures.append(err)

    pool = [threading.Thread(target=writer) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert failures == []
    seqs = seqs_of(engine, actor)
    assert len(seqs) == len(set(seqs)) == threads * each * events_per_commit
    result = check(engine)
    assert result.ok, result
    with engine.connect() as conn:
        every = conn.execute(sa.select(SEQ).order_by(SEQ)).scalars().all()
    assert every[: result.events] == list(range(1, result.events + 1))
