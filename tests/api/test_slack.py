"""What /v1/slack/interactions accepts before it decides anything (the service's parse)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from api.errors import BadRequest, NotFound, Unauthorized
from api.services.slack import COMMENT_VIEW, Click, parse
from elevate.devstack.slack_standin import sign
from elevate.settings import Settings

SECRET = "unit-signing-secret"
SETTINGS = Settings(slack_bot_token="xoxb-unit", slack_signing_secret=SECRET)


def _body(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def _headers(body: bytes, **extra: str) -> dict[str, str]:
    return {k.lower(): v for k, v in {**sign(SECRET, body), **extra}.items()}


CLICK = {
    "type": "block_actions",
    "user": {"id": "UCAROL"},
    "channel": {"id": "DCAROL"},
    "trigger_id": "t-1",
    "actions": [{"action_id": "elevate_reject", "value": "r-1"}],
}


def test_a_signed_click_is_the_decision_it_names():
    body = _body(CLICK)
    click = parse(SETTINGS, _headers(body), body)
    assert click == Click("reject", "r-1", "UCAROL", "DCAROL", "t-1")


def test_a_repeated_delivery_is_accepted_and_dropped():
    body = _body(CLICK)
    assert parse(SETTINGS, _headers(body, **{"X-Slack-Retry-Num": "2"}), body) is None


def test_a_timestamp_that_is_no_number_is_401():
    body = _body(CLICK)
    headers = _headers(body) | {"x-slack-request-timestamp": "soon"}
    with pytest.raises(Unauthorized):
        parse(SETTINGS, headers, body)


def test_the_signature_is_checked_before_the_body():
    with pytest.raises(Unauthorized):
        parse(SETTINGS, {}, b"not a form")


@pytest.mark.parametrize("body", [b"payload=%7Bnot+json", b"other=1", _body(["a list"])])
def test_a_signed_body_without_a_payload_object_is_400(body):
    with pytest.raises(BadRequest):
        parse(SETTINGS, _headers(body), body)


def test_other_interactions_are_ignored():
    body = _body({**CLICK, "actions": [{"action_id": "someone_elses", "value": "x"}]})
    assert parse(SETTINGS, _headers(body), body) is None


def test_the_comment_dialog_carries_its_decision_and_comment():
    meta = {"action": "reject", "request_id": "r-1", "channel": "DCAROL"}
    values = {"comment": {"comment": {"type": "plain_text_input", "value": "not now"}}}
    view = {"callback_id": COMMENT_VIEW, "private_metadata": json.dumps(meta)}
    payload = {"type": "view_submission", "user": {"id": "UCAROL"}, "view": view}
    body = _body({**payload, "view": {**view, "state": {"values": values}}})
    click = parse(SETTINGS, _headers(body), body)
    assert click == Click("reject", "r-1", "UCAROL", "DCAROL", None, "not now", True)


def test_a_dialog_that_names_another_action_is_400():
    meta = {"action": "revoke", "request_id": "r-1"}
    view = {"callback_id": COMMENT_VIEW, "private_metadata": json.dumps(meta)}
    body = _body({"type": "view_submission", "user": {"id": "U1"}, "view": view})
    with pytest.raises(BadRequest):
        parse(SETTINGS, _headers(body), body)


def test_without_the_bot_token_the_endpoint_does_not_exist():
    body = _body(CLICK)
    with pytest.raises(NotFound):
        parse(Settings(slack_signing_secret=SECRET), _headers(body), body)


def test_five_minutes_and_a_second_old_is_stale():
    body = _body(CLICK)
    headers = {k.lower(): v for k, v in sign(SECRET, body, int(time.time()) - 301).items()}
    with pytest.raises(Unauthorized):
        parse(SETTINGS, headers, body)
