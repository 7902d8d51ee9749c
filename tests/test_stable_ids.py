"""Stable ids (rehearsal.ids): a renamed scenario title keeps its history and its rerun selection.

The runs are real: the rehearsal's own organisational content (the roster feature and its steps)
copied to a folder of the test's own, where a title can be renamed between runs, and
run through the runner (``REHEARSAL_CONTENT`` points it there) as a pytest session per run. Only
the organisational aspect at one site: no target, no browser, a few seconds a run. The Allure
report is left out (``build_evidence``: decision, history, what changed); Allure 3 keys a test's
history on its ``testCaseId``, which the results carry from the id.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rehearsal import ids
from rehearsal.history import RUNS_FILE, changes, items_of
from rehearsal.plan import LoadedPlan, load_plan
from rehearsal.report import build_evidence
from rehearsal.rerun import select
from rehearsal.results import TestResult, merge, read_results
from rehearsal.run import Run
from rehearsal.runner import execute

ROOT = Path(__file__).resolve().parents[1]
ROSTER = Path("features") / "organisatorisk" / "kommandocentral.feature"
OLD_TITLE = "Varje roll i platsens kommandocentral har en namngiven person med telefonnummer"
NEW_TITLE = "Varje roll i platsens kommandocentral är bemannad av en namngiven person med telefon"
KEY = "org-roster-01@sas-boras"
WAVE = "vag-ids"


@pytest.fixture
def content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The roster feature and the organisational steps, in a content folder the runner is pointed at."""
    root = tmp_path / "content"
    (root / ROSTER).parent.mkdir(parents=True)
    shutil.copyfile(ROOT / ROSTER, root / ROSTER)
    (root / "scenarios").mkdir()
    for name in ("conftest.py", "test_organisatorisk.py"):
        shutil.copyfile(ROOT / "scenarios" / name, root / "scenarios" / name)
    monkeypatch.setenv("REHEARSAL_CONTENT", str(root))
    return root


def plan_of(make_plan: Callable[..., Path], rehearsal: str, *, roster_gap: bool) -> LoadedPlan:
    def edit(data: dict[str, Any]) -> None:
        data["rehearsal"], data["wave"] = rehearsal, WAVE
        if roster_gap:  # nobody holds the decision role at Borås: the site's roster scenario fails
            data["sites"][0]["command_centre"]["beslut"] = None

    return load_plan(make_plan(edit, name=f"{rehearsal}.yaml"))


def rehearse(reports: Path, loaded: LoadedPlan, **kwargs: Any) -> Run:
    outcome = execute(reports, loaded, **kwargs)
    assert not outcome.broken and not outcome.interrupted, (outcome.run.dir / "pytest.log").read_text()
    return outcome.run


def roster(run: Run) -> TestResult:
    found = [r for r in read_results(run.results_dir) if r.key == KEY]
    assert len(found) == 1, [r.key for r in read_results(run.results_dir)]
    return found[0]


def rename(content: Path, old: str, new: str) -> None:
    feature = content / ROSTER
    text = feature.read_text(encoding="utf-8")
    assert text.count(f"Scenario: {old}\n") == 1
    feature.write_text(text.replace(f"Scenario: {old}\n", f"Scenario: {new}\n"), encoding="utf-8")


