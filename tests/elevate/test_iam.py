"""The IAM catalog file: what a mistake in it looks like to the operator who wrote it."""

from __future__ import annotations

from pathlib import Path

import pytest

from elevate.iam import CatalogError, load_catalog

GOOD = """
accounts:
  - id: "123456789012"
    name: main
  - id: "210987654321"
    name: other
    role_arn: arn:aws:iam::210987654321:role/elevate-worker
permission_sets:
  - name: ReadOnly
    description: Read-only access
    group: elevate-readonly
  - name: AdministratorAccess
    policy_arn: arn:aws:iam::aws:policy/AdministratorAccess
"""
BOTH = "group: g\n    policy_arn: arn:aws:iam::aws:policy/X"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def test_a_good_file_loads(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD))
    assert [a.name for a in catalog.accounts] == ["main", "other"]
    assert catalog.accounts[1].role_arn == "arn:aws:iam::210987654321:role/elevate-worker"
    assert [p.key for p in catalog.permission_sets] == [
        "group:elevate-readonly",
        "arn:aws:iam::aws:policy/AdministratorAccess",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accounts: [\n  - id: 1", "not valid YAML"),
        ("- just a list", "file: Input should be a valid dictionary"),
        (GOOD.replace("    name: main", "    name: main\n    region: eu-west-1"), "region"),
        (GOOD.replace("group: elevate-readonly", "grup: elevate-readonly"), "grup"),
        (GOOD.replace("group: elevate-readonly", BOTH), "exactly one of `group` or `policy_arn`"),
        (GOOD.replace("    group: elevate-readonly\n", ""), "exactly one of `group`"),
        (GOOD.replace('"210987654321"', '"123456789012"'), "duplicate account id '123456789012'"),
        (GOOD.replace("name: other", "name: main"), "duplicate account name 'main'"),
        (
            GOOD.replace("name: AdministratorAccess", "name: ReadOnly"),
            "duplicate permission set name 'ReadOnly'",
        ),
        (GOOD.replace('"123456789012"', '"12345"'), "accounts.0.id"),
        (GOOD.replace("arn:aws:iam::aws:policy/", "policy/"), "permission_sets.1.policy_arn"),
        ("accounts: []\npermission_sets: []", "accounts: List should have at least 1 item"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"missing\.yaml: cannot be read"):
        load_catalog(tmp_path / "missing.yaml")
