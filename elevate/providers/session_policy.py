"""The deny statements that end live Identity Center sessions, inside a permission set's inline
policy next to whatever else it holds (AWS: "Revoke active IAM role sessions created by
permission sets": a Deny on `aws:userid` and `aws:TokenIssueTime`, then re-provisioning).

Pure functions over the policy text, so the rules are tested without AWS.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from elevate.contracts import DenyEntry

SID_PREFIX = "ElevateEndSessions"
POLICY_LIMIT = 10_240  # characters AWS allows in a permission set's inline policy


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def statement(username: str, accounts: Iterable[str], ended_at: datetime) -> dict[str, Any]:
    """Deny everything to the user's sessions in these accounts issued before `ended_at`."""
    accts = sorted(set(accounts))
    digest = hashlib.sha256(f"{username}|{','.join(accts)}".encode()).hexdigest()[:16]
    return {
        "Sid": f"{SID_PREFIX}{digest}",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringLike": {"aws:userid": f"*:{username}"},
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


def _per_user(entries: list[DenyEntry]) -> list[dict[str, Any]]:
    """One statement per user: every account, the latest end (denies a little more, never less)."""
    by_user: dict[str, list[DenyEntry]] = {}
    for e in entries:
        by_user.setdefault(e.username, []).append(e)
    return [
        statement(user, [e.account_id for e in es], max(e.ended_at for e in es))
        for user, es in sorted(by_user.items())
    ]


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
    dropped: list[str] = []
    while kept:
        one_each = _dump(
            doc, foreign + [statement(e.username, [e.account_id], e.ended_at) for e in kept]
        )
        if len(one_each) <= POLICY_LIMIT:
            return one_each, dropped
        merged = _dump(doc, foreign + _per_user(kept))
        if len(merged) <= POLICY_LIMIT:
            return merged, dropped
        dropped.append(kept.pop().key)  # the newest does not fit: said, never silently lost
    return (_dump(doc, foreign) if foreign else ""), dropped
