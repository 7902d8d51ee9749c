"""Locust's own requests: a redirect to another host is not followed (issue #12, finding 2).

The locustfile refuses a ``--host`` outside ``allowed_hosts`` before the first request
(tests/test_load.py); what it cannot check in advance is where the target sends it. A
hostile FHIR server on 127.0.0.1 answers every request, the login included, with a
redirect to 127.0.0.2: Locust's users carry the clinician's Authorization header, and
geventhttpclient follows redirects with the same headers. The listener there must see
0 connections, and the failures must name the redirect.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_http import Listener, Scripted

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "load" / "locustfile.py"

pytestmark = pytest.mark.slow


def test_locust_follows_no_redirect_to_another_host(make_plan: Callable[..., Path], tmp_path: Path) -> None:
    listener = Listener()
    server = Scripted(lambda path: (302, {"Location": f"http://{listener.host_port}{path}"}, b""))

    def point_at_server(data: dict[str, Any]) -> None:
        data["environment"]["fhir_base"] = f"{server.base}/fhir"
        data["environment"]["web_base"] = server.base
        data["load"].update(users=2, spawn_rate=2, duration_s=2)

    try:
        plan = make_plan(point_at_server)
        done = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "2", "-r", "2",
             "-t", "2s", "--only-summary", "--host", f"{server.base}/fhir"],
            env={**os.environ, "REHEARSAL_PLAN": str(plan), "REHEARSAL_PASSWORD": "hosts-load-pw"},
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        time.sleep(0.3)
        assert server.requests, done.stderr[-2000:]  # the users did log in against the own server
        assert any(auth and auth.startswith("Basic ") for _, _, auth in server.requests)
        assert listener.count == 0 and listener.authorizations() == []
        assert "redirect to http://127.0.0.2:" in done.stderr + done.stdout and "not followed" in done.stderr
        listener.assert_live()
    finally:
        server.close()
        listener.close()
