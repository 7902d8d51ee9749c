"""Go/no-go for real plans (#13): a criterion applies only where it can.

A site still on the legacy EHR has no new-EHR lines, a site without label printers no
label-printer line: those are *not applicable* with the reason, never pending, and the
decision is GO when everything that applies passes. A pending line can be waived like a
failed one. Pure tests on the decision, the pack's text, and what the plugin generates
(collection only, no hospital).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from rehearsal import applicability
from rehearsal.gonogo import Decision, Line, decide
from rehearsal.hardware import criterion_for
from rehearsal.history import Changes, Trend
from rehearsal.pack import EvidencePack, render_markdown
from rehearsal.plan import Plan, PlanError, load_plan
from rehearsal.results import MergedResult, TestResult

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 26)
_ids = itertools.count(1)
NEW_EHR = ("tech-login", "tech-lab-results", "tech-queues", "tech-referrals", "tech-npo", "tech-migration")


def site_of(data: dict[str, Any], site_id: str) -> dict[str, Any]:
    return next(s for s in data["sites"] if s["id"] == site_id)


def nal_legacy(data: dict[str, Any]) -> None:
    site_of(data, "nal-trollhattan")["system"] = "legacy"


def sas_without_labels(data: dict[str, Any]) -> None:
    sas = site_of(data, "sas-boras")
    sas["printers"] = [p for p in sas["printers"] if p["kind"] != "label"]


def both(data: dict[str, Any]) -> None:
    nal_legacy(data)
    sas_without_labels(data)


@pytest.fixture
def plan_with(make_plan: Callable[..., Path]) -> Callable[..., Plan]:
    def build(*edits: Callable[[dict[str, Any]], None]) -> Plan:
        def edit(data: dict[str, Any]) -> None:
            for e in edits:
                e(data)

        return load_plan(make_plan(edit)).plan

    return build


def result(
    criterion: str, site: str | None, status: str = "passed", device: str | None = None
) -> MergedResult:
    n = next(_ids)
    labels = {"criterion": criterion, "nodeid": f"t.py::t{n}"}
    if site:
        labels["site"] = site
    if device:
        labels["device"] = device
    return MergedResult(
        latest=TestResult(
            uuid=f"u{n}", history_id=f"h{n}", name=f"{criterion} {site}", full_name=f"t#{n}",
            nodeid=labels["nodeid"], status=status, labels=labels, start=1, stop=2,
        )
    )  # fmt: skip


def green_where_it_applies(plan: Plan, *, skip: tuple[str, str | None] | None = None) -> list[MergedResult]:
    """What a clean run reports: a pass for every (criterion, site) that applies, nothing elsewhere."""
    out = []
    for c in plan.criteria:
        if c.kind in ("run_complete", "findings"):
            continue
        for site in plan.sites if c.per_site else [None]:
            where = site.id if site else None
            if (c.id, where) == skip or (site and applicability.reason(plan, c, site)):
                continue
            device = None
            if c.kind == "device_readiness":
                at = site or plan.sites[0]
                kinds = plan.kinds_of(c)
                found = [p.id for p in at.printers if p.kind in kinds]
                found += [w.id for w in at.workstations] if "workstation" in kinds else []
                device, where = found[0], at.id
            out.append(result(c.id, where, device=device))
    return out


def decision_on(
    plan: Plan, results: list[MergedResult], today: date = TODAY, waivers: Any = None
) -> Decision:
    return decide(
        plan, results, complete=True, rehearsal=plan.rehearsal, run="r1", parent=None,
        waivers=plan.waivers if waivers is None else waivers, today=today,
    )  # fmt: skip


def line(decision: Decision, criterion: str, site: str | None) -> Line:
    return next(x for x in decision.criteria if x.id == criterion and x.site == site)


# --- the decision --------------------------------------------------------------------------------


def test_a_site_without_label_printers_has_no_label_printer_line_and_is_go(
    plan_with: Callable[..., Plan],
) -> None:
    plan = plan_with(sas_without_labels)
    decision = decision_on(plan, green_where_it_applies(plan))
    labels = line(decision, "tech-label-printers", "sas-boras")
    assert labels.status == "not_applicable"
    assert labels.details == "sas-boras har inga etikettskrivare i planen"
    assert line(decision, "tech-label-printers", "nal-trollhattan").status == "pass"
    # clin-printing is about wristband or label printers: the site still has a wristband printer
    assert line(decision, "clin-printing", "sas-boras").status == "pass"
    assert decision.decision == "GO" and decision.headline == "GO"
    assert [x.key for x in decision.not_applicable()] == ["tech-label-printers@sas-boras"]


def test_a_site_on_the_legacy_ehr_has_no_new_ehr_lines_and_is_go(plan_with: Callable[..., Plan]) -> None:
    plan = plan_with(nal_legacy)
    decision = decision_on(plan, green_where_it_applies(plan))
    na = {x.id for x in decision.not_applicable() if x.site == "nal-trollhattan"}
    clinical = {c.id for c in plan.criteria if c.aspect == "klinisk"}
    assert na == clinical | set(NEW_EHR) | {"load-slo"}  # its user is on the legacy EHR: no simulated users
    legacy = (
        "nal-trollhattan arbetar ännu i det äldre journalsystemet (system: legacy); kriteriet gäller "
        "den nya journalen"
    )
    assert line(decision, "clin-lab-order", "nal-trollhattan").details == legacy
    assert line(decision, "load-slo", "nal-trollhattan").details == legacy  # the root reason, not "no users"
    # what a legacy site still does (command centre, devices, HSA/KiV) applies and passed
    for applies in (
        "org-roster",
        "tech-printers",
        "tech-label-printers",
        "tech-workstations",
        "tech-directory",
    ):
        assert line(decision, applies, "nal-trollhattan").status == "pass", applies
    assert not [x for x in decision.not_applicable() if x.site == "sas-boras"]
    assert decision.decision == "GO"


def test_not_applicable_is_not_a_blanket_an_applicable_line_without_results_stays_pending(
    plan_with: Callable[..., Plan],
) -> None:
    plan = plan_with(both)
    decision = decision_on(plan, green_where_it_applies(plan, skip=("org-roster", "nal-trollhattan")))
    assert line(decision, "org-roster", "nal-trollhattan").status == "pending"
    assert decision.decision == "NO-GO"


def test_results_at_a_site_the_plan_calls_not_applicable_are_judged(plan_with: Callable[..., Plan]) -> None:
    """The plan's word never hides evidence: a failure there still fails the line."""
    plan = plan_with(nal_legacy)
    results = [*green_where_it_applies(plan), result("clin-referral", "nal-trollhattan", "failed")]
    decision = decision_on(plan, results)
    assert line(decision, "clin-referral", "nal-trollhattan").status == "fail"
    assert decision.decision == "NO-GO"


