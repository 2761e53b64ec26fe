"""What the organization offers: accounts, permission sets, identity-store users.

Reads only (the API validates requests with it); cached for `catalog_ttl_seconds` and refreshed
on a miss (at most once per TTL), so a newly created account or permission set is found
without a restart. Past its TTL a value is still answered while one background load renews it:
no request waits for a whole catalog load (hundreds of Organizations calls in a large
organization) except the very first and a miss.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from elevate.providers.aws import client
from elevate.settings import Settings

log = logging.getLogger("elevate.catalog")


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    ou_path: str
    ou_chain: tuple[str, ...] = ()  # parent OU first, the root id last


@dataclass(frozen=True)
class PermissionSet:
    name: str
    arn: str
    description: str | None


@dataclass(frozen=True)
class Instance:
    arn: str
    identity_store_id: str


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[float, Any]] = {}
        self._forced: dict[str, float] = {}  # when a miss last forced a reload, per key
        self._renewing: set[str] = set()  # keys a background load is renewing

    def _client(self, service: str) -> Any:
        return client(service, self._settings.aws_region)

    def _cached(self, key: str, load: Any, refresh: bool = False) -> Any:
        """The cached value; one load at a time per key, concurrent callers share its result.

        `refresh` (a miss) reloads at most once per TTL: a flood of unknown ids must not
        become a flood of Organizations calls (hundreds per load in a large organization).
        A value past its TTL is answered as it is while a background load renews it.
        """
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            now, ttl = time.monotonic(), self._settings.catalog_ttl_seconds
            hit = self._cache.get(key)
            forced = refresh and now - self._forced.get(key, -float("inf")) >= ttl
            if hit is not None and not forced:
                if now - hit[0] >= ttl:
                    self._renew(key, load, loading)
                return hit[1]
            self._forced[key] = now  # a first load is as fresh as a forced one
            value = load()
            self._cache[key] = (time.monotonic(), value)
            return value

    def _renew(self, key: str, load: Any, loading: threading.Lock) -> None:
        """Load `key` again in a thread of its own, once at a time (the caller holds `loading`)."""
        if key in self._renewing:
            return
        self._renewing.add(key)

        def renew() -> None:
            try:
                value = load()
                with loading:
                    self._cache[key] = (time.monotonic(), value)
            except Exception:  # noqa: BLE001 - the stale value stays; the next caller retries
                log.warning("could not renew the catalog's %s", key, exc_info=True)
            finally:
                with loading:
                    self._renewing.discard(key)

        threading.Thread(target=renew, name=f"catalog-{key}", daemon=True).start()

    def instance(self) -> Instance:
        return self._cached("instance", self._load_instance)  # type: ignore[no-any-return]

    def _load_instance(self) -> Instance:
        instances = self._client("sso-admin").list_instances()["Instances"]
        wanted = self._settings.sso_instance_arn
        for inst in instances:
            if wanted is None or inst["InstanceArn"] == wanted:
                return Instance(inst["InstanceArn"], inst["IdentityStoreId"])
        raise LookupError(f"IAM Identity Center instance {wanted or ''} not found".strip())

    def accounts(self, refresh: bool = False) -> list[Account]:
        return self._cached("accounts", self._load_accounts, refresh)  # type: ignore[no-any-return]

    def _load_accounts(self) -> list[Account]:
        """Walks the OU tree: a few calls per OU, where asking each account for its parent
        cost one call per account (a thousand accounts, a thousand calls per load)."""
        orgs = self._client("organizations")
        result = []
        for parent_id, path, chain in self._walk():
            pages = orgs.get_paginator("list_accounts_for_parent").paginate(ParentId=parent_id)
            for page in pages:
                for acct in page["Accounts"]:
                    if acct.get("Status", "ACTIVE") == "ACTIVE":
                        result.append(Account(acct["Id"], acct["Name"], path, chain))
        return sorted(result, key=lambda a: a.name)

    def _walk(self) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """Every root and OU: its id, its path, and the ids above and including it, nearest
        first and ending with the root's."""
        orgs = self._client("organizations")
        roots = orgs.list_roots()["Roots"]
        pending: list[tuple[str, str, tuple[str, ...]]] = [
            (r["Id"], "/", (r["Id"],)) for r in roots
        ]
        while pending:
            parent_id, path, chain = pending.pop()
            yield parent_id, path, chain
            pages = orgs.get_paginator("list_organizational_units_for_parent").paginate(
                ParentId=parent_id
            )
            for page in pages:
                for ou in page["OrganizationalUnits"]:
                    below = f"{path.rstrip('/')}/{ou['Name']}"
                    pending.append((ou["Id"], below, (ou["Id"], *chain)))

    def ous(self, refresh: bool = False) -> dict[str, str]:
        """Every OU id (and the root id) of the organization, with its path."""
        return self._cached("ous", self._load_ous, refresh)  # type: ignore[no-any-return]

    def _load_ous(self) -> dict[str, str]:
        return {parent_id: path for parent_id, path, _ in self._walk()}

    def permission_sets(self, refresh: bool = False) -> list[PermissionSet]:
        return self._cached("permission_sets", self._load_permission_sets, refresh)  # type: ignore[no-any-return]

    def _load_permission_sets(self) -> list[PermissionSet]:
        sso = self._client("sso-admin")
        arn = self.instance().arn
        result = []
        for page in sso.get_paginator("list_permission_sets").paginate(InstanceArn=arn):
            for ps_arn in page["PermissionSets"]:
                ps = sso.describe_permission_set(InstanceArn=arn, PermissionSetArn=ps_arn)
                ps = ps["PermissionSet"]
                result.append(PermissionSet(ps["Name"], ps_arn, ps.get("Description")))
        return sorted(result, key=lambda p: p.name)

    def find_account(self, account_id: str) -> Account | None:
        for refresh in (False, True):
            for acct in self.accounts(refresh=refresh):
                if acct.id == account_id:
                    return acct
        return None

    def find_permission_set(self, name_or_arn: str) -> PermissionSet | None:
        for refresh in (False, True):
            for ps in self.permission_sets(refresh=refresh):
                if name_or_arn in (ps.name, ps.arn):
                    return ps
        return None

    def user_id(self, username: str) -> str | None:
        """The identity-store user whose UserName is `username`, or None; cached like the
        catalog (a user added to Identity Center is known within `catalog_ttl_seconds`)."""
        return self._cached(f"user-id:{username}", lambda: self._load_user_id(username))  # type: ignore[no-any-return]

    def _load_user_id(self, username: str) -> str | None:
        ids = self._client("identitystore")
        try:
            found = ids.get_user_id(
                IdentityStoreId=self.instance().identity_store_id,
                AlternateIdentifier={
                    "UniqueAttribute": {"AttributePath": "UserName", "AttributeValue": username}
                },
            )
        except ids.exceptions.ResourceNotFoundException:
            return None
        return str(found["UserId"])
