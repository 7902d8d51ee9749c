"""Waivers: a waived failure is waived (never passed), an expired one blocks again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from rehearsal.gonogo import Decision, decide
from rehearsal.plan import Plan, PlanError, Waiver, load_plan
from rehearsal.results import MergedResult, TestResult
from rehearsal.waivers import covering, load_waivers, state

ACCEPTED = date(2026, 11, 20)
EXPIRY = date(2026, 12, 1)
WAIVER = {
    "criterion": "tech-printers",
    "site": "sas-boras",
    "reason": "Reservskrivare i receptionen; ny pappersrutin inför driftstart",
    "accepted_by": "Eva Strand",
    "date": ACCEPTED.isoformat(),
    "expiry": EXPIRY.isoformat(),
}


def result(
    name: str, status: str, criterion: str, site: str | None, aspect: str, **labels: str
) -> MergedResult:
    all_labels = {"criterion": criterion, "aspect": aspect, **labels}
    if site:
        all_labels["site"] = site
    return MergedResult(
        latest=TestResult(
            uuid=f"u-{name}-{site}",
            history_id=f"h-{name}-{site}",
            name=name,
            full_name=name,
            nodeid=f"t.py::{name}",
            status=status,
            labels=all_labels,
            message="printer-state-reasons: media-empty" if status == "failed" else "",
        )
    )


def green(plan: Plan, *, except_: tuple[str, str | None] | None = None) -> list[MergedResult]:
    """A passing result for every line of the plan, except one (criterion, site)."""
    out = []
    for c in plan.criteria:
        if c.kind in ("run_complete", "findings"):
            continue
        for site in [s.id for s in plan.sites] if c.per_site else [None]:
            if (c.id, site) == except_:
                continue
            device = {}
            if c.kind == "device_readiness":
                where = plan.site(site) if site else plan.sites[0]
                device = {"device": where.printers[0].id if where.printers else "dev"}
            out.append(result(c.id, "passed", c.id, site, c.aspect or "teknisk", **device))
    return out


def paper_out(plan: Plan) -> list[MergedResult]:
    """Everything passes except the document printer at Borås, which is out of paper (critical)."""
    return green(plan, except_=("tech-printers", "sas-boras")) + [
        result("Skrivare redo", "failed", "tech-printers", "sas-boras", "teknisk", device="sas-akut-dok1")
    ]


def decision_on(plan: Plan, results: list[MergedResult], today: date, waivers: Any = None) -> Decision:
    return decide(
        plan,
        results,
        complete=True,
        rehearsal=plan.rehearsal,
        run="r1",
        parent=None,
        waivers=plan.waivers if waivers is None else waivers,
        today=today,
    )


@pytest.fixture
def plan_with_waiver(make_plan: Callable[..., Path]) -> Callable[..., Plan]:
    def build(language: str = "sv", **changes: Any) -> Plan:
        def edit(data: dict[str, Any]) -> None:
            data["language"] = language
            data["waivers"] = [{**WAIVER, **changes}]

        return load_plan(make_plan(edit)).plan

    return build


def test_a_waived_critical_failure_is_go_with_one_waiver_naming_who_accepted_it(
    plan_with_waiver: Callable[..., Plan],
) -> None:
    plan = plan_with_waiver()
    decision = decision_on(plan, paper_out(plan), today=date(2026, 11, 26))
    assert decision.decision == "GO"
    assert decision.headline == "GO med 1 undantag (godkänt av Eva Strand)"
    line = next(x for x in decision.criteria if x.id == "tech-printers" and x.site == "sas-boras")
    assert line.status == "waived"  # never "pass"
    assert "undantag godkänt av Eva Strand, gäller t.o.m. 2026-12-01" in line.details
    assert [w.accepted_by for w in line.waivers] == ["Eva Strand"]
    [finding] = decision.findings
    assert finding.status == "waived" and not finding.blocking and finding.severity == "critical"
    data = decision.to_json()
    assert (
        data["decision"] == "GO" and data["waived"] == 1 and data["headline"].startswith("GO med 1 undantag")
    )
    [use] = data["waivers"]
    assert use["state"] == "valid" and use["used"] and use["lines"] == ["tech-printers@sas-boras"]
    assert use["findings"] == ["tech-printers@sas-boras"] and use["accepted_by"] == "Eva Strand"
    assert data["open_findings"] == {"critical": 0, "high": 0, "normal": 0}


def test_the_same_waiver_past_its_expiry_is_no_go(plan_with_waiver: Callable[..., Plan]) -> None:
    plan = plan_with_waiver()
    decision = decision_on(plan, paper_out(plan), today=date(2026, 12, 2))
    assert decision.decision == "NO-GO" and decision.headline == "NO-GO"
    line = next(x for x in decision.criteria if x.id == "tech-printers" and x.site == "sas-boras")
    assert line.status == "fail" and line.waivers == ()
    [use] = decision.waivers
    assert use.state == "expired" and not use.used
    assert decision.findings[0].open and decision.findings[0].blocking
    # the expiry day itself still counts; before the acceptance date it does not yet
    assert decision_on(plan, paper_out(plan), today=EXPIRY).decision == "GO"
    early = decision_on(plan, paper_out(plan), today=date(2026, 11, 19))
    assert early.decision == "NO-GO" and early.waivers[0].state == "not_yet_valid"


def test_english_headline_and_plural(plan_with_waiver: Callable[..., Plan]) -> None:
    plan = plan_with_waiver("en")
    assert decision_on(plan, paper_out(plan), date(2026, 11, 26)).headline == (
        "GO with 1 waiver (accepted by Eva Strand)"
    )
    second = Waiver.model_validate(
        {**WAIVER, "criterion": "clin-lab-order", "site": None, "accepted_by": "Per Holm"}
    )
    results = paper_out(plan)
    results = [
        r for r in results if not (r.latest.criterion == "clin-lab-order" and r.latest.site == "sas-boras")
    ]
    results.append(result("Lab", "failed", "clin-lab-order", "sas-boras", "klinisk"))
    decision = decision_on(plan, results, date(2026, 11, 26), waivers=[*plan.waivers, second])
    assert decision.headline == "GO with 2 waivers (accepted by Eva Strand, Per Holm)"


def test_a_waiver_for_one_site_does_not_cover_another(plan_with_waiver: Callable[..., Plan]) -> None:
    plan = plan_with_waiver()
    results = green(plan, except_=("tech-printers", "nal-trollhattan")) + [
        result(
            "Skrivare redo", "failed", "tech-printers", "nal-trollhattan", "teknisk", device="nal-lab-dok1"
        )
    ]
    decision = decision_on(plan, results, date(2026, 11, 26))
    assert decision.decision == "NO-GO"
    assert decision.waivers[0].state == "valid" and not decision.waivers[0].used


def test_a_region_wide_line_is_waived_only_when_every_failing_site_is(make_plan: Callable[..., Path]) -> None:
    def edit(data: dict[str, Any]) -> None:
        next(c for c in data["criteria"] if c["id"] == "tech-printers")["per_site"] = False
        data["waivers"] = [WAIVER]

    plan = load_plan(make_plan(edit)).plan
    both = green(plan, except_=("tech-printers", None)) + [
        result("Skrivare", "failed", "tech-printers", "sas-boras", "teknisk", device="sas-akut-dok1"),
        result("Skrivare", "failed", "tech-printers", "nal-trollhattan", "teknisk", device="nal-lab-dok1"),
    ]
    decision = decision_on(plan, both, date(2026, 11, 26))
    assert decision.decision == "NO-GO"
    assert {f.id: f.status for f in decision.findings} == {
        "tech-printers@sas-boras": "waived",
        "tech-printers@nal-trollhattan": "open",
    }
    nal = Waiver.model_validate({**WAIVER, "site": "nal-trollhattan", "accepted_by": "Per Holm"})
    decision = decision_on(plan, both, date(2026, 11, 26), waivers=[*plan.waivers, nal])
    line = next(x for x in decision.criteria if x.id == "tech-printers")
    assert decision.decision == "GO" and line.status == "waived" and len(line.waivers) == 2


def test_a_pending_line_is_waived_like_a_failed_one_until_the_waiver_expires(
    plan_with_waiver: Callable[..., Plan],
) -> None:
    """Issue #13: a line still without results can be accepted as a known risk too."""
    plan = plan_with_waiver()
    results = green(plan, except_=("tech-printers", "sas-boras"))
    decision = decision_on(plan, results, date(2026, 11, 26))
    line = next(x for x in decision.criteria if x.id == "tech-printers" and x.site == "sas-boras")
    assert line.status == "waived" and decision.headline == "GO med 1 undantag (godkänt av Eva Strand)"
    expired = decision_on(plan, results, EXPIRY + timedelta(days=1))
    line = next(x for x in expired.criteria if x.id == "tech-printers" and x.site == "sas-boras")
    assert line.status == "pending" and expired.decision == "NO-GO"


