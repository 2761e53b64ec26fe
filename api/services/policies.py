"""Eligibility and approval policies: stored, validated against the organization, evaluated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from sqlmodel import Session, col, select

from api.auth import User
from api.errors import Conflict, Invalid, NotAllowed, NotFound, Unavailable
from api.pagination import decode, encode
from elevate import policy
from elevate.audit import commit_with_event, stage_event
from elevate.contracts import Principal
from elevate.models import StoredPolicy, utcnow
from elevate.policy_schema import POLICY_KINDS, ApprovalBody, EligibilityBody, SettingsBody, iso
from elevate.providers.base import Provider
from elevate.providers.catalog import Account, PermissionSet
from elevate.settings import Settings


def _aws(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except (ClientError, BotoCoreError, LookupError) as err:
        raise Unavailable(f"AWS could not be asked: {err}", "aws_unavailable") from err


def _check_references(body: EligibilityBody | ApprovalBody, catalog: Provider) -> None:
    known_accounts = {a.id for a in _aws(catalog.accounts)}
    if unknown := [a for a in body.accounts if a not in known_accounts]:
        known_accounts = {a.id for a in _aws(catalog.accounts, True)}
        if unknown := [a for a in body.accounts if a not in known_accounts]:
            raise Invalid(
                f"accounts not in the organization: {', '.join(unknown)}",
                "unknown_account",
                ["accounts"],
            )
    known_ous = _aws(catalog.ous)
    if unknown := [o for o in body.ous if o not in known_ous]:
        known_ous = _aws(catalog.ous, True)
        if unknown := [o for o in body.ous if o not in known_ous]:
            raise Invalid(
                f"OUs not in the organization: {', '.join(unknown)}", "unknown_ou", ["ous"]
            )
    names = {p.name for p in _aws(catalog.permission_sets, True)}
    if unknown := [p for p in body.permission_sets if p not in names]:
        raise Invalid(
            f"unknown permission sets: {', '.join(unknown)}",
            "unknown_permission_set",
            ["permission_sets"],
        )


def resource(row: StoredPolicy) -> dict[str, Any]:
    return {
        "name": row.name,
        **row.body,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def put_policy(
    session: Session,
    user: User,
    kind: str,
    name: str,
    body: EligibilityBody | ApprovalBody,
    catalog: Provider,
) -> tuple[dict[str, Any], bool]:
    """Create or replace; returns the resource and whether it was created. No-op if unchanged."""
    _check_references(body, catalog)
    stored = body.model_dump(mode="json")
    row = session.get(StoredPolicy, (kind, name))
    if row is not None and row.body == stored:
        return resource(row), False
    created = row is None
    action = "policy_created" if created else "policy_updated"

    def apply(s: Session) -> None:
        target = s.get(StoredPolicy, (kind, name)) or StoredPolicy(kind=kind, name=name)
        target.body, target.updated_at = stored, utcnow()
        s.add(target)

    details = {"kind": kind, "name": name, "body": stored, "previous": row.body if row else None}
    commit_with_event(
        lambda: Session(session.get_bind()),
        apply,
        actor=user.username,
        action=action,
        details=details,
    )
    session.expire_all()
    return resource(_get(session, kind, name)), created


def _get(session: Session, kind: str, name: str) -> StoredPolicy:
    row = session.get(StoredPolicy, (kind, name))
    if row is None:
        raise NotFound(f"no {kind} policy named {name}")
    return row


def get_policy(session: Session, kind: str, name: str) -> dict[str, Any]:
    return resource(_get(session, kind, name))


def _others(s: Session, kind: str, name: str) -> bool:
    stmt = select(StoredPolicy.name).where(StoredPolicy.kind == kind, StoredPolicy.name != name)
    return s.exec(stmt.limit(1)).first() is not None


def delete_policy(
    session: Session, user: User, kind: str, name: str, allow_bootstrap: bool = False
) -> None:
    """Delete a policy; the last of its kind only on purpose, since bootstrap then opens access
    again. Counted again inside the audited transaction, so two racing deletes cannot both pass."""
    row = _get(session, kind, name)
    last = not _others(session, kind, name)
    if last and not allow_bootstrap:
        raise Conflict(
            f"{name} is the last {kind} policy; without it {kind} returns to bootstrap "
            "(anyone may request, or the approver group approves); repeat with "
            "?allow_bootstrap=true to mean it",
            "last_policy",
        )
    details = {"kind": kind, "name": name, "previous": row.body}

    def apply(s: Session) -> None:
        if not last and not _others(s, kind, name):
            raise Conflict(f"{name} became the last {kind} policy; try again", "last_policy")
        victim = s.get(StoredPolicy, (kind, name))
        if victim is not None:
            s.delete(victim)
        if last:  # the deletion first, then what it means
            stage_event(s, actor=user.username, action="policy_deleted", details=details)

    commit_with_event(
        lambda: Session(session.get_bind()),
        apply,
        actor=user.username,
        action="bootstrap_restored" if last else "policy_deleted",
        details={"kind": kind, "deleted": name} if last else details,
    )


def list_policies(session: Session, kind: str, limit: int, cursor: str | None) -> dict[str, Any]:
    stmt = select(StoredPolicy).where(StoredPolicy.kind == kind)
    if cursor:
        at, name = decode(cursor, (datetime, str))
        stmt = stmt.where(
            (col(StoredPolicy.created_at) < at)
            | ((col(StoredPolicy.created_at) == at) & (col(StoredPolicy.name) < name))
        )
    stmt = stmt.order_by(col(StoredPolicy.created_at).desc(), col(StoredPolicy.name).desc())
    rows = session.exec(stmt.limit(limit + 1)).all()
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "items": [resource(r) for r in page],
        "next_cursor": encode([page[-1].created_at, page[-1].name]) if more else None,
    }


def load(session: Session, kind: str) -> list[Any]:
    """The stored policies of a kind, as pure-logic dataclasses."""
    model = POLICY_KINDS[kind]
    rows = session.exec(select(StoredPolicy).where(StoredPolicy.kind == kind)).all()
    return [model.model_validate(r.body).to_policy(r.name) for r in rows]


@dataclass(frozen=True)
class Decision:
    """What a new request gets: how long it may last, and who must approve it."""

    max_duration: Any
    ticket_required: bool
    approvers: list[Principal]
    approvals_required: int


def target_of(account: Account, pset: PermissionSet) -> policy.Target:
    return policy.Target(account.id, account.ou_chain, pset.name)


def eligibility_for(
    session: Session,
    user: User,
    target: policy.Target,
    eff: SettingsBody,
    policies: list[Any] | None = None,
) -> policy.Eligibility | None:
    """`policies`: the stored eligibility policies when the caller already loaded them."""
    policies = load(session, "eligibility") if policies is None else policies
    if not policies:  # bootstrap: anyone known to Identity Center, anything, approval needed
        return policy.Eligibility(eff.max_duration, True, eff.ticket_required, ())
    found = policy.eligibility(user.username, user.groups, target, policies, eff.max_duration)
    if found is None or not eff.ticket_required:
        return found
    return policy.Eligibility(found.max_duration, found.approval_required, True, found.policies)


def decide(
    session: Session, user: User, target: policy.Target, eff: SettingsBody, env: Settings
) -> Decision:
    elig = eligibility_for(session, user, target, eff)
    if elig is None:
        raise NotAllowed(
            f"no eligibility policy lets {user.username} request {target.permission_set} "
            f"on {target.account_id}",
            "not_eligible",
        )
    approval_policies = load(session, "approval")
    if not approval_policies:
        approvers, required = policy.bootstrap_approvers(env.approver_group, env.admin_group), 1
    else:
        rule = policy.approval_rule(target, approval_policies)
        if rule is None and elig.approval_required:
            raise Invalid(
                f"no approval policy covers {target.permission_set} on {target.account_id}; "
                "nobody could approve this request",
                "no_approver",
            )
        approvers = list(rule.approvers) if rule else []
        required = rule.approvals_required if rule else 0
    return Decision(
        elig.max_duration,
        elig.ticket_required,
        approvers,
        required if elig.approval_required else 0,
    )


def my_eligibility(
    session: Session, user: User, catalog: Provider, eff: SettingsBody
) -> list[dict[str, Any]]:
    """Every (account, permission set) the caller may request, with its limits.

    Two queries whatever the organization's size: the policies are loaded once, narrowed to
    the caller's, then to each account's, and evaluated in memory.
    """
    if _aws(catalog.resolve_principal, user.username) is None:
        return []
    stored = load(session, "eligibility")
    mine = [p for p in stored if policy.matches(user.username, user.groups, p.principals)]
    if stored and not mine:
        return []
    approval_policies = load(session, "approval")
    psets = _aws(catalog.permission_sets)
    out = []
    for account in _aws(catalog.accounts):
        here = policy.Target(account.id, account.ou_chain, "")
        elig_here = policy.covering_account(here, mine)
        if stored and not elig_here:
            continue
        approval_here = policy.covering_account(here, approval_policies)
        for pset in psets:
            target = target_of(account, pset)
            elig = eligibility_for(session, user, target, eff, elig_here if stored else [])
            if elig is None:
                continue
            if (
                elig.approval_required
                and approval_policies
                and not policy.approval_rule(target, approval_here)
            ):
                continue  # nobody could approve it: requesting would be refused
            out.append(_offer(account, pset, elig))
    return out


def _offer(account: Account, pset: PermissionSet, elig: policy.Eligibility) -> dict[str, Any]:
    return {
        "account_id": account.id,
        "account_name": account.name,
        "permission_set": pset.name,
        "max_duration": elig.max_duration,
        "approval_required": elig.approval_required,
        "ticket_required": elig.ticket_required,
    }


def check_duration(duration: timedelta, eff: SettingsBody, decision: Decision) -> None:
    """Within the global minimum and the shorter of the global and the policy maximum."""
    longest = min(eff.max_duration, decision.max_duration)
    if not eff.min_duration <= duration <= longest:
        raise Invalid(
            f"duration must be between {iso(eff.min_duration)} and {iso(longest)}",
            "invalid_duration",
            ["duration"],
        )
