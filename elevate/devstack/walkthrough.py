"""What `elevate dev` prints once the stack is up: tokens and a curl walkthrough."""

from __future__ import annotations

from pathlib import Path

from elevate.devstack.seed import USERS, DemoOrg
from elevate.settings import get_settings


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


def walkthrough(
    base: str, org: DemoOrg, ui_port: int, logs: Path, provider_env: dict[str, str]
) -> str:
    prod = org.accounts["prod"]
    env = " ".join(f"{k}={v}" for k, v in provider_env.items())
    return f"""
elevate is running.
  Web app      {base}/   (sign in as any demo user: {base}/dev/login)
  API          {base}   (OpenAPI docs: {base}/docs)
  Temporal UI  http://localhost:{ui_port}
  logs         {logs}/
  provider     {provider_env.get("ELEVATE_PROVIDER", "identity_center")}
  accounts     {", ".join(f"{n}={i}" for n, i in org.accounts.items())}
  permission sets: {", ".join(org.permission_sets)}

Tokens (valid 8 hours; mint more with `elevate token USER --group GROUP`):
  export ALICE={_token("alice@example.com")}
  export CAROL={_token("carol@example.com")}
  export DAVE={_token("dave@example.com")}

Walkthrough (alice requests, carol approves, the access ends after 15 minutes):
  curl -s -X POST {base}/v1/requests -H "Authorization: Bearer $ALICE" \\
       -H 'Content-Type: application/json' -H 'Idempotency-Key: walkthrough-1' \\
       -d '{{"account_id": "{prod}", "permission_set": "ReadOnly", "duration": "PT15M", "justification": "INC-42 hotfix", "ticket": "INC-42"}}' | tee /dev/stderr \\
       | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' > .elevate/last-id
  export ID=$(cat .elevate/last-id)
  curl -s {base}/v1/requests?awaiting=me -H "Authorization: Bearer $CAROL"
  curl -s -X POST {base}/v1/requests/$ID/approve -H "Authorization: Bearer $CAROL" \\
       -H 'Content-Type: application/json' -d '{{"comment": "ok"}}'
  curl -s {base}/v1/requests/$ID -H "Authorization: Bearer $ALICE"      # status: active, events
  {env} AWS_ENDPOINT_URL=http://127.0.0.1:{_moto_port()} elevate assignments {prod}   # what AWS holds
  curl -s -X POST {base}/v1/requests/$ID/revoke -H "Authorization: Bearer $ALICE"   # or wait

Or in the browser: open {base}/dev/login, sign in as alice@example.com, press "Request access"
on "New request"; in a private window sign in as carol@example.com, open "Approvals", approve.

Press Ctrl-C to stop everything this command started.
"""


def _moto_port() -> str:
    import os

    return os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5000").rsplit(":", 1)[-1]
