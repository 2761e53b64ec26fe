"""Pure policy logic: who may request what, who must approve. No I/O (also safe in workflows).

Semantics where several policies apply:
- Eligibility: a policy matches when it names the user or one of the user's groups, covers the
  account (directly, or through an OU anywhere above it) and the permission set (an empty list
  means all). Of all matching policies the caller gets the longest `max_duration` (capped by the
  global maximum); approval is waived only if *every* matching policy waives it; a ticket is
  required if *any* matching policy requires it.
- Approval: the most specific matching policy wins: account + permission set > account >
  OU nearest the account (+ permission set before without) > its parent OUs > the root.
  Ties at the same specificity go to the policy whose name sorts first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from elevate.contracts import Principal
from elevate.identity import fold

PolicyT = TypeVar("PolicyT", "EligibilityPolicy", "ApprovalPolicy")


def matches(username: str, groups: Iterable[str], principals: Iterable[Principal]) -> bool:
    """True when the user is named (in any spelling of the same person), or is in a named group."""
    group_set = set(groups)
    person = fold(username)
    for p in principals:
        if (p.type == "user" and fold(p.name) == person) or (
            p.type == "group" and p.name in group_set
        ):
            return True
    return False


def bootstrap_approvers(approver_group: str, admin_group: str) -> list[Principal]:
    """Until approval policies exist: the approver group and the admins, one approval."""
    return [Principal("group", approver_group), Principal("group", admin_group)]


@dataclass(frozen=True)
class Target:
    """What is asked for: an account (with its OU chain, nearest first) and a permission set."""

    account_id: str
    ou_chain: tuple[str, ...]
    permission_set: str


@dataclass(frozen=True)
class EligibilityPolicy:
    name: str
    principals: Sequence[Principal]
    accounts: Sequence[str] = ()
    ous: Sequence[str] = ()
    permission_sets: Sequence[str] = ()
    max_duration: timedelta = timedelta(hours=1)
    approval_required: bool = True
    ticket_required: bool = False


@dataclass(frozen=True)
class ApprovalPolicy:
    name: str
    approvers: Sequence[Principal]
    approvals_required: int = 1
    accounts: Sequence[str] = ()
    ous: Sequence[str] = ()
    permission_sets: Sequence[str] = ()


@dataclass(frozen=True)
class Eligibility:
    max_duration: timedelta
    approval_required: bool
    ticket_required: bool
    policies: tuple[str, ...] = field(default=())


def _level(accounts: Sequence[str], ous: Sequence[str], target: Target) -> int | None:
    """0 for a direct account match, 1 + distance for an OU above it, None when not covered."""
    if target.account_id in accounts:
        return 0
    levels = [i + 1 for i, ou in enumerate(target.ou_chain) if ou in ous]
    return min(levels) if levels else None


def covering_account(target: Target, policies: Sequence[PolicyT]) -> list[PolicyT]:
    """The policies whose accounts or OUs cover the target's account, whatever the set."""
    return [p for p in policies if _level(p.accounts, p.ous, target) is not None]


def _covers_set(permission_sets: Sequence[str], target: Target) -> bool:
    return not permission_sets or target.permission_set in permission_sets


def eligibility(
    username: str,
    groups: Iterable[str],
    target: Target,
    policies: Sequence[EligibilityPolicy],
    global_max: timedelta,
) -> Eligibility | None:
    """What the user may have on the target, or None when no policy allows it."""
    groups = list(groups)
    found = [
        p
        for p in policies
        if matches(username, groups, p.principals)
        and _level(p.accounts, p.ous, target) is not None
        and _covers_set(p.permission_sets, target)
    ]
    if not found:
        return None
    return Eligibility(
        max_duration=min(global_max, max(p.max_duration for p in found)),
        approval_required=any(p.approval_required for p in found),
        ticket_required=any(p.ticket_required for p in found),
        policies=tuple(sorted(p.name for p in found)),
    )


def approval_rule(target: Target, policies: Sequence[ApprovalPolicy]) -> ApprovalPolicy | None:
    """The most specific approval policy for the target, or None (then nobody can approve)."""
    ranked = []
    for p in policies:
        level = _level(p.accounts, p.ous, target)
        if level is None or not _covers_set(p.permission_sets, target):
            continue
        ranked.append(((level, 0 if p.permission_sets else 1, p.name), p))
    return min(ranked, key=lambda item: item[0])[1] if ranked else None
