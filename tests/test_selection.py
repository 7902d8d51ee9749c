"""#13 selection below site and aspect: `rehearse run --criterion ID` and `--tag TAG` run only what
feeds those criteria (scenarios, device checks, load SLOs), a plan without a criterion runs
nothing for it, the preflight asks only the entry points the selection uses, and an unknown
criterion is one line naming the known ones.

The collection is pytest's own (``--collect-only`` on the repository's content with the plan),
the last tests go through the real CLI against the reference hospital's EHR on loopback with the
plan's ``web_base`` on a port where nothing listens.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rehearsal.errors import UsageError
from rehearsal.plan import load_plan
from rehearsal.selection import Selection, endpoints_used, in_scope
from tests.conftest import DEMO_PLAN, ROOT, free_port

ENV = {**os.environ, "REHEARSAL_PASSWORD": "selection-13-lösen"}


@functools.cache
def collected(plan: Path, *args: str) -> tuple[str, ...]:
    """The node ids a rehearsal of `plan` would run, with these selection options (pytest's collection;
    nothing is sent anywhere, so the demo plan itself will do)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *(str(ROOT / c) for c in ("scenarios", "hardware_checks", "load")),
         "--rootdir", str(ROOT), "-o", "addopts=", "-p", "no:cacheprovider", "-p", "rehearsal.selection",
         "-o", f"bdd_features_base_dir={ROOT / 'features'}", "--rehearsal-plan", str(plan),
         "--collect-only", "-q", *args],
        capture_output=True, text=True, timeout=180, cwd=ROOT, env=ENV,
    )  # fmt: skip
    assert done.returncode in (0, 5), done.stdout + done.stderr
    return tuple(line for line in done.stdout.splitlines() if "::" in line)


def module(nodeid: str) -> str:
    return nodeid.split("::")[0].rsplit("/", 1)[-1]


# --- which criteria, which entry points ---------------------------------------------------------


def test_an_unknown_criterion_is_refused_naming_the_known_ones() -> None:
    plan = load_plan(DEMO_PLAN).plan
    with pytest.raises(UsageError) as refused:
        Selection.of(plan, ["tech-fhri"])
    said = str(refused.value)
    assert said.startswith(
        "--criterion tech-fhri: the plan has no such criterion (criteria: org-transition, "
    )
    assert all(c.id in said for c in plan.criteria) and "\n" not in said
    with pytest.raises(UsageError, match="--tag criterion:nope: the plan has no criterion 'nope'"):
        Selection.of(plan, tags=["criterion:nope"])
    with pytest.raises(UsageError, match="a tag is NAME or NAME:VALUE"):
        Selection.of(plan, tags=["system:"])
    assert Selection.of(plan, ["tech-fhir", "tech-fhir"], ["@writes"]) == Selection(
        ("tech-fhir",), ("writes",)
    )


@pytest.mark.parametrize(
    ("criteria", "aspects", "uses"),
    [
        (["tech-fhir"], [], ["fhir_base"]),
        (["clin-lab-order"], [], ["fhir_base", "web_base"]),
        (["tech-printers", "tech-workstations"], [], []),  # the devices are asked themselves
        (["org-roster"], [], []),
        (["load-slo"], [], ["fhir_base"]),
        (["run-complete"], [], []),
        ([], ["teknisk"], ["fhir_base"]),
        ([], ["organisatorisk"], []),
        ([], [], ["fhir_base", "web_base"]),
        (["clin-lab-order"], ["teknisk"], []),  # the aspect narrows it away
    ],
)
def test_the_preflight_set_is_what_the_selected_criteria_reach(
    criteria: list[str], aspects: list[str], uses: list[str]
) -> None:
    plan = load_plan(DEMO_PLAN).plan
    assert endpoints_used(plan, Selection.of(plan, criteria), aspects) == uses


def test_a_findings_criterion_is_fed_by_the_criteria_of_its_aspect(make_plan: Callable[..., Path]) -> None:
    def with_findings(data: dict[str, Any]) -> None:
        data["criteria"].append(
            {"id": "clin-findings", "title": "Fynd", "kind": "findings", "aspect": "klinisk"}
        )

    plan = load_plan(make_plan(with_findings)).plan
    chosen = Selection.of(plan, ["clin-findings"])
    klinisk = {c.id for c in plan.criteria if c.aspect == "klinisk" and c.kind != "findings"}
    assert chosen.fed(plan) == klinisk
    assert {c.id for c in in_scope(plan, chosen)} == klinisk
    assert endpoints_used(plan, chosen) == ["fhir_base", "web_base"]