def test_without_the_plan_saying_so_the_features_routine_tags_decide(plan_with: Callable[..., Plan]) -> None:
    """The plan's criterion says nothing about system: its scenarios' ``@system:new`` still keeps
    them from a legacy site, so the line is not applicable with the routine's reason (not pending
    for ever); a criterion whose scenarios run anywhere stays pending without results."""

    def forget(data: dict[str, Any]) -> None:
        next(c for c in data["criteria"] if c["id"] == "tech-login").pop("system")

    plan = plan_with(nal_legacy, forget)
    results = green_where_it_applies(plan, skip=("tech-directory", "nal-trollhattan"))
    decision = decision_on(plan, results)
    login = line(decision, "tech-login", "nal-trollhattan")
    assert (login.status, login.details) == ("not_applicable", "nal-trollhattan arbetar i legacy-journalen")
    assert line(decision, "tech-directory", "nal-trollhattan").status == "pending"
    assert decision.decision == "NO-GO"


def test_a_site_without_workstations_has_no_workstation_line(plan_with: Callable[..., Plan]) -> None:
    plan = plan_with(lambda data: site_of(data, "nal-trollhattan").pop("workstations"))
    decision = decision_on(plan, green_where_it_applies(plan))
    x = line(decision, "tech-workstations", "nal-trollhattan")
    assert (x.status, x.details) == ("not_applicable", "nal-trollhattan har inga arbetsstationer i planen")
    assert decision.decision == "GO"


def test_english_reason_and_a_criterion_for_the_legacy_ehr(plan_with: Callable[..., Plan]) -> None:
    def english(data: dict[str, Any]) -> None:
        data["language"] = "en"
        data["criteria"].append(
            {
                "id": "legacy-read",
                "title": "Legacy read",
                "kind": "all_pass",
                "per_site": True,
                "system": "legacy",
            }
        )

    plan = plan_with(nal_legacy, english)
    decision = decision_on(plan, green_where_it_applies(plan))
    assert line(decision, "clin-lab-order", "nal-trollhattan").details == (
        "nal-trollhattan still works in the legacy EHR (system: legacy); the criterion is about the new EHR"
    )
    assert line(decision, "legacy-read", "sas-boras").details == (
        "sas-boras works in the new EHR (system: new); the criterion is about the legacy EHR"
    )
    assert line(decision, "legacy-read", "nal-trollhattan").status == "pass"


