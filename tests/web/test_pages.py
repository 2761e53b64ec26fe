"""The web app in a real browser against the real stack: request, approve, watch, revoke, audit."""

from __future__ import annotations

import csv
import re
from typing import Any

import httpx
import pytest

from tests.stack import Stack, wait_for
from tests.web.conftest import shoot, unnamed_controls

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL, AUDREY = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "audrey@example.com",
)


def sign_in(page: Any, stack: Stack, user: str) -> None:
    page.goto(f"{stack.base}/requests")  # not signed in: through /login to the dev sign-in
    assert page.url.endswith("/dev/login")
    page.get_by_role("button", name=user, exact=True).click()
    page.wait_for_url(re.compile(r"/requests$"))
    assert page.get_by_text(user).first.is_visible()


def status_word(page: Any) -> str:
    return str(page.locator("[data-status-word]").inner_text())


def request_prod_readonly(page: Any, stack: Stack, justification: str) -> str:
    page.goto(f"{stack.base}/requests/new")
    page.get_by_label("Account").select_option(stack.org.accounts["prod"])
    page.get_by_label("Permission set").select_option("ReadOnly")
    page.get_by_label("Duration").select_option("PT2H")
    page.get_by_label("Justification").fill(justification)
    page.get_by_label("Ticket").fill("INC-42")
    page.get_by_role("button", name="Request access").click()
    page.wait_for_url(re.compile(r"/requests/[0-9a-f-]{36}$"))
    return str(page.url.rsplit("/", 1)[1])


def test_request_approve_watch_revoke_and_audit(stack: Stack, new_page: Any) -> None:
    alice = new_page()
    sign_in(alice, stack, ALICE)
    shoot(alice, "dev-login-then-requests")
    alice.goto(f"{stack.base}/requests/new")
    assert "2 hours" in alice.get_by_label("Duration").inner_text()  # as people say it
    assert unnamed_controls(alice) == []
    shoot(alice, "new-request")
    rid = request_prod_readonly(alice, stack, "web walkthrough")
    assert status_word(alice) == "pending_approval"
    assert "0 of 1" in alice.locator("#live").inner_text()
    alice.evaluate("window.notReloaded = true")  # gone if the page reloads
    shoot(alice, "request-pending")

    carol = new_page()
    sign_in(carol, stack, CAROL)
    carol.goto(f"{stack.base}/approvals")
    shoot(carol, "approvals")
    carol.locator(f'a[href="/requests/{rid}"]').click()
    carol.get_by_label("Comment").fill("looks right")
    assert unnamed_controls(carol) == []
    carol.get_by_role("button", name="Approve").click()
    carol.wait_for_url(re.compile(rf"/requests/{rid}$"))
    assert "looks right" in carol.locator("#live").inner_text()

    # Alice's page learns the new status by itself.
    alice.wait_for_function(
        "document.querySelector('[data-status-word]').textContent.trim() === 'active'",
        timeout=30_000,
    )
    assert alice.evaluate("window.notReloaded") is True
    assert "1 of 1" in alice.locator("#live").inner_text()
    assert stack.assigned("prod", "ReadOnly", ALICE)
    shoot(alice, "request-active")

    alice.get_by_role("button", name="Revoke").wait_for()
    alice.get_by_label("Comment").fill("done")
    alice.get_by_role("button", name="Revoke").click()
    wait_for(lambda: status_word(alice) == "revoked", 30, 0.5)
    assert not stack.assigned("prod", "ReadOnly", ALICE)
    timeline = alice.locator(".timeline").inner_text()
    assert "revoked" in timeline
    assert "done" in timeline
    shoot(alice, "request-revoked")

    _audrey_exports_the_events(stack, new_page(), rid)
    _bob_sees_nothing(stack, new_page(), rid)


def _audrey_exports_the_events(stack: Stack, audrey: Any, rid: str) -> None:
    sign_in(audrey, stack, AUDREY)
    audrey.goto(f"{stack.base}/audit")
    assert "Chain verified" in audrey.locator("main").inner_text()
    audrey.get_by_label("Request id").fill(rid)
    audrey.get_by_role("button", name="Filter").click()
    audrey.wait_for_url(re.compile(r"request_id="))
    shoot(audrey, "audit")
    with audrey.expect_download() as info:
        audrey.get_by_role("link", name="Export CSV").click()
    text = open(info.value.path(), encoding="utf-8").read()  # noqa: SIM115 - read once
    rows = list(csv.DictReader(text.splitlines()))
    assert {r["request_id"] for r in rows} == {rid}
    actions = [r["action"] for r in reversed(rows)]
    assert actions[:4] == ["requested", "approval", "approved", "granting"]
    assert "granted" in actions
    # The session writer's `sessions_ended` may land after `revoked` (it runs on the side).
    assert [a for a in actions if a != "sessions_ended"][-1] == "revoked"
    assert [int(r["seq"]) for r in rows] == sorted((int(r["seq"]) for r in rows), reverse=True)
    response = audrey.request.get(f"{stack.base}/audit.csv?request_id={rid}")
    assert response.headers["content-type"].startswith("text/csv")


