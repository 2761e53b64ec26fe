"""The deny statements that end live Identity Center sessions, inside a permission set's inline
policy next to whatever else it holds (AWS: "Revoke active IAM role sessions created by
permission sets": a Deny on `aws:userid` and `aws:TokenIssueTime`, then re-provisioning).

Pure functions over the policy text, so the rules are tested without AWS.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from elevate.contracts import DenyEntry

SID_PREFIX = "ElevateEndSessions"
POLICY_LIMIT = 10_240  # characters AWS allows in a permission set's inline policy


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def statement(
    usernames: str | Iterable[str], accounts: Iterable[str], ended_at: datetime
) -> dict[str, Any]:
    """Deny everything to these users' sessions in these accounts issued before `ended_at`."""
    users = [usernames] if isinstance(usernames, str) else sorted(set(usernames))
    accts = sorted(set(accounts))
    digest = hashlib.sha256(f"{','.join(users)}|{','.join(accts)}".encode()).hexdigest()[:16]
    ids = [f"*:{u}" for u in users]
    return {
        "Sid": f"{SID_PREFIX}{digest}",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringLike": {"aws:userid": ids if len(ids) > 1 else ids[0]},
            "DateLessThan": {"aws:TokenIssueTime": _iso(ended_at)},
            "StringEquals": {"aws:PrincipalAccount": accts if len(accts) > 1 else accts[0]},
        },
    }


def is_ours(s: object) -> bool:
    return isinstance(s, dict) and str(s.get("Sid", "")).startswith(SID_PREFIX)


def parse(text: str) -> tuple[dict[str, Any], list[Any]]:
    """The document (its statements as a list) and the statements elevate did not write."""
    doc: dict[str, Any] = json.loads(text) if text.strip() else {"Version": "2012-10-17"}
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    return doc, [s for s in statements if not is_ours(s)]


def has_ours(text: str) -> bool:
    if not text.strip():
        return False
    statements = json.loads(text).get("Statement", [])
    return any(is_ours(s) for s in (statements if isinstance(statements, list) else [statements]))


def _dump(doc: dict[str, Any], statements: list[Any]) -> str:
    return json.dumps({**doc, "Statement": statements}, separators=(",", ":"))


def _one_each(entries: list[DenyEntry]) -> list[dict[str, Any]]:
    return [statement(e.username, [e.account_id], e.ended_at) for e in entries]


def _per_user(entries: list[DenyEntry]) -> list[dict[str, Any]]:
    """One statement per user: every account, the latest end (denies a little more, never less)."""
    by_user: dict[str, list[DenyEntry]] = {}
    for e in entries:
        by_user.setdefault(e.username, []).append(e)
    return [
        statement(user, [e.account_id for e in es], max(e.ended_at for e in es))
        for user, es in sorted(by_user.items())
    ]


# When a statement per user does not fit (a burst of revokes on one permission set), the users
# of one account whose access ended within the same window share a statement with the window's
# latest end. Only a user given access again within that window could lose a session issued
# meanwhile, until it is renewed after the window's end; the narrowest window that fits is used.
_WINDOWS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))


def _per_window(width: timedelta) -> Callable[[list[DenyEntry]], list[dict[str, Any]]]:
    def group(entries: list[DenyEntry]) -> list[dict[str, Any]]:
        groups: dict[tuple[str, int], list[DenyEntry]] = {}
        for e in entries:
            window = int(e.ended_at.timestamp() // width.total_seconds())
            groups.setdefault((e.account_id, window), []).append(e)
        return [
            statement([e.username for e in es], [account], max(e.ended_at for e in es))
            for (account, _), es in sorted(groups.items())
        ]

    return group


_LAYOUTS = (_one_each, _per_user, *(_per_window(w) for w in _WINDOWS))


def _fitting(doc: dict[str, Any], foreign: list[Any], entries: list[DenyEntry]) -> str | None:
    """The policy with the finest layout of these denies that fits, or None."""
    for layout in _LAYOUTS:
        text = _dump(doc, foreign + layout(entries))
        if len(text) <= POLICY_LIMIT:
            return text
    return None


def render(current: str, original: str | None, entries: list[DenyEntry]) -> tuple[str, list[str]]:
    """The new policy text and the keys of entries that could not fit.

    With no entry left, the policy elevate first found is put back exactly as it was (when the
    statements elevate did not write are still those), else only those remain.
    """
    doc, foreign = parse(current)
    if not entries:
        if original is not None and parse(original)[1] == foreign:
            return original, []
        return (_dump(doc, foreign) if foreign else ""), []
    kept = sorted(entries, key=lambda e: (e.ended_at, e.key))
    text = _fitting(doc, foreign, kept)
    if text is not None:
        return text, []
    # The coarsest layout only grows with each entry: keep the most, the oldest, that fit; the
    # newest that do not are said, never silently lost.
    coarsest = _LAYOUTS[-1]
    low, high = 0, len(kept)  # kept[:low] fits, kept[:high] does not
    while high - low > 1:
        mid = (low + high) // 2
        fits = len(_dump(doc, foreign + coarsest(kept[:mid]))) <= POLICY_LIMIT
        low, high = (mid, high) if fits else (low, mid)
    dropped = [e.key for e in reversed(kept[low:])]
    text = _fitting(doc, foreign, kept[:low]) if low else None
    return (text or (_dump(doc, foreign) if foreign else "")), dropped
