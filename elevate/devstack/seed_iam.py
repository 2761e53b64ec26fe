"""A demo for the IAM provider at (emulated) AWS: users, groups and a catalog file.

Three accounts as in the Identity Center demo: `prod` is the worker's own account, `staging`
and `sandbox` are reached by assuming a role (moto accepts any role in any account).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from elevate.devstack.seed import USERS, DemoOrg
from elevate.providers.iam import AssumedClients
from elevate.providers.iam_catalog import IamAccount, IamCatalog, IamPermissionSet

OWN_ACCOUNT = "123456789012"  # moto's default account: the worker's own credentials
ACCOUNTS = [
    IamAccount(id=OWN_ACCOUNT, name="prod"),
    IamAccount(
        id="111111111111", name="staging", role_arn="arn:aws:iam::111111111111:role/elevate-worker"
    ),
    IamAccount(
        id="222222222222", name="sandbox", role_arn="arn:aws:iam::222222222222:role/elevate-worker"
    ),
]
PERMISSION_SETS = [
    IamPermissionSet(name="ReadOnly", description="Read-only access", group="elevate-readonly"),
    IamPermissionSet(
        name="AdministratorAccess",
        description="Full access, for incidents",
        policy_arn="arn:aws:iam::aws:policy/AdministratorAccess",
    ),
    IamPermissionSet(
        name="BreakGlass",
        description="Emergency access managed outside elevate",
        group="elevate-breakglass",
    ),
]


def seed_iam_demo(catalog_path: Path, region: str = "us-east-1") -> DemoOrg:
    """Create users and groups in every account and write the catalog; for an empty moto
    started with MOTO_IAM_LOAD_MANAGED_POLICIES=true (so AWS managed policies exist)."""
    clients = AssumedClients(region)
    for account in ACCOUNTS:
        _seed_account(clients(account))
    catalog = IamCatalog(accounts=ACCOUNTS, permission_sets=PERMISSION_SETS)
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    catalog_path.write_text(yaml.safe_dump(catalog.model_dump(exclude_none=True), sort_keys=False))
    return DemoOrg(
        instance_arn="iam",
        identity_store_id="",
        accounts={a.name: a.id for a in ACCOUNTS},
        permission_sets={p.name: p.key for p in PERMISSION_SETS},
        users={u: u for u in USERS},
    )


def _seed_account(iam: Any) -> None:
    for p in PERMISSION_SETS:
        if p.group:
            iam.create_group(GroupName=p.group)
    for username in USERS:
        iam.create_user(UserName=username)
