"""The IAM provider against moto: an entitlement is a group membership or an attached policy,
in the worker's own account or in one reached through AssumeRole."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws

from elevate.contracts import Assignment
from elevate.providers.aws import ErrorKind, classify, client, error_code
from elevate.providers.base import Operation, Provider
from elevate.providers.catalog import Account, PermissionSet
from elevate.providers.iam import (
    SCOPE,
    AssumedClients,
    ClientMaker,
    IamProvider,
    RoleCredentials,
    make_client,
)
from elevate.providers.iam_catalog import CatalogError, IamAccount, IamCatalog, IamPermissionSet
from elevate.settings import Settings

REGION = "us-east-1"
OWN = "123456789012"  # the account moto gives the test credentials
OTHER = "111111111111"
ROLE = f"arn:aws:iam::{OTHER}:role/elevate-worker"
GROUP = "group:elevate-readonly"
ADMIN = f"arn:aws:iam::{OWN}:policy/elevate-admin"
ALICE = "alice@example.com"
BOB = "bob.smith@example.com"
ALLOW_ALL = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'

MAIN = IamAccount(id=OWN, name="main")
STAGING = IamAccount(id=OTHER, name="staging", role_arn=ROLE)
READONLY = IamPermissionSet(name="ReadOnly", description="Read-only", group="elevate-readonly")
ADMIN_SET = IamPermissionSet(name="AdministratorAccess", description="Full", policy_arn=ADMIN)
SHOWN = {  # what the provider shows for them, by PermissionSet.arn
    GROUP: PermissionSet("ReadOnly", GROUP, "Read-only"),
    ADMIN: PermissionSet("AdministratorAccess", ADMIN, "Full"),
}
SETS = (READONLY, ADMIN_SET)
BOTH_KINDS = pytest.mark.parametrize("key", [GROUP, ADMIN], ids=["group", "policy"])


def catalog(*accounts: IamAccount, sets: tuple[IamPermissionSet, ...] = SETS) -> IamCatalog:
    return IamCatalog(accounts=list(accounts), permission_sets=list(sets))


def grant_of(key: str, user: str = ALICE, account: str = OWN) -> Assignment:
    return Assignment(SCOPE, account, key, user)


def at_aws(iam: Any, key: str, user: str) -> bool:
    """What IAM itself says, asked without the provider."""
    if key == GROUP:
        return user in [u["UserName"] for u in iam.get_group(GroupName="elevate-readonly")["Users"]]
    attached = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    return ADMIN in [p["PolicyArn"] for p in attached]


def recording() -> tuple[list[tuple[str, RoleCredentials | None]], ClientMaker]:
    """A client maker that notes (service, credentials) of each client it makes."""
    made: list[tuple[str, RoleCredentials | None]] = []

    def make(service: str, region: str, credentials: RoleCredentials | None) -> Any:
        made.append((service, credentials))
        return make_client(service, region, credentials)

    return made, make


@pytest.fixture
def aws() -> Iterator[None]:
    client.cache_clear()  # a cached client may belong to another test's moto
    with mock_aws():
        yield
    client.cache_clear()


@pytest.fixture
def own_iam(aws: None) -> Any:
    iam = client("iam", REGION)
    iam.create_group(GroupName="elevate-readonly")
    iam.create_policy(PolicyName="elevate-admin", PolicyDocument=ALLOW_ALL)
    iam.create_user(UserName=ALICE)
    iam.create_user(UserName=BOB)
    return iam


@pytest.fixture
def staging_iam(aws: None) -> Any:
    """Account OTHER, reached the way an operator would: with the role's credentials."""
    sts = boto3.client("sts", region_name=REGION)
    creds = sts.assume_role(RoleArn=ROLE, RoleSessionName="test")["Credentials"]
    iam = boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).client("iam", region_name=REGION)
    iam.create_group(GroupName="elevate-readonly")
    iam.create_user(UserName=ALICE)
    iam.create_user(UserName="dave@example.com")
    return iam


@pytest.fixture
def provider(own_iam: Any) -> Provider:
    return IamProvider(catalog(MAIN), AssumedClients(REGION))


