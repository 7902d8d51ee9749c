"""The console as the tests meet it: `rehearse console` in its own process, Chromium on its page.

`console(...)` starts the real CLI (uvicorn, loopback), reads the URL it prints and stops
it at the end; `chromium()` launches the Debian Chromium the way the harness does (every
name but loopback resolves to nothing) and records every request each page makes, so a
test can say that nothing left the page.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rehearsal.lifetime import end_process

CHROMIUM = os.environ.get("REHEARSAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def rehearse(reports: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None):
    """The real CLI, as an operator runs it (exit code, stdout, stderr)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("REHEARSAL_QUIET", "REHEARSAL_CONSOLE_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=timeout, env={**environ, **(env or {})},
    )  # fmt: skip


@dataclass
class Console:
    url: str
    process: subprocess.Popen[str]
    first_line: str


@contextmanager
def console(reports: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Console]:
    """`rehearse console ARGS` until the block ends; its first stdout line names the URL."""
    environ = {k: v for k, v in os.environ.items() if k not in ("REHEARSAL_CONSOLE_TOKEN",)}
    process = subprocess.Popen(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), "console", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**environ, **(env or {})},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=10)
            raise AssertionError(
                f"the console did not start: {process.stderr.read() if process.stderr else ''}"
            )
        url = next(word for word in line.split() if word.startswith("http://"))
        yield Console(url, process, line.strip())
    finally:
        end_process(process, 10.0, signal.SIGINT)


@dataclass
class Pages:
    browser: Any
    requests: list[str] = field(default_factory=list)

    def page(self, **options: Any) -> Any:
        context = self.browser.new_context(**options)
        page = context.new_page()
        page.on("request", lambda r: self.requests.append(r.url))
        page.set_default_timeout(15_000)
        return page

    def outside(self, origin: str) -> list[str]:
        """Every request that went anywhere but the console's own origin."""
        return [
            u
            for u in self.requests
            if not u.startswith(origin.rstrip("/") + "/") and not u.startswith("data:")
        ]


@contextmanager
def chromium(*hosts: str) -> Iterator[Pages]:
    """Chromium resolving nothing but loopback (and ``hosts``: even an address literal needs its EXCLUDE)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--host-resolver-rules=MAP * ~NOTFOUND , "
                + " , ".join(f"EXCLUDE {h}" for h in ("127.0.0.1", "localhost", *hosts)),
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            yield Pages(browser)
        finally:
            browser.close()
