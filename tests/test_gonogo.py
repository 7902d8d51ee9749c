"""The go/no-go decision on hand-made results: every criterion kind passing and failing."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rehearsal.gonogo import Decision, Line, decide
from rehearsal.plan import Plan, load_plan
from rehearsal.results import MergedResult, TestResult

DEMO = Path(__file__).resolve().parents[1] / "plans" / "demo.yaml"
_ids = itertools.count(1)


def result(
    name: str,
    status: str = "passed",
    *,
    criterion: str,
    site: str | None = None,
    aspect: str = "teknisk",
    device: str | None = None,
    message: str = "",
    stop: int = 1000,
) -> TestResult:
    n = next(_ids)
    labels = {"aspect": aspect, "criterion": criterion, "nodeid": f"t.py::{name}"}
    if site:
        labels["site"] = site
    if device:
        labels["device"] = device
    return TestResult(
        uuid=f"u{n}",
        history_id=f"h{n}",
        name=name,
        full_name=f"t#{name}",
        nodeid=labels["nodeid"],
        status=status,
        labels=labels,
        start=stop - 1,
        stop=stop,
        message=message,
    )


def m(r: TestResult, *retries: TestResult) -> MergedResult:
    return MergedResult(latest=r, retries=retries)


NAMES = {
    "org-roster": "Roster",
    "clin-lab-order": "Lab order",
    "tech-printers": "Printer ready",
    "tech-fhir": "FHIR search",
    "load-slo": "p95 patient search",
}


def expected_lines(plan: Plan) -> list[tuple[str, str | None]]:
    """(criterion, site) of every scorecard line: one per plan site for per-site criteria."""
    return [
        (c.id, site) for c in plan.criteria for site in ([s.id for s in plan.sites] if c.per_site else [None])
    ]


def all_green(plan: Plan) -> list[MergedResult]:
    """One passing result for every line of the plan (whatever criteria it has today)."""
    out = []
    for c in plan.criteria:
        if c.kind in ("run_complete", "findings"):
            continue
        for site in [s.id for s in plan.sites] if c.per_site else [None]:
            device = None
            if c.kind == "device_readiness":
                where = plan.site(site) if site else plan.sites[0]
                device = where.printers[0].id if where.printers else f"{where.id}-device"
                site = site or where.id
            name = NAMES.get(c.id, c.id)
            out.append(
                m(result(name, criterion=c.id, site=site, aspect=c.aspect or "teknisk", device=device))
            )
    return out


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(DEMO).plan


@pytest.fixture
def plan_with(make_plan: Callable[..., Path]) -> Callable[..., Plan]:
    """The demo plan with criteria replaced (or tweaked) by `edit(data)`."""

    def build(edit: Callable[[dict[str, Any]], None]) -> Plan:
        return load_plan(make_plan(edit)).plan

    return build


def run(plan: Plan, results: list[MergedResult], complete: bool = True) -> Decision:
    return decide(plan, results, complete=complete, rehearsal="demo-gr1", run="r2", parent="r1")


def lines(decision: Decision, criterion: str) -> dict[str | None, Line]:
    return {line.site: line for line in decision.criteria if line.id == criterion}


def test_everything_passing_is_go_with_the_exact_json_shape(plan: Plan) -> None:
    decision = run(plan, all_green(plan))
    assert decision.decision == "GO" and decision.go and decision.headline == "GO"
    data = json.loads(json.dumps(decision.to_json()))
    assert list(data) == [
        "decision", "headline", "complete", "rehearsal", "run", "parent", "criteria", "sites",
        "waived", "waivers", "findings", "open_findings", "today",
    ]  # fmt: skip
    assert (data["decision"], data["headline"], data["complete"], data["rehearsal"], data["run"]) == (
        "GO",
        "GO",
        True,
        "demo-gr1",
        "r2",
    )
    assert data["parent"] == "r1"
    assert (data["waived"], data["waivers"], data["findings"]) == (0, [], [])
    assert data["open_findings"] == {"critical": 0, "high": 0, "normal": 0}
    for line in data["criteria"]:
        assert list(line) == [
            "id",
            "title",
            "status",
            "site",
            "aspect",
            "details",
            "evidence",
            "severity",
            "waivers",
        ]
        assert line["status"] == "pass"
        assert isinstance(line["evidence"], list) and line["waivers"] == []
    # per-site criteria: one line per plan site; region-wide ones: one line with site null
    assert [(c["id"], c["site"]) for c in data["criteria"]] == expected_lines(plan)
    assert ("org-roster", "sas-boras") in expected_lines(plan) and ("tech-fhir", None) in expected_lines(plan)
    assert data["sites"]["sas-boras"]["klinisk"]["passed"] >= 1
    assert data["sites"]["sas-boras"]["klinisk"]["failed"] == 0
    region_wide = sum(
        1 for c in plan.criteria if not c.per_site and c.aspect == "teknisk" and c.kind != "device_readiness"
    )
    assert data["sites"]["central"]["teknisk"]["passed"] == region_wide
    assert set(data["sites"]) == {s.id for s in plan.sites} | {"central"}


def test_all_pass_fails_only_the_site_that_failed_and_names_the_test(plan: Plan) -> None:
    results = [
        x
        for x in all_green(plan)
        if not (x.latest.criterion == "clin-lab-order" and x.latest.site == "nal-trollhattan")
    ]
    results.append(
        m(
            result(
                "Lab order",
                "failed",
                criterion="clin-lab-order",
                site="nal-trollhattan",
                aspect="klinisk",
                message="button Skicka never appeared",
            )
        )
    )
    decision = run(plan, results)
    assert decision.decision == "NO-GO"
    lab = lines(decision, "clin-lab-order")
    assert lab["sas-boras"].status == "pass"
    failed = lab["nal-trollhattan"]
    assert failed.status == "fail"
    assert failed.evidence == ("Lab order",)
    assert "1 underkända: Lab order" in failed.details
    assert [r.name for r in failed.failures] == ["Lab order"]
    assert decision.failed() == [failed]
    assert decision.sites["nal-trollhattan"]["klinisk"]["failed"] == 1


def test_broken_counts_as_failed(plan: Plan) -> None:
    results = all_green(plan) + [m(result("FHIR read", "broken", criterion="tech-fhir"))]
    assert lines(run(plan, results), "tech-fhir")[None].status == "fail"


def test_no_results_is_pending_and_never_go(plan: Plan) -> None:
    decision = run(plan, [])
    assert decision.decision == "NO-GO"
    statuses = {(line.id, line.site): line.status for line in decision.criteria}
    assert statuses[("org-roster", "sas-boras")] == "pending"
    assert statuses[("org-roster", "nal-trollhattan")] == "pending"
    assert statuses[("tech-fhir", None)] == "pending"
    assert statuses[("run-complete", None)] == "pass"
    assert lines(decision, "tech-fhir")[None].details == "inga resultat ännu"
    # a site with no results of a per-site criterion is pending too, while the other passes
    only_sas = [x for x in all_green(plan) if x.latest.site != "nal-trollhattan"]
    roster = lines(run(plan, only_sas), "org-roster")
    assert roster["sas-boras"].status == "pass" and roster["nal-trollhattan"].status == "pending"


def test_only_skipped_results_are_pending_not_pass(plan: Plan) -> None:
    results = [x for x in all_green(plan) if x.latest.criterion != "load-slo"]
    results.append(m(result("p95 patient search", "skipped", criterion="load-slo", site="sas-boras")))
    line = lines(run(plan, results), "load-slo")["sas-boras"]  # the demo judges the load per site
    assert line.status == "pending"
    assert run(plan, results).decision == "NO-GO"


def test_success_rate_at_and_below_threshold(plan_with: Callable[..., Plan]) -> None:
    def edit(data: dict[str, Any]) -> None:
        next(c for c in data["criteria"] if c["id"] == "tech-fhir")["threshold"] = 0.9

    plan = plan_with(edit)
    base = [x for x in all_green(plan) if x.latest.criterion != "tech-fhir"]
    nine = [m(result(f"FHIR {i}", criterion="tech-fhir")) for i in range(9)]
    ok = run(plan, base + nine + [m(result("FHIR 9", "failed", criterion="tech-fhir"))])
    line = lines(ok, "tech-fhir")[None]
    assert line.status == "pass" and ok.decision == "GO"
    assert line.details.startswith("9/10 godkända (90 %); krav ≥ 90 %")
    assert "FHIR 9" in line.evidence  # the failure is still named, though within the threshold

    eight = nine[:8] + [m(result(f"FHIR x{i}", "failed", criterion="tech-fhir")) for i in range(2)]
    bad = run(plan, base + eight + [m(result("FHIR s", "skipped", criterion="tech-fhir"))])
    line = lines(bad, "tech-fhir")[None]
    assert line.status == "fail" and bad.decision == "NO-GO"
    assert line.details.startswith("8/10 godkända (80 %)")  # the skipped one is not counted
    assert line.evidence == ("FHIR x0", "FHIR x1")


def test_printer_paper_out_names_site_and_printer(plan: Plan) -> None:
    results = [
        x
        for x in all_green(plan)
        if not (x.latest.criterion == "tech-printers" and x.latest.site == "sas-boras")
    ]
    results.append(
        m(
            result(
                "Printer ready",
                "failed",
                criterion="tech-printers",
                site="sas-boras",
                device="sas-akut-dok1",
                message="printer-state-reasons: media-empty",
            )
        )
    )
    decision = run(plan, results)
    assert decision.decision == "NO-GO"
    printers = lines(decision, "tech-printers")
    line = printers["sas-boras"]
    assert line.status == "fail"
    assert "sas-boras" in line.details and "sas-akut-dok1" in line.details and "media-empty" in line.details
    assert "sas-akut-dok1" in line.evidence and "Printer ready" in line.evidence
    assert printers["nal-trollhattan"].status == "pass"


def test_device_readiness_threshold_counts_devices_not_results(plan_with: Callable[..., Plan]) -> None:
    def edit(data: dict[str, Any]) -> None:
        crit = next(c for c in data["criteria"] if c["id"] == "tech-printers")
        crit["threshold"] = 0.5
        crit["per_site"] = False

    plan = plan_with(edit)
    base = [x for x in all_green(plan) if x.latest.criterion != "tech-printers"]
    devices = [
        # two checks on one ready printer, one on a printer out of paper: 1 of 2 devices ready
        m(result("IPP state", criterion="tech-printers", site="sas-boras", device="p1")),
        m(result("SNMP state", criterion="tech-printers", site="sas-boras", device="p1")),
        m(
            result(
                "IPP state",
                "failed",
                criterion="tech-printers",
                site="sas-boras",
                device="p2",
                message="media-empty",
            )
        ),
        m(result("IPP state", criterion="tech-printers", site="nal-trollhattan", device="p3")),
    ]
    decision = run(plan, base + devices)
    line = lines(decision, "tech-printers")[None]
    assert line.status == "pass", line.details
    assert "sas-boras: 1/2" in line.details and "p2 (media-empty)" in line.details

    devices.append(
        m(
            result(
                "IPP state",
                "failed",
                criterion="tech-printers",
                site="nal-trollhattan",
                device="p4",
                message="offline",
            )
        )
    )
    devices.append(
        m(
            result(
                "IPP state",
                "failed",
                criterion="tech-printers",
                site="nal-trollhattan",
                device="p5",
                message="offline",
            )
        )
    )
    decision = run(plan, base + devices)
    line = lines(decision, "tech-printers")[None]
    assert line.status == "fail" and decision.decision == "NO-GO"
    # region-wide line, but the failing site and its devices are named
    assert "nal-trollhattan: 1/3" in line.details
    assert "p4" in line.evidence and "p5" in line.evidence and "p2" not in line.evidence


def test_load_slo_fails_when_one_slo_result_failed(plan: Plan) -> None:
    results = all_green(plan) + [
        m(result("p99 login", "failed", criterion="load-slo", site="sas-boras", message="p99 812 ms > 500"))
    ]
    load = lines(run(plan, results), "load-slo")  # the demo judges each site's simulated users apart
    assert load["sas-boras"].status == "fail" and load["sas-boras"].evidence == ("p99 login",)
    assert load["nal-trollhattan"].status == "pass"


def test_run_complete_follows_the_flag(plan: Plan) -> None:
    decision = run(plan, all_green(plan), complete=False)
    assert decision.decision == "NO-GO" and decision.complete is False
    line = lines(decision, "run-complete")[None]
    assert line.status == "fail" and "avbröts" in line.details


def test_rerun_failed_then_passed_is_a_pass(plan: Plan) -> None:
    results = [
        x
        for x in all_green(plan)
        if not (x.latest.criterion == "clin-lab-order" and x.latest.site == "sas-boras")
    ]
    earlier = result(
        "Lab order", "failed", criterion="clin-lab-order", site="sas-boras", aspect="klinisk", stop=1
    )
    later = result("Lab order", criterion="clin-lab-order", site="sas-boras", aspect="klinisk", stop=2)
    decision = run(plan, results + [m(later, earlier)])
    line = lines(decision, "clin-lab-order")["sas-boras"]
    assert line.status == "pass" and decision.decision == "GO"
    assert "1 efter omkörning" in line.details
    assert decision.sites["sas-boras"]["klinisk"]["failed"] == 0


def test_region_wide_and_unknown_site_results_of_per_site_criteria_get_their_own_line(plan: Plan) -> None:
    results = all_green(plan) + [
        m(result("Central roster", "failed", criterion="org-roster", aspect="organisatorisk")),
        m(result("Roster", criterion="org-roster", site="sahlgrenska", aspect="organisatorisk")),
    ]
    decision = run(plan, results)
    roster = lines(decision, "org-roster")
    assert roster["central"].status == "fail" and roster["central"].evidence == ("Central roster",)
    assert roster["sahlgrenska"].status == "pass"
    assert decision.sites["central"]["organisatorisk"]["failed"] == 1
    assert decision.sites["sahlgrenska"]["organisatorisk"]["passed"] == 1


def test_results_of_unknown_criteria_are_counted_but_do_not_decide(plan: Plan) -> None:
    results = all_green(plan) + [m(result("Stray", "failed", criterion="not-in-plan", site="sas-boras"))]
    decision = run(plan, results)
    assert decision.decision == "GO"
    assert decision.sites["sas-boras"]["teknisk"]["failed"] == 1


def test_unknown_status_is_counted_as_broken_and_keeps_the_line_pending(plan: Plan) -> None:
    results = [x for x in all_green(plan) if x.latest.criterion != "tech-fhir"]
    results.append(m(result("FHIR search", "unknown", criterion="tech-fhir")))
    decision = run(plan, results)
    assert lines(decision, "tech-fhir")[None].status == "pending"
    assert decision.sites["central"]["teknisk"]["broken"] == 1


def test_english_plan_gets_english_details(plan_with: Callable[..., Plan]) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["language"] = "en"

    decision = run(plan_with(edit), [])
    assert lines(decision, "tech-fhir")[None].details == "no results yet"


def test_decide_is_pure(plan: Plan) -> None:
    results = all_green(plan)
    snapshot = list(results)
    first = run(plan, results).to_json()
    assert run(plan, results).to_json() == first
    assert results == snapshot


# --- findings: grouping, severity, owners, the findings criterion --------------------------------


def failing(plan: Plan, criterion: str, site: str | None, name: str, **kw: Any) -> list[MergedResult]:
    """All green except `criterion` at `site`, which fails with one result called `name`."""
    keep = [x for x in all_green(plan) if not (x.latest.criterion == criterion and x.latest.site == site)]
    c = plan.criterion(criterion)
    aspect = c.aspect if c and c.aspect else "teknisk"
    return keep + [m(result(name, "failed", criterion=criterion, site=site, aspect=aspect, **kw))]


def test_failed_items_become_findings_by_criterion_and_site_with_owner_and_severity(plan: Plan) -> None:
    results = failing(plan, "clin-lab-order", "nal-trollhattan", "Lab order", message="Skicka\nmissing")
    results.append(m(result("Lab order again", "broken", criterion="clin-lab-order", site="nal-trollhattan")))
    decision = run(plan, results)
    [finding] = decision.findings
    assert finding.id == "clin-lab-order@nal-trollhattan" and finding.site == "nal-trollhattan"
    assert finding.severity == "critical" and finding.open and finding.blocking
    assert [r.name for r in finding.items] == ["Lab order", "Lab order again"]
    assert finding.summary == "Skicka"
    # no owner configured: the holder of the first command-centre role at that site
    assert finding.owner is not None
    assert (finding.owner.name, finding.owner.role, finding.owner.site) == (
        "Per Holm",
        "beslut",
        "nal-trollhattan",
    )
    assert decision.to_json()["open_findings"] == {"critical": 1, "high": 0, "normal": 0}


def test_severity_is_the_worse_of_criterion_and_result(plan_with: Callable[..., Plan]) -> None:
    def edit(data: dict[str, Any]) -> None:
        next(c for c in data["criteria"] if c["id"] == "clin-lab-order")["severity"] = "minor"

    plan = plan_with(edit)
    assert run(plan, failing(plan, "clin-lab-order", "sas-boras", "Lab")).findings[0].severity == "normal"
    labelled = failing(plan, "clin-lab-order", "sas-boras", "Lab")
    labelled[-1].latest.labels["severity"] = "normal"  # type: ignore[index]
    assert run(plan, labelled).findings[0].severity == "high"
    labelled[-1].latest.labels["severity"] = "blocker"  # type: ignore[index]
    assert run(plan, labelled).findings[0].severity == "critical"


def test_owner_from_criterion_then_plan_owners_then_default(plan_with: Callable[..., Plan]) -> None:
    def edit(data: dict[str, Any]) -> None:
        next(c for c in data["criteria"] if c["id"] == "tech-fhir")["owner"] = "Ali Hassan"
        data["owners"] = {
            "nal-trollhattan/klinisk": "support",
            "teknisk": "support",
            "default": "kommunikation",
        }

    plan = plan_with(edit)
    by_id = {
        f.id: f.owner
        for f in run(
            plan,
            all_green(plan)
            + [
                m(result("FHIR x", "failed", criterion="tech-fhir")),
                m(
                    result(
                        "Lab", "failed", criterion="clin-lab-order", site="nal-trollhattan", aspect="klinisk"
                    )
                ),
                m(result("Lab", "failed", criterion="clin-lab-order", site="sas-boras", aspect="klinisk")),
                m(
                    result(
                        "Printer",
                        "failed",
                        criterion="tech-printers",
                        site="sas-boras",
                        device="sas-akut-dok1",
                    )
                ),
            ],
        ).findings
    }
    assert by_id["tech-fhir@central"] and by_id["tech-fhir@central"].name == "Ali Hassan"  # criterion owner
    assert by_id["tech-fhir@central"].role == "support" and by_id["tech-fhir@central"].site is None
    assert by_id["clin-lab-order@nal-trollhattan"].name == "Lina Sjö"  # site/aspect → NÄL's support
    assert by_id["clin-lab-order@sas-boras"].name == "Sara Lind"  # default → Borås's kommunikation
    assert by_id["tech-printers@sas-boras"].name == "Johan Ek"  # aspect → Borås's support
    assert by_id["tech-printers@sas-boras"].phone == "+46 33 616 10 01"


def test_an_empty_role_at_the_site_falls_back_to_the_region(plan_with: Callable[..., Plan]) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["sites"][0]["command_centre"]["beslut"] = None

    plan = plan_with(edit)
    [finding] = run(plan, failing(plan, "org-roster", "sas-boras", "Roster")).findings
    assert finding.owner and (finding.owner.name, finding.owner.site) == ("Eva Strand", None)


def test_failures_without_a_plan_criterion_are_open_findings_that_do_not_block(plan: Plan) -> None:
    results = all_green(plan) + [
        m(result("Stray check", "failed", criterion="not-in-plan", site="sas-boras"))
    ]
    decision = run(plan, results)
    assert decision.decision == "GO"
    [finding] = decision.findings
    assert finding.title == "Stray check" and finding.open and not finding.blocking
    assert finding.severity == "high"  # no severity anywhere: counted as high, never ignored


def findings_plan(plan_with: Callable[..., Plan], **criterion: Any) -> Plan:
    def edit(data: dict[str, Any]) -> None:
        fhir = next(c for c in data["criteria"] if c["id"] == "tech-fhir")
        fhir["threshold"] = 0.5
        fhir["severity"] = "normal"  # findings of tech-fhir are "high"
        data["criteria"].append(
            {"id": "panel-findings", "title": "No open critical", "kind": "findings", **criterion}
        )

    return plan_with(edit)


def test_findings_criterion_no_open_critical_and_at_most_n_high(plan_with: Callable[..., Plan]) -> None:
    plan = findings_plan(plan_with, max_high=1)
    green = all_green(plan)
    one_high = green + [m(result("FHIR 2", "failed", criterion="tech-fhir"))]
    decision = run(plan, one_high)
    [line] = lines(decision, "panel-findings").values()
    assert line.status == "pass" and decision.decision == "GO"
    assert line.details == "öppna fynd: 0 kritiska, 1 höga (högst 1), 0 normala"
    # a second high finding (another site) is one too many
    two_high = one_high + [m(result("FHIR 3", "failed", criterion="tech-fhir", site="sas-boras"))]
    decision = run(plan, two_high)
    [line] = lines(decision, "panel-findings").values()
    assert line.status == "fail" and decision.decision == "NO-GO"
    assert set(line.evidence) == {"tech-fhir@central", "tech-fhir@sas-boras"}
    assert all(f.blocking for f in decision.findings)  # the failing findings line makes them blocking
    # a critical one fails it at once, even while its own criterion line is still within threshold
    critical = green + [m(result("FHIR c", "failed", criterion="tech-fhir"))]
    critical[-1].latest.labels["severity"] = "critical"  # type: ignore[index]
    assert lines(run(plan, critical), "panel-findings")[None].status == "fail"


def test_findings_criterion_is_pending_without_results_and_scoped_by_aspect(
    plan_with: Callable[..., Plan],
) -> None:
    plan = findings_plan(plan_with, aspect="klinisk", per_site=True)
    assert {line.status for line in lines(run(plan, []), "panel-findings").values()} == {"pending"}
    results = failing(plan, "org-roster", "sas-boras", "Roster")  # organisational: out of scope
    per_site = lines(run(plan, results), "panel-findings")
    assert per_site["sas-boras"].status == "pass" and per_site["nal-trollhattan"].status == "pass"
    results = failing(plan, "clin-lab-order", "sas-boras", "Lab")
    per_site = lines(run(plan, results), "panel-findings")
    assert per_site["sas-boras"].status == "fail" and per_site["nal-trollhattan"].status == "pass"


def test_plan_rejects_max_high_on_other_kinds_and_unknown_owners(make_plan: Callable[..., Path]) -> None:
    from rehearsal.plan import PlanError

    def bad_max(data: dict[str, Any]) -> None:
        data["criteria"][0]["max_high"] = 2

    with pytest.raises(PlanError, match=r"max_high only applies to kind findings"):
        load_plan(make_plan(bad_max))

    def bad_owner(data: dict[str, Any]) -> None:
        data["owners"] = {"teknisk": "Nobody Known"}

    with pytest.raises(
        PlanError, match=r"plan.yaml:\d+: owners: .*'Nobody Known' is neither a command-centre role"
    ):
        load_plan(make_plan(bad_owner))

    def bad_key(data: dict[str, Any]) -> None:
        data["owners"] = {"sas-boras/kemisk": "support"}

    with pytest.raises(PlanError, match=r"'sas-boras/kemisk' is not `default`, a site, an aspect"):
        load_plan(make_plan(bad_key))