def test_catalog_comes_from_the_file(provider: Provider) -> None:
    assert provider.kind == "iam"
    assert provider.scope() == "iam"
    assert provider.accounts() == [Account(OWN, "main", ou_path="/", ou_chain=())]
    assert provider.ous() == {}
    assert provider.permission_sets(refresh=True) == [SHOWN[ADMIN], SHOWN[GROUP]]
    assert provider.find_account(OWN) == Account(OWN, "main", "/")
    assert provider.find_account(OTHER) is None
    assert provider.find_permission_set("ReadOnly") == provider.find_permission_set(GROUP)
    assert provider.find_permission_set(ADMIN) == SHOWN[ADMIN]
    assert provider.find_permission_set("elevate-readonly") is None
    assert provider.grant_status(SCOPE, "any") == Operation("SUCCEEDED")  # nothing to poll
    assert provider.revoke_status(SCOPE, "any") == Operation("SUCCEEDED")


@BOTH_KINDS
def test_grant_is_held_and_visible_at_aws(provider: Provider, own_iam: Any, key: str) -> None:
    assert provider.start_grant(grant_of(key)) is None

    assert provider.holds(grant_of(key))
    assert at_aws(own_iam, key, ALICE)
    assert not provider.holds(grant_of(key, BOB))


@BOTH_KINDS
def test_revoke_takes_it_away(provider: Provider, own_iam: Any, key: str) -> None:
    provider.start_grant(grant_of(key))

    assert provider.start_revoke(grant_of(key)) is None

    assert not provider.holds(grant_of(key))
    assert not at_aws(own_iam, key, ALICE)


@BOTH_KINDS
def test_grant_twice_is_one_grant(provider: Provider, own_iam: Any, key: str) -> None:
    provider.start_grant(grant_of(key))
    provider.start_grant(grant_of(key))

    assert provider.holders(OWN, SHOWN[key]) == [ALICE]
    provider.start_revoke(grant_of(key))
    assert not at_aws(own_iam, key, ALICE)


@BOTH_KINDS
def test_revoke_twice_or_never_granted_is_done(provider: Provider, key: str) -> None:
    assert provider.start_revoke(grant_of(key, BOB)) is None  # never granted
    provider.start_grant(grant_of(key))
    provider.start_revoke(grant_of(key))

    assert provider.start_revoke(grant_of(key)) is None
    assert not provider.holds(grant_of(key))


@BOTH_KINDS
def test_revoke_for_a_deleted_user_is_done(provider: Provider, own_iam: Any, key: str) -> None:
    own_iam.delete_user(UserName=BOB)

    assert provider.start_revoke(grant_of(key, BOB)) is None
    assert not provider.holds(grant_of(key, BOB))


@BOTH_KINDS
def test_grant_to_a_missing_user_fails_permanently(provider: Provider, key: str) -> None:
    with pytest.raises(ClientError) as caught:
        provider.start_grant(grant_of(key, "carol@example.com"))

    assert error_code(caught.value) == "NoSuchEntity"
    assert classify(caught.value) is ErrorKind.PERMANENT
    assert "carol@example.com" in str(caught.value)


def test_holders_are_group_members_and_policy_users(provider: Provider, own_iam: Any) -> None:
    for key in (GROUP, ADMIN):
        provider.start_grant(grant_of(key, ALICE))
    provider.start_grant(grant_of(GROUP, BOB))
    own_iam.create_user(UserName="carol")
    own_iam.add_user_to_group(GroupName="elevate-readonly", UserName="carol")  # not via elevate

    assert sorted(provider.holders(OWN, SHOWN[GROUP])) == [ALICE, BOB, "carol"]
    assert provider.holders(OWN, SHOWN[ADMIN]) == [ALICE]


def test_an_account_or_set_not_in_the_catalog_is_refused(provider: Provider) -> None:
    with pytest.raises(LookupError, match="222222222222 / group:elevate-readonly"):
        provider.start_revoke(grant_of(GROUP, account="222222222222"))
    with pytest.raises(LookupError, match="group:elevate-ops"):
        provider.holds(grant_of("group:elevate-ops"))


