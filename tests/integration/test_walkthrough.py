"""The README's walkthrough, run as it stands from a fresh shell against the real stack."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from elevate.devstack.seed import USERS
from elevate.devstack.walkthrough import COMMANDS, dev_env, write_env
from tests.stack import Stack

pytestmark = pytest.mark.integration

README = Path(__file__).parents[2] / "README.md"
AWS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


def readme_walkthrough() -> str:
    """The fenced block of the README's "Walkthrough" section."""
    section = README.read_text().split("\n## Walkthrough\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found, "the Walkthrough section has no ```sh block"
    return found.group(1)


def test_the_readme_shows_what_elevate_dev_prints() -> None:
    assert readme_walkthrough() == COMMANDS


def test_the_readme_walkthrough_runs_verbatim(stack: Stack, tmp_path: Path) -> None:
    """In a directory laid out like a checkout after `make dev`: its .elevate/env (written as
    `elevate dev` writes it, for this stack) and .venv; nothing else in the environment."""
    (tmp_path / ".elevate").mkdir()
    tokens = {user: stack.token(user) for user in USERS}
    aws = {k: stack.env[k] for k in AWS}
    write_env(
        tmp_path / ".elevate" / "env", dev_env(stack.base, aws, stack.org.accounts, tokens, {})
    )
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    fresh = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    done = subprocess.run(
        ["bash", "-e", "-c", readme_walkthrough()],
        cwd=tmp_path, env=fresh, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip

    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    out = done.stdout.splitlines()
    created, revoked = json.loads(out[0]), json.loads(out[-1])
    assert (created["status"], created["account_id"]) == (
        "pending_approval",
        stack.org.accounts["prod"],
    )
    assert created["id"] in out[1]  # carol sees it awaiting her
    assert json.loads(out[3])["status"] == "active"
    assert f"ReadOnly\tUSER\t{stack.org.users['alice@example.com']}" in out
    assert revoked["id"] == created["id"]
    assert revoked["status"] in ("revoking", "revoked")
