"""The running API and worker write JSON lines that name the request, and never a token."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_lifecycle import CAROL, request_access, status_of
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration


def test_api_lines_name_the_request_and_hold_no_token(stack: Stack) -> None:
    rid = request_access(stack, "alice@example.com", "sandbox", "ReadOnly", "PT1S")
    wait_for(lambda: status_of(stack, rid) == "ended", 30, 0.2)
    api_log = (stack.logs / "api.log").read_text()
    records = [json.loads(line) for line in api_log.splitlines() if line.startswith("{")]
    mine = [r for r in records if r["request_id"] == rid]
    assert any(f"/v1/requests/{rid}/approve" in str(r["message"]) for r in mine)
    token = stack.token(CAROL)
    signature = token.rsplit(".", 1)[-1]
    for log in stack.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        assert signature not in text, log.name
        assert "Bearer " not in text, log.name
