"""A run whose command was killed: completed by `rehearse report` when every planned test has its
result, rerun for what it never recorded, and left alone while a process of it still runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rehearsal import lifetime
from rehearsal.plan import load_plan
from rehearsal.rerun import select
from rehearsal.run import PLANNED_FILE, create_run, load_run
from tests.test_report import add_result

ENV = {**os.environ, "REHEARSAL_PASSWORD": "lifecycle-settle-test"}


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=240, env=ENV,
    )  # fmt: skip


@pytest.fixture
def killed_run(make_plan, tmp_path):
    """A run as `kill -9` of its CLI leaves it: run.json incomplete, planned.txt, some results."""
    reports = tmp_path / "reports"
    run = create_run(reports, load_plan(make_plan()))
    planned = "tests/t.py::Inloggning\ntests/t.py::Labbeställning\n"
    (run.dir / PLANNED_FILE).write_text(planned, encoding="utf-8")
    add_result(run, "Inloggning", "passed", 1_000, criterion="klin-login", aspect="klinisk")
    (run.results_dir / "0000-result.json.tmp").write_text("", encoding="utf-8")  # a write cut off
    return reports, run


def test_report_completes_a_killed_run_that_has_every_result(killed_run):
    reports, run = killed_run
    add_result(run, "Labbeställning", "passed", 2_000, criterion="tech-integrations")
    done = rehearse(reports, "report", run.id)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert f"run {run.id}: every planned test has its result" in done.stderr
    assert "marked complete" in done.stderr
    assert "INCOMPLETE" not in done.stdout
    record = json.loads((run.dir / "run.json").read_text(encoding="utf-8"))
    assert record["complete"] is True and record["completed_by"]
    assert json.loads((run.dir / "gonogo.json").read_text(encoding="utf-8"))["complete"] is True
    assert not list(run.dir.rglob("*.tmp"))


def test_a_killed_run_missing_a_result_stays_incomplete_and_its_rerun_takes_it(killed_run):
    reports, run = killed_run
    done = rehearse(reports, "report", run.id)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "marked complete" not in done.stderr and "INCOMPLETE" in done.stdout
    assert load_run(reports, run.id).complete is False
    selection, _ = select(load_run(reports, run.id))
    assert selection.missing == ["tests/t.py::Labbeställning"]


HOLDER = textwrap.dedent(
    """
    import sys, time
    from rehearsal import lifetime
    lock = lifetime.RunLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(300)
    """
)


def test_a_run_still_running_is_not_rerun_nor_completed(killed_run):
    reports, run = killed_run
    add_result(run, "Labbeställning", "passed", 2_000, criterion="tech-integrations")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run.dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lifetime.still_running(run.dir) == [holder.pid]
        refused = rehearse(reports, "rerun", run.id)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert lines == [f"rehearse: run {run.id} is still running (pid {holder.pid}); wait for it to end or "
                         "stop it, then rerun"]  # fmt: skip
        report = rehearse(reports, "report", run.id)
        assert f"run {run.id} is still running (pid {holder.pid})" in report.stderr
        assert load_run(reports, run.id).complete is False
        assert (run.results_dir / "0000-result.json.tmp").exists()  # not ours to clean while it writes
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while lifetime.holders(run.dir) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lifetime.still_running(run.dir) is None
