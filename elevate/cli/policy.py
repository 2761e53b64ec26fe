"""Policy as code: `elevate policy apply FILE.yaml [--dry-run]` and `elevate policy export`.

Talks to the REST API with an admin's token, so validation, authorization and the audit trail
are the API's. The file's shape:

    eligibility:
      <name>: {principals: [...], accounts: [...], ous: [...], permission_sets: [...], ...}
    approval:
      <name>: {accounts: [...], ous: [...], approvers: [...], approvals_required: 2}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from pydantic import ValidationError

from elevate.policy_schema import POLICY_KINDS

app = typer.Typer(help="Policies as code.", no_args_is_help=True)
UrlOpt = Annotated[str, typer.Option(envvar="ELEVATE_URL", help="the API's base URL")]
TokenOpt = Annotated[str, typer.Option(envvar="ELEVATE_TOKEN", help="an admin's bearer token")]
_META = ("name", "created_at", "updated_at")


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _fail(resp: httpx.Response) -> None:
    if resp.is_error:
        typer.echo(
            f"error: {resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text}",
            err=True,
        )
        raise typer.Exit(1)


def current(client: httpx.Client) -> dict[str, dict[str, dict[str, Any]]]:
    """The stored policies, as {kind: {name: body}}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in POLICY_KINDS:
        out[kind], cursor = {}, None
        while True:
            resp = client.get(
                f"/v1/policies/{kind}",
                params={"limit": 500, **({"cursor": cursor} if cursor else {})},
            )
            _fail(resp)
            page = resp.json()
            for item in page["items"]:
                out[kind][item["name"]] = {k: v for k, v in item.items() if k not in _META}
            if not (cursor := page["next_cursor"]):
                break
    return out


def desired(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The file's policies, normalized through the same models as the API (so PT240M == PT4H)."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise typer.BadParameter(f"cannot read {path}: {err}") from err
    if not isinstance(data, dict) or set(data) - set(POLICY_KINDS):
        raise typer.BadParameter(f"{path}: top-level keys must be among {', '.join(POLICY_KINDS)}")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, model in POLICY_KINDS.items():
        out[kind] = {}
        for name, body in (data.get(kind) or {}).items():
            try:
                out[kind][str(name)] = model.model_validate(body).model_dump(mode="json")
            except ValidationError as err:
                raise typer.BadParameter(f"{path}: {kind} policy {name!r}: {err}") from err
    return out


def diff(have: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    changes = [("+", n) for n in sorted(set(want) - set(have))]
    changes += [("~", n) for n in sorted(set(want) & set(have)) if want[n] != have[n]]
    changes += [("-", n) for n in sorted(set(have) - set(want))]
    return changes


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="policy YAML file")],
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the diff, change nothing")
    ] = False,
    allow_bootstrap: Annotated[
        bool,
        typer.Option(
            "--allow-bootstrap", help="may remove the last policy of a kind (bootstrap returns)"
        ),
    ] = False,
) -> None:
    """Make the stored policies equal to FILE; prints what changes."""
    want = desired(file)
    with _client(url, token) as client:
        have = current(client)
        changed = 0
        for kind in POLICY_KINDS:
            for sign, name in diff(have[kind], want[kind]):
                changed += 1
                typer.echo(f"{sign} {kind}/{name}")
                if dry_run:
                    continue
                if sign == "-":
                    params = {"allow_bootstrap": "true"} if allow_bootstrap else {}
                    _fail(client.delete(f"/v1/policies/{kind}/{name}", params=params))
                else:
                    _fail(client.put(f"/v1/policies/{kind}/{name}", json=want[kind][name]))
    typer.echo(
        "no changes" if not changed else f"{changed} change(s){' (dry run)' if dry_run else ''}"
    )


@app.command()
def export(url: UrlOpt = "http://127.0.0.1:8000", token: TokenOpt = "") -> None:
    """Write the stored policies as YAML to standard output."""
    with _client(url, token) as client:
        typer.echo(yaml.safe_dump(current(client), sort_keys=True), nl=False)