def test_validate_names_each_missing_group_and_policy(own_iam: Any, staging_iam: Any) -> None:
    ops = IamPermissionSet(name="Ops", group="elevate-ops")
    gone = IamPermissionSet(name="Gone", policy_arn=f"arn:aws:iam::{OWN}:policy/elevate-gone")
    sets = (*SETS, ops, gone)
    provider = IamProvider(catalog(MAIN, STAGING, sets=sets), AssumedClients(REGION))

    with pytest.raises(CatalogError) as caught:
        provider.validate()

    problems = str(caught.value).split(": ", 1)[1].split("; ")
    assert problems == [
        f"no group elevate-ops in account main ({OWN})",
        f"no policy arn:aws:iam::{OWN}:policy/elevate-gone in account main ({OWN})",
        # A customer managed policy lives in one account: its ARN names no other.
        f"no policy {ADMIN} in account staging ({OTHER})",
        f"no group elevate-ops in account staging ({OTHER})",
        f"no policy arn:aws:iam::{OWN}:policy/elevate-gone in account staging ({OTHER})",
    ]


def test_validate_names_a_role_that_cannot_be_assumed(own_iam: Any) -> None:
    class Refusing:
        def assume_role(self, **_: str) -> None:
            error = {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}
            raise ClientError(error, "AssumeRole")  # type: ignore[arg-type]

    def make(service: str, region: str, credentials: RoleCredentials | None) -> Any:
        return Refusing() if service == "sts" else make_client(service, region, credentials)

    provider = IamProvider(catalog(MAIN, STAGING), AssumedClients(REGION, make))

    with pytest.raises(CatalogError, match=f"account staging \\({OTHER}\\): cannot assume {ROLE}"):
        provider.validate()


def test_role_account_is_worked_on_with_assumed_credentials(own_iam: Any, staging_iam: Any) -> None:
    made, make = recording()
    clients = AssumedClients(REGION, make)
    provider = IamProvider(catalog(MAIN, STAGING, sets=(READONLY,)), clients)

    provider.validate()  # the group exists in both accounts
    provider.start_grant(grant_of(GROUP, account=OTHER))

    assert at_aws(staging_iam, GROUP, ALICE)
    assert not at_aws(own_iam, GROUP, ALICE)
    assert provider.holds(grant_of(GROUP, account=OTHER))
    assert not provider.holds(grant_of(GROUP, account=OWN))
    assert provider.holders(OTHER, SHOWN[GROUP]) == [ALICE]
    assumed = [creds for service, creds in made if service == "iam" and creds is not None]
    assert len(assumed) == 1, "one AssumeRole, its client reused"
    assert assumed[0].access_key_id != "testing"
    assert ("sts", None) in made, "the role is assumed with the worker's own credentials"


def test_assumed_credentials_are_renewed_before_they_expire(aws: None) -> None:
    made, make = recording()
    later = timedelta()
    clients = AssumedClients(REGION, make, now=lambda: datetime.now(UTC) + later)

    first = clients(STAGING)
    later = timedelta(minutes=45)  # AssumeRole's credentials last an hour
    assert clients(STAGING) is first
    later = timedelta(minutes=55)
    second = clients(STAGING)

    assert second is not first
    keys = [creds.access_key_id for service, creds in made if service == "iam" and creds]
    assert len(keys) == 2
    assert keys[0] != keys[1]
    assert clients(MAIN) is client("iam", REGION), "own credentials: the process's client"


def test_resolve_principal_finds_iam_users_by_name(own_iam: Any, staging_iam: Any) -> None:
    provider = IamProvider(catalog(MAIN, STAGING, sets=(READONLY,)), AssumedClients(REGION))

    assert provider.resolve_principal(ALICE) == ALICE
    assert provider.resolve_principal(BOB) == BOB
    assert provider.resolve_principal("dave@example.com") == "dave@example.com"  # staging only
    assert provider.resolve_principal("carol@example.com") is None
    assert provider.resolve_principal("alice") is None


def test_from_settings_reads_the_catalog_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog(MAIN).model_dump(exclude_none=True)))

    provider = IamProvider.from_settings(Settings(provider="iam", iam_catalog=path))

    assert provider.accounts() == [Account(OWN, "main", "/")]
    with pytest.raises(CatalogError, match="ELEVATE_IAM_CATALOG"):
        IamProvider.from_settings(Settings(provider="iam", iam_catalog=None))
