"""moto's sso-admin made to provision, and to create assignments, as AWS does.

At AWS, creating an assignment provisions the permission set to the account, and
ListAccountsForProvisionedPermissionSet lists those accounts. moto 5 answers its own account for
every provisioned set and ignores ProvisionPermissionSet's target; and AWS keeps one assignment
per principal, account and permission set where moto appends a duplicate on a second create.
`install()` patches all three;
`python -m elevate.devstack.moto_fidelity -H … -p …` is moto_server with the patch.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.ssoadmin.models import SSOAdminBackend
from moto.ssoadmin.responses import SSOAdminResponse

_ATTR = "_elevate_provisioned"  # on the backend object, so /moto-api/reset forgets it too


def _provisioned(backend: Any, instance_arn: str, pset_arn: str) -> set[str]:
    pairs: dict[tuple[str, str], set[str]] = backend.__dict__.setdefault(_ATTR, {})
    return pairs.setdefault((instance_arn, pset_arn), set())


def install() -> None:
    if getattr(SSOAdminBackend, _ATTR, False):
        return
    create = SSOAdminBackend.create_account_assignment
    provision = SSOAdminResponse.provision_permission_set

    def create_and_provision(self: Any, **kw: Any) -> Any:
        _provisioned(self, kw["instance_arn"], kw["permission_set_arn"]).add(kw["target_id"])
        for held in self.account_assignments:  # AWS holds one, where moto would add a second
            if all(getattr(held, k) == v for k, v in kw.items()):
                return held.to_json(include_creation_date=True, include_request_id=True)
        return create(self, **kw)

    def provision_target(self: Any) -> str:
        target = self._get_param("TargetId")
        if target:
            arns = (self._get_param("InstanceArn"), self._get_param("PermissionSetArn"))
            _provisioned(self.ssoadmin_backend, *arns).add(target)
        return str(provision(self))

    def provisioned_accounts(self: Any, instance_arn: str, permission_set_arn: str) -> list[str]:
        return sorted(_provisioned(self, instance_arn, permission_set_arn))

    SSOAdminBackend.create_account_assignment = create_and_provision  # type: ignore[method-assign,assignment]
    SSOAdminResponse.provision_permission_set = provision_target  # type: ignore[method-assign]
    SSOAdminBackend.list_accounts_for_provisioned_permission_set = provisioned_accounts  # type: ignore[method-assign]
    setattr(SSOAdminBackend, _ATTR, True)


def main() -> None:
    from moto.server import main as moto_server

    install()
    sys.argv[0] = "moto_server"
    moto_server()


if __name__ == "__main__":
    main()
