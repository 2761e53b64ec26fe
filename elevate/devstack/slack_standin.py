"""A local stand-in for the Slack Web API, to try Slack approvals without a workspace.

It answers the methods elevate calls under `/api/` (`users.lookupByEmail`, `users.info`,
`chat.postMessage`, `chat.update`, `chat.postEphemeral`, `views.open`, `auth.test`) for a fixed
set of users, records every call (`GET /calls`, JSON) and shows the messages (`GET /`) with
buttons that send elevate the interaction Slack would send, signed with the signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

TEAM = {"id": "T0ELEVATE", "domain": "elevate-dev"}


def user_id(email: str) -> str:
    """A stable Slack user id per email."""
    return "U" + hashlib.sha256(email.encode()).hexdigest()[:10].upper()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack signs a request with: v0=HMAC-SHA256(secret, "v0:<ts>:<body>")."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class Call:
    method: str
    args: dict[str, Any]


@dataclass
class SlackStandIn:
    users: dict[str, str]  # Slack user id -> email
    signing_secret: str | None = None
    interactions_url: str | None = None
    url: str = ""  # the Web API base, as ELEVATE_SLACK_API_URL
    failing: bool = False  # a Slack outage: every call answers 503
    refused: int = 0  # calls answered 503 while failing
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0

    # --- the Web API -------------------------------------------------------------------

    def answer(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        with self._lock:
            self.calls.append(Call(method, args))
            if not token:
                return {"ok": False, "error": "not_authed"}
            handler = getattr(self, "_" + method.replace(".", "_"), None)
            if handler is None:
                return {"ok": False, "error": "unknown_method"}
            result: dict[str, Any] = handler(args)
            return result

    def _user(self, uid: str) -> dict[str, Any]:
        email = self.users[uid]
        return {"id": uid, "name": email.split("@")[0], "profile": {"email": email}}

    def _users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        for uid, email in self.users.items():
            if email == args.get("email"):
                return {"ok": True, "user": self._user(uid)}
        return {"ok": False, "error": "users_not_found"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = args.get("user", "")
        if uid not in self.users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": self._user(uid)}

    def _next_ts(self) -> str:
        self._seq += 1
        return f"{int(time.time())}.{self._seq:06d}"

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        channel = str(args.get("channel", ""))
        if channel.startswith("U"):  # a user id: the bot's direct message with them
            channel = "D" + channel[1:]
        ts = self._next_ts()
        self.messages[(channel, ts)] = {"text": args.get("text"), "blocks": args.get("blocks")}
        return {"ok": True, "channel": channel, "ts": ts, "message": self.messages[(channel, ts)]}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        self.messages[key] = {"text": args.get("text"), "blocks": args.get("blocks")}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"ok": True, "message_ts": self._next_ts()}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = f"V{len(self.views) + 1:08d}"
        self.views[view_id] = dict(args.get("view") or {}, id=view_id)
        return {"ok": True, "view": self.views[view_id]}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team": TEAM["domain"], "team_id": TEAM["id"], "user_id": "UBOT"}

    # --- what tests and people look at --------------------------------------------------

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c.args for c in self.calls if c.method == method]

    def add_user(self, email: str) -> str:
        with self._lock:
            self.users[user_id(email)] = email
        return user_id(email)

    def remove_user(self, email: str) -> None:
        with self._lock:
            self.users.pop(user_id(email), None)

    def dm_channel(self, email: str) -> str:
        return "D" + user_id(email)[1:]

    # --- interactions, as Slack sends them ----------------------------------------------

    def press(self, email: str, action_id: str, channel: str, ts: str) -> httpx.Response:
        """A click on a message's button by the Slack user with this email."""
        return self.deliver(self.press_payload(email, action_id, channel, ts))

    def press_payload(
        self, email: str, action_id: str, channel: str, ts: str, value: str | None = None
    ) -> dict[str, Any]:
        """The block_actions payload of a click; `value` stands in for the button's when the
        message no longer shows it (a click on a stale copy)."""
        message = self.messages.get((channel, ts), {})
        action = _button(message, action_id)
        if value is not None:
            action["value"] = value
        return {
            "type": "block_actions",
            "user": {"id": user_id(email), "username": email.split("@")[0], "team_id": TEAM["id"]},
            "team": TEAM,
            "trigger_id": f"{time.time():.0f}.{self._seq}.trigger",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel},
            "channel": {"id": channel, "name": "directmessage"},
            "message": {"ts": ts, **message},
            "actions": [{**action, "block_id": "elevate_decision", "action_ts": str(time.time())}],
        }

    def submit(self, email: str, view_id: str, comment: str) -> httpx.Response:
        """A modal's submission (the comment field filled in) by the user with this email."""
        view = self.views[view_id]
        values = {"comment": {"comment": {"type": "plain_text_input", "value": comment}}}
        payload = {
            "type": "view_submission",
            "user": {"id": user_id(email), "username": email.split("@")[0], "team_id": TEAM["id"]},
            "team": TEAM,
            "view": {**view, "state": {"values": values}},
        }
        return self.deliver(payload)

    def deliver(self, payload: dict[str, Any], **headers: str) -> httpx.Response:
        if not (self.interactions_url and self.signing_secret):
            raise RuntimeError("the stand-in needs interactions_url and signing_secret")
        body = urlencode({"payload": json.dumps(payload)}).encode()
        sent = {
            "Content-Type": "application/x-www-form-urlencoded",
            **sign(self.signing_secret, body),
            **headers,
        }
        return httpx.post(self.interactions_url, content=body, headers=sent, timeout=10)


