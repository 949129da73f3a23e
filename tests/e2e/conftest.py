"""Fixtures for the browser tests: one served hub and one headless Chromium for the whole e2e folder.

Each test opens its own browser context (its own cookies), so tests do not see each other's sign-ins,
and sets up its own reps and contacts, so they do not depend on each other's data.
Without Debian's chromium the tests skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.conftest import IN_CI
from tests.e2e.stack import CHROMIUM, CHROMIUM_ARGS, RunningHub, running_hub

expect.set_options(timeout=8_000)


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"Chromium is not installed at {CHROMIUM} (Debian package `chromium`)"
    if IN_CI:
        pytest.fail(f"{message}; CI must run the browser tests")
    pytest.skip(message)


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[RunningHub]:
    """The hub served over real HTTP on a migrated SQLite file, with the embedded worker running."""
    _require_chromium()
    # Calling hours all day: a callback due in twenty minutes stays there whenever the suite runs.
    with running_hub(tmp_path_factory.mktemp("e2e"), template=sqlite_template, calling_hours="00:00-24:00") as hub:
        yield hub


@pytest.fixture(scope="package")
def playwright(served: RunningHub) -> Iterator[Playwright]:
    # After `served`: the session's migrated template is made with asyncio.run, which cannot run in the
    # main thread once Playwright's sync API keeps its loop there.
    _require_chromium()
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="package")
def browser(playwright: Playwright, served: RunningHub) -> Iterator[Browser]:
    # Depends on `served` so the browser closes (ending its live streams) before the server stops.
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, served: RunningHub) -> Iterator[BrowserContext]:
    opened = browser.new_context(base_url=served.base, viewport={"width": 1280, "height": 900}, timezone_id="UTC")
    yield opened
    opened.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
