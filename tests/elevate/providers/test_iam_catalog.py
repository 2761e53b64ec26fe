"""The IAM catalog file: what a good one gives, and what a bad one says is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from elevate.providers.iam_catalog import CatalogError, IamCatalog, load_iam_catalog

GOOD = """\
accounts:
  - id: "123456789012"
    name: main
  - id: "111111111111"
    name: staging
    role_arn: arn:aws:iam::111111111111:role/elevate-worker
permission_sets:
  - name: ReadOnly
    description: Read-only access
    group: elevate-readonly
  - name: AdministratorAccess
    description: Full access
    policy_arn: arn:aws:iam::123456789012:policy/elevate-admin
"""

ACCOUNT = '  - id: "123456789012"\n    name: main\n'
READONLY = "  - name: ReadOnly\n    group: elevate-readonly\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "iam-catalog.yaml"
    path.write_text(text)
    return path


def error_for(path: Path) -> str:
    with pytest.raises(CatalogError) as caught:
        load_iam_catalog(path)
    assert str(path) in str(caught.value), "the message names the file"
    return str(caught.value)


def test_good_file_gives_accounts_and_permission_sets(tmp_path: Path) -> None:
    catalog = load_iam_catalog(write(tmp_path, GOOD))

    assert isinstance(catalog, IamCatalog)
    assert [(a.id, a.name, a.role_arn) for a in catalog.accounts] == [
        ("123456789012", "main", None),
        ("111111111111", "staging", "arn:aws:iam::111111111111:role/elevate-worker"),
    ]
    assert [(p.name, p.description, p.key) for p in catalog.permission_sets] == [
        ("ReadOnly", "Read-only access", "group:elevate-readonly"),
        (
            "AdministratorAccess",
            "Full access",
            "arn:aws:iam::123456789012:policy/elevate-admin",
        ),
    ]


def test_aws_managed_policy_is_accepted(tmp_path: Path) -> None:
    text = f"accounts:\n{ACCOUNT}permission_sets:\n  - name: Admin\n"
    text += "    policy_arn: arn:aws:iam::aws:policy/AdministratorAccess\n"

    catalog = load_iam_catalog(write(tmp_path, text))

    assert catalog.permission_sets[0].key == "arn:aws:iam::aws:policy/AdministratorAccess"


def test_missing_file(tmp_path: Path) -> None:
    message = error_for(tmp_path / "nowhere.yaml")

    assert "cannot be read" in message
    assert "No such file" in message


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    message = error_for(write(tmp_path, "accounts: [\n  - id: 1\npermission_sets: x\n"))

    assert "not valid YAML" in message
    assert "line " in message


@pytest.mark.parametrize(
    ("text", "shape"),
    [("", "the file is empty"), ("- a\n- b\n", "the file is a list")],
)
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str, shape: str) -> None:
    message = error_for(write(tmp_path, text))

    assert "expected a mapping with `accounts` and `permission_sets`" in message
    assert shape in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f"accounts:\n{ACCOUNT}    rolearn: x\npermission_sets:\n{READONLY}",
            "accounts[0] (name 'main'): unknown key 'rolearn'",
            id="unknown key in an account",
        ),
        pytest.param(
            f"accounts:\n{ACCOUNT}permission_sets:\n{READONLY}    grup: x\n",
            "permission_sets[0] (name 'ReadOnly'): unknown key 'grup'",
            id="unknown key in a permission set",
        ),
        pytest.param(
            f"accounts:\n{ACCOUNT}permission_sets:\n{READONLY}settings: {{}}\n",
            "unknown key 'settings'",
            id="unknown top-level key",
        ),
        pytest.param(
            f"accounts:\n{ACCOUNT}",
            "missing key 'permission_sets'",
            id="missing section",
        ),
        pytest.param(
            f"accounts:\n{ACCOUNT}permission_sets:\n  - group: elevate-readonly\n",
            "permission_sets[0]: missing key 'name'",
            id="permission set without a name",
        ),
        pytest.param(
            f"accounts: []\npermission_sets:\n{READONLY}",
            "accounts: List should have at least 1 item",
            id="no accounts",
        ),
    ],
)
def test_wrong_shape_names_the_entry_and_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_for(write(tmp_path, text))


def test_both_group_and_policy(tmp_path: Path) -> None:
    both = "    policy_arn: arn:aws:iam::aws:policy/ReadOnlyAccess\n"
    message = error_for(write(tmp_path, f"accounts:\n{ACCOUNT}permission_sets:\n{READONLY}{both}"))

    assert "permission_sets[0] (name 'ReadOnly'): give exactly one of `group` or `policy_arn`" in (
        message
    )


def test_neither_group_nor_policy(tmp_path: Path) -> None:
    text = f"accounts:\n{ACCOUNT}permission_sets:\n  - name: Empty\n    description: nothing\n"

    message = error_for(write(tmp_path, text))

    assert "permission_sets[0] (name 'Empty'): give exactly one of `group` or `policy_arn`" in (
        message
    )


@pytest.mark.parametrize(
    ("account_id", "shown"),
    [
        pytest.param('"12345"', "got '12345'", id="too short"),
        pytest.param('"12345678901a"', "got '12345678901a'", id="not digits"),
        pytest.param("123456789012", "got 123456789012", id="unquoted: YAML makes it a number"),
    ],
)
def test_bad_account_id(tmp_path: Path, account_id: str, shown: str) -> None:
    text = f"accounts:\n  - id: {account_id}\n    name: main\npermission_sets:\n{READONLY}"

    message = error_for(write(tmp_path, text))

    assert "accounts[0] (name 'main').id: must be 12 digits in quotes" in message
    assert shown in message


def test_role_in_another_account(tmp_path: Path) -> None:
    role = "    role_arn: arn:aws:iam::999999999999:role/elevate-worker\n"
    message = error_for(write(tmp_path, f"accounts:\n{ACCOUNT}{role}permission_sets:\n{READONLY}"))

    assert "role_arn arn:aws:iam::999999999999:role/elevate-worker is not in account 1234" in (
        message
    )


def test_bad_policy_arn(tmp_path: Path) -> None:
    text = f"accounts:\n{ACCOUNT}permission_sets:\n  - name: Admin\n    policy_arn: elevate-admin\n"

    message = error_for(write(tmp_path, text))

    assert "permission_sets[0] (name 'Admin').policy_arn: String should match pattern" in message


def test_duplicate_account_id(tmp_path: Path) -> None:
    again = '  - id: "123456789012"\n    name: other\n'
    message = error_for(write(tmp_path, f"accounts:\n{ACCOUNT}{again}permission_sets:\n{READONLY}"))

    assert "duplicate account id '123456789012' in accounts[0], accounts[1]" in message
    assert "account name" not in message


def test_duplicate_account_name(tmp_path: Path) -> None:
    again = '  - id: "111111111111"\n    name: main\n'
    message = error_for(write(tmp_path, f"accounts:\n{ACCOUNT}{again}permission_sets:\n{READONLY}"))

    assert "duplicate account name 'main' in accounts[0], accounts[1]" in message


def test_duplicate_permission_set_name(tmp_path: Path) -> None:
    again = "  - name: ReadOnly\n    group: elevate-viewers\n"
    message = error_for(write(tmp_path, f"accounts:\n{ACCOUNT}permission_sets:\n{READONLY}{again}"))

    assert "duplicate name 'ReadOnly' in permission_sets[0], permission_sets[1]" in message


def test_two_permission_sets_for_one_group(tmp_path: Path) -> None:
    again = "  - name: Viewer\n    group: elevate-readonly\n"
    message = error_for(write(tmp_path, f"accounts:\n{ACCOUNT}permission_sets:\n{READONLY}{again}"))

    assert (
        "duplicate group or policy 'group:elevate-readonly' in permission_sets[0], "
        "permission_sets[1]"
    ) in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = 'accounts:\n  - id: "1"\n    name: main\npermission_sets:\n  - name: X\n    grup: g\n'

    message = error_for(write(tmp_path, text))

    assert "accounts[0] (name 'main').id" in message
    assert "unknown key 'grup'" in message
