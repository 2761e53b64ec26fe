"""One person per token, over HTTP against the running stack (API.md "Identity")."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from tests.rows import insert_request
from tests.stack import Stack

ALICE, CAROL, ERIN, DAVE = (
    "alice@example.com",
    "carol@example.com",
    "erin@example.com",
    "dave@example.com",
)
APPROVERS = ["elevate-approvers"]


def _get(stack: Stack, token: str, path: str = "/v1/requests", **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{stack.base}{path}", headers=headers, params=params, timeout=30)


def _post(stack: Stack, token: str, path: str, **json: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{stack.base}{path}", headers=headers, json=json, timeout=30)


def _ask(stack: Stack, user: str, account: str = "sandbox") -> dict[str, object]:
    resp = _post(
        stack,
        stack.token(user),
        "/v1/requests",
        account_id=stack.org.accounts[account],
        permission_set="ReadOnly",
        duration="PT1H",
        justification="identity test",
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


@pytest.mark.parametrize(
    "kw",
    [{"extra": {"aud": None}}, {"kid": ["elevate-dev-1"]}, {"kid": {"k": 1}}, {"kid": 7}],
    ids=["no aud", "list kid", "object kid", "number kid"],
)
def test_tokens_without_aud_or_with_odd_kids_are_401(stack: Stack, kw: dict[str, object]) -> None:
    resp = _get(stack, stack.token(ALICE, [], **kw))
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    ("user", "extra"),
    [
        ("alice@example.com ", {}),
        (" alice@example.com", {}),
        ("ａｌｉｃｅ@example.com", {}),  # full-width letters
        ("al\u200bice@example.com", {}),  # a zero-width space
        ("alice@example.com", {"email_verified": False}),
    ],
    ids=["trailing space", "leading space", "full-width", "zero-width", "unverified email"],
)
def test_ambiguous_identities_are_401(stack: Stack, user: str, extra: dict[str, object]) -> None:
    resp = _get(stack, stack.token(user, [], extra=extra))
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_token"


def test_verified_email_and_any_case_are_the_same_person(stack: Stack) -> None:
    mine = _ask(stack, ALICE)
    token = stack.token("Alice@Example.com", [], extra={"email_verified": True})
    listed = _get(stack, token).json()["items"]
    assert mine["id"] in [r["id"] for r in listed]
    assert _get(stack, token, f"/v1/requests/{mine['id']}").status_code == 200


def test_self_approval_in_another_case_is_refused(stack: Stack) -> None:
    rid = _ask(stack, CAROL)["id"]
    resp = _post(stack, stack.token("Carol@example.com", APPROVERS), f"/v1/requests/{rid}/approve")
    assert resp.status_code == 403, resp.text
    with stack.client(CAROL) as carol:
        got = carol.get(f"/v1/requests/{rid}").json()
    assert got["status"] == "pending_approval"
    assert got["approvals"] == []


def test_requester_filter_is_canonical(stack: Stack) -> None:
    mine = _ask(stack, ALICE)
    with stack.client(DAVE) as admin:
        found = admin.get("/v1/requests", params={"requester": "ALICE@example.com"}).json()
        assert mine["id"] in [r["id"] for r in found["items"]]
        bad = admin.get("/v1/requests", params={"requester": "alice@example.com\t"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_filter"


@pytest.fixture
def two_approvers(stack: Stack) -> Iterator[httpx.Client]:
    """Staging needs two approvals; the policy is removed again (bootstrap for the others)."""
    with stack.client(DAVE) as admin:
        resp = admin.put(
            "/v1/policies/approval/identity-two",
            json={
                "accounts": [stack.org.accounts["staging"]],
                "approvers": [
                    {"type": "group", "name": "elevate-approvers"},
                    {"type": "user", "name": "Dave@Example.com"},
                ],
                "approvals_required": 2,
            },
        )
        assert resp.status_code == 201, resp.text
        yield admin
        admin.delete("/v1/policies/approval/identity-two", params={"allow_bootstrap": "true"})


def test_one_person_in_two_spellings_counts_once(stack: Stack, two_approvers: httpx.Client) -> None:
    stored = two_approvers.get("/v1/policies/approval/identity-two").json()
    assert {"type": "user", "name": DAVE} in stored["approvers"]
    rid = _ask(stack, ALICE, "staging")["id"]
    first = _post(stack, stack.token("ERIN@example.com", APPROVERS), f"/v1/requests/{rid}/approve")
    assert first.status_code == 200, first.text
    again = _post(stack, stack.token(ERIN, APPROVERS), f"/v1/requests/{rid}/approve")
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "pending_approval"
    assert [a["approver"] for a in again.json()["approvals"]] == [ERIN]
    # Dave is named in another spelling in the policy, and is the second person.
    done = _post(stack, stack.token("DAVE@example.com", []), f"/v1/requests/{rid}/approve")
    assert done.status_code == 200, done.text
    assert done.json()["status"] != "pending_approval"
    assert sorted(a["approver"] for a in done.json()["approvals"]) == [DAVE, ERIN]


def test_an_approver_who_is_the_requesters_principal_is_refused(
    stack: Stack, engine: sa.Engine
) -> None:
    """Another username whose identity-store user is the requester's own user (an alias an
    IdP may issue) is the requester: refused before the workflow is asked."""
    rid = insert_request(
        engine,
        requester="erin.alias@example.com",
        principal_id=stack.org.users[ERIN],
        account_id=stack.org.accounts["sandbox"],
        account_name="sandbox",
    )
    resp = _post(stack, stack.token(ERIN, APPROVERS), f"/v1/requests/{rid}/approve")
    assert resp.status_code == 403, resp.text
    assert "principal" in resp.json()["detail"]