def _button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    for block in message.get("blocks") or []:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return dict(element)
    return {"type": "button", "action_id": action_id, "value": ""}


# --- the HTTP server ---------------------------------------------------------------------


def _handler(standin: SlackStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = urlsplit(self.path)
            if path.path.startswith("/api/"):
                self._api(path.path[5:], dict(parse_qsl(path.query)))
            elif path.path == "/calls":
                with standin._lock:
                    calls = [{"method": c.method, "args": c.args} for c in standin.calls]
                self._send(200, "application/json", json.dumps(calls).encode())
            elif path.path == "/":
                self._send(200, "text/html; charset=utf-8", _page(standin).encode())
            else:
                self._send(404, "text/plain", b"not found")

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = urlsplit(self.path).path
            if path == "/press":
                form = dict(parse_qsl(body.decode()))
                standin.press(form["user"], form["action"], form["channel"], form["ts"])
                self.send_response(303)
                self.send_header("Location", "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not path.startswith("/api/"):
                self._send(404, "text/plain", b"not found")
                return
            kind = self.headers.get("Content-Type", "")
            args = json.loads(body or b"{}") if "json" in kind else dict(parse_qsl(body.decode()))
            self._api(path[5:], args)

        def _api(self, method: str, args: dict[str, Any]) -> None:
            if standin.failing:
                standin.refused += 1
                self._send(503, "text/plain", b"slack is down")
                return
            token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            answer = standin.answer(method, args, token or None)
            self._send(200, "application/json", json.dumps(answer).encode())

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _texts(message: dict[str, Any]) -> list[str]:
    """The message's words as Slack would show them, mrkdwn left as it is."""
    lines: list[str] = []
    for block in message.get("blocks") or [{"text": {"text": message.get("text", "")}}]:
        if text := (block.get("text") or {}).get("text"):
            lines.append(text)
        lines.extend(f.get("text", "").replace("\n", ": ", 1) for f in block.get("fields", []))
    return lines


def _page(standin: SlackStandIn) -> str:
    """Every message as its approver sees it, with buttons that click as that approver."""
    with standin._lock:
        messages = list(standin.messages.items())
        ephemerals = [c.args for c in standin.calls if c.method == "chat.postEphemeral"]
    rows = []
    for (channel, ts), message in reversed(messages):
        owner = standin.users.get("U" + channel[1:], "") if channel.startswith("D") else ""
        choices = "".join(
            f"<option{' selected' if e == owner else ''}>{html.escape(e)}</option>"
            for e in sorted(standin.users.values())
        )
        buttons = "".join(
            f'<button name="action" value="{a}">{label}</button>'
            for a, label in (("elevate_approve", "Approve"), ("elevate_reject", "Reject"))
            if _button(message, a).get("value")
        )
        form = (
            f'<form method="post" action="/press"><input type="hidden" name="channel" '
            f'value="{channel}"><input type="hidden" name="ts" value="{ts}">'
            f'<label>as <select name="user">{choices}</select></label> {buttons}</form>'
            if buttons
            else ""
        )
        text = html.escape("\n".join(_texts(message)))
        rows.append(f"<section><h2>{channel} · {ts}</h2><pre>{text}</pre>{form}</section>")
    told = "".join(
        f"<li>to {html.escape(standin.users.get(str(e.get('user')), str(e.get('user'))))}: "
        f"{html.escape(str(e.get('text')))}</li>"
        for e in ephemerals
    )
    return (
        "<!doctype html><title>Slack stand-in</title><h1>Slack stand-in</h1>"
        f"<h2>Told to one person only</h2><ul>{told}</ul>{''.join(rows)}"
    )


@contextmanager
def serving(
    emails: Iterable[str],
    *,
    signing_secret: str | None = None,
    interactions_url: str | None = None,
    port: int = 0,
) -> Iterator[SlackStandIn]:
    """The stand-in on 127.0.0.1 (`port` 0: a free one) while the block runs."""
    standin = SlackStandIn({user_id(e): e for e in emails}, signing_secret, interactions_url)
    server = start(standin, port)
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()


def start(standin: SlackStandIn, port: int = 0) -> ThreadingHTTPServer:
    """Serve in a daemon thread; `standin.url` becomes the Web API base."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(standin))
    server.daemon_threads = True
    standin.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def for_dev(api_base: str, port: int = 0) -> dict[str, str]:
    """Start the stand-in for `elevate dev --slack`, knowing the demo users; the environment
    that points the API and the worker at it. Its page's buttons click into `api_base`."""
    from elevate.devstack.seed import USERS

    secret = secrets.token_hex(16)  # a fresh signing secret per run, shared with the API
    standin = SlackStandIn(
        {user_id(e): e for e in USERS}, secret, f"{api_base}/v1/slack/interactions"
    )
    start(standin, port)
    return {
        "ELEVATE_SLACK_BOT_TOKEN": "xoxb-elevate-dev-standin",
        "ELEVATE_SLACK_SIGNING_SECRET": secret,
        "ELEVATE_SLACK_API_URL": standin.url,
    }
