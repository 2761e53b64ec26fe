"""The IAM provider's catalog file (ELEVATE_IAM_CATALOG): accounts and permission sets.

    accounts:
      - id: "123456789012"        # quoted: YAML reads some unquoted 12-digit ids as octal
        name: main
        role_arn: arn:aws:iam::123456789012:role/elevate-worker   # optional
    permission_sets:
      - name: ReadOnly
        description: Read-only access
        group: elevate-readonly      # grant = AddUserToGroup
      - name: AdministratorAccess
        policy_arn: arn:aws:iam::aws:policy/AdministratorAccess   # grant = AttachUserPolicy

The file is read once at start-up; this module checks its shape only, and
`IamProvider.validate()` checks that the groups and policies exist at AWS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

GROUP_PREFIX = "group:"


class CatalogError(ValueError):
    """The catalog file is missing or malformed, or names what AWS does not have."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IamAccount(_Entry):
    id: str
    name: Annotated[str, Field(min_length=1)]
    # Assumed for every call in this account; without it the worker's own credentials are used.
    role_arn: Annotated[str | None, Field(pattern=r"^arn:aws[\w-]*:iam::\d{12}:role/.+$")] = None

    @field_validator("id", mode="before")
    @classmethod
    def _twelve_digits(cls, value: object) -> object:
        if not (isinstance(value, str) and len(value) == 12 and value.isdigit()):
            raise ValueError(f'must be 12 digits in quotes, like id: "123456789012"; got {value!r}')
        return value

    @model_validator(mode="after")
    def _role_in_account(self) -> IamAccount:
        if self.role_arn and self.role_arn.split(":")[4] != self.id:
            raise ValueError(f"role_arn {self.role_arn} is not in account {self.id}")
        return self


class IamPermissionSet(_Entry):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str | None = None
    group: Annotated[str | None, Field(pattern=r"^[\w+=,.@-]{1,128}$")] = None
    policy_arn: Annotated[
        str | None, Field(pattern=r"^arn:aws[\w-]*:iam::(\d{12}|aws):policy/.+$")
    ] = None

    @model_validator(mode="after")
    def _one_target(self) -> IamPermissionSet:
        if (self.group is None) == (self.policy_arn is None):
            raise ValueError("give exactly one of `group` or `policy_arn`")
        return self

    @property
    def key(self) -> str:
        """The provider's stable id of this entitlement (`PermissionSet.arn`)."""
        return f"{GROUP_PREFIX}{self.group}" if self.group else str(self.policy_arn)


class IamCatalog(_Entry):
    accounts: Annotated[list[IamAccount], Field(min_length=1)]
    permission_sets: Annotated[list[IamPermissionSet], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> IamCatalog:
        problems = [
            *_duplicates("account id", "accounts", [a.id for a in self.accounts]),
            *_duplicates("account name", "accounts", [a.name for a in self.accounts]),
            *_duplicates("name", "permission_sets", [p.name for p in self.permission_sets]),
            *_duplicates(
                "group or policy", "permission_sets", [p.key for p in self.permission_sets]
            ),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _duplicates(what: str, where: str, values: list[str]) -> list[str]:
    """`duplicate account id '1…' in accounts[0], accounts[2]` for each repeated value."""
    at: dict[str, list[str]] = {}
    for i, value in enumerate(values):
        at.setdefault(value, []).append(f"{where}[{i}]")
    return [f"duplicate {what} {v!r} in {', '.join(ix)}" for v, ix in at.items() if len(ix) > 1]


def load_iam_catalog(path: Path) -> IamCatalog:
    """Read and check the file; every problem is one CatalogError naming the file and entry."""
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        shape = "empty" if raw is None else f"a {type(raw).__name__}"
        raise CatalogError(
            f"IAM catalog {path}: expected a mapping with `accounts` and `permission_sets`, "
            f"the file is {shape}"
        )
    try:
        return IamCatalog.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(_describe(e, raw) for e in err.errors())
        raise CatalogError(f"IAM catalog {path}: {problems}") from err


def _read_yaml(path: Path) -> Any:
    try:
        with path.open() as stream:  # YAML's error marks then name the file and line
            return yaml.safe_load(stream)
    except OSError as err:
        raise CatalogError(f"IAM catalog {path}: cannot be read ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise CatalogError(f"IAM catalog {path}: not valid YAML: {err}") from err


def _describe(error: Any, raw: dict[str, Any]) -> str:
    """One pydantic error as `accounts[1] (name 'main'): unknown key 'rolearn'`."""
    loc, msg = list(error["loc"]), str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg, loc = f"unknown key {loc[-1]!r}", loc[:-1]
    elif error["type"] == "missing":
        msg, loc = f"missing key {loc[-1]!r}", loc[:-1]
    return f"{_where(loc, raw)}: {msg}" if loc else msg


def _where(loc: list[Any], raw: dict[str, Any]) -> str:
    where, entry = str(loc[0]), None
    if len(loc) > 1 and isinstance(loc[1], int):
        where += f"[{loc[1]}]"
        items = raw.get(loc[0])
        entry = items[loc[1]] if isinstance(items, list) else None
        loc = loc[1:]
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        where += f" (name {entry['name']!r})"
    return ".".join([where, *(str(part) for part in loc[1:])])