# --- what a selection collects -------------------------------------------------------------------


def test_criterion_selects_its_scenarios_device_checks_and_load_only() -> None:
    everything = collected(DEMO_PLAN)
    chosen = collected(
        DEMO_PLAN, *("--rehearsal-criterion", "tech-fhir", "--rehearsal-criterion", "tech-printers"),
        *("--rehearsal-criterion", "load-slo"),
    )  # fmt: skip
    assert set(chosen) < set(everything)
    fhir = [n for n in chosen if module(n) == "test_teknisk.py"]
    assert fhir == [
        "scenarios/test_teknisk.py::test_servern_beskriver_sig_med_ett_capabilitystatement_för_fhir_r4",
        "scenarios/test_teknisk.py::test_varje_testpatient_hittas_på_sitt_personnummer",
    ]
    printers = [n for n in chosen if module(n) == "test_printers.py"]  # document printers only
    assert printers == [
        "hardware_checks/test_printers.py::test_printer_ready[sas-boras/sas-akut-dok1]",
        "hardware_checks/test_printers.py::test_printer_ready[nal-trollhattan/nal-lab-dok1]",
    ]
    load = [n for n in chosen if module(n) == "test_slos.py"]
    assert load == [n for n in everything if module(n) == "test_slos.py"] and len(load) > 10
    assert len(chosen) == len(fhir) + len(printers) + len(load)  # nothing else
    # --site and --aspect still narrow
    narrow = ("--rehearsal-criterion", "tech-printers", "--rehearsal-site", "sas-boras", "--rehearsal-aspect")
    assert collected(DEMO_PLAN, *narrow, "teknisk") == tuple(printers[:1])


def test_tags_select_scenarios_and_criterion_tags_the_checks_too() -> None:
    writes = collected(DEMO_PLAN, "--rehearsal-tag", "writes")
    feature_text = [p.read_text(encoding="utf-8") for p in (ROOT / "features").rglob("*.feature")]
    assert sum("@writes" in text for text in feature_text) >= 5  # real features carry it
    assert writes and all(module(n) in ("test_klinisk.py", "test_teknisk.py") for n in writes)
    assert not any("fhirgränssnitt" in n or "capabilitystatement" in n for n in writes)  # reads only
    by_tag = collected(DEMO_PLAN, "--rehearsal-tag", "criterion:tech-wristband-printers")
    assert [n.rsplit("/", 1)[-1] for n in by_tag] == ["sas-akut-armband1]", "nal-akut-armband1]"]
    # each option narrows: the scenarios that write, of one criterion
    narrow = collected(DEMO_PLAN, "--rehearsal-tag", "writes", "--rehearsal-criterion", "clin-registration")
    assert narrow and set(narrow) < set(writes)
    assert all(
        module(n) == "test_klinisk.py" and n.endswith(("[sas-boras]", "[nal-trollhattan]")) for n in narrow
    )


def test_a_plan_without_a_criterion_runs_nothing_for_it(tmp_path: Path) -> None:
    data = yaml.safe_load(DEMO_PLAN.read_text(encoding="utf-8"))
    drop = ("tech-npo", "load-slo")  # and every device_readiness criterion: no device is counted
    data["criteria"] = [
        c for c in data["criteria"] if c["id"] not in drop and c["kind"] != "device_readiness"
    ]
    trimmed = tmp_path / "trimmed.yaml"
    trimmed.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    full, trim = collected(DEMO_PLAN), collected(trimmed)
    no_load = "load/test_slos.py::test_load_slo[no-load-criterion]"  # one skipped result saying why
    assert [n for n in trim if module(n) == "test_slos.py"] == [no_load]
    assert set(trim) - {no_load} < set(full)
    gone = set(full) - set(trim)
    assert {n for n in gone if module(n) == "test_teknisk.py"} == {
        n for n in full if "läser_båda_journalernas_uppgifter" in n
    }  # the NPÖ scenario (tech-npo) at each site
    checks = {n for n in full if module(n) in ("test_printers.py", "test_workstations.py", "test_slos.py")}
    assert len(checks) > 50 and checks <= gone  # no device probed, no Locust started
    assert not {n for n in gone if module(n) not in ("test_teknisk.py", *(module(c) for c in checks))}


def test_a_selection_that_selects_nothing_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "--rootdir", str(ROOT), "-o", "addopts=",
         "-p", "no:cacheprovider", "-p", "rehearsal.selection",
         "-o", f"bdd_features_base_dir={ROOT / 'features'}", "--rehearsal-plan", str(DEMO_PLAN),
         "--collect-only", "-q", "--rehearsal-tag", "id:no-such-scenario"],
        capture_output=True, text=True, timeout=180, cwd=ROOT, env=ENV,
    )  # fmt: skip
    assert done.returncode == 4, done.stdout + done.stderr
    assert "--tag id:no-such-scenario: selects no test of the plan at the sites in scope" in done.stderr