def _bob_sees_nothing(stack: Stack, bob: Any, rid: str) -> None:
    sign_in(bob, stack, BOB)
    response = bob.goto(f"{stack.base}/requests/{rid}")
    assert response.status == 403
    alert = bob.get_by_role("alert")
    assert "only the requester, its approvers, admins and auditors" in alert.inner_text()
    body = bob.locator("main").inner_text()
    for secret in ("web walkthrough", "INC-42", "ReadOnly", stack.org.accounts["prod"], ALICE):
        assert secret not in body
    shoot(bob, "refused")


def test_a_refused_action_shows_the_api_detail(stack: Stack, new_page: Any) -> None:
    alice = new_page()
    sign_in(alice, stack, ALICE)
    rid = request_prod_readonly(alice, stack, "refusal check")
    carol = new_page()
    sign_in(carol, stack, CAROL)
    carol.goto(f"{stack.base}/requests/{rid}")
    with stack.client(CAROL) as c:  # decided elsewhere meanwhile: the page's button is stale
        assert c.post(f"/v1/requests/{rid}/reject", json={"comment": "no"}).status_code == 200
    carol.get_by_role("button", name="Approve").click()
    alert = carol.get_by_role("alert")
    assert "the request is rejected; it cannot be approved now" in alert.inner_text()
    assert status_word(carol) == "rejected"
    shoot(carol, "refused-action")


def test_a_form_post_without_the_csrf_token_is_refused(stack: Stack, new_page: Any) -> None:
    alice = new_page()
    sign_in(alice, stack, ALICE)
    rid = request_prod_readonly(alice, stack, "csrf check")
    for form in ({"comment": "forged"}, {"comment": "forged", "csrf_token": "guess"}):
        response = alice.request.post(f"{stack.base}/requests/{rid}/cancel", form=form)
        assert response.status == 403
        assert "CSRF" in response.text()
    with stack.client(ALICE) as c:
        assert c.get(f"/v1/requests/{rid}").json()["status"] == "pending_approval"
    token = alice.locator('input[name="csrf_token"]').first.get_attribute("value")
    response = alice.request.post(f"{stack.base}/requests/{rid}/cancel", form={"csrf_token": token})
    assert response.ok
    with stack.client(ALICE) as c:
        assert c.get(f"/v1/requests/{rid}").json()["status"] == "cancelled"


def test_the_session_cookie_and_deep_links(stack: Stack, new_page: Any) -> None:
    page = new_page()
    sign_in(page, stack, ALICE)
    cookie = next(c for c in page.context.cookies() if c["name"] == "elevate_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"
    assert not cookie["secure"]  # http on 127.0.0.1 only
    rid = request_prod_readonly(page, stack, "deep link")
    page.goto(f"{stack.base}/v1/requests/{rid}")  # a notification's link, opened in a browser
    assert page.url.endswith(f"/requests/{rid}")
    assert status_word(page) == "pending_approval"
    api = httpx.get(f"{stack.base}/v1/requests/{rid}", headers={"Accept": "text/html"})
    assert api.status_code == 303  # a browser without a session goes to the page, then signs in
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{stack.base}/v1/requests/{rid}")
    assert page.url.endswith("/dev/login")
    page.get_by_role("button", name=ALICE, exact=True).click()
    page.wait_for_url(f"{stack.base}/requests/{rid}")  # signed in, and on to the request


def test_extend_from_the_page_and_its_approval(stack: Stack, new_page: Any) -> None:
    alice = new_page()
    sign_in(alice, stack, ALICE)
    rid = request_prod_readonly(alice, stack, "extension check")
    with stack.client(CAROL) as c:
        assert c.post(f"/v1/requests/{rid}/approve", json={}).status_code == 200
    alice.wait_for_function(
        "document.querySelector('[data-status-word]').textContent.trim() === 'active'",
        timeout=30_000,
    )
    with stack.client(ALICE) as c:
        first_end = c.get(f"/v1/requests/{rid}").json()["end_at"]
    alice.get_by_label("Extend by").select_option("PT1H")
    alice.get_by_label("Why more time").fill("still on it")
    alice.get_by_role("button", name="Extend").click()
    alice.wait_for_url(re.compile(rf"/requests/{rid}$"))
    assert "1 hour more, waiting for approval (0 of 1)" in alice.locator("#live").inner_text()
    assert alice.get_by_role("button", name="Extend").count() == 0  # one at a time
    shoot(alice, "request-extension-pending")

    carol = new_page()
    sign_in(carol, stack, CAROL)
    carol.goto(f"{stack.base}/requests/{rid}")
    carol.get_by_role("button", name="Approve").click()
    carol.wait_for_url(re.compile(rf"/requests/{rid}$"))
    alice.wait_for_function(
        "!document.querySelector('#live').textContent.includes('waiting for approval')",
        timeout=30_000,
    )
    with stack.client(ALICE) as c:
        moved = c.get(f"/v1/requests/{rid}").json()
    assert moved["status"] == "active"
    assert moved["end_at"] > first_end


def test_the_keyboard_alone_signs_in_and_requests(stack: Stack, new_page: Any) -> None:
    page = new_page()
    page.goto(f"{stack.base}/dev/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == BOB:
            break
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/requests$"))
    page.goto(f"{stack.base}/requests/new")
    page.get_by_label("Justification").focus()
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Tab")  # to Ticket
    page.keyboard.press("Tab")  # to the button
    assert page.evaluate("document.activeElement.textContent") == "Request access"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/requests/[0-9a-f-]{36}$"))
    assert status_word(page) == "pending_approval"
