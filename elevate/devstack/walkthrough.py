"""What `elevate dev` leaves a person: the env file `.elevate/env` and the walkthrough it prints."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from elevate.devstack.seed import USERS, DemoOrg
from elevate.settings import STATE_DIR, get_settings

ENV_FILE = STATE_DIR / "env"
LOAD_ENV = f"set -a; . {ENV_FILE}; set +a"

# The README's "Walkthrough" shows exactly these lines; tests/integration/test_walkthrough.py
# runs them from a fresh shell against a stack.
COMMANDS = f"""\
{LOAD_ENV}   # $ELEVATE_URL, $ALICE, $CAROL…, $PROD…, and the emulated AWS
BODY='{{"account_id": "'$PROD'", "permission_set": "ReadOnly", "duration": "PT15M",
       "justification": "INC-42 hotfix"}}'
curl -s -X POST "$ELEVATE_URL/v1/requests" -H "Authorization: Bearer $ALICE" \\
     -H 'Content-Type: application/json' -d "$BODY" | tee .elevate/request.json; echo
ID=$(python3 -c 'import json; print(json.load(open(".elevate/request.json"))["id"])')
curl -s "$ELEVATE_URL/v1/requests?awaiting=me" -H "Authorization: Bearer $CAROL"; echo
curl -s -X POST "$ELEVATE_URL/v1/requests/$ID/approve" -H "Authorization: Bearer $CAROL"; echo
until curl -s "$ELEVATE_URL/v1/requests/$ID" -H "Authorization: Bearer $ALICE" \\
      | grep -q '"status":"active"'; do sleep 1; done       # the grant takes a moment
curl -s "$ELEVATE_URL/v1/requests/$ID" -H "Authorization: Bearer $ALICE"; echo  # and its events
.venv/bin/elevate assignments $PROD                                  # what AWS holds now
curl -s -X POST "$ELEVATE_URL/v1/requests/$ID/revoke" -H "Authorization: Bearer $ALICE"; echo
"""


def _token(user: str) -> str:
    from elevate.devstack.keys import mint_token

    s = get_settings()
    return mint_token(
        user,
        USERS[user],
        issuer=s.auth_issuer,
        audience=s.auth_audience,
        username_claim=s.auth_username_claim,
        groups_claim=s.auth_groups_claim,
    )


def dev_tokens() -> dict[str, str]:
    """A token for every demo user, signed with the dev key (valid 8 hours)."""
    return {user: _token(user) for user in USERS}


def _name(word: str) -> str:
    return re.sub(r"\W", "_", word).upper()


def dev_env(
    base: str,
    aws: Mapping[str, str],
    accounts: Mapping[str, str],
    tokens: Mapping[str, str],
    provider_env: Mapping[str, str],
) -> dict[str, str]:
    """What a shell needs for the walkthrough: the API's URL, the emulated AWS's endpoint and
    credentials, the provider, each account's id ($PROD) and each user's token ($ALICE)."""
    return {
        "ELEVATE_URL": base,
        **aws,
        "AWS_REGION": aws.get("AWS_DEFAULT_REGION", "us-east-1"),
        **provider_env,
        **{_name(name): account_id for name, account_id in accounts.items()},
        **{_name(user.split("@")[0]): token for user, token in tokens.items()},
    }


def write_env(path: Path, values: Mapping[str, str]) -> None:
    lines = [f"# written by `elevate dev`; load it into a shell with: {LOAD_ENV}"]
    lines += [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # it holds tokens


def walkthrough(
    base: str,
    org: DemoOrg,
    ui_port: int,
    logs: Path,
    provider_env: Mapping[str, str],
    tokens: Mapping[str, str],
) -> str:
    steps = "".join(f"  {line}\n" for line in COMMANDS.splitlines())
    exports = "".join(
        f"  export {_name(user.split('@')[0])}={tokens[user]}\n"
        for user in ("alice@example.com", "carol@example.com", "dave@example.com")
    )
    return f"""
elevate is running.
  Web app      {base}/   (sign in as any demo user: {base}/dev/login)
  API          {base}   (OpenAPI docs: {base}/docs)
  Temporal UI  http://localhost:{ui_port}
  logs         {logs}/
  provider     {provider_env.get("ELEVATE_PROVIDER", "identity_center")}
  accounts     {", ".join(f"{n}={i}" for n, i in org.accounts.items())}
  permission sets: {", ".join(org.permission_sets)}

In another shell, from this directory, load the tokens, account ids and emulated-AWS
credentials ({ENV_FILE}) — the one command the walkthrough's AWS step needs:
  {LOAD_ENV}
or paste tokens (valid 8 hours; mint more with `elevate token USER --group GROUP`):
{exports}
Walkthrough (alice requests, carol approves, alice ends it; else it ends after 15 minutes):
{steps}

Or in the browser: open {base}/dev/login, sign in as alice@example.com, press "Request access"
on "New request"; in a private window sign in as carol@example.com, open "Approvals", approve.

Press Ctrl-C to stop everything this command started.
"""