# --- through the CLI: the preflight asks only what the selection uses ----------------------------


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=240, env=ENV, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture
def fhir_only(make_plan: Callable[..., Path], tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The reference EHR on loopback (its FHIR API), and a plan whose web_base is a port where
    nothing listens and whose other endpoints are gone: only the FHIR side of the target is there."""
    from reference_hospital.ehr_server import EhrServer

    def fhir_side(data: dict[str, Any]) -> None:
        for key in ("legacy_base", "lab_mllp", "bridge_base", "bridge_mllp", "directory"):
            data["environment"].pop(key, None)

    path = make_plan(fhir_side)
    loaded = load_plan(path)
    closed = f"http://127.0.0.1:{free_port()}"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["environment"]["web_base"] = closed
    target = path.with_name("fhir-only.yaml")
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with EhrServer(loaded.plan, tmp_path / "ehr", environ={"REHEARSAL_PASSWORD": ENV["REHEARSAL_PASSWORD"]}):
        yield target, closed


@pytest.mark.slow
def test_run_criterion_tech_fhir_preflights_only_fhir_and_runs_only_its_scenarios(
    fhir_only: tuple[Path, str], tmp_path: Path
) -> None:
    plan, closed = fhir_only
    reports = tmp_path / "reports"
    done = rehearse(reports, "-q", "run", "--plan", str(plan), "--criterion", "tech-fhir")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("GO: ")
    run = (reports / "latest").resolve()
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert record["criteria"] == ["tech-fhir"] and record["tags"] is None
    decision = json.loads((run / "gonogo.json").read_text(encoding="utf-8"))
    assert [(c["id"], c["status"]) for c in decision["criteria"]] == [
        ("tech-fhir", "pass"),
        ("run-complete", "pass"),
    ]
    results = [
        json.loads(p.read_text(encoding="utf-8")) for p in (run / "allure-results").glob("*-result.json")
    ]
    criteria = [{lab["name"]: lab["value"] for lab in r["labels"]}.get("criterion") for r in results]
    assert criteria == ["tech-fhir", "tech-fhir"], [r["name"] for r in results]
    planned = (run / "planned.txt").read_text(encoding="utf-8").split()
    assert len(planned) == 2 and all("test_teknisk.py" in n for n in planned)

    # `rehearse report` of that run decides on the same narrowed plan
    again = rehearse(reports, "-q", "report", str(run))
    assert again.returncode == 0 and again.stdout.startswith("GO: "), again.stdout + again.stderr

    # what does use the web UI is preflighted, and its closed port named: exit 2, no run folder
    clinical = rehearse(reports, "run", "--plan", str(plan), "--criterion", "clin-registration")
    assert clinical.returncode == 2, clinical.stdout + clinical.stderr
    port = closed.rsplit(":", 1)[1]
    assert clinical.stderr.strip().splitlines() == [
        f"rehearse: 127.0.0.1:{port} (environment.web_base): Connection refused "
        "(for the reference hospital: rehearse reference up --plan PLAN)"
    ]
    assert (reports / "latest").resolve() == run


def test_run_with_an_unknown_criterion_is_one_line_naming_the_known_ones(
    make_plan: Callable[..., Path], tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    done = rehearse(reports, "run", "--plan", str(make_plan()), "--criterion", "tech-fhri")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("rehearse: --criterion tech-fhri: the plan has no such criterion (criteria: ")
    assert "tech-fhir" in line and "load-slo" in line
    assert not reports.exists()  # refused before a run folder was made


def test_the_decision_of_a_narrowed_run_is_on_the_selected_criteria_and_run_complete() -> None:
    from rehearsal.selection import narrowed

    loaded = load_plan(DEMO_PLAN)
    assert loaded.plan.runbook is not None  # its gate names tech-fhir, left out below: not this run's
    chosen = Selection.of(loaded.plan, ["clin-lab-order"])
    plan = narrowed(loaded, chosen).plan
    assert [c.id for c in plan.criteria] == ["clin-lab-order", "run-complete"] and plan.runbook is None
    by_tag = narrowed(loaded, Selection.of(loaded.plan, tags=["writes"]), reported={"tech-queues"}).plan
    assert [c.id for c in by_tag.criteria] == ["tech-queues", "run-complete"]
    assert narrowed(loaded, Selection()) is loaded