def test_a_region_wide_clinical_criterion_with_no_site_on_the_new_ehr_is_not_applicable(
    plan_with: Callable[..., Plan],
) -> None:
    def all_legacy(data: dict[str, Any]) -> None:
        for s in data["sites"]:
            s["system"] = "legacy"
        data["criteria"].append(
            {"id": "clin-region", "title": "Regionalt", "kind": "all_pass", "aspect": "klinisk"}
        )

    plan = plan_with(all_legacy)
    x = line(decision_on(plan, []), "clin-region", None)
    assert x.status == "not_applicable" and x.details.startswith(
        "ingen plats i planen där kriteriet gäller: "
    )


# --- waivers on pending lines --------------------------------------------------------------------

WAIVER = {
    "criterion": "org-readiness",
    "site": "nal-trollhattan",
    "reason": "Nedtidsövningen flyttad till vecka 48",
    "accepted_by": "Eva Strand",
    "date": "2026-11-20",
    "expiry": "2026-12-01",
}


def test_a_pending_line_covered_by_a_waiver_is_waived_and_go_with_one_waiver(
    plan_with: Callable[..., Plan],
) -> None:
    plan = plan_with(both, lambda data: data.update(waivers=[WAIVER]))
    results = green_where_it_applies(plan, skip=("org-readiness", "nal-trollhattan"))
    decision = decision_on(plan, results)
    x = line(decision, "org-readiness", "nal-trollhattan")
    assert x.status == "waived" and x.details == (
        "inga resultat ännu; undantag godkänt av Eva Strand, gäller t.o.m. 2026-12-01"
    )
    assert decision.decision == "GO" and decision.headline == "GO med 1 undantag (godkänt av Eva Strand)"
    assert decision.waivers[0].lines == ("org-readiness@nal-trollhattan",)


def test_an_expired_waiver_leaves_the_pending_line_pending(plan_with: Callable[..., Plan]) -> None:
    plan = plan_with(both, lambda data: data.update(waivers=[WAIVER]))
    results = green_where_it_applies(plan, skip=("org-readiness", "nal-trollhattan"))
    decision = decision_on(plan, results, today=date(2026, 12, 2))
    assert line(decision, "org-readiness", "nal-trollhattan").status == "pending"
    assert decision.decision == "NO-GO" and decision.waivers[0].state == "expired"


def test_a_waiver_for_another_site_does_not_cover_a_pending_line(plan_with: Callable[..., Plan]) -> None:
    plan = plan_with(lambda data: data.update(waivers=[{**WAIVER, "site": "sas-boras"}]))
    results = green_where_it_applies(plan, skip=("org-readiness", "nal-trollhattan"))
    decision = decision_on(plan, results)
    assert line(decision, "org-readiness", "nal-trollhattan").status == "pending"
    assert decision.decision == "NO-GO"


# --- the plan's device mapping -------------------------------------------------------------------


def test_device_kinds_route_device_results_and_default_to_the_documented_ids(
    plan_with: Callable[..., Plan],
) -> None:
    plan = plan_with()
    assert {k: criterion_for(plan, k).id for k in ("document", "wristband", "label", "workstation")} == {
        "document": "tech-printers",
        "wristband": "tech-wristband-printers",
        "label": "tech-label-printers",
        "workstation": "tech-workstations",
    }

    def own_ids(data: dict[str, Any]) -> None:
        data["criteria"] = [c for c in data["criteria"] if c["kind"] != "device_readiness"]
        readiness = {"kind": "device_readiness", "per_site": True, "threshold": 1}
        data["criteria"] += [
            {"id": "skrivare", "title": "Skrivare", **readiness},
            {"id": "zebra", "title": "Zebra", **readiness, "device_kinds": ["wristband", "label"]},
        ]

    plan = plan_with(sas_without_labels, own_ids)
    assert [criterion_for(plan, k).id for k in ("document", "wristband", "label", "workstation")] == [
        "skrivare", "zebra", "zebra", "skrivare",
    ]  # fmt: skip
    zebra = plan.criterion("zebra")
    assert zebra is not None and plan.kinds_of(zebra) == {"wristband", "label"}
    # sas-boras still has a wristband printer: the Zebra line applies there
    assert applicability.reason(plan, zebra, plan.site("sas-boras")) is None


