"""A run stopped at any point keeps what it recorded, reports itself incomplete (NO-GO), and
`rehearse rerun` completes it.

A run of the demo plan at one site (without its load profile) is stopped at each point where
what is in flight differs, a run for each point:

- at once: the CLI still starting, no run folder yet (nothing recorded, nothing to lose);
- folder: the run folder made, the pytest session starting, nothing planned yet;
- planned: ``planned.txt`` written, results about to come;
- first result, half, all but one: results being written, the browser open;
- all: every planned result in, the session ending and the report being built.

The signals cycle over the points (SIGKILL, SIGINT, SIGTERM, SIGKILL, ...), so each lands early,
mid-run and late: SIGINT and SIGTERM take the CLI's interrupt path (child stopped, run finished as
incomplete), SIGKILL the child's (parent-death signal, its tree killed). SIGKILL comes first: a
Ctrl-C that lands while Python itself is still starting gets Python's own traceback. This test
once made twenty stops at fractions of a measured run's length; stops keyed to the run's own
events reach the same distinct moments in a third of the runs, and reach them on a loaded machine
too, where a fraction of a length measured once lands anywhere. The latest incomplete run of each
signal, and the earliest of all (nothing or little recorded: the rerun takes nearly everything),
are completed by `rehearse rerun`: complete, and nothing failing (so the site is GO once the stops
are made good).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import few_criteria

pytestmark = pytest.mark.slow
SIGNALS = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM)


def ctrl_c_works() -> None:
    """In the child: SIGINT as a terminal gives it, even when this suite was started in the
    background of a script (which ignores SIGINT, and Python then keeps ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(reports: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rehearsal", "--reports", str(reports), *args]


#: The hospital and every run without REHEARSAL_PASSWORD: both fall back to the same test password
#: (an earlier test of the same worker may have left another in the environment).
ENV = {k: v for k, v in os.environ.items() if k != "REHEARSAL_PASSWORD"}


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(reports, *args), capture_output=True, text=True, timeout=420, env=ENV)


def without_load(data: dict[str, Any]) -> None:
    """Without the load profile, and without the runbook's time-keeping: a chain of stopped runs
    and reruns is not a cutover on the clock (that is tests/test_runbook*.py's); with few criteria
    (conftest.FEW_CRITERIA): what a stop loses does not depend on which scenarios were running."""
    data.pop("load")
    few_criteria(data)
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


def results_in(run_dir: Path | None, share: float, less: int = 0) -> bool:
    """At least ``share`` of the planned tests (less ``less``) have a result file."""
    if run_dir is None or not (run_dir / "planned.txt").is_file():
        return False
    done = len(list((run_dir / "allure-results").glob("*-result.json")))
    return done >= max(1, int(len(planned(run_dir)) * share) - less)


#: (point, is it here yet, given the run folder (None until made) and the seconds since the start)
Point = Callable[[Path | None, float], bool]
POINTS: list[tuple[str, Point]] = [
    ("at once", lambda run_dir, elapsed: elapsed >= 0.2),
    ("folder", lambda run_dir, elapsed: run_dir is not None),
    ("planned", lambda run_dir, elapsed: run_dir is not None and (run_dir / "planned.txt").is_file()),
    ("first result", lambda run_dir, elapsed: results_in(run_dir, 0)),
    ("half", lambda run_dir, elapsed: results_in(run_dir, 0.5)),
    ("all but one", lambda run_dir, elapsed: results_in(run_dir, 1, less=1)),
    ("all", lambda run_dir, elapsed: results_in(run_dir, 1)),
]


@pytest.fixture
def hospital(make_plan, tmp_path):
    reports = tmp_path / "reports"
    plan = make_plan(without_load)
    up = rehearse(reports, "reference", "up", "--plan", str(plan))
    assert up.returncode == 0, up.stderr
    yield reports, plan
    rehearse(reports, "reference", "down")


def test_stops_at_every_point_lose_nothing_and_rerun_completes(hospital):
    reports, plan = hospital
    env = ENV
    one_site = ["--site", yaml.safe_load(plan.read_text(encoding="utf-8"))["sites"][0]["id"]]
    stopped: dict[signal.Signals, list[Path]] = {sig: [] for sig in SIGNALS}
    for number, (point, here) in enumerate(POINTS):
        sig = SIGNALS[number % len(SIGNALS)]
        before = set(reports.glob("*/2*"))
        started = time.monotonic()
        proc = subprocess.Popen(
            cli(reports, "run", "--plan", str(plan), *one_site),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=ctrl_c_works,
        )  # fmt: skip
        while proc.poll() is None and not here(newest_run(reports, before), time.monotonic() - started):
            assert time.monotonic() - started < 240, f"{point}: the point never came"
            time.sleep(0.05)
        if proc.poll() is not None:  # it finished before this point: nothing to interrupt
            out, err = proc.communicate()
            assert proc.returncode in (0, 1), f"{point}: the run itself failed: {err[-2000:]}"
            continue
        run_dir = newest_run(reports, before)
        seen = snapshot(run_dir) if run_dir else {}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        if run_dir is None:
            continue  # stopped before the run folder existed: nothing recorded, nothing to lose
        after = snapshot(run_dir)
        lost = {name for name, digest in seen.items() if after.get(name) != digest}
        assert not lost, f"{point} ({sig.name}): results lost or changed: {lost}"
        report = rehearse(reports, "report", str(run_dir))
        assert report.returncode == 1, report.stdout + report.stderr
        decision = json.loads((run_dir / "gonogo.json").read_text())
        if decision["complete"]:  # stopped after its last test (in the report): then nothing is missing
            assert planned(run_dir) <= recorded(run_dir), f"{point}: complete, but not all ran"
            continue
        assert decision["decision"] == "NO-GO"
        assert any(c["id"] == "run-complete" and c["status"] == "fail" for c in decision["criteria"])
        stopped[sig].append(run_dir)
    counts = {sig.name: len(runs) for sig, runs in stopped.items()}
    assert all(stopped.values()), f"a signal never stopped a running run: {counts}"
    earliest = min((runs[0] for runs in stopped.values()), key=lambda run: run.name)
    for run_dir in sorted({earliest, *(runs[-1] for runs in stopped.values())}):
        rerun = rehearse(reports, "rerun", str(run_dir))  # what it missed (the earliest: everything)
        assert rerun.returncode in (0, 1), rerun.stdout + rerun.stderr
        decision = json.loads((reports / "latest/gonogo.json").read_text())
        assert decision["complete"] is True and decision["parent"] == run_dir.name, run_dir.name
        assert not [c for c in decision["criteria"] if c["status"] == "fail"], decision["criteria"]