def test_a_findings_line_that_passes_only_thanks_to_waivers_is_waived(make_plan: Callable[..., Path]) -> None:
    def edit(data: dict[str, Any]) -> None:
        next(c for c in data["criteria"] if c["id"] == "tech-printers")["threshold"] = (
            0.0  # line itself passes
        )
        data["criteria"].append({"id": "no-critical", "title": "Inga öppna kritiska", "kind": "findings"})
        data["waivers"] = [WAIVER]

    plan = load_plan(make_plan(edit)).plan
    decision = decision_on(plan, paper_out(plan), date(2026, 11, 26))
    findings_line = next(x for x in decision.criteria if x.id == "no-critical")
    assert (
        findings_line.status == "waived" and decision.headline == "GO med 1 undantag (godkänt av Eva Strand)"
    )
    assert decision_on(plan, paper_out(plan), date(2026, 12, 24)).decision == "NO-GO"


def test_state_and_covering() -> None:
    w = Waiver.model_validate(WAIVER)
    assert [state(w, d) for d in (date(2026, 11, 19), ACCEPTED, EXPIRY, date(2026, 12, 2))] == [
        "not_yet_valid",
        "valid",
        "valid",
        "expired",
    ]
    anywhere = Waiver.model_validate({**WAIVER, "site": None})
    assert covering([w], "tech-printers", "nal-trollhattan", ACCEPTED) is None
    assert covering([w, anywhere], "tech-printers", "nal-trollhattan", ACCEPTED) is anywhere
    central = Waiver.model_validate({**WAIVER, "site": "central"})
    assert covering([central], "tech-printers", None, ACCEPTED) is central


