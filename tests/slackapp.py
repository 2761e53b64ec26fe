"""The session's stand-in of the Slack Web API, and the Slack settings the stack runs with."""

from __future__ import annotations

from elevate.devstack.seed import USERS
from elevate.devstack.slack_standin import SlackStandIn, start, user_id

SIGNING_SECRET = "tests-slack-signing-secret"
BOT_TOKEN = "xoxb-tests"
_standin: list[SlackStandIn] = []  # one per test session, started on first use


def standin() -> SlackStandIn:
    """Knows every demo user by email; lives (a daemon thread) as long as the test process."""
    if not _standin:
        s = SlackStandIn({user_id(e): e for e in USERS}, SIGNING_SECRET)
        start(s)
        _standin.append(s)
    return _standin[0]


def slack_env() -> dict[str, str]:
    """What the API and worker of the stack need to post to and hear from the stand-in."""
    return {
        "ELEVATE_SLACK_BOT_TOKEN": BOT_TOKEN,
        "ELEVATE_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "ELEVATE_SLACK_API_URL": standin().url,
    }
