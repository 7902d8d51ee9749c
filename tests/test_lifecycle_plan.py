"""A run keeps the plan it ran: `rehearse report` of an old run decides on that copy, from any
directory, and says in one line when the plan on disk differs (#12 finding 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from rehearsal.plan import load_plan
from rehearsal.run import create_run, finish_run, load_run
from tests.test_report import add_result

ENV = {**os.environ, "REHEARSAL_PASSWORD": "lifecycle-plan-test"}


def rehearse(reports: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=240, env=ENV, cwd=cwd,
    )  # fmt: skip


def fhir_line(run_dir: Path) -> dict:
    decision = json.loads((run_dir / "gonogo.json").read_text(encoding="utf-8"))
    return next(c for c in decision["criteria"] if c["id"] == "tech-fhir")


def test_report_of_an_old_run_uses_its_plan_copy_and_says_the_disk_differs(make_plan, tmp_path, monkeypatch):
    plan = make_plan()
    monkeypatch.chdir(plan.parent)
    loaded = load_plan(Path(plan.name))  # relative, as a test lead types it
    reports = tmp_path / "reports"
    run = create_run(reports, loaded, attestations=[plan.with_name("plan.attestations.yaml")])
    add_result(run, "FHIR sök 1", "passed", 1_000, criterion="tech-fhir")
    add_result(run, "FHIR sök 2", "failed", 2_000, criterion="tech-fhir", message="404 Patient")
    run = finish_run(run, complete=True)

    record = json.loads((run.dir / "run.json").read_text(encoding="utf-8"))
    assert record["plan_path"] == str(plan.resolve())  # absolute: found from any directory
    roles = {i["role"]: i for i in record["inputs"]}
    assert (run.dir / roles["plan"]["copy"]).read_bytes() == plan.read_bytes()
    assert Path(roles["attestations"]["source"]).is_absolute()
    assert (run.dir / roles["attestations"]["copy"]).is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = rehearse(reports, "report", run.id, cwd=elsewhere)
    assert first.returncode == 1, first.stdout + first.stderr
    assert fhir_line(run.dir)["status"] == "fail"
    assert "differs" not in first.stderr

    data = yaml.safe_load(plan.read_text(encoding="utf-8"))
    next(c for c in data["criteria"] if c["id"] == "tech-fhir")["threshold"] = 0  # 1 of 2 would now pass
    plan.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    again = rehearse(reports, "report", str(run.dir), cwd=elsewhere)
    assert again.returncode == 1, again.stdout + again.stderr  # the old decision: NO-GO
    assert fhir_line(run.dir)["status"] == "fail"
    notes = [line for line in again.stderr.splitlines() if "plan on disk" in line]
    assert len(notes) == 1, again.stderr
    assert str(plan.resolve()) in notes[0] and "differs from the one this run used" in notes[0]
    assert load_run(reports, run.id).plan_sha256 == roles["plan"]["sha256"]
