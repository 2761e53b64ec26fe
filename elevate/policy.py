"""Pure policy logic: who approves, who sees. No I/O, so it is safe inside workflows too."""

from __future__ import annotations

from collections.abc import Iterable

from elevate.contracts import Principal


def matches(username: str, groups: Iterable[str], principals: Iterable[Principal]) -> bool:
    """True when the user is named, or is in a named group."""
    group_set = set(groups)
    for p in principals:
        if (p.type == "user" and p.name == username) or (p.type == "group" and p.name in group_set):
            return True
    return False


def bootstrap_approvers(approver_group: str, admin_group: str) -> list[Principal]:
    """Until approval policies exist: the approver group and the admins, one approval."""
    return [Principal("group", approver_group), Principal("group", admin_group)]
