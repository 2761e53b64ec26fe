"""Policy evaluation as pure functions: a table of cases, and properties that must always hold."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elevate.contracts import Principal
from elevate.policy import (
    ApprovalPolicy,
    EligibilityPolicy,
    Target,
    approval_rule,
    eligibility,
)

ROOT, WORKLOADS, PROD_OU, SANDBOX_OU = "r-root", "ou-root-work", "ou-root-prod", "ou-root-sand"
PROD, STAGING, SANDBOX = "111111111111", "222222222222", "333333333333"
CHAINS = {
    PROD: (PROD_OU, WORKLOADS, ROOT),
    STAGING: ("ou-root-stag", WORKLOADS, ROOT),
    SANDBOX: (SANDBOX_OU, ROOT),
}
G = lambda name: Principal("group", name)  # noqa: E731
U = lambda name: Principal("user", name)  # noqa: E731
MAX = timedelta(hours=9)


def target(account: str, pset: str = "ReadOnly") -> Target:
    return Target(account, CHAINS[account], pset)


ELIGIBILITY = [
    EligibilityPolicy(
        "oncall-prod",
        [G("oncall")],
        accounts=[PROD],
        permission_sets=["AdministratorAccess"],
        max_duration=timedelta(hours=2),
    ),
    EligibilityPolicy(
        "devs-workloads",
        [G("developers")],
        ous=[WORKLOADS],
        permission_sets=["ReadOnly"],
        max_duration=timedelta(hours=4),
        approval_required=False,
    ),
    EligibilityPolicy(
        "devs-prod-strict",
        [G("developers")],
        accounts=[PROD],
        permission_sets=["ReadOnly"],
        max_duration=timedelta(hours=1),
        approval_required=True,
        ticket_required=True,
    ),
    EligibilityPolicy(
        "alice-sandbox",
        [U("alice")],
        ous=[SANDBOX_OU],
        max_duration=timedelta(hours=12),
        approval_required=False,
    ),
]


@pytest.mark.parametrize(
    ("user", "groups", "tgt", "expected"),
    [
        # direct account match through a group
        ("bob", ["oncall"], target(PROD, "AdministratorAccess"), (timedelta(hours=2), True, False)),
        # permission set not covered by the only matching policy
        ("bob", ["oncall"], target(PROD, "ReadOnly"), None),
        # nested OU: staging sits under Workloads
        ("carl", ["developers"], target(STAGING), (timedelta(hours=4), False, False)),
        # two policies match: longest duration, approval unless all waive, ticket if any requires
        ("carl", ["developers"], target(PROD), (timedelta(hours=4), True, True)),
        # a user-named policy; its 12h is capped by the global maximum; empty sets mean all
        ("alice", [], target(SANDBOX, "AdministratorAccess"), (MAX, False, False)),
        # the same name as a group is not the user
        ("oncall", [], target(PROD, "AdministratorAccess"), None),
        # nobody named
        ("mallory", ["visitors"], target(STAGING), None),
    ],
)
def test_eligibility_table(user, groups, tgt, expected) -> None:
    got = eligibility(user, groups, tgt, ELIGIBILITY, MAX)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got.max_duration, got.approval_required, got.ticket_required) == expected


APPROVAL = [
    ApprovalPolicy("org-wide", [G("security")], ous=[ROOT]),
    ApprovalPolicy("workloads", [G("platform")], ous=[WORKLOADS], approvals_required=2),
    ApprovalPolicy("prod-ou", [G("prod-approvers")], ous=[PROD_OU]),
    ApprovalPolicy(
        "prod-ou-admin", [G("prod-admins")], ous=[PROD_OU], permission_sets=["AdministratorAccess"]
    ),
    ApprovalPolicy("prod-account", [U("cto")], accounts=[PROD]),
    ApprovalPolicy(
        "prod-account-admin",
        [U("ciso")],
        accounts=[PROD],
        permission_sets=["AdministratorAccess"],
        approvals_required=1,
    ),
]


@pytest.mark.parametrize(
    ("policies", "tgt", "winner"),
    [
        (APPROVAL, target(PROD, "AdministratorAccess"), "prod-account-admin"),  # account + set
        (APPROVAL, target(PROD, "ReadOnly"), "prod-account"),  # account
        (APPROVAL[:4], target(PROD, "AdministratorAccess"), "prod-ou-admin"),  # nearest OU + set
        (APPROVAL[:4], target(PROD, "ReadOnly"), "prod-ou"),  # nearest OU
        (APPROVAL, target(STAGING), "workloads"),  # parent OU
        (APPROVAL, target(SANDBOX), "org-wide"),  # the root
        (APPROVAL[1:], target(SANDBOX), None),  # nothing covers it: nobody can approve
    ],
)
def test_most_specific_approval_policy_wins(policies, tgt, winner) -> None:
    rule = approval_rule(tgt, policies)
    assert (rule.name if rule else None) == winner


names = st.sampled_from(["alice", "bob", "carl", "dave"])
groups = st.sampled_from(["developers", "oncall", "ops", "auditors"])
accounts = st.sampled_from([PROD, STAGING, SANDBOX])
ous = st.sampled_from([ROOT, WORKLOADS, PROD_OU, SANDBOX_OU, "ou-root-stag"])
psets = st.sampled_from(["ReadOnly", "AdministratorAccess", "Billing"])
principals = st.one_of(
    st.builds(Principal, st.just("user"), names), st.builds(Principal, st.just("group"), groups)
)
policies = st.lists(
    st.builds(
        EligibilityPolicy,
        name=st.text(min_size=1, max_size=5),
        principals=st.lists(principals, min_size=1, max_size=3),
        accounts=st.lists(accounts, max_size=2),
        ous=st.lists(ous, max_size=2),
        permission_sets=st.lists(psets, max_size=2),
        max_duration=st.timedeltas(min_value=timedelta(minutes=15), max_value=timedelta(hours=24)),
        approval_required=st.booleans(),
        ticket_required=st.booleans(),
    ),
    max_size=6,
)


def _allows(p: EligibilityPolicy, user: str, user_groups: list[str], tgt: Target) -> bool:
    named = any(
        (x.type == "user" and x.name == user) or (x.type == "group" and x.name in user_groups)
        for x in p.principals
    )
    covered = tgt.account_id in p.accounts or any(ou in tgt.ou_chain for ou in p.ous)
    return named and covered and (not p.permission_sets or tgt.permission_set in p.permission_sets)


@given(policies, names, st.lists(groups, max_size=2), accounts, psets)
def test_an_ineligible_request_is_never_accepted(pols, user, user_groups, account, pset) -> None:
    tgt = target(account, pset)
    got = eligibility(user, user_groups, tgt, pols, MAX)
    allowing = [p for p in pols if _allows(p, user, user_groups, tgt)]
    assert (got is not None) == bool(allowing)
    if got is not None:
        assert got.max_duration <= MAX
        assert got.max_duration <= max(p.max_duration for p in allowing)
        assert got.approval_required == any(p.approval_required for p in allowing)


@given(policies, names, st.lists(groups, max_size=2), accounts, psets)
def test_adding_a_policy_never_waives_an_approval_another_requires(
    pols, user, user_groups, account, pset
) -> None:
    tgt = target(account, pset)
    strict = EligibilityPolicy(
        "strict", [Principal("user", user)], accounts=[account], approval_required=True
    )
    got = eligibility(user, user_groups, tgt, [*pols, strict], MAX)
    assert got is not None
    assert got.approval_required
