"""The plain-IAM provider, for accounts without Organizations or IAM Identity Center.

A permission set of the catalog file (`elevate.providers.iam_catalog`) is an IAM group (grant =
AddUserToGroup) or a managed policy (grant = AttachUserPolicy) in each catalog account; its
`PermissionSet.arn` is "group:<name>" or the policy ARN. Accounts with a `role_arn` are reached
by assuming that role; the others with the worker's own credentials.

Principals. IAM users belong to one account, so the principal id is the user *name* (the
token's username claim), the same string in every account; it means the user of that name in
the target account. `resolve_principal` accepts a name that exists in at least one catalog
account. A grant on an account where the user does not exist fails with AWS's NoSuchEntity,
which the activities classify as permanent, so the request fails naming the missing user.

IAM answers synchronously: start_* return None (nothing to poll) and the activity's read-back
confirms. Grant calls are idempotent at AWS. Revoke calls answer NoSuchEntity alike for "not a
member / not attached", "no such user" and "no such group / policy" (only the message differs,
and it is not a contract); each means the entitlement is not held, which a read-back confirms
before the revoke counts as done. `holds` is False for a user that no longer exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from elevate.contracts import Assignment
from elevate.providers.aws import (
    CLIENT_CONFIG,
    ErrorKind,
    classify,
    client,
    error_code,
    error_message,
    watch_errors,
)
from elevate.providers.base import Operation
from elevate.providers.catalog import Account, PermissionSet
from elevate.providers.iam_catalog import (
    CatalogError,
    IamAccount,
    IamCatalog,
    IamPermissionSet,
    load_iam_catalog,
)
from elevate.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

SCOPE = "iam"
SESSION_NAME = "elevate"
# Assumed-role credentials are replaced this long before they expire (AssumeRole gives 1 h).
REFRESH_BEFORE = timedelta(minutes=10)


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)  # kept out of logs and test output
    session_token: str = field(repr=False)


# (service, region, credentials or None for the process's own) -> boto3 client
ClientMaker = Callable[[str, str, RoleCredentials | None], Any]


def make_client(service: str, region: str, credentials: RoleCredentials | None) -> Any:
    if credentials is None:
        return client(service, region)
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    )
    made = session.client(service, region_name=region, config=CLIENT_CONFIG)  # type: ignore[call-overload]
    watch_errors(made, service)
    return made


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AssumedClients:
    """The IAM client for a catalog account: the process's own, or one on credentials from
    AssumeRole, kept until shortly before they expire (building a client is expensive)."""

    def __init__(
        self, region: str, make: ClientMaker = make_client, now: Callable[[], datetime] = _utcnow
    ) -> None:
        self._region, self._make, self._now = region, make, now
        self._lock = threading.Lock()
        self._assumed: dict[str, tuple[IAMClient, datetime]] = {}

    def __call__(self, account: IamAccount) -> IAMClient:
        if account.role_arn is None:
            return self._make("iam", self._region, None)  # type: ignore[no-any-return]
        with self._lock:
            held = self._assumed.get(account.role_arn)
            if held is None or held[1] - self._now() < REFRESH_BEFORE:
                held = self._assumed[account.role_arn] = self._assume(account.role_arn)
            return held[0]

    def _assume(self, role_arn: str) -> tuple[IAMClient, datetime]:
        sts = self._make("sts", self._region, None)
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME)["Credentials"]
        role = RoleCredentials(
            creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
        )
        return self._make("iam", self._region, role), creds["Expiration"]


ClientFor = Callable[[IamAccount], "IAMClient"]


class IamProvider:
    kind = "iam"

    def __init__(self, catalog: IamCatalog, clients: ClientFor) -> None:
        self._catalog = catalog
        self._clients = clients
        self._accounts = {a.id: a for a in catalog.accounts}
        self._sets = {p.key: p for p in catalog.permission_sets}

    @classmethod
    def from_settings(cls, settings: Settings) -> IamProvider:
        if settings.iam_catalog is None:
            raise CatalogError("ELEVATE_PROVIDER=iam needs ELEVATE_IAM_CATALOG (a YAML file)")
        return cls(load_iam_catalog(settings.iam_catalog), AssumedClients(settings.aws_region))

    # --- catalog: the file, read once; `refresh` has nothing to reload ---------------------
    def scope(self) -> str:
        return SCOPE

    def accounts(self, refresh: bool = False) -> list[Account]:
        found = (Account(a.id, a.name, ou_path="/", ou_chain=()) for a in self._catalog.accounts)
        return sorted(found, key=lambda a: a.name)

    def ous(self, refresh: bool = False) -> dict[str, str]:
        return {}

    def permission_sets(self, refresh: bool = False) -> list[PermissionSet]:
        found = (PermissionSet(p.name, p.key, p.description) for p in self._catalog.permission_sets)
        return sorted(found, key=lambda p: p.name)

    def find_account(self, account_id: str) -> Account | None:
        return next((a for a in self.accounts() if a.id == account_id), None)

    def find_permission_set(self, name_or_arn: str) -> PermissionSet | None:
        return next((p for p in self.permission_sets() if name_or_arn in (p.name, p.arn)), None)

    def resolve_principal(self, username: str) -> str | None:
        """`username` when an IAM user of that name exists in some catalog account."""
        for account in self._catalog.accounts:
            try:
                self._clients(account).get_user(UserName=username)
            except ClientError as err:
                if error_code(err) != "NoSuchEntity":
                    raise
                continue
            return username
        return None

    def validate(self) -> None:
        """Every group and policy must exist in every account; raise naming each one missing."""
        problems = [p for account in self._catalog.accounts for p in self._problems(account)]
        if problems:
            raise CatalogError("IAM catalog does not match AWS: " + "; ".join(problems))

    def _problems(self, account: IamAccount) -> list[str]:
        where = f"account {account.name} ({account.id})"
        try:
            iam = self._clients(account)
        except ClientError as err:
            return [f"{where}: cannot assume {account.role_arn}: {error_message(err)}"]
        found = (_check(iam, p) for p in self._catalog.permission_sets)
        return [f"{problem} in {where}" for problem in found if problem]

    # --- assignments -----------------------------------------------------------------------
    def start_grant(self, a: Assignment, check: bool = True) -> str | None:
        # IAM's attach and add are idempotent and synchronous: nothing to read first.
        iam, pset = self._target(a.account_id, a.permission_set_arn)
        if pset.group:
            iam.add_user_to_group(GroupName=pset.group, UserName=a.principal_id)
        else:
            iam.attach_user_policy(PolicyArn=str(pset.policy_arn), UserName=a.principal_id)
        return None

    def start_revoke(self, a: Assignment, check: bool = True) -> str | None:
        iam, pset = self._target(a.account_id, a.permission_set_arn)
        try:
            if pset.group:
                iam.remove_user_from_group(GroupName=pset.group, UserName=a.principal_id)
            else:
                iam.detach_user_policy(PolicyArn=str(pset.policy_arn), UserName=a.principal_id)
        except ClientError as err:
            if error_code(err) != "NoSuchEntity" or self.holds(a):
                raise
        return None

    def grant_status(self, scope: str, operation_id: str) -> Operation:
        return Operation("SUCCEEDED")  # start_grant never returns an operation to poll

    def revoke_status(self, scope: str, operation_id: str) -> Operation:
        return Operation("SUCCEEDED")

    def holds(self, a: Assignment) -> bool:
        iam, pset = self._target(a.account_id, a.permission_set_arn)
        try:
            return _held(iam, pset, a.principal_id)
        except ClientError as err:
            if error_code(err) == "NoSuchEntity":
                return False  # the user is gone, and with it what it held
            raise

    def holders(self, account_id: str, pset: PermissionSet) -> list[str]:
        iam, entry = self._target(account_id, pset.arn)
        if entry.group:
            return _group_members(iam, entry.group)
        return _policy_users(iam, str(entry.policy_arn))

    def provisioned_accounts(self, pset: PermissionSet) -> list[str]:
        """Every account of the catalog: IAM has no provisioning to narrow the walk."""
        return [a.id for a in self.accounts()]

    def _target(self, account_id: str, key: str) -> tuple[IAMClient, IamPermissionSet]:
        # Only when the catalog changed under a running request; not an AWS error, so the
        # activity retries until the catalog names them again (a revoke must not give up).
        account, pset = self._accounts.get(account_id), self._sets.get(key)
        if account is None or pset is None:
            raise LookupError(f"account {account_id} / {key} is not in the IAM catalog")
        return self._clients(account), pset


def _held(iam: IAMClient, pset: IamPermissionSet, user: str) -> bool:
    if pset.group:
        groups = iam.get_paginator("list_groups_for_user").paginate(UserName=user)
        return any(g["GroupName"] == pset.group for page in groups for g in page["Groups"])
    policies = iam.get_paginator("list_attached_user_policies").paginate(UserName=user)
    return any(
        p.get("PolicyArn") == pset.policy_arn for page in policies for p in page["AttachedPolicies"]
    )


def _group_members(iam: IAMClient, group: str) -> list[str]:
    pages = iam.get_paginator("get_group").paginate(GroupName=group)
    return [u["UserName"] for page in pages for u in page["Users"]]


def _policy_users(iam: IAMClient, policy_arn: str) -> list[str]:
    pages = iam.get_paginator("list_entities_for_policy").paginate(
        PolicyArn=policy_arn, EntityFilter="User"
    )
    return [u["UserName"] for page in pages for u in page["PolicyUsers"] if "UserName" in u]


def _check(iam: IAMClient, pset: IamPermissionSet) -> str | None:
    """What is wrong with the group or policy in this account, or None."""
    what = f"group {pset.group}" if pset.group else f"policy {pset.policy_arn}"
    try:
        if pset.group:
            iam.get_group(GroupName=pset.group, MaxItems=1)
        else:
            iam.get_policy(PolicyArn=str(pset.policy_arn))
    except ClientError as err:
        if error_code(err) == "NoSuchEntity":
            return f"no {what}"
        if classify(err) is ErrorKind.PERMANENT:
            return f"cannot read {what} ({error_message(err)})"
        raise
    return None
