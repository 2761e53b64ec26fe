"""Slack approvals against the real stack, with a local stand-in of the Slack Web API.

The API and the worker run in their own processes and talk to the stand-in over HTTP; clicks
reach /v1/slack/interactions form-encoded and signed as Slack signs them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from elevate.devstack.slack_standin import SlackStandIn, user_id
from tests.slackapp import SIGNING_SECRET, standin
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL, DAVE, ERIN = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.com",
    "erin@example.com",
)
APPROVE, REJECT = "elevate_approve", "elevate_reject"


@pytest.fixture(scope="module")
def slack(stack: Stack) -> SlackStandIn:
    s = standin()
    s.interactions_url = f"{stack.base}/v1/slack/interactions"
    return s


_asked: list[str] = []
_calls_before = [0]  # the stand-in's calls made before the running test


@pytest.fixture(autouse=True)
def _access_goes(stack: Stack, slack: SlackStandIn) -> Iterator[None]:
    """What these tests asked for ends with them: the stack's other tests see no leftovers."""
    _calls_before[0] = len(slack.calls)
    yield
    with stack.client(DAVE) as admin:
        while _asked:
            rid = _asked.pop()
            status = admin.get(f"/v1/requests/{rid}").json()["status"]
            if status in ("pending_approval", "scheduled", "granting"):
                admin.post(f"/v1/requests/{rid}/cancel", json={"comment": "test over"})
            elif status == "active":
                admin.post(f"/v1/requests/{rid}/revoke", json={"comment": "test over"})


def ask(stack: Stack, account: str = "sandbox", user: str = ALICE) -> str:
    body = {
        "account_id": stack.org.accounts[account],
        "permission_set": "ReadOnly",
        "duration": "PT2H",
        "justification": "INC-77 look at the logs",
        "ticket": "INC-77",
    }
    with stack.client(user) as c:
        resp = c.post("/v1/requests", json=body)
    assert resp.status_code == 201, resp.text
    _asked.append(resp.json()["id"])
    return str(resp.json()["id"])


def request_of(stack: Stack, rid: str) -> dict[str, Any]:
    with stack.client(DAVE) as c:
        return c.get(f"/v1/requests/{rid}").json()  # type: ignore[no-any-return]


