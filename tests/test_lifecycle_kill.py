"""`kill -9` of `rehearse run` at three points — early (the session starting, before it knows what it
will run), mid-run (results being written, the browser open) and during the load (Locust
running): 5 s later no process of the run's tree is alive, the run is recorded as incomplete,
and the next `rehearse rerun` completes it with GO on a clean hospital (#12 finding 8, item 7).
"""

from __future__ import annotations

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
from test_interruption import ctrl_c_works

from conftest import few_criteria
from rehearsal.rerun import select
from rehearsal.run import load_run
from tests.sockets import descendants

pytestmark = pytest.mark.slow
ENV = {**os.environ, "REHEARSAL_PASSWORD": "lifecycle-kill-test"}


def cli(reports: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rehearsal", "--reports", str(reports), *args]


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(reports, *args), capture_output=True, text=True, timeout=400, env=ENV)


def short_load(data: dict[str, Any]) -> None:
    """A 4 s load with roomy bounds and no runbook clock: this is about processes, not about speed
    (the machine running the suite is shared), and a chain of killed runs is no cutover on the clock.
    In 4 s a path that waits on results the killed runs never made may err or be slow (seen once:
    view-results at NÄL); the SLOs themselves are tests/test_load*.py's."""
    data["load"]["duration_s"] = 4
    for path in data["load"]["paths"]:
        path["p95_ms"], path["p99_ms"] = path["p95_ms"] * 10, path["p99_ms"] * 10
        path["max_error_ratio"], path["min_rps"] = 1.0, 0.01
    few_criteria(data)  # the kills land at the same points with one browser scenario a site


def identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time): a pid the kernel gives to a new process later is not the same process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else (pid, fields[19])


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def newest_run(reports: Path) -> Path | None:
    runs = sorted(reports.glob("*/2*"))
    return runs[-1] if runs else None


@pytest.fixture
def hospital(make_plan, tmp_path):
    reports = tmp_path / "reports"
    plan = make_plan(short_load)
    up = rehearse(reports, "reference", "up", "--plan", str(plan))
    assert up.returncode == 0, up.stderr
    yield reports, plan
    rehearse(reports, "reference", "down")


