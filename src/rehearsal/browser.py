"""Browser launch settings, registered after pytest-playwright so they override its own.

Playwright cannot download its browser on our machines, so the Debian Chromium is used
when Playwright has none; and Chromium's background calls to Google are resolved to
nothing, so a rehearsal in a hospital network never calls out.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from rehearsal.pytest_plugin import plan_for


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any], pytestconfig: pytest.Config) -> dict:
    args = dict(browser_type_launch_args)
    executable = os.environ.get("REHEARSAL_CHROMIUM") or shutil.which("chromium")
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
