"""A real browser for the page tests: Debian's chromium (/usr/bin/chromium), driven by Playwright.

Every page a test opens is watched: each request the browser makes is recorded,
and one to anything but this machine's loopback (or a blob:/data: URL the page
made itself) is refused and fails the test at teardown. That is how "no request
leaves loopback" is checked for /dashboard, /docs and /redoc.

Never skipped: without chromium the tests fail, naming the package to install
(`.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As the machine's own probe starts it: without the background-networking flags chromium calls Google's
# hosts, which this closed network refuses (and which the loopback check below would count).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions"]
# The screenshots the README shows: written by every run of the browser tests.
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "docs" / "screenshots"))
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("blob", "data", "about"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and (parts.hostname or "") in LOOPBACK


@dataclass
class Watched:
    """A page and what it asked for: every request URL, the ones refused (not loopback), console errors."""

    page: object
    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str, **options) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # The same picture on every run (no half-finished transition, no blinking caret): the files are committed.
        options = {"animations": "disabled", "caret": "hide", **options}
        self.page.screenshot(path=str(path), **options)
        return path


# Per module, not per session: while Playwright's sync API runs, its event loop is the thread's running loop,
# and tests of other modules on the same xdist worker that call asyncio.run() (tests/api/asgi.py) would fail.
@pytest.fixture(scope="module")
def playwright_browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"no chromium at {CHROMIUM}: install Debian's chromium package (apt-get install chromium), as .ci/run does")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def watched_page(playwright_browser) -> Iterator[Watched]:
    """A fresh browser context (no storage shared with other tests) and one page in it, at 1280x900."""
    context = playwright_browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC")
    page = context.new_page()
    watched = Watched(page)

    def route(route, request) -> None:
        watched.requests.append(request.url)
        if is_local(request.url):
            route.continue_()
        else:
            watched.refused.append(request.url)
            route.abort()

    context.route("**/*", route)
    page.on("console", lambda message: watched.console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    try:
        yield watched
    finally:
        context.close()
    assert not watched.refused, f"the page asked for addresses off this machine: {watched.refused[:5]}"
    assert not watched.page_errors, f"uncaught errors in the page: {watched.page_errors[:5]}"
