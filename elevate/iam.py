"""The plain-IAM provider, for accounts without Organizations or IAM Identity Center.

A permission set is an IAM group (grant = AddUserToGroup) or a managed policy (grant =
AttachUserPolicy) in each account of a catalog file. The principal is the IAM user whose
UserName is the token's username, in the target account: its id is that name. A user missing
from one account fails the grant there with AWS's own message; a request is accepted when the
user exists in at least one account of the catalog.

IAM answers synchronously, so there is no operation to poll: start_* return None and the
activity's read-back (ListGroupsForUser / ListAttachedUserPolicies) confirms the change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import boto3
import botocore.session
import yaml
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from elevate.aws import client, error_code, watch_errors
from elevate.catalog import Account, PermissionSet
from elevate.contracts import Assignment
from elevate.provider import Operation
from elevate.settings import Settings

SCOPE = "iam"
GROUP_PREFIX = "group:"


class CatalogError(ValueError):
    """The catalog file is missing, malformed, or names what AWS does not have."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IamAccount(_Strict):
    id: Annotated[str, Field(pattern=r"^\d{12}$")]
    name: Annotated[str, Field(min_length=1)]
    role_arn: str | None = None


class IamPermissionSet(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str | None = None
    group: str | None = None
    policy_arn: Annotated[
        str | None, Field(pattern=r"^arn:aws[\w-]*:iam::(\d{12}|aws):policy/")
    ] = None

    @model_validator(mode="after")
    def _one_target(self) -> IamPermissionSet:
        if (self.group is None) == (self.policy_arn is None):
            raise ValueError("give exactly one of `group` or `policy_arn`")
        return self

    @property
    def key(self) -> str:
        """The provider's identifier: goes into Assignment.permission_set_arn."""
        return f"{GROUP_PREFIX}{self.group}" if self.group else str(self.policy_arn)


class IamCatalog(_Strict):
    accounts: Annotated[list[IamAccount], Field(min_length=1)]
    permission_sets: Annotated[list[IamPermissionSet], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> IamCatalog:
        for what, values in (
            ("account id", [a.id for a in self.accounts]),
            ("account name", [a.name for a in self.accounts]),
            ("permission set name", [p.name for p in self.permission_sets]),
        ):
            seen: set[str] = set()
            for value in values:
                if value in seen:
                    raise ValueError(f"duplicate {what} {value!r}")
                seen.add(value)
        return self


def load_catalog(path: Path) -> IamCatalog:
    """Read and check the file's shape; every problem is a CatalogError naming the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise CatalogError(f"IAM catalog {path}: cannot be read ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise CatalogError(f"IAM catalog {path}: not valid YAML: {err}") from err
    try:
        return IamCatalog.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in err.errors()
        )
        raise CatalogError(f"IAM catalog {path}: {problems}") from err


ClientFor = Callable[[IamAccount], Any]


class AssumedClients:
    """IAM clients per account: the process's own credentials, or the account's role assumed
    (botocore refreshes the temporary credentials before they expire)."""

    def __init__(self, region: str) -> None:
        self._region = region
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def __call__(self, account: IamAccount) -> Any:
        if account.role_arn is None:
            return client("iam", self._region)
        with self._lock:
            if account.id not in self._clients:
                self._clients[account.id] = self._assumed(account.role_arn)
            return self._clients[account.id]

    def _assumed(self, role_arn: str) -> Any:
        base = boto3.session.Session(region_name=self._region)
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=base.client,
            source_credentials=base.get_credentials(),
            role_arn=role_arn,
            extra_args={"RoleSessionName": "elevate"},
        )
        core = botocore.session.Session()
        core._credentials = DeferredRefreshableCredentials(  # type: ignore[attr-defined]
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
        made = boto3.session.Session(botocore_session=core).client("iam", region_name=self._region)
        watch_errors(made, "iam")
        return made


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
        return cls(load_catalog(settings.iam_catalog), AssumedClients(settings.aws_region))

    # --- catalog ---------------------------------------------------------------------------
    def scope(self) -> str:
        return SCOPE

    def accounts(self, refresh: bool = False) -> list[Account]:
        return sorted((Account(a.id, a.name, "/") for a in self._catalog.accounts), key=_name)

    def ous(self, refresh: bool = False) -> dict[str, str]:
        return {}

    def permission_sets(self, refresh: bool = False) -> list[PermissionSet]:
        sets = (PermissionSet(p.name, p.key, p.description) for p in self._catalog.permission_sets)
        return sorted(sets, key=_name)

    def find_account(self, account_id: str) -> Account | None:
        return next((a for a in self.accounts() if a.id == account_id), None)

    def find_permission_set(self, name_or_arn: str) -> PermissionSet | None:
        return next((p for p in self.permission_sets() if name_or_arn in (p.name, p.arn)), None)

    def resolve_principal(self, username: str) -> str | None:
        for account in self._catalog.accounts:
            try:
                self._clients(account).get_user(UserName=username)
            except ClientError as err:
                if error_code(err) == "NoSuchEntity":
                    continue
                raise
            return username
        return None

    def validate(self) -> None:
        """Every group and policy must exist in every account; raise naming each one missing."""
        missing = [
            f"{what} in account {account.name} ({account.id})"
            for account in self._catalog.accounts
            for what in self._missing(account)
        ]
        if missing:
            raise CatalogError(
                "the IAM catalog names what AWS does not have: " + ", ".join(missing)
            )

    def _missing(self, account: IamAccount) -> list[str]:
        iam, found = self._clients(account), []
        for p in self._catalog.permission_sets:
            try:
                if p.group:
                    iam.get_group(GroupName=p.group, MaxItems=1)
                else:
                    iam.get_policy(PolicyArn=p.policy_arn)
            except ClientError as err:
                if error_code(err) != "NoSuchEntity":
                    raise
                found.append(f"group {p.group}" if p.group else f"policy {p.policy_arn}")
        return found

    # --- assignments -----------------------------------------------------------------------
    def _target(self, a: Assignment) -> tuple[Any, IamPermissionSet]:
        account, pset = self._accounts.get(a.account_id), self._sets.get(a.permission_set_arn)
        if account is None or pset is None:
            raise CatalogError(f"{a.account_id}/{a.permission_set_arn} is not in the IAM catalog")
        return self._clients(account), pset

    def start_grant(self, a: Assignment) -> str | None:
        iam, pset = self._target(a)
        if pset.group:
            iam.add_user_to_group(GroupName=pset.group, UserName=a.principal_id)
        else:
            iam.attach_user_policy(PolicyArn=pset.policy_arn, UserName=a.principal_id)
        return None

    def start_revoke(self, a: Assignment) -> str | None:
        if not self.holds(a):
            return None  # never granted, already removed, or the user is gone
        iam, pset = self._target(a)
        try:
            if pset.group:
                iam.remove_user_from_group(GroupName=pset.group, UserName=a.principal_id)
            else:
                iam.detach_user_policy(PolicyArn=pset.policy_arn, UserName=a.principal_id)
        except ClientError as err:
            if error_code(err) != "NoSuchEntity":
                raise  # NoSuchEntity: removed meanwhile; the read-back confirms it
        return None

    def grant_status(self, scope: str, operation_id: str) -> Operation:
        return Operation("SUCCEEDED")

    def revoke_status(self, scope: str, operation_id: str) -> Operation:
        return Operation("SUCCEEDED")

    def holds(self, a: Assignment) -> bool:
        iam, pset = self._target(a)
        try:
            if pset.group:
                pages = iam.get_paginator("list_groups_for_user").paginate(UserName=a.principal_id)
                return any(g["GroupName"] == pset.group for p in pages for g in p["Groups"])
            pages = iam.get_paginator("list_attached_user_policies").paginate(
                UserName=a.principal_id
            )
            return any(
                x["PolicyArn"] == pset.policy_arn for p in pages for x in p["AttachedPolicies"]
            )
        except ClientError as err:
            if error_code(err) == "NoSuchEntity":
                return False  # no such user: it holds nothing
            raise

    def holders(self, account_id: str, pset: PermissionSet) -> list[str]:
        iam, entry = self._target(Assignment(SCOPE, account_id, pset.arn, ""))
        if entry.group:
            pages = iam.get_paginator("get_group").paginate(GroupName=entry.group)
            return [u["UserName"] for p in pages for u in p["Users"]]
        pages = iam.get_paginator("list_entities_for_policy").paginate(
            PolicyArn=entry.policy_arn, EntityFilter="User"
        )
        return [u["UserName"] for p in pages for u in p["PolicyUsers"]]


def _name(x: Account | PermissionSet) -> str:
    return x.name
