"""A run stopped at any point keeps what it recorded, reports itself incomplete (NO-GO), and
`rehearse rerun` completes it.

Twenty stops across one run of the demo plan at one site (without its load profile, to keep
the suite fast), cycling SIGINT, SIGTERM and SIGKILL sent to `rehearse run`.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
POINTS = 20


def ctrl_c_works() -> None:
    """In the child: SIGINT as a terminal gives it, even when this suite was started in the
    background of a script (which ignores SIGINT, and Python then keeps ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(reports: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rehearsal", "--reports", str(reports), *args]


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(reports, *args), capture_output=True, text=True, timeout=240)


def without_load(data: dict[str, Any]) -> None:
    data.pop("load")
    data["criteria"] = [c for c in data["criteria"] if c["kind"] != "load_slo"]


def snapshot(run_dir: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (run_dir / "allure-results").glob("*")
        if p.is_file() and p.suffix != ".tmp"  # a file still being written, renamed when done
    }


def planned(run_dir: Path) -> set[str]:
    return set((run_dir / "planned.txt").read_text(encoding="utf-8").splitlines()) - {""}


def recorded(run_dir: Path) -> set[str]:
    """The node ids with a result in the run folder."""
    found = set()
    for path in (run_dir / "allure-results").glob("*-result.json"):
        labels = json.loads(path.read_text(encoding="utf-8")).get("labels", [])
        found |= {label["value"] for label in labels if label["name"] == "nodeid"}
    return found


def newest_run(reports: Path, before: set[Path]) -> Path | None:
    runs = set(reports.glob("*/2*")) - before
    return max(runs) if runs else None


@pytest.fixture
def hospital(make_plan, tmp_path):
    reports = tmp_path / "reports"
    plan = make_plan(without_load)
    up = rehearse(reports, "reference", "up", "--plan", str(plan))
    assert up.returncode == 0, up.stderr
    yield reports, plan
    rehearse(reports, "reference", "down")


def test_twenty_stops_lose_nothing_and_rerun_completes(hospital):
    reports, plan = hospital
    env = {**os.environ}
    env.pop("REHEARSAL_PASSWORD", None)
    one_site = ["--site", yaml.safe_load(plan.read_text(encoding="utf-8"))["sites"][0]["id"]]
    clean = rehearse(reports, "run", "--plan", str(plan), *one_site)  # how long a whole run takes here
    assert clean.returncode in (0, 1), clean.stdout + clean.stderr  # the other site is pending: NO-GO
    assert not [
        c
        for c in json.loads((reports / "latest/gonogo.json").read_text())["criteria"]
        if c["status"] == "fail"
    ]
    whole = json.loads((reports / "latest/run.json").read_text())
    length = (time.mktime(time.strptime(whole["finished"][:19], "%Y-%m-%dT%H:%M:%S"))
              - time.mktime(time.strptime(whole["started"][:19], "%Y-%m-%dT%H:%M:%S")))  # fmt: skip
    length = max(length, 3.0)
    stopped: list[Path] = []
    for point in range(POINTS):
        sig = SIGNALS[point % len(SIGNALS)]
        before = set(reports.glob("*/2*"))
        proc = subprocess.Popen(
            cli(reports, "run", "--plan", str(plan), *one_site),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=ctrl_c_works,
        )  # fmt: skip
        deadline = time.monotonic() + 0.2 + length * point / POINTS
        seen: dict[str, str] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            run_dir = newest_run(reports, before)
            if run_dir:
                seen = snapshot(run_dir)
            time.sleep(0.05)
        if proc.poll() is not None:
            continue  # it finished before this point: nothing to interrupt
        run_dir = newest_run(reports, before)
        seen = snapshot(run_dir) if run_dir else seen
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        if run_dir is None:
            continue  # stopped before the run folder existed: nothing recorded, nothing to lose
        after = snapshot(run_dir)
        lost = {name for name, digest in seen.items() if after.get(name) != digest}
        assert not lost, f"point {point} ({sig.name}): results lost or changed: {lost}"
        report = rehearse(reports, "report", str(run_dir))
        assert report.returncode == 1, report.stdout + report.stderr
        decision = json.loads((run_dir / "gonogo.json").read_text())
        if decision["complete"]:  # stopped after its last test (in the report): then nothing is missing
            assert planned(run_dir) <= recorded(run_dir), f"point {point}: complete, but not all ran"
            continue
        assert decision["decision"] == "NO-GO"
        assert any(c["id"] == "run-complete" and c["status"] == "fail" for c in decision["criteria"])
        stopped.append(run_dir)
    assert len(stopped) >= POINTS // 2, f"only {len(stopped)} of {POINTS} stops hit a running run"
    for run_dir in stopped[:: max(1, len(stopped) // 3)]:  # a few of them completed by a rerun
        rerun = rehearse(reports, "rerun", str(run_dir))
        assert rerun.returncode in (0, 1), rerun.stdout + rerun.stderr
        decision = json.loads((reports / "latest/gonogo.json").read_text())
        assert decision["complete"] is True and decision["parent"] == run_dir.name
        assert not [c for c in decision["criteria"] if c["status"] == "fail"], decision["criteria"]
