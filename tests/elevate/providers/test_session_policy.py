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
    users = [entry(f"user{n:04d}@example.com", minutes=n) for n in range(80)]
    text, dropped = render(THEIRS, THEIRS, users)
    assert len(text) <= POLICY_LIMIT
    assert dropped  # the newest that did not fit are named, for sessions_end_failed
    assert dropped[0].startswith("user0079@")  # newest first
    kept = {s["Condition"]["StringLike"]["aws:userid"] for s in ours(text)}
    assert len(kept) + len(dropped) == 80