# --- where waivers come from -------------------------------------------------------------------


def test_plan_waivers_are_checked_against_the_plan(make_plan: Callable[..., Path]) -> None:
    def unknown(data: dict[str, Any]) -> None:
        data["waivers"] = [{**WAIVER, "criterion": "tech-printerz"}]

    with pytest.raises(PlanError, match=r"plan.yaml:\d+: waivers: \[0\] names no criterion of the plan"):
        load_plan(make_plan(unknown))

    def backwards(data: dict[str, Any]) -> None:
        data["waivers"] = [{**WAIVER, "expiry": "2026-11-01"}]

    with pytest.raises(PlanError, match=r"waivers\.0: expiry 2026-11-01 is before the date it was accepted"):
        load_plan(make_plan(backwards))

    def missing(data: dict[str, Any]) -> None:
        data["waivers"] = [{k: v for k, v in WAIVER.items() if k != "accepted_by"}]

    with pytest.raises(PlanError, match=r"waivers\.0\.accepted_by: required field is missing"):
        load_plan(make_plan(missing))


def test_waivers_file_relative_to_the_plan_adds_to_the_plans_own(make_plan: Callable[..., Path]) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["waivers"] = [WAIVER]
        data["waivers_file"] = "panel/undantag.yaml"

    path = make_plan(edit)
    (path.parent / "panel").mkdir()
    (path.parent / "panel" / "undantag.yaml").write_text(
        "# accepted by the panel on 2026-11-25\n"
        "- criterion: clin-lab-order\n"
        "  reason: Manuell rutin på NÄL\n"
        "  accepted_by: Per Holm\n"
        "  date: 2026-11-25\n"
        "  expiry: 2026-12-15\n",
        encoding="utf-8",
    )
    loaded = load_plan(path)
    waivers = load_waivers(loaded.plan, loaded.path)
    assert [(w.criterion, w.accepted_by, w.expiry) for w in waivers] == [
        ("tech-printers", "Eva Strand", EXPIRY),
        ("clin-lab-order", "Per Holm", date(2026, 12, 15)),
    ]


def test_a_bad_waivers_file_names_file_line_and_field(make_plan: Callable[..., Path]) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["waivers_file"] = "undantag.yaml"

    path = make_plan(edit)
    loaded = load_plan(path)
    waivers = path.parent / "undantag.yaml"
    with pytest.raises(PlanError, match=r"undantag\.yaml: cannot read waivers_file"):
        load_waivers(loaded.plan, loaded.path)
    waivers.write_text(
        "waivers:\n"
        "  - criterion: tech-printers\n"
        "    reason: ok\n"
        "    accepted_by: Eva Strand\n"
        "    date: 2026-11-20\n"
        "    expiry: not a date\n"
        "  - criterion: no-such-criterion\n"
        "    site: sas-boras\n"
        "    reason: ok\n"
        "    accepted_by: Eva Strand\n"
        "    date: 2026-11-20\n"
        "    expiry: 2026-11-21\n",
        encoding="utf-8",
    )
    with pytest.raises(PlanError) as caught:
        load_waivers(loaded.plan, loaded.path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{waivers}:6: 0.expiry: Input should be a valid date")
    waivers.write_text(
        waivers.read_text(encoding="utf-8").replace("not a date", "2026-11-30"), encoding="utf-8"
    )
    with pytest.raises(PlanError) as caught:
        load_waivers(loaded.plan, loaded.path)
    assert caught.value.problems == [
        f"{waivers}:7: 1.criterion: no criterion 'no-such-criterion' in the plan"
    ]
    waivers.write_text("- [unclosed\n", encoding="utf-8")
    with pytest.raises(PlanError, match=r"undantag\.yaml:\d+: \(yaml\)"):
        load_waivers(loaded.plan, loaded.path)
    waivers.write_text("", encoding="utf-8")
    assert load_waivers(loaded.plan, loaded.path) == ()


def test_existing_plans_load_without_any_of_the_new_fields() -> None:
    plan = load_plan(Path(__file__).resolve().parents[1] / "plans" / "demo.yaml").plan
    assert (plan.wave, plan.owners, plan.waivers, plan.waivers_file) == (None, {}, [], None)
    assert all(c.owner is None and c.max_high is None for c in plan.criteria)
