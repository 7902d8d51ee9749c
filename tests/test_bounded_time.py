"""Bounded time (issue #8): a run against a dead target ends within a bound read off the plan.

The hard case is a target that accepts connections and never answers (a hung server, a
firewall letting the handshake through): it gets past the preflight, and every call then
waits its full timeout. Worse is one that answers one byte a second (issue #12): each read
arrives within the read timeout, so only a total deadline per call ends it. Here every
component of the plan is such a silent peer (real sockets, tests/silent_peers.py), the
legacy EHR and the bridge drip (tests/hostile_http.py), and ``rehearse run`` must end within

    bound = C × (connect + read) + device + load.duration_s + MARGIN_S

- C: the distinct component addresses the plan names (``environment.fhir_base`` and
  ``web_base`` count once when they share host:port; ``legacy_base``, ``lab_mllp``,
  ``bridge_base``, ``bridge_mllp``, ``directory``). Each is waited for at most once per run
  (rehearsal.silence), an HTTP call at most ``connect + read`` in all however it drips;
  later calls to it fail at once.
- device: the printers are probed concurrently, each within the device timeout.
- load.duration_s: Locust runs its planned time whatever the target does.
- MARGIN_S: fixed start-up and wrap-up (pytest and Chromium, Locust start and stop, the
  report), independent of the plan and of the number of tests.

Before rehearsal.silence the same run took (number of calls × timeout): 78 s with these
timeouts, about 6 minutes with the demo plan's; before the total deadline a dripping target
held a run past 421 s against a bound of 44 s. The decision must be NO-GO, the run
complete, and every failed result must say in one line what timed out and where.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostile_http import Dripping
from silent_peers import SilentPeers

from rehearsal.results import read_results
from rehearsal.silence import FIELDS, address_of

pytestmark = pytest.mark.slow

TIMEOUTS = {"connect": 1, "read": 2, "device": 1}
LOAD_S = 4
MARGIN_S = 40.0
ROOT = Path(__file__).resolve().parents[1]
TIMED_OUT = re.compile(r"within [\d.]+ s|within the plan's timeouts|timed out")


def shorten(data: dict[str, Any]) -> None:
    """Small timeouts, a short load, no workstations (their facts files are not a target)."""
    data["environment"]["timeouts"] = dict(TIMEOUTS)
    data["load"]["duration_s"] = LOAD_S
    for site in data["sites"]:
        site.pop("workstations", None)


def ports(plan: Path) -> tuple[list[int], list[int], list[int]]:
    """(the component ports, the printers' TCP ports, the SNMP UDP ports) of a plan."""
    data = yaml.safe_load(plan.read_text(encoding="utf-8"))
    env = data["environment"]
    components = {address_of(env[f])[1] for f in FIELDS if isinstance(env.get(f), str) and address_of(env[f])}
    printers = [p for s in data["sites"] for p in s.get("printers", [])]
    tcp = {address_of(p["uri"])[1] for p in printers if not p["uri"].startswith("snmp")}
    udp = {p["snmp"]["port"] for p in printers if p.get("snmp")}
    return sorted(components), sorted(tcp), sorted(udp)


def bound(components: int, load_s: float = LOAD_S) -> float:
    """The formula above: what the plan allows, not what the number of tests would add up to."""
    return components * (TIMEOUTS["connect"] + TIMEOUTS["read"]) + TIMEOUTS["device"] + load_s + MARGIN_S


def rehearse_run(plan: Path, reports: Path, limit: float) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), "run", "--plan", str(plan)],
        capture_output=True,
        text=True,
        timeout=limit + 60,  # a hang fails the test instead of the session
        cwd=ROOT,
        env={**os.environ, "REHEARSAL_PASSWORD": "bounded-time-pw"},  # the load logs in to the target
    )
    return time.monotonic() - started, done


def run_folder(reports: Path) -> Path:
    (folder,) = [p.parent for p in reports.rglob("run.json")]
    return folder


def failed_messages(folder: Path) -> list[tuple[str, str]]:
    return [(r.nodeid, r.message.strip()) for r in read_results(folder / "allure-results") if r.failed]


def assert_no_go_and_complete(done: subprocess.CompletedProcess[str], folder: Path) -> None:
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads((folder / "run.json").read_text(encoding="utf-8"))["complete"] is True
    decision = json.loads((folder / "gonogo.json").read_text(encoding="utf-8"))
    assert decision["decision"] == "NO-GO" and decision["complete"] is True


def test_everything_silent_ends_within_the_plans_bound(make_plan: Callable[..., Path], tmp_path: Path):
    plan = make_plan(shorten)
    components, printers, snmp = ports(plan)
    env = yaml.safe_load(plan.read_text(encoding="utf-8"))["environment"]
    dripping = [address_of(env[f])[1] for f in ("legacy_base", "bridge_base")]  # one byte a second
    silent = [p for p in components if p not in dripping]
    allowed = bound(len(components))
    with SilentPeers(silent + printers, snmp) as peers, Dripping(dripping, interval=1.0) as drips:
        took, done = rehearse_run(plan, tmp_path / "reports", allowed)
    assert peers.accepted > 0  # the run got past the preflight: the target accepted and stayed silent
    assert drips.accepted > 0 and drips.sent > 0  # and the dripping ones were asked, and dripped
    assert took <= allowed, f"{took:.1f} s > {allowed:.1f} s ({len(components)} components)"
    folder = run_folder(tmp_path / "reports")
    assert_no_go_and_complete(done, folder)
    failed = failed_messages(folder)
    assert len(failed) >= 20  # central checks, every printer, every load SLO
    addresses = [f"127.0.0.1:{p}" for p in components + printers]
    for nodeid, message in failed:
        assert "\n" not in message, f"{nodeid}: more than one line: {message!r}"
        assert TIMED_OUT.search(message), f"{nodeid}: says no timeout: {message}"
        assert any(a in message for a in addresses), f"{nodeid}: names no address: {message}"
    central = [m for n, m in failed if "scenarios/" in n]
    assert central and all("environment." in m for m in central), central  # the plan field, too
    load = [m for n, m in failed if n.startswith("load/")]
    assert load and all("did not answer" in m or "no answer" in m for m in load), load


def test_refused_everywhere_but_a_silent_ehr(make_plan: Callable[..., Path], tmp_path: Path):
    """Closed ports fail at once; the one silent component is waited for once."""
    plan = make_plan(shorten)
    components, _, _ = ports(plan)
    env = yaml.safe_load(plan.read_text(encoding="utf-8"))["environment"]
    ehr = address_of(env["fhir_base"])[1]
    allowed = bound(1)
    with SilentPeers([ehr]):
        took, done = rehearse_run(plan, tmp_path / "reports", allowed)
    assert took <= allowed, f"{took:.1f} s > {allowed:.1f} s"
    folder = run_folder(tmp_path / "reports")
    assert_no_go_and_complete(done, folder)
    failed = failed_messages(folder)
    assert failed
    for nodeid, message in failed:
        assert "\n" not in message, f"{nodeid}: more than one line: {message!r}"
        assert "127.0.0.1:" in message, f"{nodeid}: names no address: {message}"
        if f"127.0.0.1:{ehr}" in message:
            assert TIMED_OUT.search(message), f"{nodeid}: the EHR's failure says no timeout: {message}"
    assert any(f"127.0.0.1:{ehr}" in m and TIMED_OUT.search(m) for _, m in failed)
