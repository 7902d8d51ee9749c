"""The clinical web UI seam: a target's page objects come from the plan, what they cannot do is
not applicable, and the patient gate holds whatever the adapter does.

The third-party adapter here is a package written into tmp with an entry point (a dist-info on
PYTHONPATH, as pip would leave it): nothing in src/rehearsal or scenarios/ names it. It wraps the
reference hospital's page objects, marks what it shows, and declares that it cannot do referrals.
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
import yaml

from rehearsal import adapters, applicability, gonogo, patient_gate
from rehearsal.pages import web_ui
from rehearsal.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "test-only-password"
MARK = "[acme-ehr]"
NO_REFERRALS = "Acme EHR har ingen remisshantering"
ACME = f'''
"""Acme EHR's page objects: the reference hospital's screens, marked, without referrals."""
from rehearsal.pages.reference import ReferenceWebUi


class AcmeWebUi(ReferenceWebUi):
    name = "acme"
    cannot = {{"referrals": {{"sv": "{NO_REFERRALS}", "en": "Acme EHR has no referrals"}}}}

    def signed_in_as(self):
        return "{MARK} " + super().signed_in_as()
'''


def _acme(root: Path) -> Path:
    """The Acme adapter installed in a folder of its own (module + dist-info with the entry point)."""
    site = root / "site"
    site.mkdir()
    (site / "acme_ehr_pages.py").write_text(ACME, encoding="utf-8")
    info = site / "acme_ehr_pages-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-ehr-pages\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[rehearsal.adapters]\nweb_ui:acme = acme_ehr_pages:AcmeWebUi\n", encoding="utf-8"
    )
    return site


@pytest.fixture
def acme_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Acme adapter importable and its entry point visible in this process."""
    site = _acme(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    adapters._installed.cache_clear()
    yield site
    adapters._installed.cache_clear()


def _with_acme(data: dict[str, Any]) -> None:
    data["environment"]["adapters"] = {"web_ui": "acme"}


# -- the interfaces and the shipped features agree ------------------------------------------------------


def test_every_criterion_of_the_clinical_features_says_what_it_needs_of_the_web_ui() -> None:
    tags = set()
    for feature in (ROOT / "features" / "klinisk").glob("*.feature"):
        tags |= set(re.findall(r"@criterion:([\w-]+)", feature.read_text(encoding="utf-8")))
    assert tags and tags == set(web_ui.NEEDS)
    assert {c for needs in web_ui.NEEDS.values() for c in needs} <= set(web_ui.CAPABILITIES)


def test_the_reference_adapter_is_the_default_and_can_do_everything() -> None:
    plan = load_plan(ROOT / "plans" / "demo.yaml").plan
    reference = plan.environment.adapter("web_ui")
    assert reference.name == "reference" and reference.cannot == {}
    assert "reference" in adapters.available("web_ui")
    assert all(applicability.reason(plan, c, s) is None for c in plan.criteria for s in plan.sites)


# -- what the adapter cannot do is not applicable, with its reason ----------------------------------


def test_an_adapter_without_referrals_makes_the_referral_criterion_not_applicable(
    acme_installed: Path, make_plan
) -> None:
    plan = load_plan(make_plan(_with_acme)).plan
    decision = gonogo.decide(plan, [], complete=True, rehearsal=plan.rehearsal, run="r1", parent=None)
    lines = {(line.id, line.site): line for line in decision.criteria}
    referral = [line for (cid, _), line in lines.items() if cid == "clin-referral"]
    assert referral and all(line.status == "not_applicable" for line in referral)
    assert all(
        "acme" in line.details and "Acme EHR har ingen remisshantering" in line.details for line in referral
    )
    # what it can do stays applicable: no results yet is pending, not excused
    others = [line for (cid, _), line in lines.items() if cid in ("clin-lab-order", "clin-registration")]
    assert others and all(line.status == "pending" for line in others)


def test_the_reason_is_in_the_plans_language(acme_installed: Path, make_plan) -> None:
    plan = load_plan(make_plan(lambda d: (_with_acme(d), d.update(language="en")))).plan
    referral = plan.criterion("clin-referral")
    assert applicability.reason(plan, referral, plan.sites[0]) == (
        "the web UI (adapters.web_ui: acme) cannot do what the criterion needs: "
        "referrals: Acme EHR has no referrals"
    )


def test_a_capability_misspelt_in_cannot_is_one_line_naming_the_known_ones() -> None:
    sloppy = type("Sloppy", (), {"name": "sloppy", "cannot": {"referral": "no referrals"}})
    with pytest.raises(adapters.AdapterError) as err:
        web_ui.missing(sloppy, "clin-referral", "sv")
    said = str(err.value)
    assert "'sloppy' declares unknown capabilities referral in" in said and "referrals" in said
    assert "\n" not in said


# -- the patient gate stands in front of any adapter --------------------------------------------------


class _Careless:
    """An adapter that checks nothing and would type anything (and says so in `typed`)."""

    def __init__(self, reservnummer: str = "19810829M071") -> None:
        self.page = None
        self.typed: list[str] = []
        self.reservnummer = reservnummer

    def find_patient(self, identifier: str) -> str:
        self.typed.append(identifier)
        return "record"

    def register_known(self, personnummer: str) -> str:
        self.typed.append(personnummer)
        return "record"

    def register_unknown(self, sex: str, birth_date: str) -> tuple[str, str]:
        return "record", self.reservnummer


@pytest.fixture
def gate() -> Any:
    patient_gate.only(["19121212-1212"])
    yield
    patient_gate.reopen()


def test_the_gate_refuses_someone_else_before_a_careless_adapter_types_it(gate: None) -> None:
    careless = _Careless()
    ui = web_ui.Gated(careless)
    for action in (ui.find_patient, ui.register_known):
        with pytest.raises(patient_gate.NotATestIdentity):
            action("19800101-0019")
    assert careless.typed == []
    assert ui.find_patient("19121212-1212") == "record" and careless.typed == ["19121212-1212"]


def test_only_a_real_reservnummer_from_the_adapter_becomes_the_runs_own(gate: None) -> None:
    _, number = web_ui.Gated(_Careless("19810829M071")).register_unknown("male", "1981-08-29")
    assert patient_gate.allowed(number)
    lying = web_ui.Gated(_Careless("19800101-0019"))  # a personnummer passed off as a reservnummer
    with pytest.raises(AssertionError, match=r"19800101-\*\*\*\* som reservnummer"):
        lying.register_unknown("male", "1980-01-01")
    assert not patient_gate.allowed("19800101-0019")


# -- a real narrowed run through the plan and the entry point ------------------------------------------


def _rehearse(reports: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "REHEARSAL_PASSWORD": PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_a_new_targets_page_objects_run_the_clinical_features_through_the_plan(
    tmp_path: Path, make_plan
) -> None:
    site = _acme(tmp_path)
    plan = make_plan(_with_acme)
    first = yaml.safe_load(plan.read_text(encoding="utf-8"))["sites"][0]["id"]
    reports = tmp_path / "reports"
    up = _rehearse(reports, site, "reference", "up", "--plan", str(plan))
    assert up.returncode == 0, up.stderr
    try:
        run = _rehearse(reports, site, "run", "--plan", str(plan), "--aspect", "klinisk", "--site", first)
    finally:
        _rehearse(reports, site, "reference", "down")
    folder = (reports / "latest").resolve()
    results = [json.loads(p.read_text()) for p in (folder / "allure-results").glob("*-result.json")]
    ran = {r["name"]: r for r in results if r["status"] != "skipped"}
    assert ran and all(r["status"] == "passed" for r in ran.values()), run.stdout + run.stderr
    # every scenario that ran logged in through Acme's page objects: its mark is in the evidence
    for result in ran.values():
        login = [a for s in result["steps"] for a in s.get("attachments", []) if a["name"] == "Inloggad"]
        shown = (folder / "allure-results" / login[0]["source"]).read_text(encoding="utf-8")
        assert shown.startswith(MARK), shown
    # referrals were not run (not generated), and their line says why
    decision = json.loads((folder / "gonogo.json").read_text(encoding="utf-8"))
    lines = {(c["id"], c["site"]): c for c in decision["criteria"]}
    assert lines[("clin-referral", first)]["status"] == "not_applicable"
    assert "Acme EHR har ingen remisshantering" in json.dumps(
        lines[("clin-referral", first)], ensure_ascii=False
    )
    assert lines[("clin-lab-order", first)]["status"] == "pass"
    assert lines[("clin-registration", first)]["status"] == "pass"
    assert not any("remiss" in name for name in ran)
    skipped = [(r.get("statusDetails") or {}).get("message", "") for r in results if r["status"] == "skipped"]
    assert any(m.count(NO_REFERRALS) == 1 for m in skipped), skipped  # said once, not once per site
