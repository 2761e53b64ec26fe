"""A demo organization at (emulated) AWS: what `elevate dev` and the tests start from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from elevate.providers.aws import client

USERS = {
    "alice@example.com": ["developers"],
    "bob@example.com": ["developers"],
    "carol@example.com": ["elevate-approvers"],
    "erin@example.com": ["elevate-approvers"],
    "dave@example.com": ["elevate-admins"],
    "audrey@example.com": ["elevate-auditors"],
}
# OU name -> accounts in it; "Workloads/Prod" nests Prod under Workloads.
ACCOUNTS = {
    "Workloads/Prod": ["prod"],
    "Workloads/Staging": ["staging"],
    "Sandbox": ["sandbox"],
}
PERMISSION_SETS = {
    "ReadOnly": "Read-only access to every service",
    "AdministratorAccess": "Full access, for incidents",
    "BreakGlass": "Emergency access managed outside elevate",
}


def write_dev_users(path: Path) -> Path:
    """The web app's dev sign-in list (ELEVATE_UI_DEV_USERS): these users and their groups."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(USERS, sort_keys=False))
    return path


@dataclass
class DemoOrg:
    instance_arn: str
    identity_store_id: str
    accounts: dict[str, str] = field(default_factory=dict)  # name -> id
    ous: dict[str, str] = field(default_factory=dict)  # path -> id
    permission_sets: dict[str, str] = field(default_factory=dict)  # name -> arn
    users: dict[str, str] = field(default_factory=dict)  # username -> user id


def seed_demo(region: str = "us-east-1") -> DemoOrg:
    """Create the demo organization; meant for an empty moto server."""
    sso, ids, orgs = (client(s, region) for s in ("sso-admin", "identitystore", "organizations"))
    inst = sso.list_instances()["Instances"][0]
    org = DemoOrg(inst["InstanceArn"], inst["IdentityStoreId"])
    _seed_accounts(orgs, org)
    for name, description in PERMISSION_SETS.items():
        ps = sso.create_permission_set(
            InstanceArn=org.instance_arn, Name=name, Description=description, SessionDuration="PT1H"
        )
        org.permission_sets[name] = ps["PermissionSet"]["PermissionSetArn"]
    _seed_people(ids, org)
    return org


def _seed_accounts(orgs: Any, org: DemoOrg) -> None:
    try:
        orgs.create_organization(FeatureSet="ALL")
    except orgs.exceptions.AlreadyInOrganizationException:
        pass
    root = orgs.list_roots()["Roots"][0]["Id"]
    for path, names in ACCOUNTS.items():
        parent = root
        for depth, part in enumerate(path.split("/")):
            key = "/".join(path.split("/")[: depth + 1])
            if key not in org.ous:
                ou = orgs.create_organizational_unit(ParentId=parent, Name=part)
                org.ous[key] = ou["OrganizationalUnit"]["Id"]
            parent = org.ous[key]
        for name in names:
            status = orgs.create_account(AccountName=name, Email=f"aws+{name}@example.com")
            account_id = status["CreateAccountStatus"]["AccountId"]
            orgs.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=parent)
            org.accounts[name] = account_id


def add_user(ids: Any, org: DemoOrg, username: str, given: str, family: str, display: str) -> str:
    """One identity-store user whose work email is the username; its id, also in org.users."""
    user = ids.create_user(
        IdentityStoreId=org.identity_store_id,
        UserName=username,
        DisplayName=display,
        Name={"GivenName": given, "FamilyName": family},
        Emails=[{"Value": username, "Type": "work", "Primary": True}],
    )
    org.users[username] = user["UserId"]
    return str(user["UserId"])


def add_users(org: DemoOrg, prefix: str, n: int, region: str = "us-east-1") -> dict[str, str]:
    """n more users `<prefix>00000@example.com`… (benchmarks): username -> user id."""
    ids = client("identitystore", region)
    names = [f"{prefix}{i:05d}@example.com" for i in range(n)]
    given = prefix.strip("-_.").title()
    return {
        name: add_user(ids, org, name, given, f"{i:05d}", f"{given} {i}")
        for i, name in enumerate(names)
    }


def _seed_people(ids: Any, org: DemoOrg) -> None:
    groups: dict[str, str] = {}
    for username, member_of in USERS.items():
        given = username.split("@")[0].title()
        user_id = add_user(ids, org, username, given, "Example", given)
        for group in member_of:
            if group not in groups:
                created = ids.create_group(IdentityStoreId=org.identity_store_id, DisplayName=group)
                groups[group] = created["GroupId"]
            ids.create_group_membership(
                IdentityStoreId=org.identity_store_id,
                GroupId=groups[group],
                MemberId={"UserId": user_id},
            )
