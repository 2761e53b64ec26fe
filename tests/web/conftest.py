"""A headless Chromium from the system's packages, driven by Playwright; nothing is downloaded."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SHOTS = Path(__file__).resolve().parents[2] / ".elevate" / "screenshots"
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module: Playwright's sync API holds an event loop while it runs, and the async tests
    # after it (pytest-asyncio) could not run theirs.
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Pages in contexts of their own (one person each), in Berlin's time zone."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(
            timezone_id="Europe/Berlin", accept_downloads=True, viewport=WIDTHS["desktop"]
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def shoot(page: Any, name: str) -> None:
    """The page at desktop and phone width, for a person to look at (not committed)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in WIDTHS.items():
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(WIDTHS["desktop"])


def unnamed_controls(page: Any) -> list[str]:
    """Controls a screen reader could not name (no label, no text, no aria-label)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('a, button, input, select, textarea')]
          .filter((el) => el.type !== 'hidden')
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.textContent.trim() && !el.title)
          .map((el) => el.outerHTML)"""
    )
    return found