def test_a_renamed_title_keeps_its_trend_line_and_its_rerun_selection(
    content: Path, make_plan: Callable[..., Path], tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    gr1 = plan_of(make_plan, "demo-gr1", roster_gap=True)
    gr2 = plan_of(make_plan, "demo-gr2", roster_gap=False)
    narrow = {"sites": ["sas-boras"], "aspects": ["organisatorisk"]}

    # --- GR1: the roster at Borås has a hole
    first = rehearse(reports, gr1, **narrow)
    before = roster(first)
    assert before.status == "failed" and before.rehearsal_id == "org-roster-01"
    assert before.name.startswith(OLD_TITLE) and "varje_roll_i_platsens" in before.nodeid
    assert build_evidence(first, gr1.plan).decision.decision == "NO-GO"

    # --- a typo fixed in the title: its node id (built from the title) is not the one that failed
    rename(content, OLD_TITLE, NEW_TITLE)
    selection, _ = select(first)
    assert selection.failed == [KEY] and not selection.missing

    # --- the rerun of GR1 finds the renamed scenario by its key, and only it
    rerun = rehearse(reports, gr1, parent=first, selection=selection.nodeids)
    again = read_results(rerun.results_dir)
    assert [r.key for r in again] == [KEY]
    assert again[0].name.startswith(NEW_TITLE) and again[0].nodeid != before.nodeid
    assert again[0].history_id != before.history_id  # Allure's historyId follows the title …
    assert again[0].status == "failed"
    merged = [m for m in merge([first.results_dir, rerun.results_dir]) if m.latest.key == KEY]
    assert len(merged) == 1 and [r.uuid for r in merged[0].retries] == [before.uuid]  # … the key does not
    pack = build_evidence(rerun, gr1.plan)
    assert pack.changes.reason == "parent" and pack.changes.still_failing == 1
    assert not pack.changes.new_failures and not pack.changes.fixed

    # --- GR2 of the same wave, the roster filled: fixed, not a new item beside a vanished one
    second = rehearse(reports, gr2, **narrow)
    after = roster(second)
    assert after.status == "passed" and after.name.startswith(NEW_TITLE)
    pack = build_evidence(second, gr2.plan)
    assert pack.changes.reason == "previous" and pack.changes.against == rerun.id
    assert [(c.key, c.name.split(" – ")[0], c.before) for c in pack.changes.fixed] == [
        (KEY, NEW_TITLE, "failed")
    ]
    assert not pack.changes.new_failures and not pack.changes.regressed

    # its trend line: one item, one key, through the wave's three runs
    records = [json.loads(x) for x in (reports / WAVE / "history" / RUNS_FILE).read_text().splitlines()]
    assert [r["run"] for r in records] == [first.id, rerun.id, second.id]
    assert [r["items"][KEY]["status"] for r in records] == ["failed", "failed", "passed"]
    assert all(
        sum(1 for item in r["items"].values() if item.get("id") == "org-roster-01") == 1 for r in records
    )
    # and Allure's: Allure 3 keys a test's history on testCaseId, the same across the rename
    case_ids = {
        json.loads(p.read_text())["testCaseId"]
        for run in (first, rerun, second)
        for p in run.results_dir.glob("*-result.json")
        if ids.LABEL in p.read_text() and '"org-roster-01"' in p.read_text()
    }
    assert case_ids == {ids.allure_test_case_id("org-roster-01")}


def test_a_shared_id_stops_collection_with_one_line_naming_the_file(
    content: Path, make_plan: Callable[..., Path], tmp_path: Path
) -> None:
    feature = content / ROSTER
    feature.write_text(
        feature.read_text().replace("@id:org-roster-02", "@id:org-roster-01"), encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(tmp_path / "reports"),
         "run", "--plan", str(make_plan()), "--aspect", "organisatorisk"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=dict(os.environ), check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if ".feature" in line]
    assert len(said) == 1, done.stderr
    assert f"{ROSTER}:16: @id:org-roster-01 is already the id of the scenario at {ROSTER}:10" in said[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_missing_id_names_the_file_and_line(content: Path) -> None:
    feature = content / ROSTER
    feature.write_text(feature.read_text().replace("  @id:org-roster-01\n", ""), encoding="utf-8")
    said = ids.check_features(content / "features", content)
    assert said is not None and "\n" not in said
    assert said.startswith(f"{ROSTER}:9: scenario '{OLD_TITLE}' has no stable id; tag it once, e.g. @id:")


def test_every_shipped_scenario_has_one_id_of_its_own() -> None:
    assert ids.check_features(ROOT / "features", ROOT) is None
    tagged = [
        line.strip() for p in (ROOT / "features").rglob("*.feature") for line in p.read_text().splitlines()
    ]
    scenarios = sum(1 for line in tagged if line.startswith("Scenario:"))
    assert sum(1 for line in tagged if line.startswith("@id:")) == scenarios > 20


def _result(folder: Path, name: str, status: str, stop: int, history_id: str, **labels: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "uuid": str(uuid.uuid4()),
        "name": name,
        "historyId": history_id,
        "status": status,
        "stop": stop,
        "labels": [{"name": k, "value": v} for k, v in labels.items()],
    }
    (folder / f"{data['uuid']}-result.json").write_text(json.dumps(data), encoding="utf-8")


def test_results_and_history_from_before_ids_still_read(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    # a run from before ids (no rehearsal_id label), then its rerun with ids, same title
    nodeid = "s.py::test_bemanning[sas-boras]"
    _result(old, "Bemanning", "failed", 1, "h-roster", site="sas-boras", nodeid=nodeid)
    _result(old, "FHIR", "passed", 2, "h-fhir", nodeid="s.py::test_fhir")
    _result(new, "Bemanning", "passed", 3, "h-roster", site="sas-boras", rehearsal_id="org-roster-01")
    merged = {m.latest.key: m for m in merge([old, new])}
    assert set(merged) == {KEY, "h-fhir"}  # the old result keeps Allure's historyId as its key
    assert merged[KEY].rerun_fixed and merged[KEY].retries[0].selector == nodeid
    # "what changed" against a history record from before ids: matched through the historyId it keeps
    then = {"h-roster": {"status": "failed", "name": "Bemanning", "site": "sas-boras"}}
    found = changes(items_of(list(merged.values())), then, against="old")
    assert [(c.key, c.before, c.after) for c in found.fixed] == [(KEY, "failed", "passed")]
    assert not found.new_failures


def test_every_planned_test_of_the_shipped_content_is_named_by_a_stable_id(
    make_plan: Callable[..., Path], tmp_path: Path
) -> None:
    """Scenarios, device checks and load SLOs alike: no key falls back to a (title-built) node id."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "hardware_checks", "load", "--collect-only", "-q",
         "-p", "no:cacheprovider", "-p", "no:locust", "--rootdir", str(ROOT),
         "-o", f"bdd_features_base_dir={ROOT / 'features'}", "--rehearsal-plan", str(make_plan()),
         "--rehearsal-run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    keys = (run_dir / ids.PLANNED_KEYS_FILE).read_text(encoding="utf-8").splitlines()
    nodeids = (run_dir / "planned.txt").read_text(encoding="utf-8").splitlines()
    assert len(keys) == len(nodeids) == len(set(keys)) > 50
    assert not [k for k in keys if "::" in k]  # every one an id, none a node id
    for expected in ("klin-lab-order-01@sas-boras", "tek-fhir-01", "printer:sas-akut-dok1@sas-boras",
                     "workstation:nal-lab-ws01@nal-trollhattan"):  # fmt: skip
        assert expected in keys
    assert any(k.startswith("slo:patient-search-p95") for k in keys)
