"""Must-show 3 of #15 through the real CLI on a run folder: people time the steps with
`rehearse runbook start|done|fail STEP --by NAME --at TIME`, `rehearse report` takes the decision.

- a manual step that overruns pushes the forecast past the window: NO-GO on the runbook
  criterion naming the step and its minutes of drift (on time: GO);
- a gate reached while one of its criteria fails fails, naming the gate and the criterion;
- a rollback drill that does not finish within its duration plus the margin, or not at all, fails.

The run folder is a real one (``create_run``) with T0 three hours back and the results the run
would have written at their times (tests/runbook_day.py), so nothing here waits for the clock.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from runbook_day import at, day, result, runbook_plan

from rehearsal.run import Run


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REHEARSAL_")}
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip


def manual(id: str, duration: float, **kw: Any) -> dict[str, Any]:
    return {
        "id": id,
        "title": id.capitalize(),
        "owner": "support",
        "kind": "manual",
        "duration": duration,
        **kw,
    }


MIGRATE = {"id": "migrate", "title": "Migrering", "owner": "support", "kind": "automated",
           "after": ["freeze"], "duration": 30, "criteria": ["tech-migration"]}  # fmt: skip


def timed(reports: Path, run: Run, step: str, action: str, minutes: float, by: str = "Johan Ek") -> str:
    done = rehearse(
        reports, "runbook", action, step, "--by", by, "--at", at(run, minutes).isoformat(), "--run", run.id
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def report(reports: Path, run: Run) -> tuple[int, dict[str, Any]]:
    done = rehearse(reports, "report", run.id)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    data = json.loads((run.dir / "gonogo.json").read_text(encoding="utf-8"))
    return done.returncode, next(c for c in data["criteria"] if c["id"] == "org-runbook")


@pytest.mark.parametrize(("done_at", "exit_code"), [(116, 1), (61, 0)])
def test_a_manual_step_overrunning_its_duration_is_no_go_naming_it_and_its_minutes(
    make_plan, tmp_path, done_at, exit_code
) -> None:
    reports = tmp_path / "reports"
    run = day(reports, runbook_plan(make_plan, [manual("freeze", 10, start=0), MIGRATE,
                                                manual("cutover", 20, after=["migrate"])]))  # fmt: skip
    result(run, "tech-migration", 11, 40)
    result(run, "tech-fhir", 41, 42)
    said = timed(reports, run, "freeze", "start", 0)
    assert said.startswith(
        f"runbook freeze: start by Johan Ek at {at(run, 0).isoformat(timespec='milliseconds')}"
    )
    timed(reports, run, "freeze", "done", 10)
    timed(reports, run, "cutover", "start", 41, by="Per Holm")
    timed(reports, run, "cutover", "done", done_at, by="Per Holm")

    code, line = report(reports, run)
    assert code == exit_code
    if exit_code:
        assert line["status"] == "fail"
        assert line["details"] == (
            "prognosen slutar vid 116 min, efter fönstret 120 min − marginal 10 min; "
            "mest eftersläpning: cutover +56 min (Cutover)"
        )
        assert "runbook:cutover" in line["evidence"]
    else:
        assert line["status"] == "pass" and line["details"].startswith("prognos 61 min inom 110 min")
    shown = rehearse(reports, "runbook", "show", "--run", run.id)
    assert shown.returncode == exit_code
    assert re.search(r"cutover\s+manual\s+support\s+40–60\s+41–" + str(done_at), shown.stdout), shown.stdout


@pytest.mark.parametrize(("fhir", "exit_code"), [("failed", 1), ("passed", 0)])
def test_a_gate_reached_with_a_failing_criterion_fails_the_gate(make_plan, tmp_path, fhir, exit_code) -> None:
    gate = {"id": "go-nogo", "title": "Go/no-go", "owner": "beslut", "kind": "gate", "after": ["migrate"],
            "duration": 5, "criteria": ["tech-fhir"]}  # fmt: skip
    reports = tmp_path / "reports"
    run = day(reports, runbook_plan(make_plan, [manual("freeze", 10, start=0), MIGRATE, gate]))
    result(run, "tech-fhir", 20, 21, fhir, message="CapabilityStatement saknas")
    result(run, "tech-migration", 11, 40)
    timed(reports, run, "freeze", "start", 0)
    timed(reports, run, "freeze", "done", 10)
    code, line = report(reports, run)
    assert code == exit_code
    if exit_code:
        assert line["status"] == "fail"
        assert line["details"].startswith(
            "beslutspunkt go-nogo nådd vid 40 min med tech-fhir underkänt: 0 av 1"
        )
    else:
        assert line["status"] == "pass" and "beslutspunkt go-nogo höll vid 40 min" in line["details"]


@pytest.mark.parametrize(
    ("done_at", "status", "words"),
    [
        (35, "fail", r"återgångsövning back tog 25 min, tillåtet 20 min \(10 \+ 10\)"),
        (
            None,
            "fail",
            r"återgångsövning back inte klar efter 1[67]\d(\.\d)? min, tillåtet 20 min \(10 \+ 10\)",
        ),
        (28, "pass", r"återgångsövning back klar på 18 min \(tillåtet 20\)"),
    ],
)
def test_a_rollback_drill_not_finished_in_time_or_at_all_fails(
    make_plan, tmp_path, done_at, status, words
) -> None:
    back = {"id": "back", "title": "Återgång", "owner": "support", "kind": "rollback", "after": ["freeze"],
            "duration": 10}  # fmt: skip
    reports = tmp_path / "reports"
    run = day(reports, runbook_plan(make_plan, [manual("freeze", 10, start=0), back]))
    result(run, "tech-fhir", 1, 2)
    result(run, "tech-migration", 1, 2)
    timed(reports, run, "freeze", "done", 10)
    timed(reports, run, "back", "start", 10)
    if done_at is not None:
        timed(reports, run, "back", "done", done_at)
    code, line = report(reports, run)
    assert (code, line["status"]) == ((1, "fail") if status == "fail" else (0, "pass"))
    assert re.search(words, line["details"]), line["details"]


def test_refusals_are_one_line_and_exit_2(make_plan, tmp_path) -> None:
    reports = tmp_path / "reports"
    run = day(reports, runbook_plan(make_plan, [manual("freeze", 10, start=0), MIGRATE]))
    cases = {
        (
            "start",
            "migrate",
            "--by",
            "X",
        ): "runbook step migrate is automated: its times come from the run's results",
        ("start", "thaw", "--by", "X"): "the runbook has no step 'thaw' (steps: freeze, migrate)",
        ("done", "freeze"): "rehearse runbook done needs STEP and --by NAME",
        (
            "done",
            "freeze",
            "--by",
            "X",
            "--at",
            "igår",
        ): "--at 'igår': expected HH:MM[:SS] or an ISO 8601 time",
    }
    for args, message in cases.items():
        done = rehearse(reports, "runbook", *args, "--run", run.id)
        assert (done.returncode, done.stderr, done.stdout) == (2, f"rehearse: {message}\n", ""), args
    assert not (run.dir / "runbook.jsonl").exists()  # nothing recorded by a refused command

    def without(data: dict[str, Any]) -> None:
        data.pop("runbook")
        data["criteria"] = [c for c in data["criteria"] if c["kind"] != "runbook"]

    other = day(tmp_path / "other", make_plan(without, name="plain.yaml"))
    done = rehearse(tmp_path / "other", "runbook", "show", "--run", other.id)
    assert (
        done.returncode == 2
        and done.stderr == f"rehearse: the plan of run {other.id} has no runbook (runbook: in the plan)\n"
    )