def kill_when(
    reports: Path,
    plan: Path,
    ready: Callable[[set[int], Path | None], bool],
    *args: str,
    sig: signal.Signals = signal.SIGKILL,
) -> Path:
    """Start `rehearse run` (with `args`), send it `sig` once `ready(tree, run_dir)`, and check its whole
    tree is gone 5 s after it ended. Returns the run folder."""
    before = set(reports.glob("*/2*"))
    proc = subprocess.Popen(cli(reports, "run", "--plan", str(plan), *args), env=ENV, preexec_fn=ctrl_c_works,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    seen: set[tuple[int, str]] = set()
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, f"the run ended before the point: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "the point never came"
        tree = descendants(proc.pid) - {proc.pid}
        seen |= {i for i in map(identity, tree) if i}
        run_dir = next(iter(set(reports.glob("*/2*")) - before), None)
        if ready(tree, run_dir):
            break
        time.sleep(0.05)
    seen |= {i for i in map(identity, descendants(proc.pid) - {proc.pid}) if i}
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err, err.decode(errors="replace")[-3000:]
    time.sleep(5)
    left = [(pid, cmdline(pid)[:120]) for pid, start in seen if identity(pid) == (pid, start)]
    assert left == [], f"{len(left)} of {len(seen)} processes of the run outlived it by 5 s: {left}"
    assert run_dir is not None
    assert json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["complete"] is False
    return run_dir


def session_started(tree: set[int], run_dir: Path | None) -> bool:
    return run_dir is not None and any(b"-m pytest" in cmdline(p) for p in tree)


def results_coming(tree: set[int], run_dir: Path | None) -> bool:
    return run_dir is not None and len(list((run_dir / "allure-results").glob("*-result.json"))) >= 3


def both_sessions_writing(tree: set[int], run_dir: Path | None) -> bool:
    """``--jobs 2``: the two sessions side by side (not the one that only plans), results coming."""
    return sum(b"-m pytest" in cmdline(p) for p in tree) >= 2 and results_coming(tree, run_dir)


def load_running(tree: set[int], run_dir: Path | None) -> bool:
    return any(b"locustfile" in cmdline(p) for p in tree)


def test_kill_9_at_three_points_leaves_nothing_and_rerun_completes_with_go(hospital):
    reports, plan = hospital
    early = kill_when(reports, plan, session_started)
    assert select(load_run(reports, str(early)))[0]  # something to rerun: whole plan or what was missing
    mid = kill_when(reports, plan, results_coming)
    assert select(load_run(reports, str(mid)))[0].missing  # what never finished is taken again
    during_load = kill_when(reports, plan, load_running)
    selection, _ = select(load_run(reports, str(during_load)))
    assert any(n.startswith("slo:") for n in selection.missing), selection  # the load's SLOs, by stable id

    report = rehearse(reports, "report", str(during_load))
    assert report.returncode == 1, report.stdout + report.stderr
    assert "INCOMPLETE" in report.stdout

    rerun = rehearse(reports, "rerun", str(during_load))
    decision = json.loads((reports / "latest" / "gonogo.json").read_text(encoding="utf-8"))
    assert decision["complete"] is True and decision["parent"] == during_load.name, rerun.stdout
    identities = next(c for c in decision["criteria"] if c["id"] == "tech-test-identities")
    assert identities["status"] == "pass", identities  # no orphan of the killed runs was still at it
    assert rerun.returncode == 0 and decision["decision"] == "GO", rerun.stdout + rerun.stderr


def test_kill_9_of_demo_takes_its_hospital_along(make_plan, tmp_path):
    """`rehearse demo` starts the reference hospital for itself: killed outright, it leaves none."""
    reports = tmp_path / "reports"
    proc = subprocess.Popen(cli(reports, "demo", "--plan", str(make_plan(short_load))), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    seen: set[tuple[int, str]] = set()
    deadline = time.monotonic() + 120
    while not any(b"-m pytest" in cmdline(p) for p in descendants(proc.pid)):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the demo never started rehearsing"
        seen |= {i for i in map(identity, descendants(proc.pid) - {proc.pid}) if i}
        time.sleep(0.05)
    seen |= {i for i in map(identity, descendants(proc.pid) - {proc.pid}) if i}
    assert any(b"reference_hospital.serve" in cmdline(pid) for pid, _ in seen)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(5)
    left = [(pid, cmdline(pid)[:120]) for pid, start in seen if identity(pid) == (pid, start)]
    assert left == [], f"{len(left)} of {len(seen)} processes of the demo outlived it by 5 s: {left}"


def test_jobs_2_stopped_by_kill_9_or_ctrl_c_leaves_nothing_and_rerun_completes_with_go(hospital):
    """Sessions side by side (``--jobs 2``): a kill -9 of the CLI takes both sessions and their browsers
    along, a Ctrl-C stops both and records the run as incomplete; what each had written is kept, and
    a rerun with ``--jobs 2`` completes the interrupted run."""
    reports, plan = hospital
    killed = kill_when(reports, plan, both_sessions_writing, "--jobs", "2")
    assert select(load_run(reports, str(killed)))[0].missing
    interrupted = kill_when(reports, plan, both_sessions_writing, "--jobs", "2", sig=signal.SIGINT)
    kept = {p.name for p in (interrupted / "allure-results").glob("*-result.json")}
    selection, _ = select(load_run(reports, str(interrupted)))
    assert kept and selection.missing, selection

    rerun = rehearse(reports, "rerun", str(interrupted), "--jobs", "2")
    decision = json.loads((reports / "latest" / "gonogo.json").read_text(encoding="utf-8"))
    assert decision["complete"] is True and decision["parent"] == interrupted.name, rerun.stdout
    assert kept <= {p.name for p in (interrupted / "allure-results").glob("*-result.json")}
    assert rerun.returncode == 0 and decision["decision"] == "GO", rerun.stdout + rerun.stderr
