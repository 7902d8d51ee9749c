"""Progress in the terminal (#15): the run folder first, counts per site × aspect as results land,
each failure as one line, the time left from the previous run; `-q` the verdict alone."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from rehearsal import progress, redact
from rehearsal.run import PLANNED_FILE, RUN_FILE, Run

ASPECT = "organisatorisk"


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REHEARSAL_QUIET"}
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def a_run(
    tmp_path: Path, run_id: str = "20261202T080000Z-0001", started: str = "2026-12-02T08:00:00+00:00"
) -> Run:
    folder = tmp_path / "reports" / "gr1" / run_id
    (folder / "allure-results").mkdir(parents=True)
    return Run(
        id=run_id, rehearsal="gr1", plan_path="/plans/gr1.yaml", plan_sha256="0", started=started, dir=folder
    )


def result(
    status: str,
    site: str | None,
    aspect: str,
    criterion: str,
    message: str | None = None,
    nodeid: str = "x::other",
) -> dict[str, object]:
    labels = [{"name": "aspect", "value": aspect}, {"name": "criterion", "value": criterion}]
    if site:
        labels.append({"name": "site", "value": site})
    labels.append({"name": "nodeid", "value": nodeid})
    data: dict[str, object] = {"name": f"test {criterion}", "status": status, "labels": labels}
    if message is not None:
        data["statusDetails"] = {"message": message}
    return data


def land(run: Run, name: str, data: dict[str, object]) -> None:
    (run.results_dir / f"{name}-result.json").write_text(json.dumps(data), encoding="utf-8")


def test_results_landing_one_by_one_each_show_once_a_partial_file_when_whole(tmp_path: Path):
    run = a_run(tmp_path)
    out = io.StringIO()
    watcher = progress.Watcher(run, out)
    assert watcher.header() == [f"rehearse: run {run.id}: {run.dir}"]
    assert watcher.poll() == []

    land(run, "a", result("passed", "sas-boras", "klinisk", "clin-lab-order", nodeid="x::a"))
    assert watcher.poll() == ["  sas-boras · klinisk: 1/1 klara"]
    assert watcher.poll() == []  # nothing new: nothing printed

    (run.dir / PLANNED_FILE).write_text("x::a\nx::b\nx::c\nx::d\n", encoding="utf-8")
    whole = json.dumps(
        result("failed", "sas-boras", "klinisk", "clin-printing", "skrivaren svarar inte\nrad 2", "x::b")
    )
    partial = run.results_dir / "b-result.json"
    partial.write_text(whole[: len(whole) // 2], encoding="utf-8")  # the writer is half-way
    land(run, "c", result("passed", None, ASPECT, "org-roster", nodeid="x::c"))
    assert watcher.poll() == ["  central · organisatorisk: 1/1 klara  [2/4, nu: b]"]

    partial.write_text(whole, encoding="utf-8")
    assert watcher.poll() == [
        "  underkänd: sas-boras · clin-printing: skrivaren svarar inte",
        "  sas-boras · klinisk: 1/2 klara, 1 underkänd  [3/4, nu: d]",
    ]
    assert out.getvalue().splitlines() == [
        "  sas-boras · klinisk: 1/1 klara",
        "  central · organisatorisk: 1/1 klara  [2/4, nu: b]",
        "  underkänd: sas-boras · clin-printing: skrivaren svarar inte",
        "  sas-boras · klinisk: 1/2 klara, 1 underkänd  [3/4, nu: d]",
    ]


def test_a_failure_line_is_one_plain_line_with_secrets_and_patient_numbers_masked(tmp_path: Path):
    run = a_run(tmp_path)
    watcher = progress.Watcher(run, io.StringIO(), mask=redact.Redactor(["hemligt-lösen-7"]).text)
    message = "\x1b[2J\x1b[32mGO\x1b[0m login med hemligt-lösen-7 för 19121212-1212 nekades\n  Traceback …"
    land(run, "a", result("broken", "nal-trollhattan", "teknisk", "tech-login", message))
    lines = watcher.poll()
    assert (
        lines[0]
        == "  trasig: nal-trollhattan · tech-login: GO login med [maskerat] för 19121212-**** nekades"
    )
    assert lines[1] == "  nal-trollhattan · teknisk: 0/1 klara, 1 underkänd"
    assert all("\x1b" not in line for line in lines)


def test_time_left_comes_from_the_previous_complete_run_of_the_same_plan(tmp_path: Path):
    previous = a_run(tmp_path, "20261202T070000Z-0000", "2026-12-02T07:00:00+00:00")
    done = {**previous.to_json(), "finished": "2026-12-02T07:02:00+00:00", "complete": True}
    (previous.dir / RUN_FILE).write_text(json.dumps(done), encoding="utf-8")
    other = a_run(tmp_path, "20261202T075000Z-0002", "2026-12-02T07:50:00+00:00")  # a rerun: other scope
    rerun = {
        **other.to_json(),
        "selection": ["x::a"],
        "finished": "2026-12-02T07:50:05+00:00",
        "complete": True,
    }
    (other.dir / RUN_FILE).write_text(json.dumps(rerun), encoding="utf-8")
    run = a_run(tmp_path)
    clock = [run_started := 1796198400.0]  # 2026-12-02T08:00:00Z
    watcher = progress.Watcher(run, io.StringIO(), now=lambda: clock[0])
    assert watcher.header()[1] == "  the previous run of this plan took 2 min 00 s"
    clock[0] = run_started + 30
    land(run, "a", result("passed", "sas-boras", ASPECT, "org-readiness"))
    assert watcher.poll() == ["  sas-boras · organisatorisk: 1/1 klara  [~1 min 30 s kvar]"]


def test_a_broken_output_never_reaches_the_run(tmp_path: Path):
    class Refusing(io.StringIO):
        """Takes the run-folder line, then the terminal is gone."""

        def write(self, text: str) -> int:
            if self.getvalue():
                raise OSError(5, "terminal gone")
            return super().write(text)

    run = a_run(tmp_path)
    progress.enable(Refusing())
    try:
        with progress.watching(run) as watcher:
            land(run, "a", result("passed", "sas-boras", ASPECT, "org-readiness"))
        assert watcher is not None
    finally:
        progress.disable()
    with progress.watching(run) as nothing:  # switched off: nothing at all
        assert nothing is None


def test_run_prints_the_run_folder_first_then_each_site_and_aspect(make_plan, tmp_path: Path):
    reports = tmp_path / "reports"
    plan = make_plan()
    attested = plan.with_name(f"{plan.stem}.attestations.yaml")
    given = attested.read_text(encoding="utf-8").splitlines()
    refused = [
        line.replace("ok: true", "ok: false") if "eskalering, site: sas-boras" in line else line
        for line in given
    ]
    assert refused != given
    attested.write_text("\n".join(refused) + "\n", encoding="utf-8")
    done = rehearse(reports, "run", "--plan", str(plan), "--aspect", ASPECT)
    assert done.returncode == 1, done.stdout + done.stderr  # the clinical and technical lines are pending
    run = (reports / "latest").resolve()
    lines = done.stderr.splitlines()
    assert lines[0] == f"rehearse: run {run.name}: {run}", done.stderr
    for site in ("sas-boras", "nal-trollhattan", "central"):
        shown = [line for line in lines if line.startswith(f"  {site} · {ASPECT}: ")]
        assert shown, (site, done.stderr)
    failures = [line for line in lines if line.startswith("  underkänd: ")]
    assert len(failures) == 1, done.stderr
    assert failures[0].startswith("  underkänd: sas-boras · org-readiness: att en testincident"), failures
    assert "underkänt av Karin Berg" in failures[0]
    assert done.stdout.startswith(f"NO-GO: demo-gr1 run {run.name}")
    assert "rehearse:" not in done.stdout and "klara" not in done.stdout  # the verdict alone on stdout

    again = rehearse(reports, "-q", "run", "--plan", str(plan), "--aspect", ASPECT)
    assert again.returncode == 1, again.stdout + again.stderr
    second = (reports / "latest").resolve()
    assert again.stdout.splitlines() == [f"NO-GO: demo-gr1 run {second.name}"]
    assert again.stderr == ""


def test_version(tmp_path: Path):
    from importlib.metadata import version

    done = rehearse(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"rehearse {version('golive-rehearsal')}"