def test_two_readiness_criteria_claiming_one_device_kind_are_refused(make_plan: Callable[..., Path]) -> None:
    def twice(data: dict[str, Any]) -> None:
        for c in data["criteria"]:
            if c["id"] in ("tech-printers", "tech-label-printers"):
                c["device_kinds"] = ["label"]

    with pytest.raises(
        PlanError, match="device kind in device_kinds of two device_readiness criteria: label"
    ):
        load_plan(make_plan(twice))


# --- what the panel reads ------------------------------------------------------------------------


def test_the_pack_shows_not_applicable_lines_with_their_reason_outside_the_total(
    plan_with: Callable[..., Plan], tmp_path: Path
) -> None:
    plan = plan_with(both)
    decision = decision_on(plan, green_where_it_applies(plan))
    pack = EvidencePack(decision=decision, trend=Trend(wave=plan.rehearsal), changes=Changes())
    text = render_markdown(pack, plan, tmp_path)
    na = len(decision.not_applicable())
    applies = len(decision.criteria) - na
    assert (
        f"{applies} av {applies} kriterier godkända · 0 undantagna · 0 underkända · 0 väntar · {na} ej "
        in text
    )
    assert "| Ej tillämplig | Etikettskrivare (provrör) redo per plats (`tech-label-printers`) " in text
    assert "sas-boras har inga etikettskrivare i planen |" in text


# --- what the plugin generates -------------------------------------------------------------------


def collected(plan: Path) -> list[str]:
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", str(ROOT / "scenarios"), str(ROOT / "hardware_checks"),
            "--rootdir", str(ROOT), "-p", "no:cacheprovider", "-p", "no:locust",
            "-o", f"bdd_features_base_dir={ROOT / 'features'}", "--rehearsal-plan", str(plan),
            "--collect-only", "-q",
        ],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return [x for x in done.stdout.splitlines() if "::" in x]


def test_tests_are_not_generated_where_their_criterion_cannot_apply(make_plan: Callable[..., Path]) -> None:
    """The directory check and the document printers, said to be new-EHR only: not at the legacy site."""

    def new_only(data: dict[str, Any]) -> None:
        both(data)
        for c in data["criteria"]:
            if c["id"] in ("tech-directory", "tech-printers"):
                c["system"] = "new"

    ids = collected(make_plan(new_only))
    directory = [x for x in ids if "samma_hsaid_i_journalen_som_i_hsakiv" in x]
    assert directory and not [x for x in directory if "nal-trollhattan" in x], directory
    printers = [x for x in ids if "test_printer_ready" in x]
    assert "nal-trollhattan/nal-lab-dok1" not in " ".join(printers)
    assert "nal-trollhattan/nal-lab-etikett1" in " ".join(printers)  # label printers: no system asked
    assert "sas-boras/sas-akut-dok1" in " ".join(printers)
    assert not [x for x in printers if "sas-lab-etikett1" in x]  # removed from the plan


def test_with_no_unit_on_the_legacy_ehr_the_coexistence_criteria_are_not_applicable(
    plan_with: Callable[..., Plan],
) -> None:
    """A region past coexistence (no legacy unit anywhere): NPÖ and cross-border referrals have no
    other side. Their scenarios are not collected (@route:…), so the lines are not applicable with
    the routine's reason, not pending for ever; the new EHR's own workflows still apply."""

    def no_legacy(data: dict[str, Any]) -> None:
        for site in data["sites"]:
            site["units"] = [u for u in site.get("units", []) if u.get("system") != "legacy"]

    plan = plan_with(no_legacy)
    decision = decision_on(plan, green_where_it_applies(plan))
    for site in ("sas-boras", "nal-trollhattan"):
        for coexistence in ("tech-npo", "tech-referrals", "clin-referral"):
            x = line(decision, coexistence, site)
            assert x.status == "not_applicable", (coexistence, site)
        assert "ingen enhet i det äldre journalsystemet" in line(decision, "tech-npo", site).details
        assert line(decision, "clin-lab-order", site).status == "pass"
    assert decision.decision == "GO"
    # with the legacy unit, the same criteria apply and a missing result is pending
    plan = load_plan(ROOT / "plans" / "demo.yaml").plan
    decision = decision_on(plan, green_where_it_applies(plan, skip=("tech-npo", "sas-boras")))
    assert line(decision, "tech-npo", "sas-boras").status == "pending"
