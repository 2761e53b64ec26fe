"""Commands for people over the REST API: `elevate request …`, `elevate approve`, `elevate reject`.

Tables for people, the API's JSON with --json, exit codes (EXIT_CODES) scripts can branch on.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from elevate.contracts import Status

REFUSED, UNAVAILABLE = 1, 3  # 2 is click's usage error
EXIT_CODES = (
    "Exit codes: 0 done; 1 the API refused (its error code and detail on stderr); "
    "2 usage error; 3 the API could not be reached or failed (5xx, 503)."
)
TOKEN_HINT = "hint: set ELEVATE_TOKEN (or pass --token) to a valid bearer token"
DEFAULT_URL = "http://localhost:8000"
_out = Console(highlight=False)  # cells are Text, so "[…]" in a justification is not markup

app = typer.Typer(
    help="Ask for access, follow it, end it.", epilog=EXIT_CODES, no_args_is_help=True
)
UrlOpt = Annotated[str, typer.Option(envvar="ELEVATE_URL", help="the API's base URL")]
TokenOpt = Annotated[
    str, typer.Option(envvar="ELEVATE_TOKEN", help="bearer token", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the API's JSON, for scripts")]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="the request's id", show_default=False)]
CommentOpt = Annotated[str | None, typer.Option(help="a comment for the audit trail")]


class Api(httpx.Client):
    """The REST API as a command sees it: a failure prints why and exits with its code."""

    def __init__(self, url: str, token: str) -> None:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            super().__init__(base_url=url, headers=auth, timeout=30)
        except httpx.InvalidURL as err:
            raise typer.BadParameter(f"{url!r}: {err}", param_hint="--url") from err

    def call(self, method: str, path: str, *, retries: int = 0, **kw: Any) -> Any:
        """The JSON answer; an outage is retried `retries` times (only for idempotent calls)."""
        failure = ""
        for attempt in range(retries + 1):
            time.sleep(attempt)
            try:
                resp = self.request(method, path, **kw)
            except httpx.TransportError as err:
                failure = f"cannot reach {self.base_url}: {err or type(err).__name__}"
                continue
            if resp.status_code < 500:
                return _answer(resp)
            failure = _message(resp)
        _die(UNAVAILABLE, failure)

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 500}
        while "cursor" not in params or params["cursor"]:
            page = self.call("GET", path, params=params)
            yield from page["items"]
            params["cursor"] = page["next_cursor"]


def _answer(resp: httpx.Response) -> Any:
    if resp.is_error:
        hint = f"\n{TOKEN_HINT}" if resp.status_code == 401 else ""
        _die(REFUSED, _message(resp) + hint)
    try:
        return resp.json()
    except ValueError:
        _die(UNAVAILABLE, f"{resp.url} did not answer JSON; is --url the elevate API?")


def _message(resp: httpx.Response) -> str:
    """`<error>: <detail>` exactly as the API sent them, or the status line if it did not."""
    try:
        body = resp.json()
        return f"{body['error']}: {body['detail']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status_code} {resp.reason_phrase}: {resp.text.strip()}"


def _die(code: int, message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _path(rid: str, action: str = "") -> str:
    return f"/v1/requests/{quote(rid, safe='')}" + (f"/{action}" if action else "")


def _account_id(api: Api, account: str) -> str:
    """The id as given, or the id of the one account with that name."""
    if account.isdigit() and len(account) == 12:
        return account
    ids = [a["id"] for a in api.pages("/v1/accounts") if a["name"] == account]
    if len(ids) != 1:
        found = "more than one account" if ids else "no account"
        raise typer.BadParameter(f"{found} named {account!r}", param_hint="--account")
    return str(ids[0])


@app.command(epilog=EXIT_CODES)
def create(
    account: Annotated[str, typer.Option(help="account id, or its name", show_default=False)],
    permission_set: Annotated[str, typer.Option(help="its name (or ARN)", show_default=False)],
    duration: Annotated[str, typer.Option(help="ISO 8601: PT30M, PT2H", show_default=False)],
    justification: Annotated[str, typer.Option(help="why you need it", show_default=False)],
    ticket: Annotated[str | None, typer.Option(help="e.g. INC-42")] = None,
    start_at: Annotated[str | None, typer.Option(help="RFC 3339; default: on approval")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="same key: same request")] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = "",
) -> None:
    """Ask for a permission set on an account for a while."""
    with Api(url, token) as api:
        body = {
            "account_id": _account_id(api, account),
            "permission_set": permission_set,
            "duration": duration,
            "justification": justification,
            "ticket": ticket,
            "start_at": start_at,
        }
        key = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        created = api.call("POST", "/v1/requests", json=body, headers=key, retries=2)
    _emit(created, as_json, _print_fields)


@app.command("list", epilog=EXIT_CODES)
def list_(
    status: Annotated[Status | None, typer.Option(help="only this status")] = None,
    requester: Annotated[str | None, typer.Option(help="only this requester's")] = None,
    account: Annotated[str | None, typer.Option(help="only this account (id or name)")] = None,
    awaiting_me: Annotated[bool, typer.Option("--awaiting-me", help="ones you may decide")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="at most this many")] = 50,
    cursor: Annotated[str | None, typer.Option(help="the next page, as printed")] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = "",
) -> None:
    """Your requests (every request for admins and auditors), newest first."""
    with Api(url, token) as api:
        params: dict[str, Any] = {"status": status, "requester": requester, "limit": limit}
        params |= {"awaiting": "me" if awaiting_me else None, "cursor": cursor}
        params["account_id"] = _account_id(api, account) if account else None
        page = api.call("GET", "/v1/requests", params={k: v for k, v in params.items() if v})
    _emit(page, as_json, _print_list)


@app.command(epilog=EXIT_CODES)
def show(
    rid: IdArg, as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = ""
) -> None:
    """One request: its fields and its audit timeline."""
    with Api(url, token) as api:
        _emit(api.call("GET", _path(rid)), as_json, _print_detail)


def _decision(action: str, doc: str) -> Callable[..., None]:
    """A command that POSTs `{"comment": …}` to the request's `action`."""

    def command(
        rid: IdArg, comment: CommentOpt = None, url: UrlOpt = DEFAULT_URL, token: TokenOpt = ""
    ) -> None:
        _act(url, token, _path(rid, action), {"comment": comment})

    command.__name__, command.__doc__ = action, doc
    return command


