"""Browser launch settings, registered after pytest-playwright so they override its own.

Playwright cannot download its browser on our machines, so the Debian Chromium is used
when Playwright has none; and Chromium's background calls to Google are resolved to
nothing, so a rehearsal in a hospital network never calls out. Host names outside
``environment.allowed_hosts`` resolve to nothing, but an address literal (``127.0.0.2``,
``10.1.2.3``) needs no resolving: :func:`guard_hosts` aborts every request of the page
to a host outside the list and says so in one line.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import pytest

from rehearsal.pytest_plugin import plan_for


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any], pytestconfig: pytest.Config) -> dict:
    args = dict(browser_type_launch_args)
    executable = os.environ.get("REHEARSAL_CHROMIUM") or debian_chromium(headless=args.get("headless", True))
    if executable and not os.environ.get("PLAYWRIGHT_BROWSERS_PATH"):
        args["executable_path"] = executable
    plan = plan_for(pytestconfig)
    hosts = plan.environment.allowed_hosts if plan else ["127.0.0.1", "localhost"]
    rules = "MAP * ~NOTFOUND , " + " , ".join(f"EXCLUDE {h}" for h in hosts)
    args["args"] = [
        *args.get("args", []),
        f"--host-resolver-rules={rules}",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ]
    return args


def debian_chromium(*, headless: bool) -> str | None:
    """Debian's Chromium; for a headless run its headless shell, when installed.

    The shell is what Playwright itself launches for headless runs: no GPU process, no
    compositor for a window nobody sees. On a klinisk run of two sites it took pytest from
    ~52 s to ~43 s and Chromium's CPU by a fifth (session 9). ``--headed`` needs the full browser.
    """
    if headless and (shell := shutil.which("chromium-headless-shell") or shutil.which(HEADLESS_SHELL)):
        return shell
    return shutil.which("chromium")


#: Where Debian's ``chromium-headless-shell`` puts the binary (its wrapper may not be on PATH).
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"


def outside(allowed_hosts: Iterable[str]) -> re.Pattern[str]:
    """A regex matching every URL that goes anywhere but http(s)/ws(s) to one of ``allowed_hosts``.

    A regex (not a Python function) so Playwright's driver does the matching: requests to
    allowed hosts are never paused on their way to the target.
    """
    hosts = "|".join(re.escape(f"[{h}]" if ":" in h else h) for h in allowed_hosts)
    target = rf"(?:https?|wss?)://(?:[^/?#@]*@)?(?:{hosts})(?::\d+)?(?:[/?#]|$)"
    return re.compile(rf"^(?!(?:data|blob|about):|{target})", re.IGNORECASE)  # data: etc. never leave


def guard_hosts(context: Any, allowed_hosts: Iterable[str], refused: Callable[[str], None]) -> None:
    """Abort every request of the browser ``context`` to a host outside ``allowed_hosts``.

    ``refused`` is told once per origin, in one line naming the request: a page that pulls
    a script from elsewhere is stopped, and the evidence says what and where.
    """
    allowed = list(allowed_hosts)
    told: set[str] = set()

    def abort(route: Any) -> None:
        request = route.request
        route.abort("blockedbyclient")
        parts = urlsplit(request.url)
        origin = f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"
        if origin not in told:
            told.add(origin)
            shown = " ".join(request.url.split())[:200]
            refused(
                f"{request.method} {shown}: stopped in the browser: host {parts.hostname!r} is not in "
                f"environment.allowed_hosts ({', '.join(allowed)})"
            )

    context.route(outside(allowed), abort)


def pytest_configure(config: pytest.Config) -> None:
    lean_traces()


#: What a test's trace records beside its actions, network and console: no screencast, no DOM
#: snapshots. Both are recorded for every test while only a failed one keeps its trace.
TRACE_OPTIONS = {"screenshots": False, "snapshots": False}


def lean_traces() -> None:
    """Traces keep every action, request and console line, not a screencast or the DOM at each action.

    pytest-playwright starts each test's trace with ``screenshots=True, snapshots=True``: JPEG
    frames all the test long and the page's DOM before and after every action, made in
    Chromium whether the test passes (trace dropped) or not. The screencast was ~15 % of a
    klinisk run's wall time with PNG step screenshots (session 9); the snapshots cost a 6-site
    demo ~2 s of wall time per site and ~30 % of Chromium's CPU per action (session 11). Both
    held what the patient gate never read (a number shown between two steps). What a failed
    scenario keeps instead: each step's gated screenshot, the failed step's whole page and its
    DOM (``pytest_plugin._screenshot``), and this trace of what was done and said.
    """
    from pytest_playwright import pytest_playwright as ppw

    recorder: Any = ppw.ArtifactsRecorder
    if getattr(recorder, "_rehearsal_lean_traces", False):
        return
    original = recorder.on_did_create_browser_context

    def on_did_create_browser_context(self: Any, context: Any) -> None:
        start = context.tracing.start
        context.tracing.start = lambda **options: start(**{**options, **TRACE_OPTIONS})
        try:
            original(self, context)
        finally:
            del context.tracing.start  # the instance attribute goes: Tracing.start again

    recorder.on_did_create_browser_context = on_did_create_browser_context
    recorder._rehearsal_lean_traces = True
