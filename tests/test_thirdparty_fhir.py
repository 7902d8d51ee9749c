"""The harness against a third-party FHIR R4 server: Medplum's FhirRouter (npm), seeded Swedish-style.

A new user's FHIR server finds 0 test patients when it is searched with the personnummer as
written (``…|19391209-9805``), because Swedish profiles store the 12 digits and a standard
server matches a token exactly. Here the target is not the reference hospital but Medplum's
in-memory server (``tests/medplum/server.mjs``, on a free loopback port), seeded only through
its REST API the way a hospital's test environment would be: Patients with 12-digit
personnummer (one stored dashed, as an old import would), Practitioner, PractitionerRole and
Organization with HSA-ids, server-assigned ids, roles as a code's text or only a coding.

- The FHIR client finds every test patient in either stored form; without the 12-digit form
  the search finds none (the fault the user reported).
- ``rehearse run --aspect teknisk`` on a plan whose only system is that server: every
  FHIR-based technical criterion passes (tech-fhir, tech-integrations, tech-login per site,
  tech-directory against an LDIF export, tech-lab-results with a lab answering through the
  API, tech-test-identities); the coexistence ones do not apply (no bridge, legacy, lab MLLP).
- The lab files the results of one site's orders on another test patient: tech-lab-results
  fails at that site only, naming the wrong patient.
- The FHIR load paths (login, patient search, chart, lab order, results, referral) run
  against it without a failed request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from medplum_peer import medplum_servers

from reference_hospital.directory import build_ldif
from rehearsal.clients.fhir import FhirClient
from rehearsal.identities import HSA_ID_SYSTEM, PERSONNUMMER_OID
from rehearsal.load import evaluate, run_load
from rehearsal.plan import Plan, load_plan
from tests.conftest import DEMO_PLAN

PNR_SYSTEM = f"urn:oid:{PERSONNUMMER_OID}"
LAB = {"system": "http://snomed.info/sct", "code": "108252007"}
PASSWORD = "medplum-" + os.urandom(4).hex()  # the wrapper checks no password; the harness still sends one
#: Criteria that need only the FHIR server (and a directory export): they must pass on Medplum.
FHIR_CRITERIA = {
    "tech-fhir",
    "tech-integrations",
    "tech-login",
    "tech-directory",
    "tech-lab-results",
    "tech-test-identities",
    "run-complete",
}
#: The one identity seeded as written (dashed), the others as the Swedish profile's 12 digits.
DASHED = "20100101-0113"


@dataclass
class Medplum:
    """The running server, its base URL and what was seeded (server ids by plan key)."""

    base: str
    http: httpx.Client
    patients: dict[str, str] = field(default_factory=dict)  # personnummer -> Patient id
    roles: dict[str, str] = field(default_factory=dict)  # PractitionerRole id -> site id
    elsewhere: set[str] = field(default_factory=set)  # roles of a user at another site than their plan site

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post(resource["resourceType"], json=resource)
        assert answer.status_code == 201, answer.text
        return answer.json()


def _seed(server: Medplum, plan: Plan) -> None:
    """Organizations, Practitioners, PractitionerRoles and Patients of the demo plan, through the API."""
    orgs: dict[str, str] = {}
    for site in plan.sites:
        org = server.create(
            {
                "resourceType": "Organization",
                "name": site.name,
                "active": True,
                "identifier": [{"system": HSA_ID_SYSTEM, "value": site.hsa_id}],
            }
        )
        orgs[site.id] = org["id"]
        for unit in site.units:
            server.create(
                {
                    "resourceType": "Organization",
                    "name": unit.name,
                    "identifier": [{"system": HSA_ID_SYSTEM, "value": unit.hsa_id}],
                    "partOf": {"reference": f"Organization/{org['id']}"},
                }
            )
    for n, site in enumerate(plan.sites):
        for user in site.users:
            given, _, family = user.name.rpartition(" ")
            person = server.create(
                {
                    "resourceType": "Practitioner",
                    "name": [{"family": family, "given": [given]}],
                    "identifier": [{"system": HSA_ID_SYSTEM, "value": user.hsa_id}],
                }
            )
            # The first site's role as the code's text; the second's only as a coding (display).
            code = (
                {"text": user.role}
                if n == 0
                else {
                    "coding": [
                        {"system": "urn:oid:1.2.752.129.2.2.1.4", "code": f"R{n}", "display": user.role}
                    ]
                }
            )
            # The second site's user also works at the first site, listed first: the role at the
            # plan's site must be told apart by its Organization's HSA-id.
            for where in ([plan.sites[0]] if n else []) + [site]:
                role = server.create(
                    {
                        "resourceType": "PractitionerRole",
                        "active": True,
                        "code": [code],
                        "identifier": [{"system": HSA_ID_SYSTEM, "value": user.hsa_id}],
                        "practitioner": {"reference": f"Practitioner/{person['id']}", "display": user.name},
                        "organization": {
                            "reference": f"Organization/{orgs[where.id]}",
                            "display": where.name,
                        },
                    }
                )
                if where is not site:
                    server.elsewhere.add(role["id"])
            server.roles[role["id"]] = site.id
    for identity in plan.test_identities:
        value = (
            identity.personnummer
            if identity.personnummer == DASHED
            else identity.personnummer.replace("-", "")
        )
        given, _, family = identity.name.rpartition(" ")
        patient = server.create(
            {
                "resourceType": "Patient",
                "active": True,
                "identifier": [{"system": PNR_SYSTEM, "value": value}],
                "name": [{"text": identity.name, "family": family, "given": [given]}],
            }
        )
        server.patients[identity.personnummer] = patient["id"]


class Lab(threading.Thread):
    """A lab answering through the API: a DiagnosticReport for every lab order, on the order's
    patient, or on another test patient for the orders of ``misfile_site`` (the planted fault)."""

    def __init__(self, server: Medplum) -> None:
        super().__init__(daemon=True, name="medplum-lab")
        self.server, self.misfile_site = server, None
        self.answered: set[str] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.server.base + "/", timeout=5) as http:
            while not self._halt.wait(0.1):
                orders = http.get(
                    "ServiceRequest", params={"category": f"{LAB['system']}|{LAB['code']}"}
                ).json()
                for entry in orders.get("entry") or []:
                    if entry["resource"]["id"] not in self.answered:
                        self._answer(http, entry["resource"])

    def _answer(self, http: httpx.Client, order: dict[str, Any]) -> None:
        role = str((order.get("requester") or {}).get("reference", "")).rpartition("/")[2]
        subject = order["subject"]
        if self.misfile_site and self.server.roles.get(role) == self.misfile_site:
            ordered = subject["reference"].rpartition("/")[2]
            other = next(p for p in self.server.patients.values() if p != ordered)
            subject = {"reference": f"Patient/{other}"}
        report = {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "code": order["code"],
            "subject": subject,
            "basedOn": [{"reference": f"ServiceRequest/{order['id']}"}],
            "issued": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        assert http.post("DiagnosticReport", json=report).status_code == 201
        self.answered.add(order["id"])

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


@pytest.fixture(scope="module")
def medplum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Medplum]:
    with medplum_servers(tmp_path_factory, "medplum") as (base,):
        with httpx.Client(base_url=base + "/", headers={"Content-Type": "application/fhir+json"}) as http:
            server = Medplum(base, http)
            _seed(server, load_plan(DEMO_PLAN).plan)
            yield server


@pytest.fixture
def lab(medplum: Medplum) -> Iterator[Lab]:
    peer = Lab(medplum)
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def medplum_plan(make_plan: Callable[..., Path], medplum: Medplum, tmp_path: Path) -> Callable[..., Path]:
    """The demo plan with Medplum as its only system: FHIR there, HSA/KiV as an LDIF export,
    no legacy EHR, bridge or lab MLLP, no devices; lab orders go to the lab directly. Its load
    section (a short one) only when asked for."""
    ldif = tmp_path / "kiv.ldif"

    def make(load: bool = False, more: Callable[[dict[str, Any]], None] | None = None) -> Path:
        def edit(data: dict[str, Any]) -> None:
            env = data["environment"]
            for gone in ("legacy_base", "lab_mllp", "bridge_base", "bridge_mllp"):
                env.pop(gone, None)
            env["fhir_base"] = medplum.base
            env["web_base"] = medplum.base.removesuffix("/fhir/R4")  # no web UI: klinisk is not run here
            env["directory"] = str(ldif)
            for site in data["sites"]:
                site["lab_route"] = "direct"
                site.pop("printers", None)
                site.pop("workstations", None)
                for unit in site.get("units", []):
                    unit.pop("system", None)  # no legacy EHR to be on
            data["coexistence"]["lab"] = {"result_delay_s": 0.2, "result_within_s": 10}
            data["criteria"] = [c for c in data["criteria"] if c["id"] in FHIR_CRITERIA]
            if load:  # tasks are drawn by weight: the demo's mix left a rare path untried now and then
                data["load"].update(users=4, spawn_rate=4, duration_s=8)
                for load_path in data["load"]["paths"]:  # every path as often: each must be seen to work
                    load_path.pop("weights", None)
                    load_path["weight"] = 1
            else:
                data.pop("load")
            if more:
                more(data)

        path = make_plan(edit)
        ldif.write_text(build_ldif(load_plan(path).plan), encoding="utf-8")
        return path

    return make


def _rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "REHEARSAL_PASSWORD": PASSWORD},
    )


def _lines(reports: Path) -> dict[tuple[str, str | None], dict[str, Any]]:
    found = json.loads((reports / "latest" / "gonogo.json").read_text(encoding="utf-8"))
    return {(c["id"], c["site"]): c for c in found["criteria"]}


def _messages(reports: Path, criterion: str) -> dict[str | None, list[str]]:
    """Failure messages of a criterion's results, by site."""
    found: dict[str | None, list[str]] = {}
    for path in (reports / "latest" / "allure-results").glob("*-result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        labels = {lab["name"]: lab["value"] for lab in result.get("labels", [])}
        if labels.get("criterion") == criterion and result["status"] != "passed":
            found.setdefault(labels.get("site"), []).append(
                (result.get("statusDetails") or {}).get("message", "")
            )
    return found


# -- the search itself ---------------------------------------------------------------------------


def test_every_test_patient_is_found_in_either_stored_form(medplum: Medplum) -> None:
    plan = load_plan(DEMO_PLAN).plan
    env = plan.environment.model_copy(update={"fhir_base": medplum.base})
    with FhirClient(env) as fhir:
        found = {
            i.personnummer: [p["id"] for p in fhir.patients_by_personnummer(i.personnummer)]
            for i in plan.test_identities
        }
        as_written = {
            i.personnummer: len(fhir.search("Patient", {"identifier": f"{PNR_SYSTEM}|{i.personnummer}"}))
            for i in plan.test_identities
        }
    assert found == {pnr: [pid] for pnr, pid in medplum.patients.items()}
    # What the user saw: asked as written, a standard server finds only the one stored dashed.
    assert as_written == {i.personnummer: int(i.personnummer == DASHED) for i in plan.test_identities}


# -- the technical checks through the plugin ---------------------------------------------------------


@pytest.mark.slow
def test_fhir_based_technical_checks_pass_against_medplum(
    medplum_plan: Callable[..., Path], lab: Lab, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    done = _rehearse(reports, "run", "--plan", str(medplum_plan()), "--aspect", "teknisk")
    lines = _lines(reports)

    failed = {k: v.get("summary") for k, v in lines.items() if v["status"] not in ("pass", "not_applicable")}
    assert not failed, f"{failed}\n{_messages(reports, 'tech-login')}\n{done.stdout[-3000:]}"
    passed = {k for k, v in lines.items() if v["status"] == "pass"}
    sites = ("sas-boras", "nal-trollhattan")
    assert passed >= {
        ("tech-fhir", None),
        ("tech-integrations", None),
        ("tech-test-identities", None),
        *((c, s) for c in ("tech-login", "tech-lab-results", "tech-directory") for s in sites),
    }
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(lab.answered) == 2 * 3  # every site's user ordered for every test patient, and got an answer


@pytest.mark.slow
def test_records_and_migration_through_the_standards_adapters_pass_against_medplum(
    medplum_plan: Callable[..., Path], medplum: Medplum, lab: Lab, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    """The NPÖ-like read and the migration check, with Medplum as the new EHR and a second Medplum
    as the legacy system's FHIR face (its bookings the migration's source): both pass at each site,
    beside every other FHIR-based check, in one run of the teknisk aspect."""
    from test_adapter_migration import BOOKING_SYSTEM, bookings

    with medplum_servers(tmp_path_factory, "legacy") as (legacy_base,):
        headers = {"Content-Type": "application/fhir+json"}
        with httpx.Client(base_url=legacy_base + "/", headers=headers) as http:
            legacy = Medplum(legacy_base, http)
            plan = load_plan(DEMO_PLAN).plan
            legacy_units = {u.id for s in plan.sites for u in s.units if u.system == "legacy"}
            for identity in plan.test_identities:  # the legacy side knows the same test patients
                pnr = identity.personnummer.replace("-", "")
                legacy.create(
                    {"resourceType": "Patient", "identifier": [{"system": PNR_SYSTEM, "value": pnr}]}
                )
            for pid in medplum.patients.values():  # a result the new side shows beside the legacy note
                medplum.create({
                    "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "P-Na"},
                    "subject": {"reference": f"Patient/{pid}"}, "conclusion": "Natrium 140 mmol/L",
                })  # fmt: skip
            for booking in bookings(plan):  # migrated as they were: the same on both sides
                booking.pop("site")
                legacy.create(booking)
                medplum.create(booking)

            def standards(data: dict[str, Any]) -> None:
                data["environment"]["adapters"] = {"records": "standards", "migration": "standards"}
                data["environment"]["records"] = {"legacy_fhir": legacy_base}
                data["environment"]["migration"] = {
                    "source_fhir": legacy_base,
                    "target_fhir": medplum.base,
                    "identifier_system": BOOKING_SYSTEM,
                }
                for site in data["sites"]:  # the demo's not-yet-live units again: where NPÖ reads across to
                    for unit in site.get("units", []):
                        if unit["id"] in legacy_units:
                            unit["system"] = "legacy"
                data["criteria"] = [
                    c for c in yaml.safe_load(DEMO_PLAN.read_text(encoding="utf-8"))["criteria"]
                    if c["id"] in FHIR_CRITERIA | {"tech-npo", "tech-migration"}
                ]  # fmt: skip

            reports = tmp_path / "reports"
            done = _rehearse(
                reports, "run", "--plan", str(medplum_plan(more=standards)), "--aspect", "teknisk"
            )
    lines = _lines(reports)
    failed = {k: v.get("details") for k, v in lines.items() if v["status"] not in ("pass", "not_applicable")}
    assert not failed, f"{failed}\n{_messages(reports, 'tech-npo')}\n{_messages(reports, 'tech-migration')}"
    passed = {k for k, v in lines.items() if v["status"] == "pass"}
    sites = ("sas-boras", "nal-trollhattan")
    assert passed >= {
        (c, s) for c in ("tech-npo", "tech-migration", "tech-lab-results", "tech-login") for s in sites
    }
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.slow
def test_a_result_on_the_wrong_patient_fails_lab_results_at_that_site_only(
    medplum_plan: Callable[..., Path], lab: Lab, tmp_path: Path
) -> None:
    lab.misfile_site = "nal-trollhattan"
    reports = tmp_path / "reports"
    done = _rehearse(reports, "run", "--plan", str(medplum_plan()), "--aspect", "teknisk")
    lines = _lines(reports)

    failed = {k for k, v in lines.items() if v["status"] == "fail"}
    assert failed == {("tech-lab-results", "nal-trollhattan")}, done.stdout[-3000:]
    assert lines[("tech-lab-results", "sas-boras")]["status"] == "pass"
    messages = _messages(reports, "tech-lab-results")
    assert set(messages) == {"nal-trollhattan"}
    assert "svar på fel patient" in messages["nal-trollhattan"][0]
    assert done.returncode == 1  # NO-GO


# -- the load ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("roles_found", ["before-the-load", "at-login"])
def test_fhir_load_paths_pass_against_medplum(
    medplum_plan: Callable[..., Path],
    medplum: Medplum,
    roles_found: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("REHEARSAL_PASSWORD", PASSWORD)
    if roles_found == "at-login":  # as when Locust runs by hand: each clinician looks its role up
        monkeypatch.setattr("rehearsal.load.resolve_roles", lambda plan, env: {})
    loaded = load_plan(medplum_plan(load=True))
    before = _lab_orders(medplum)
    result = run_load(loaded.path, loaded.plan, tmp_path / "load")

    assert result.complete
    for path in loaded.plan.load.paths:  # every path had traffic and no request failed (times vary)
        stats = result.paths.get(path.id)
        assert stats is not None and stats.num_requests > 0, (path.id, result.paths)
        assert stats.num_failures == 0, (path.id, stats.top_error)
    error_slos = [v for v in evaluate(loaded.plan.load, result) if v.slo == "error_ratio"]
    assert error_slos and all(v.passed for v in error_slos)
    handed = json.loads((tmp_path / "load" / "roles.json").read_text(encoding="utf-8"))
    expected = set(medplum.roles) if roles_found == "before-the-load" else set()
    assert {r["reference"].rpartition("/")[2] for r in handed.values()} == expected
    requesters = {o for k, o in _lab_orders(medplum).items() if k not in before}
    assert requesters and requesters <= set(medplum.roles), (requesters, medplum.elsewhere)


def _lab_orders(medplum: Medplum) -> dict[str, str]:
    """Lab order id → the PractitionerRole id it names as requester."""
    bundle = medplum.http.get("ServiceRequest", params={"category": f"{LAB['system']}|{LAB['code']}"}).json()
    return {
        e["resource"]["id"]: str(e["resource"].get("requester", {}).get("reference", "")).rpartition("/")[2]
        for e in bundle.get("entry") or []
    }