def messages(slack: SlackStandIn, rid: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The request's messages as Slack shows them now: channel -> (ts, message)."""
    return {
        channel: (ts, m)
        for (channel, ts), m in list(slack.messages.items())
        if f"/requests/{rid}" in json.dumps(m)
    }


def posted_to(slack: SlackStandIn, rid: str, n: int) -> dict[str, tuple[str, dict[str, Any]]]:
    return wait_for(lambda: (found := messages(slack, rid)) and len(found) == n and found, 20)


def shown(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def fields(message: dict[str, Any]) -> dict[str, str]:
    """The message's facts, `*Name*\nvalue` each."""
    found = [
        f["text"] for b in message["blocks"] if b["type"] == "section" for f in b.get("fields", [])
    ]
    return dict(text.removeprefix("*").split("*\n", 1) for text in found)


def approvals_shown(posted: tuple[str, dict[str, Any]]) -> str:
    return fields(posted[1])["Approvals"]


def buttons(message: dict[str, Any]) -> dict[str, str]:
    return {
        e["action_id"]: e["value"]
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }


def told(slack: SlackStandIn, email: str) -> list[str]:
    """What this test's clicks told `email` alone."""
    return [
        str(c.args["text"])
        for c in slack.calls[_calls_before[0] :]
        if c.method == "chat.postEphemeral" and c.args["user"] == user_id(email)
    ]


def press(slack: SlackStandIn, rid: str, who: str, action: str, dm_of: str) -> httpx.Response:
    """`who` clicks `action` on the message `dm_of` received."""
    channel = slack.dm_channel(dm_of)
    ts, _ = messages(slack, rid)[channel]
    started = time.monotonic()
    resp = slack.deliver(slack.press_payload(who, action, channel, ts, value=rid))
    assert time.monotonic() - started < 3, "Slack gives up after 3 s"
    assert resp.status_code == 200, resp.text
    return resp


@pytest.fixture
def two_approvers(stack: Stack) -> Iterator[str]:
    """An approval policy for the sandbox account that wants two of elevate-approvers."""
    policy = {
        "accounts": [stack.org.accounts["sandbox"]],
        "ous": [],
        "permission_sets": [],
        "approvers": [{"type": "group", "name": "elevate-approvers"}],
        "approvals_required": 2,
    }
    with stack.client(DAVE) as c:
        assert c.put("/v1/policies/approval/slack-two", json=policy).status_code in (200, 201)
    try:
        yield "sandbox"
    finally:
        with stack.client(DAVE) as c:  # the stack's other tests expect bootstrap approvals
            gone = c.delete("/v1/policies/approval/slack-two", params={"allow_bootstrap": "true"})
            assert gone.status_code in (200, 204), gone.text


def test_a_pending_request_reaches_each_approver_with_both_buttons(stack, slack) -> None:
    rid = ask(stack)
    found = posted_to(slack, rid, 3)  # bootstrap: elevate-approvers and the admins
    assert set(found) == {slack.dm_channel(u) for u in (CAROL, ERIN, DAVE)}
    for _, message in found.values():
        assert buttons(message) == {APPROVE: rid, REJECT: rid}
        text = shown(message)
        for fact in (ALICE, "ReadOnly", "sandbox", "2 h"):
            assert fact in text
        assert fields(message) == {
            "Justification": "INC-77 look at the logs",
            "Ticket": "INC-77",
            "Approvals": "0 of 1",
            "Status": "pending_approval",
        }
        assert f"{stack.env['ELEVATE_PUBLIC_URL']}/requests/{rid}" in text
    looked_up = {a["email"] for a in slack.calls_of("users.lookupByEmail")}
    assert {CAROL, ERIN, DAVE} <= looked_up
    assert ALICE not in looked_up  # nobody decides their own request


def test_an_approvers_click_approves_and_updates_every_message(stack, slack) -> None:
    rid = ask(stack)
    posted_to(slack, rid, 3)
    press(slack, rid, CAROL, APPROVE, dm_of=CAROL)
    wait_for(lambda: request_of(stack, rid)["status"] == "active", 20)
    assert [a["approver"] for a in request_of(stack, rid)["approvals"]] == [CAROL]

    def all_updated() -> bool:
        shows = [(shown(m), fields(m)) for _, m in messages(slack, rid).values()]
        return all(f"Approved by {CAROL}" in t and f["Status"] == "active" for t, f in shows)

    wait_for(all_updated, 20)
    for _, message in messages(slack, rid).values():
        assert buttons(message) == {}  # decided: nothing left to click
        assert fields(message)["Approvals"] == "1 of 1"
    assert told(slack, CAROL) == []


def test_the_clickers_slack_email_is_canonical(stack, slack) -> None:
    shouting = "Carol@Example.COM"  # Slack keeps the email as the person typed it
    slack.add_user(shouting)
    try:
        rid = ask(stack)
        channel = slack.dm_channel(CAROL)
        ts, _ = posted_to(slack, rid, 3)[channel]
        assert slack.deliver(slack.press_payload(shouting, APPROVE, channel, ts)).status_code == 200
        wait_for(lambda: request_of(stack, rid)["approvals"], 20)
    finally:
        slack.remove_user(shouting)
    assert [a["approver"] for a in request_of(stack, rid)["approvals"]] == [CAROL]


def test_refusals_are_told_to_the_clicker_alone_and_change_nothing(
    stack, slack, two_approvers
) -> None:
    rid = ask(stack, two_approvers)
    posted_to(slack, rid, 2)  # carol and erin
    press(slack, rid, ALICE, APPROVE, dm_of=CAROL)  # the requester
    press(slack, rid, BOB, APPROVE, dm_of=CAROL)  # not an approver
    press(slack, rid, CAROL, APPROVE, dm_of=CAROL)
    wait_for(lambda: all(approvals_shown(m) == "1 of 2" for m in messages(slack, rid).values()))
    before = {c: m for c, (_, m) in messages(slack, rid).items()}
    press(slack, rid, CAROL, APPROVE, dm_of=CAROL)  # a second click by the same approver

    wait_for(lambda: told(slack, ALICE) and told(slack, BOB) and told(slack, CAROL), 20)
    assert "own request" in told(slack, ALICE)[0]
    assert "only the requester, its approvers" in told(slack, BOB)[0]  # the REST API's words
    assert "already approved" in told(slack, CAROL)[0]
    after = request_of(stack, rid)
    assert after["status"] == "pending_approval"
    assert [a["approver"] for a in after["approvals"]] == [CAROL]
    assert {c: m for c, (_, m) in messages(slack, rid).items()} == before
    assert fields(before[slack.dm_channel(ERIN)])["Approvals"] == "1 of 2"


def test_quorum_of_two_needs_two_different_people(stack, slack, two_approvers) -> None:
    rid = ask(stack, two_approvers)
    posted_to(slack, rid, 2)
    press(slack, rid, CAROL, APPROVE, dm_of=CAROL)
    wait_for(lambda: len(request_of(stack, rid)["approvals"]) == 1, 20)
    assert request_of(stack, rid)["status"] == "pending_approval"
    press(slack, rid, ERIN, APPROVE, dm_of=ERIN)
    wait_for(lambda: request_of(stack, rid)["status"] == "active", 20)
    approvers = {a["approver"] for a in request_of(stack, rid)["approvals"]}
    assert approvers == {CAROL, ERIN}
    wait_for(
        lambda: all(
            fields(m)["Approvals"] == "2 of 2" and f"Approved by {ERIN}" in shown(m)
            for _, m in messages(slack, rid).values()
        ),
        20,
    )


def test_an_approval_through_the_rest_api_shows_in_slack_too(stack, slack, two_approvers) -> None:
    rid = ask(stack, two_approvers)
    posted_to(slack, rid, 2)
    with stack.client(CAROL) as c:
        assert c.post(f"/v1/requests/{rid}/approve", json={"comment": "fine"}).status_code == 200
    wait_for(
        lambda: all(
            approvals_shown(m) == "1 of 2" and f"Approved by {CAROL}" in shown(m[1])
            for m in messages(slack, rid).values()
        ),
        20,
    )
    for _, message in messages(slack, rid).values():
        assert buttons(message) == {APPROVE: rid, REJECT: rid}  # still waiting for one more


def test_a_delivery_repeated_by_slack_decides_once(stack, slack, two_approvers) -> None:
    rid = ask(stack, two_approvers)
    posted_to(slack, rid, 2)
    channel = slack.dm_channel(CAROL)
    ts, _ = messages(slack, rid)[channel]
    payload = slack.press_payload(CAROL, APPROVE, channel, ts)
    first = slack.deliver(payload)
    again = slack.deliver(payload, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"})
    assert (first.status_code, again.status_code) == (200, 200)
    wait_for(lambda: len(request_of(stack, rid)["approvals"]) == 1, 20)
    time.sleep(1)  # time for a second decision, were one under way
    events = [e["action"] for e in request_of(stack, rid)["events"]]
    assert events.count("approval") == 1
    assert told(slack, CAROL) == []  # a processed repeat would say "already approved"


def _sign(body: bytes, at: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """As Slack signs: v0=HMAC-SHA256(signing secret, "v0:<timestamp>:<body>")."""
    digest = hmac.new(secret.encode(), f"v0:{at}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(at),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


@pytest.mark.parametrize(
    "case", ["wrong secret", "stale", "from the future", "tampered body", "missing"]
)
def test_a_bad_or_stale_signature_is_401_and_decides_nothing(stack, slack, case) -> None:
    rid = ask(stack)
    ts, _ = posted_to(slack, rid, 3)[slack.dm_channel(CAROL)]
    payload = slack.press_payload(CAROL, APPROVE, slack.dm_channel(CAROL), ts)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    now = int(time.time())
    headers = {
        "wrong secret": _sign(body, now, "not-the-secret"),
        "stale": _sign(body, now - 6 * 60),
        "from the future": _sign(body, now + 6 * 60),
        "tampered body": _sign(body.replace(b"approve", b"reject"), now),
        "missing": {"Content-Type": "application/x-www-form-urlencoded"},
    }[case]
    good = _sign(body, now)
    assert SignatureVerifier(SIGNING_SECRET).is_valid(
        body, good["X-Slack-Request-Timestamp"], good["X-Slack-Signature"]
    )  # the test signs as Slack does
    resp = httpx.post(f"{stack.base}/v1/slack/interactions", content=body, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_signature"
    time.sleep(0.5)
    assert request_of(stack, rid)["approvals"] == []
    assert request_of(stack, rid)["status"] == "pending_approval"


def test_comment_required_reject_asks_for_it_in_a_modal(stack, slack) -> None:
    rid = ask(stack)
    posted_to(slack, rid, 3)
    with stack.client(DAVE) as c:
        assert c.patch("/v1/settings", json={"comment_required": True}).status_code == 200
    try:
        opened = len(slack.calls_of("views.open"))
        press(slack, rid, ERIN, REJECT, dm_of=ERIN)
        wait_for(lambda: len(slack.calls_of("views.open")) > opened, 20)
        assert request_of(stack, rid)["status"] == "pending_approval"  # nothing decided yet
        view_id = max(slack.views)
        assert slack.submit(ERIN, view_id, "not during the freeze").status_code == 200
        wait_for(lambda: request_of(stack, rid)["status"] == "rejected", 20)
    finally:
        with stack.client(DAVE) as c:
            c.patch("/v1/settings", json={"comment_required": False})
    wait_for(
        lambda: all(
            f"Rejected by {ERIN}" in shown(m) and "not during the freeze" in shown(m)
            for _, m in messages(slack, rid).values()
        ),
        20,
    )


def test_a_slack_outage_never_delays_the_grant(stack, slack) -> None:
    slack.failing = True
    try:
        rid = ask(stack)
        with stack.client(CAROL) as c:
            assert c.post(f"/v1/requests/{rid}/approve", json={}).status_code == 200
        wait_for(lambda: request_of(stack, rid)["status"] == "active", 10)
        metrics = f"http://127.0.0.1:{stack.env['ELEVATE_WORKER_METRICS_PORT']}/metrics"

        def failures_counted() -> bool:
            lines = httpx.get(metrics).text.splitlines()
            return any(
                "elevate_notification_failures" in line and 'channel="slack_app"' in line
                for line in lines
            )

        wait_for(failures_counted, 20)
    finally:
        slack.failing = False