approve = _decision("approve", "Approve a request (or its pending extension).")
reject = _decision("reject", "Reject a request (or its pending extension).")
app.command(epilog=EXIT_CODES)(_decision("cancel", "Withdraw your request before it is active."))
app.command(epilog=EXIT_CODES)(
    _decision("revoke", "End access early (requester, an approver of the request, an admin).")
)


@app.command(epilog=EXIT_CODES)
def extend(
    rid: IdArg,
    duration: Annotated[str, typer.Option(help="how much more, ISO 8601", show_default=False)],
    justification: Annotated[str, typer.Option(help="why", show_default=False)],
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = "",
) -> None:
    """Ask for more time on an active request; approved like a new one."""
    _act(url, token, _path(rid, "extend"), {"duration": duration, "justification": justification})


def _act(url: str, token: str, path: str, body: dict[str, Any]) -> None:
    with Api(url, token) as api:
        r = api.call("POST", path, json=body)
    typer.echo(f"{r['id']}: {r['status']}{_progress(r)}")


def _progress(r: dict[str, Any]) -> str:
    if ext := r.get("extension"):
        got, need = len(ext.get("approvals", [])), ext.get("approvals_required")
        return f"; extension waiting for approval ({got} of {need})"
    if r["status"] == Status.PENDING_APPROVAL:
        return f" ({len(r['approvals'])} of {r['approvals_required']} approvals)"
    running = r["status"] in {Status.SCHEDULED, Status.GRANTING, Status.ACTIVE}
    return f", until {_when(r['end_at'])}" if running and r["end_at"] else ""


def _emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        render(data)


def _table(*columns: str) -> Table:
    table = Table(*columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in table.columns[:-1]:
        column.no_wrap = True  # ids and timestamps stay whole; the last column wraps
    return table


def _print(table: Table) -> None:
    """To a terminal at its width; to a pipe or file unwrapped, so grep and cut see whole rows."""
    if not _out.is_terminal:
        _out.width = _out.measure(table, options=_out.options.update_width(10_000)).maximum
    _out.print(table)


def _print_list(page: dict[str, Any]) -> None:
    table = _table("ID", "STATUS", "REQUESTER", "ACCOUNT", "PERMISSION SET", "DURATION", "END")
    for r in page["items"]:
        cells = (r["id"], r["status"], r["requester"], r["account_name"], r["permission_set"])
        table.add_row(*map(Text, cells), Text(r["duration"]), Text(_when(r["end_at"])))
    _print(table)
    if page["next_cursor"]:
        typer.echo(f"more: --cursor {page['next_cursor']}", err=True)


_FIELDS = """id status requester account permission_set duration start_at end_at justification
ticket approvals decided_by granted_at revoked_at revoked_by failure extension created_at updated_at
workflow_id""".split()


def _print_fields(r: dict[str, Any]) -> None:
    shown = {
        **r,
        "account": f"{r['account_name']} ({r['account_id']})",
        "approvals": _approvals(r),
    }
    table = _table("FIELD", "VALUE")
    for name in _FIELDS:
        value = _when(shown.get(name)) if name.endswith("_at") else _plain(shown.get(name))
        table.add_row(Text(name), Text(value))
    _print(table)


def _print_detail(r: dict[str, Any]) -> None:
    _print_fields(r)
    _out.line()
    table = _table("SEQ", "AT", "ACTOR", "ACTION", "DETAILS")
    for e in r["events"]:
        cells = (str(e["seq"]), _when(e["at"]), e["actor"], e["action"], _plain(e["details"]))
        table.add_row(*map(Text, cells))
    _print(table)


def _approvals(r: dict[str, Any]) -> str:
    who = [a["approver"] + (f" ({a['comment']})" if a["comment"] else "") for a in r["approvals"]]
    return f"{len(who)} of {r['approvals_required']}" + (": " + ", ".join(who) if who else "")


def _plain(value: Any) -> str:
    if value is None or value == {}:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))


def _when(value: str | None) -> str:
    """An API timestamp in UTC to the second: `2026-11-28 09:00:00Z`."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
