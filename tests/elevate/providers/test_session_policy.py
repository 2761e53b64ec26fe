"""The session denies beside other statements: kept, merged, and never silently dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from elevate.contracts import DenyEntry
from elevate.providers.session_policy import POLICY_LIMIT, SID_PREFIX, has_ours, render

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
THEIRS = (
    '{"Version": "2012-10-17", '
    '"Statement": {"Sid": "Theirs", "Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}}'
)


def entry(user: str, account: str = "111111111111", minutes: int = 0) -> DenyEntry:
    at = AT + timedelta(minutes=minutes)
    return DenyEntry(user, account, at, at + timedelta(hours=1))


def ours(text: str) -> list[dict]:
    return [s for s in json.loads(text)["Statement"] if s["Sid"].startswith(SID_PREFIX)]


def test_foreign_statements_stay_and_the_original_comes_back_exactly() -> None:
    text, dropped = render(THEIRS, THEIRS, [entry("alice@example.com")])
    assert dropped == []
    assert has_ours(text)
    assert {"Sid": "Theirs", "Effect": "Allow", "Action": "s3:Get*", "Resource": "*"} in json.loads(
        text
    )["Statement"]
    assert ours(text)[0]["Condition"]["DateLessThan"] == {
        "aws:TokenIssueTime": "2026-12-01T09:00:00Z"
    }
    back, _ = render(text, THEIRS, [])
    assert back == THEIRS


def test_no_policy_before_means_none_after() -> None:
    text, _ = render("", "", [entry("bob@example.com")])
    assert len(ours(text)) == 1
    assert render(text, "", []) == ("", [])


def test_a_full_policy_merges_one_users_statements_then_refuses_with_names() -> None:
    many = [entry("carol@example.com", f"{n:012d}", n) for n in range(60)]
    text, dropped = render(THEIRS, THEIRS, many)
    assert len(text) <= POLICY_LIMIT
    assert dropped == []
    merged = ours(text)
    assert len(merged) == 1  # one user: one statement, every account, the latest end
    assert merged[0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == "2026-12-01T09:59:00Z"
    # Far more than fit even sharing statements: the newest are named, for sessions_end_failed.
    users = [entry(f"user{n:04d}@example.com", f"{n:012d}", minutes=n) for n in range(80)]
    text, dropped = render(THEIRS, THEIRS, users)
    assert len(text) <= POLICY_LIMIT
    assert dropped
    assert dropped[0].startswith("user0079@")  # newest first
    kept = {s["Condition"]["StringLike"]["aws:userid"] for s in ours(text)}
    assert len(kept) + len(dropped) == 80
    assert sorted(dropped) == [
        f"user{n:04d}@example.com|{n:012d}" for n in range(80 - len(dropped), 80)
    ]


def denied(text: str, user: str, account: str, issued: datetime) -> bool:
    """Whether the policy denies a session of `user` in `account` issued at `issued`."""
    for s in ours(text):
        c = s["Condition"]
        ids = c["StringLike"]["aws:userid"]
        accounts = c["StringEquals"]["aws:PrincipalAccount"]
        before = datetime.fromisoformat(c["DateLessThan"]["aws:TokenIssueTime"])
        if (
            f"*:{user}" in ([ids] if isinstance(ids, str) else ids)
            and account in ([accounts] if isinstance(accounts, str) else accounts)
            and issued < before
        ):
            return True
    return False


def test_a_burst_of_revokes_shares_statements_and_ends_every_session() -> None:
    # 150 users lose access to two accounts within two minutes: one statement each is far too big.
    ended = [
        entry(f"burst{n:05d}@example.com", ("111111111111", "222222222222")[n % 2])
        for n in range(150)
    ]
    for n, e in enumerate(ended):
        e.ended_at += timedelta(seconds=n * 0.8)
    text, dropped = render(THEIRS, THEIRS, ended)
    assert dropped == []
    assert len(text) <= POLICY_LIMIT
    assert len(ours(text)) < 10
    for e in ended:
        other = "222222222222" if e.account_id == "111111111111" else "111111111111"
        assert denied(text, e.username, e.account_id, e.ended_at - timedelta(seconds=1))
        assert not denied(text, e.username, other, AT)  # never in an account it did not lose
        # At most a minute more: a session issued a minute after the end is not denied.
        assert not denied(text, e.username, e.account_id, e.ended_at + timedelta(minutes=1))
    assert "Theirs" in [s["Sid"] for s in json.loads(text)["Statement"]]


def test_the_narrowest_window_that_fits_is_used() -> None:
    spread = [entry(f"user{n:04d}@example.com", minutes=n) for n in range(80)]
    text, dropped = render(THEIRS, THEIRS, spread)
    assert dropped == []
    ends = sorted(
        datetime.fromisoformat(s["Condition"]["DateLessThan"]["aws:TokenIssueTime"])
        for s in ours(text)
    )
    assert len(ends) == 16  # five-minute windows: one minute apart would not fit
    for e in spread:
        assert denied(text, e.username, e.account_id, e.ended_at - timedelta(seconds=1))
        assert not denied(text, e.username, e.account_id, e.ended_at + timedelta(minutes=5))
