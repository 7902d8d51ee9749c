"""The runbook on the real clock: planned vs actual, drift, the forecast along the critical path,
gates judged when reached, the rollback drill, and the plan refusing a runbook that cannot be.

Each test makes a real run folder (``create_run``) whose T0 lies in the past and writes what a
day writes into it: allure results at their times, ``runbook.jsonl`` records through
:func:`rehearsal.runbook.record`, attestations through :func:`rehearsal.attest.record`.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from runbook_day import CRITERIA, at, day, result, runbook_plan

from rehearsal import attest, runbook
from rehearsal.errors import UsageError
from rehearsal.gonogo import decide
from rehearsal.plan import PlanError, Waiver, load_plan
from rehearsal.report import build_evidence
from rehearsal.results import merge


def manual(id: str, duration: float, **kw: Any) -> dict[str, Any]:
    return {
        "id": id,
        "title": id.capitalize(),
        "owner": "support",
        "kind": "manual",
        "duration": duration,
        **kw,
    }


def state_at(run, plan, minutes: float, clock: float = 1) -> runbook.RunbookState:
    return runbook.load_state(run.dir, plan, now=at(run, minutes, clock))


# --- planned, actual, drift and the forecast -----------------------------------------------------


def test_an_overrunning_step_carries_the_forecast_along_the_critical_path(make_plan, tmp_path) -> None:
    steps = [
        manual("a", 10, start=0),
        manual("b", 20, after=["a"]),
        {"id": "c", "title": "C", "owner": "beslut", "kind": "automated", "after": ["a"], "duration": 5,
         "criteria": ["tech-migration"]},
        manual("d", 10, after=["b", "c"]),
    ]  # fmt: skip
    plan = load_plan(runbook_plan(make_plan, steps)).plan
    run = day(tmp_path / "reports", runbook_plan(make_plan, steps), finished=False)
    runbook.record(run.dir, "a", "start", "Johan Ek", at=at(run, 0))
    runbook.record(run.dir, "a", "done", "Johan Ek", at=at(run, 10))
    runbook.record(run.dir, "b", "start", "Johan Ek", at=at(run, 10))
    result(run, "tech-migration", 10, 14)
    state = state_at(run, plan, 45)  # b should have ended at 30 and is still running

    a, b, c, d = (state.step(s) for s in "abcd")
    assert (a.status, a.actual_start, a.actual_end, a.added) == ("done", 0, 10, 0)
    assert (b.status, b.planned_end, b.forecast_end) == ("running", 30, 45)
    assert round(b.added, 6) == 15 and round(b.drift, 6) == 15
    assert (c.status, c.actual_start, round(c.forecast_end, 6)) == ("running", 10, 15)  # run still going
    assert (d.status, d.planned_start, d.planned_end) == ("planned", 30, 40)
    assert (round(d.forecast_start, 6), round(d.forecast_end, 6), round(d.drift, 6)) == (45, 55, 15)
    assert round(d.added, 6) == 0  # d only inherits the drift
    assert state.critical_path == ("a", "b", "d") and state.step("b").critical and not c.critical
    assert round(state.forecast_end, 6) == 55 and state.planned_end == 40
    assert state.status == "pending" and state.outstanding == ("b", "c", "d")

    later = state_at(run, plan, 110)  # b still open: the forecast moves with the clock
    assert round(later.forecast_end, 6) == 120 and later.status == "fail"
    window = next(r for r in later.rules if r.rule == "window")
    assert window.details == (
        "prognosen slutar vid 120 min, efter fönstret 120 min − marginal 10 min; "
        "mest eftersläpning: b +80 min (B)"
    )


def test_a_late_start_is_the_steps_own_drift_an_early_end_gives_time_back(make_plan, tmp_path) -> None:
    steps = [manual("a", 10, start=0), manual("b", 10, after=["a"]), manual("c", 10, start=25)]
    path = runbook_plan(make_plan, steps)
    run, plan = day(tmp_path / "reports", path), load_plan(path).plan
    for step, start, end in (("a", 0, 6), ("b", 9, 19), ("c", 25, 33)):
        runbook.record(run.dir, step, "start", "Sara Lind", at=at(run, start))
        runbook.record(run.dir, step, "done", "Sara Lind", at=at(run, end))
    state = state_at(run, plan, 60)
    assert [round(state.step(s).added, 6) for s in "abc"] == [-4, 3, -2]  # b waited 3 min after a was done
    assert [round(state.step(s).drift, 6) for s in "abc"] == [-4, -1, -2]
    assert state.critical_path == ("c",) and state.status == "pass"
    assert runbook.table(state).splitlines()[-1] == (
        "PASS: prognos 33 min inom 110 min (fönster 120 − marginal 10)"
    )


def test_the_clock_compresses_plan_time_and_a_percentage_margin_is_of_the_window(make_plan, tmp_path) -> None:
    path = runbook_plan(make_plan, [manual("a", 30, start=0)], clock=60, window=60, margin="25%")
    run, plan = day(tmp_path / "reports", path), load_plan(path).plan
    runbook.record(run.dir, "a", "start", "Sara Lind", at=at(run, 0, clock=60))
    runbook.record(run.dir, "a", "done", "Sara Lind", at=at(run, 50, clock=60))  # 50 s real = 50 plan min
    state = state_at(run, plan, 200, clock=60)
    assert (state.clock, state.margin, state.limit) == (60, 15, 45)
    assert round(state.step("a").took or 0, 6) == 50 and state.status == "fail"
    assert "mest eftersläpning: a +20 min (A)" in state.details


def test_records_a_torn_line_is_skipped_and_who_is_required(make_plan, tmp_path) -> None:
    path = runbook_plan(make_plan, [manual("a", 10, start=0)])
    run, plan = day(tmp_path / "reports", path), load_plan(path).plan
    made = runbook.record(run.dir, "a", "start", "  Johan Ek ", note="på plats", at=at(run, 2))
    assert (made.by, made.action, made.note) == ("Johan Ek", "start", "på plats")
    with (run.dir / runbook.FILE).open("a", encoding="utf-8") as out:
        out.write('{"step": "a", "action": "done", "by": "X", "at": "2026-')  # killed mid-write
    assert [r.action for r in runbook.read_records([run.dir / runbook.FILE])] == ["start"]
    assert state_at(run, plan, 5).step("a").status == "running"
    with pytest.raises(UsageError, match="needs the name of who acted"):
        runbook.record(run.dir, "a", "done", " ")
    with pytest.raises(UsageError, match="one of start, done, fail"):
        runbook.record(run.dir, "a", "finish", "Johan Ek")


def test_a_step_nobody_timed_is_done_as_planned_on_an_attestation_and_a_record_wins(
    make_plan, tmp_path
) -> None:
    steps = [manual("frys", 5, start=0, site="sas-boras"), manual("lista", 5, after=["frys"])]
    path = runbook_plan(make_plan, steps)
    run, plan = day(tmp_path / "reports", path), load_plan(path).plan
    attest.record(run.dir, attest.Attestation(item="runbook:frys", site="sas-boras", by="Johan Ek", ok=True))
    attest.record(run.dir, attest.Attestation(item="runbook:lista", by="Sara Lind", ok=False, note="saknas"))
    state = state_at(run, plan, 30)
    frys, lista = state.step("frys"), state.step("lista")
    assert (frys.status, frys.source, frys.actual_start, frys.actual_end, frys.by) == (
        "done", "attested", 0, 5, "Johan Ek"
    )  # fmt: skip
    assert (lista.status, state.status) == ("failed", "fail")
    assert "steg lista misslyckades (Sara Lind: saknas)" in state.details
    runbook.record(run.dir, "lista", "start", "Sara Lind", at=at(run, 5))
    runbook.record(run.dir, "lista", "done", "Sara Lind", at=at(run, 9))
    again = state_at(run, plan, 30)
    assert (again.step("lista").status, again.step("lista").source, again.status) == (
        "done",
        "records",
        "pass",
    )


# --- gates and the rollback drill -----------------------------------------------------------------


GATED = [
    manual("prep", 10, start=0),
    {"id": "migrering", "title": "Migrering", "owner": "support", "kind": "automated", "after": ["prep"],
     "duration": 20, "criteria": ["tech-migration"]},
    {"id": "gate", "title": "Go/no-go", "owner": "beslut", "kind": "gate", "after": ["migrering"],
     "duration": 5, "criteria": ["tech-fhir"]},
]  # fmt: skip


def gated_day(make_plan, tmp_path, fhir: list[tuple[float, str]], finished: bool = True):
    path = runbook_plan(make_plan, GATED)
    run, plan = day(tmp_path / "reports", path, finished=finished), load_plan(path).plan
    runbook.record(run.dir, "prep", "start", "Johan Ek", at=at(run, 0))
    runbook.record(run.dir, "prep", "done", "Johan Ek", at=at(run, 10))
    result(run, "tech-migration", 11, 30)
    for stop, status in fhir:
        result(run, "tech-fhir", stop - 1, stop, status, message="CapabilityStatement saknas")
    return run, plan


def test_a_gate_reached_with_a_failing_criterion_fails_naming_gate_and_criterion(make_plan, tmp_path) -> None:
    run, plan = gated_day(make_plan, tmp_path, [(20, "failed")])
    state = state_at(run, plan, 60)
    gate = state.step("gate")
    assert (gate.status, gate.actual_start) == ("failed", 30)
    assert gate.gate_failures[0][0] == "tech-fhir"
    assert state.status == "fail"
    assert state.details.startswith("beslutspunkt gate nådd vid 30 min med tech-fhir underkänt: 0 av 1")


def test_a_gate_holds_on_what_was_in_when_it_was_reached(make_plan, tmp_path) -> None:
    # the failure lands after the gate: the gate held (the criterion's own line still fails)
    run, plan = gated_day(make_plan, tmp_path, [(20, "passed"), (40, "failed")])
    state = state_at(run, plan, 60)
    assert state.step("gate").status == "done" and state.status == "pass"
    assert "beslutspunkt gate höll vid 30 min" in state.details
    decision = decide(
        plan, merge([run.results_dir]), complete=True, rehearsal="r", run=run.id, parent=None, runbook=state
    )
    statuses = {line.id: line.status for line in decision.criteria}
    assert statuses == {"tech-fhir": "fail", "tech-migration": "pass", "org-runbook": "pass"}
    # no result of the gate's criterion by then: it did not hold
    run2, plan2 = gated_day(make_plan, tmp_path / "b", [(45, "passed")])
    assert "med tech-fhir underkänt: inga resultat ännu" in state_at(run2, plan2, 60).details


def test_a_gate_waits_while_a_step_before_it_is_outstanding(make_plan, tmp_path) -> None:
    run, plan = gated_day(make_plan, tmp_path, [(20, "passed")], finished=False)
    state = state_at(run, plan, 31)  # the run is still going: migrering is not done
    assert (state.step("migrering").status, state.step("gate").status) == ("running", "planned")
    assert state.status == "pending"
    assert "väntar på: migrering, gate" in state.details


def drill(make_plan, tmp_path, **rollback: Any):
    steps = [manual("prep", 10, start=0), {"id": "back", "title": "Återgång", "owner": "support",
             "kind": "rollback", "after": ["prep"], "duration": 10, **rollback}]  # fmt: skip
    path = runbook_plan(make_plan, steps, margin=10)
    run, plan = day(tmp_path / "reports", path), load_plan(path).plan
    runbook.record(run.dir, "prep", "done", "Johan Ek", at=at(run, 10))
    return run, plan


@pytest.mark.parametrize(
    ("done_at", "now", "status", "words"),
    [
        (25, 60, "pass", "återgångsövning back klar på 15 min (tillåtet 20)"),
        (35, 60, "fail", "återgångsövning back tog 25 min, tillåtet 20 min (10 + 10)"),
        (None, 60, "fail", "återgångsövning back inte klar efter 50 min, tillåtet 20 min (10 + 10)"),
        (None, 25, "pending", "väntar på: back"),
    ],
)
def test_the_rollback_drill_finishes_within_its_duration_and_margin(
    make_plan, tmp_path, done_at, now, status, words
) -> None:
    run, plan = drill(make_plan, tmp_path)
    runbook.record(run.dir, "back", "start", "Johan Ek", at=at(run, 10))
    if done_at is not None:
        runbook.record(run.dir, "back", "done", "Johan Ek", at=at(run, done_at))
    state = state_at(run, plan, now)
    assert state.status == status and words in state.details, state.details


def test_an_automated_drill_is_timed_by_its_tags_or_labels(make_plan, tmp_path) -> None:
    run, plan = drill(make_plan, tmp_path, tags=["attestation:nedtidsrutin", "legacy"])
    result(run, "org-readiness", 12, 14, attestation="nedtidsrutin")
    result(run, "tech-referrals", 14, 31, tags=["legacy"])
    result(run, "tech-referrals", 5, 60, tags=["other"])  # neither tag: not the drill's
    back = state_at(run, plan, 90).step("back")
    assert (back.status, back.source, back.actual_start, back.actual_end) == ("done", "results", 12, 31)
    assert "återgångsövning back klar på 19 min (tillåtet 20)" in state_at(run, plan, 90).details


def test_a_pending_runbook_line_can_be_waived(make_plan, tmp_path) -> None:
    run, plan = gated_day(make_plan, tmp_path, [(20, "passed")], finished=False)
    state = state_at(run, plan, 31)
    waiver = Waiver(
        criterion="org-runbook", reason="övas i GR2", accepted_by="Eva Strand",
        date=date(2026, 11, 1), expiry=date(2026, 12, 31),
    )  # fmt: skip
    kw = {"complete": True, "rehearsal": "r", "run": run.id, "parent": None, "today": date(2026, 12, 2)}
    merged = merge([run.results_dir])
    line = next(x for x in decide(plan, merged, runbook=state, **kw).criteria if x.id == "org-runbook")
    assert line.status == "pending"
    waived = decide(plan, merged, runbook=state, waivers=[waiver], **kw)
    assert next(x for x in waived.criteria if x.id == "org-runbook").status == "waived"
    assert waived.decision == "GO" and "Eva Strand" in waived.headline


# --- the views: chart, evidence pack, trend ------------------------------------------------------


def test_the_chart_draws_planned_actual_and_forecast_and_escapes_titles(make_plan, tmp_path) -> None:
    steps = [manual("a", 10, start=0, title="<script>alert(1)</script>"), manual("b", 20, after=["a"])]
    path = runbook_plan(make_plan, steps)
    run, plan = day(tmp_path / "reports", path, finished=False), load_plan(path).plan
    runbook.record(run.dir, "a", "start", "Johan Ek", at=at(run, 0))
    runbook.record(run.dir, "a", "done", "Johan Ek", at=at(run, 14))
    svg = runbook.chart_svg(state_at(run, plan, 20))
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert not re.search(r"href|url\(|@import|<image", svg)
    steps_drawn = re.findall(r"<g class='step [^']*' data-step='(\w+)'([^>]*)>", svg)
    assert [s for s, _ in steps_drawn] == ["a", "b"]
    a = dict(re.findall(r"data-([\w-]+)='([^']*)'", steps_drawn[0][1]))
    assert (a["planned-start"], a["planned-end"], a["actual-end"], a["drift"]) == ("0", "10", "14", "4")
    assert "class='mark window' data-value='120'" in svg and "class='mark limit' data-value='110'" in svg
    assert "class='mark now' data-value='20'" in svg
    assert svg.count("class='actual'") == 1 and svg.count("class='forecast'") == 1  # b: only forecast


def test_the_pack_shows_the_runbook_and_the_trend_each_steps_minutes_run_to_run(make_plan, tmp_path) -> None:
    steps = [manual("a", 10, start=0), manual("b", 20, after=["a"])]
    path = runbook_plan(make_plan, steps)
    loaded = load_plan(path)
    for took in (12, 17):
        run = day(tmp_path / "reports", loaded)
        for step, start, end in (("a", 0, took), ("b", took, took + 20)):
            runbook.record(run.dir, step, "start", "Johan Ek", at=at(run, start))
            runbook.record(run.dir, step, "done", "Johan Ek", at=at(run, end))
        result(run, "tech-fhir", 1, 2)
        result(run, "tech-migration", 1, 2)
        pack = build_evidence(run, loaded.plan)
    data = json.loads((run.dir / "gonogo.json").read_text(encoding="utf-8"))
    assert data["runbook"]["steps"][0]["took"] == 17 and data["runbook"]["status"] == "pass"
    assert [p["runbook"]["a"] for p in data["trend"]["points"]] == [12, 17]
    assert [p["runbook"]["b"] for p in data["trend"]["points"]] == [20, 20]
    page = (run.dir / "gonogo.html").read_text(encoding="utf-8")
    assert "<svg class='runbook-chart'" in page and "id='runbook'" in page
    row = re.search(r"<tr data-step='a'>(.*?)</tr>", page).group(1)
    assert re.findall(r"data-took='([^']*)'", row) == ["12", "17"]
    line = next(x for x in pack.decision.criteria if x.id == "org-runbook")
    assert line.status == "pass" and line.details == "prognos 37 min inom 110 min (fönster 120 − marginal 10)"


# --- the plan refuses a runbook that cannot be ---------------------------------------------------


def refusal(make_plan, steps: list[dict[str, Any]], **kw: Any) -> tuple[str, str]:
    """The one problem of the plan, and the text of the line it names."""
    path = runbook_plan(make_plan, steps, **kw)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    problem = caught.value.problems[0]
    match = re.match(rf"{re.escape(str(path))}:(\d+): (\S+): (.*)$", problem)
    assert match, problem
    line = path.read_text(encoding="utf-8").splitlines()[int(match.group(1)) - 1]
    return f"{match.group(2)}: {match.group(3)}", line.strip()


@pytest.mark.parametrize(
    ("steps", "message", "at_line"),
    [
        ([manual("a", 5), manual("b", 5, after=["x"])],
         "runbook.steps.1.after: names no step of the runbook: 'x' (steps: a, b)", "after:"),
        ([manual("a", 5, after=["b"]), manual("b", 5, after=["a"])],
         "runbook.steps.0.after: steps wait for each other in a circle: a → b → a", "after:"),
        ([manual("a", 5, after=["a"])], "runbook.steps.0.after: steps wait for each other in a circle: a → a",
         "after:"),
        ([manual("a", 5, owner="Kalle Anka")],
         "runbook.steps.0.owner: 'Kalle Anka' is neither a command-centre role (beslut, kommunikation, "
         "support) nor a person in the roster", "owner: Kalle Anka"),
        ([{"id": "g", "title": "G", "owner": "beslut", "kind": "gate", "duration": 0,
           "criteria": ["tech-fhr"]}],
         "runbook.steps.0.criteria: names no criterion of the plan: 'tech-fhr'", "criteria:"),
        ([{"id": "g", "title": "G", "owner": "beslut", "kind": "gate", "duration": 0,
           "criteria": ["org-runbook"]}],
         "runbook.steps.0.criteria: a gate cannot hold on 'org-runbook' of kind runbook (only all_pass, "
         "success_rate, device_readiness, load_slo: judged on the results in when it is reached)",
         "criteria:"),
        ([manual("a", 5), manual("a", 5)], "runbook.steps.1.id: step id 'a' is used twice", "- id: a"),
        ([manual("a", 5, site="goteborg")], "runbook.steps.0.site: names no site of the plan: 'goteborg'",
         "site: goteborg"),
        ([{"id": "x", "title": "X", "owner": "support", "kind": "automated", "duration": 5}],
         "runbook.steps.0: an automated step names the criteria and/or tags whose results time it",
         "- id: x"),
        ([manual("a", 5, criteria=["tech-fhir"])],
         "runbook.steps.0: a manual step is timed by people; criteria and tags belong to automated steps",
         "- id: a"),
        ([manual("a", 0)], "runbook.steps.0: duration must be more than 0 minutes for a manual step",
         "- id: a"),
    ],
)  # fmt: skip
def test_the_plan_refuses_a_runbook_that_cannot_be(make_plan, steps, message, at_line) -> None:
    got, line = refusal(make_plan, steps)
    assert got == message and line.startswith(at_line), (got, line)


def test_a_margin_is_minutes_or_a_percentage_and_a_runbook_criterion_needs_a_runbook(make_plan) -> None:
    message, line = refusal(make_plan, [manual("a", 5)], margin="ten")
    assert message.startswith("runbook.margin: expected minutes or a percentage such as '10%'")
    assert line.startswith("margin:")

    def no_runbook(data: dict[str, Any]) -> None:
        data.pop("runbook", None)
        data["criteria"] = [dict(c) for c in CRITERIA]

    path = make_plan(no_runbook)
    with pytest.raises(PlanError, match=r"criteria\.2\.kind: kind runbook needs the plan's `runbook:`"):
        load_plan(path)


def test_the_demo_plan_has_a_compressed_cutover_whose_gate_and_drill_name_what_it_has() -> None:
    plan = load_plan(Path(__file__).resolve().parents[1] / "plans" / "demo.yaml").plan
    assert plan.runbook is not None and plan.runbook.clock == 20  # the 4-hour window in 12 real minutes
    kinds = {s.kind for s in plan.runbook.steps}
    assert kinds == {"manual", "automated", "gate", "rollback"}
    assert any(c.kind == "runbook" for c in plan.criteria)
    attested = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "plans" / "demo.attestations.yaml").read_text()
    )
    manual_steps = {s.id for s in plan.runbook.steps if s.kind == "manual"}
    assert manual_steps <= {a["item"].removeprefix("runbook:") for a in attested}
