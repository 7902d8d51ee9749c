"""The CLI's contract for user errors: one line, exit 2, no traceback, nothing half-made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def rehearse(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with the plan users' password set, as on a machine ready to rehearse."""
    env = {**os.environ, "REHEARSAL_PASSWORD": os.environ.get("REHEARSAL_PASSWORD") or "cli-test-pw"}
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_run_against_an_unreachable_target_says_where_and_records_nothing(make_plan, tmp_path):
    reports = tmp_path / "reports"
    line = one_line_error(rehearse("--reports", str(reports), "run", "--plan", str(make_plan())))
    assert "environment.fhir_base" in line and "refused" in line.lower()
    assert not reports.exists() or not any(reports.rglob("run.json"))


def test_report_and_rerun_without_any_run(tmp_path):
    for command in ("report", "rerun"):
        line = one_line_error(rehearse("--reports", str(tmp_path), command))
        assert "no run yet" in line


def test_unknown_run_id(tmp_path):
    line = one_line_error(rehearse("--reports", str(tmp_path), "report", "20990101T000000Z-dead"))
    assert "no such run" in line


def test_fault_without_a_running_hospital(tmp_path):
    line = one_line_error(rehearse("--reports", str(tmp_path), "fault", "set", "slow-patient-search"))
    assert "no reference hospital" in line.lower()


def test_run_with_an_unknown_site(make_plan, tmp_path):
    line = one_line_error(
        rehearse("--reports", str(tmp_path), "run", "--plan", str(make_plan()), "--site", "nowhere")
    )
    assert "nowhere" in line


def test_commands_that_reach_an_environment_never_guess_a_plan(tmp_path):
    """Without --plan, `hardware` once rehearsed the repository's demo plan and probed its devices."""
    for command in ("run", "load", "hardware"):
        done = subprocess.run(
            [sys.executable, "-m", "rehearsal.cli", "--reports", str(tmp_path), command],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k != "REHEARSAL_PLAN"},
        )  # fmt: skip
        assert one_line_error(done) == (
            f"rehearse: {command} needs a plan: --plan PLAN or the environment variable REHEARSAL_PLAN"
        )
    assert not any(tmp_path.rglob("run.json"))


def test_hardware_rerun_without_a_plan_takes_the_plan_of_that_run(tmp_path):
    line = one_line_error(rehearse("--reports", str(tmp_path), "hardware", "--rerun"))
    assert "no run yet" in line  # it looked for the run, not for plans/demo.yaml


def test_a_reader_that_has_gone_ends_it_quietly(tmp_path):
    """`rehearse fault list | head -1`: the reader closes the pipe; no 'internal error', SIGPIPE's code."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: every write meets a closed pipe
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rehearsal.cli", "--reports", str(tmp_path), "fault", "list"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""
