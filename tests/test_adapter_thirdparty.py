"""#13 must-show 7: a third-party adapter package replaces one interface without a change to src/rehearsal.

``tests/thirdparty_adapter/`` is a distribution of its own (``acme-engine-monitoring``): the
monitoring of a fictional integration engine that shows its health only as Prometheus text
metrics. It is installed here as pip would leave it (its module and a dist-info with the entry
point from its pyproject.toml, on PYTHONPATH), the plan picks it (``adapters: {monitoring:
acme-engine}``), and a real ``rehearse run --aspect teknisk`` against the reference hospital is
judged through it: the engine parks NÄL's messages during the run, so tech-queues fails at NÄL
with the adapter's words and passes at Borås; its heartbeat feeds tech-integrations.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from test_scenarios import quick

from conftest import ROOT, free_port

pytestmark = pytest.mark.slow  # the reference hospital and a teknisk run

PACKAGE = ROOT / "tests" / "thirdparty_adapter"
PASSWORD = "Acme-13-lösen"


def install(root: Path) -> Path:
    """The package on a path of its own: module + dist-info whose entry points are its pyproject's."""
    meta = tomllib.loads((PACKAGE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    site = root / "site"
    site.mkdir()
    for module in PACKAGE.glob("*.py"):
        shutil.copy(module, site / module.name)
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n", encoding="utf-8"
    )
    groups = meta["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in groups.items()),
        encoding="utf-8",
    )
    return site


class AcmeEngine:
    """/metrics in Prometheus text: a fresh beat; NÄL's parked counter grows by one a second."""

    def __init__(self) -> None:
        self.started = time.time()
        self.port = free_port()
        self.scrapes = 0

    def metrics(self) -> str:
        parked_nal = int(time.time() - self.started)
        return (
            "# HELP acme_engine_last_beat_timestamp_seconds When the engine last completed a cycle.\n"
            "# TYPE acme_engine_last_beat_timestamp_seconds gauge\n"
            f"acme_engine_last_beat_timestamp_seconds {time.time():.3f}\n"
            "# TYPE acme_engine_parked_messages_total counter\n"
            'acme_engine_parked_messages_total{site="sas-boras"} 2\n'
            f'acme_engine_parked_messages_total{{site="nal-trollhattan"}} {parked_nal}\n'
            'acme_engine_failed_messages_total{site="sas-boras"} 0\n'
            'acme_engine_failed_messages_total{site="nal-trollhattan"} 0\n'
        )

    def app(self) -> Starlette:
        async def metrics(request: Request) -> PlainTextResponse:
            self.scrapes += 1
            return PlainTextResponse(self.metrics(), media_type="text/plain; version=0.0.4")

        return Starlette(routes=[Route("/metrics", metrics)])


@pytest.fixture
def engine() -> Iterator[AcmeEngine]:
    running = AcmeEngine()
    sock = socket.socket()
    sock.bind(("127.0.0.1", running.port))
    server = uvicorn.Server(uvicorn.Config(running.app(), log_level="warning", lifespan="off", http="h11"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield running
    server.should_exit = True
    thread.join(timeout=10)


def rehearse(reports: Path, site: Path, *args: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)  # the adapter too
    env = {**os.environ, "PYTHONPATH": path, "REHEARSAL_PASSWORD": PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def test_an_installed_adapter_package_replaces_monitoring_in_a_real_run(make_plan, tmp_path, engine) -> None:
    harness = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src" / "rehearsal").rglob("*.py"))
    assert "acme" not in harness.lower()  # the harness does not know the package

    site = install(tmp_path)

    def edit(data: dict[str, Any]) -> None:
        quick(data)
        data["environment"]["adapters"] = {"monitoring": "acme-engine"}
        data["environment"]["monitoring"] = {"url": f"http://127.0.0.1:{engine.port}/metrics"}

    plan = make_plan(edit)
    reports = tmp_path / "reports"
    checked = rehearse(reports, site, "plan", "check", str(plan))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    up = rehearse(reports, site, "reference", "up", "--plan", str(plan))
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        done = rehearse(reports, site, "run", "--plan", str(plan), "--aspect", "teknisk")
    finally:
        rehearse(reports, site, "reference", "down")
    run = (reports / "latest").resolve()
    decision = json.loads((run / "gonogo.json").read_text(encoding="utf-8"))
    status = {(c["id"], c["site"]): c["status"] for c in decision["criteria"]}
    assert status[("tech-queues", "sas-boras")] == "pass", (status, done.stdout[-2000:], done.stderr[-2000:])
    assert status[("tech-queues", "nal-trollhattan")] == "fail", status
    assert status[("tech-integrations", None)] == "pass", status
    assert done.returncode == 1  # NO-GO: NÄL's parked messages

    messages = []
    for path in (run / "allure-results").glob("*-result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        labels = {lab["name"]: lab["value"] for lab in result.get("labels", [])}
        if labels.get("criterion") == "tech-queues" and result["status"] != "passed":
            messages.append((labels.get("site"), (result.get("statusDetails") or {}).get("message", "")))
    assert [s for s, _ in messages] == ["nal-trollhattan"], messages
    assert (
        "Acme engine: " in messages[0][1]
        and "nya parkerade (catch-all) meddelanden för nal-trollhattan" in (messages[0][1])
    ), messages
    assert engine.scrapes >= 3  # the window's mark, the heartbeat, each site's read
