"""The new EHR over real HTTP: every resource type, transactions, validation, faults, web UI, printing.

Most tests run the EHR alone (``EhrServer``: FHIR API and web UI on a free loopback port,
its own fault board); the last ones run it inside the whole ``Hospital`` to check that
the hospital's fault switch reaches the EHR. Browser flows are in test_pages.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import free_port
from reference_hospital.ehr import PERSONNUMMER_SYSTEM, RESERVNUMMER_SYSTEM, patient_id
from reference_hospital.ehr_faults import SLOW_LAB_ORDER_S
from reference_hospital.ehr_server import EhrServer
from reference_hospital.faults import SLOW_PATIENT_SEARCH_S, Fault
from reference_hospital.fhir_resources import LAB_CATEGORY, REFERRAL_CATEGORY, ResultValue, result_bundle
from reference_hospital.hospital import Hospital
from reference_hospital.printing import parse_host_status, send_ipp, send_zpl, simple_pdf, wristband_zpl
from rehearsal.errors import TargetError, UsageError
from rehearsal.identities import HSA_ID_SYSTEM, check_reservnummer
from rehearsal.plan import Plan, Printer, Unit, load_plan

DEMO = Path(__file__).resolve().parents[1] / "plans" / "demo.yaml"
PASSWORD = "test-only-password"
TOLVAN, TESTA, LILLA = "19121212-1212", "19800101-0019", "20100101-0113"
NOT_IN_PLAN = "19800101-0027"  # a well-formed personnummer that is not a plan test identity
ANNA, BJORN = "SE2321000131-P000000000101", "SE2321000131-P000000000201"  # sas-boras, nal-trollhattan
FHIR = "application/fhir+json"
NAL_UNIT = "SE2321000131-E000000000211"
NPU = "urn:oid:1.2.208.176.2.1"
CRP = {"coding": [{"system": NPU, "code": "NPU19748", "display": "P-CRP"}]}
REFERRAL_TEXT = "Ingen feber, inget blod i urinen, inte öm, ej smärta.\nFråga: är det något åt? Ååå ÄÖ."


def plan_on(port: int, fhir: str | None = None, web: str | None = None, **site_changes: Any) -> Plan:
    """The demo plan's EHR on a free port, alone: no printers, no coexistence components."""
    plan = load_plan(DEMO).plan
    env = plan.environment.model_copy(
        update={
            "fhir_base": fhir or f"http://127.0.0.1:{port}/fhir",
            "web_base": web or f"http://127.0.0.1:{port}",
            **dict.fromkeys(("legacy_base", "lab_mllp", "bridge_base", "bridge_mllp", "directory")),
        }
    )
    sites = [s.model_copy(update={"printers": [], **site_changes.get(s.id, {})}) for s in plan.sites]
    return plan.model_copy(update={"environment": env, "sites": sites})


def rich_plan(port: int) -> Plan:
    """Demo sites with our own units (one at NÄL, a legacy one at SÄS) plus a site still on the legacy EHR."""
    units = {
        "nal-trollhattan": [Unit(id="nal-akut", name="NÄL Akutmottagning", hsa_id=NAL_UNIT)],
        "sas-boras": [
            Unit(id="sas-orto", name="Ortopeden SÄS", hsa_id="SE2321000131-E000000000112", system="legacy")
        ],
    }
    base = plan_on(port, **{site: {"units": u} for site, u in units.items()})
    legacy = base.sites[0].model_copy(
        update={
            "id": "kungalv",
            "name": "Kungälvs sjukhus",
            "hsa_id": "SE2321000131-E000000000301",
            "system": "legacy",
            "units": [],
            "users": [
                base.sites[0]
                .users[0]
                .model_copy(update={"hsa_id": "SE2321000131-P000000000301", "name": "Lars Gammal"})
            ],
        }  # fmt: skip
    )
    return base.model_copy(update={"sites": [*base.sites, legacy]})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EhrServer]:
    with EhrServer(
        rich_plan(free_port()), tmp_path_factory.mktemp("ehr"), environ={"REHEARSAL_PASSWORD": PASSWORD}
    ) as running:
        yield running


@pytest.fixture
def fhir(server: EhrServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.fhir_base, timeout=10, headers={"Accept": FHIR}) as client:
        yield client


@pytest.fixture
def web(server: EhrServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.web_base, timeout=10) as client:
        yield client


@contextlib.contextmanager
def fault(server: EhrServer, name: str, site: str | None = None) -> Iterator[None]:
    server.board.activate(Fault(name, site))
    try:
        yield
    finally:
        assert server.board.deactivate(Fault(name, site))


def issues(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert response.headers["content-type"].startswith(FHIR)
    return " | ".join(i["diagnostics"] for i in body["issue"])


def entries(bundle: httpx.Response) -> list[dict[str, Any]]:
    assert bundle.status_code == 200, bundle.text
    body = bundle.json()
    assert body["total"] == len(body["entry"])
    return [e["resource"] for e in body["entry"]]


def lab_order(pid: str, **changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [LAB_CATEGORY]}],
        "code": CRP,
        "subject": {"reference": f"Patient/{pid}"},
    }
    order.update(changes)
    return {k: v for k, v in order.items() if v is not None}


def post(fhir: httpx.Client, resource: dict[str, Any], **headers: str) -> httpx.Response:
    return fhir.post(f"/{resource['resourceType']}", json=resource, headers={"Content-Type": FHIR, **headers})


def login(web: httpx.Client, hsa_id: str) -> str:
    """Log in; returns the form token of the session."""
    answer = web.post("/login", data={"hsa_id": hsa_id, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    page = web.get("/patients").text
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def basic(hsa_id: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{hsa_id}:{password}".encode()).decode()}


# -- capability and the plan's shape ------------------------------------------------------------------


def test_metadata_lists_every_type_with_its_interactions_and_search_parameters(fhir: httpx.Client) -> None:
    answer = fhir.get("/metadata")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(FHIR)
    cap = answer.json()
    assert (cap["resourceType"], cap["fhirVersion"]) == ("CapabilityStatement", "4.0.1")
    rest = cap["rest"][0]
    assert {"code": "transaction"} in rest["interaction"]
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == {
        "Patient", "Encounter", "ServiceRequest", "Task", "DiagnosticReport", "Observation",
        "Organization", "Location", "Practitioner", "PractitionerRole",
    }  # fmt: skip
    for resource in resources.values():
        assert {i["code"] for i in resource["interaction"]} == {"read", "search-type", "create", "update"}
    params = {t: {p["name"] for p in r["searchParam"]} for t, r in resources.items()}
    assert {"identifier", "name", "_id", "_lastUpdated"} <= params["Patient"]
    assert {"subject", "patient", "category", "code", "status", "performer", "requester"} <= params[
        "ServiceRequest"
    ]
    assert {"owner", "status", "focus", "patient"} <= params["Task"]
    assert {"based-on", "patient", "code"} <= params["Observation"] & params["DiagnosticReport"]
    assert {"identifier", "partof"} <= params["Organization"]
    assert not any(":" in name for names in params.values() for name in names)  # modifiers are not params


def test_sites_units_locations_and_users_come_from_the_plan(fhir: httpx.Client, server: EhrServer) -> None:
    orgs = {o["id"]: o for o in entries(fhir.get("/Organization"))}
    assert set(orgs) == {"sas-boras", "sas-orto", "nal-trollhattan", "nal-akut", "kungalv"}
    for site in server.plan.sites:
        assert orgs[site.id]["identifier"][0] == {
            "use": "official",
            "system": HSA_ID_SYSTEM,
            "value": site.hsa_id,
        }
        assert orgs[site.id]["name"] == site.name
    assert orgs["nal-akut"]["partOf"]["reference"] == "Organization/nal-trollhattan"
    found = entries(
        fhir.get("/Organization", params={"identifier": f"{HSA_ID_SYSTEM}|SE2321000131-E000000000211"})
    )
    assert [o["id"] for o in found] == ["nal-akut"]
    locations = entries(fhir.get("/Location", params={"organization": "Organization/nal-trollhattan"}))
    assert [loc["name"] for loc in locations] == ["NÄL, Trollhättan"]
    assert (
        entries(fhir.get("/Location", params={"partof": "nal-trollhattan"}))[0]["name"]
        == "NÄL Akutmottagning"
    )
    # users of sites on the new EHR are practitioners with a role at their site; legacy users are not
    practitioners = {p["id"] for p in entries(fhir.get("/Practitioner"))}
    assert practitioners == {ANNA, BJORN}
    [role] = entries(fhir.get("/PractitionerRole", params={"practitioner": f"Practitioner/{BJORN}"}))
    assert role["organization"]["reference"] == "Organization/nal-trollhattan"
    assert role["code"] == [{"text": "läkare"}]
    assert entries(fhir.get("/Practitioner", params={"name": "björ"}))[0]["id"] == BJORN


# -- Patient ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier",
    [f"{PERSONNUMMER_SYSTEM}|{TOLVAN}", f"{PERSONNUMMER_SYSTEM}|191212121212", TOLVAN, "191212121212"],
)
def test_patient_search_by_identifier_finds_the_test_identity(fhir: httpx.Client, identifier: str) -> None:
    [patient] = entries(fhir.get("/Patient", params={"identifier": identifier}))
    assert patient["name"][0]["text"] == "Tolvan Tolvansson"
    assert patient["identifier"][0] == {
        "use": "official",
        "system": PERSONNUMMER_SYSTEM,
        "value": "191212121212",
    }


@pytest.mark.parametrize("identifier", [NOT_IN_PLAN, f"urn:oid:1.2.3|{TOLVAN}", f"|{TOLVAN}"])
def test_patient_search_finds_nobody_else(fhir: httpx.Client, identifier: str) -> None:
    assert entries(fhir.get("/Patient", params={"identifier": identifier})) == []


def test_patient_read_and_unknown_id(fhir: httpx.Client) -> None:
    pid = patient_id(TOLVAN)
    answer = fhir.get(f"/Patient/{pid}")
    assert answer.json()["id"] == pid and answer.headers["etag"].startswith('W/"')
    missing = fhir.get("/Patient/pat-nobody")
    assert missing.status_code == 404
    assert "Patient/pat-nobody does not exist" in issues(missing)


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ({"system": PERSONNUMMER_SYSTEM, "value": "198001010027"}, "is not a test identity of the plan"),
        ({"system": PERSONNUMMER_SYSTEM, "value": "191212121213"}, "fails its check digit"),
        ({"system": PERSONNUMMER_SYSTEM, "value": "198001610016"}, "is a samordningsnummer"),
        ({"system": RESERVNUMMER_SYSTEM, "value": "19810829M072"}, "fails its check digit"),
        ({"system": RESERVNUMMER_SYSTEM, "value": "19810829Q071"}, "reservnummer must look like"),
        (
            {"system": PERSONNUMMER_SYSTEM, "value": "191212121212"},
            "another patient already has 191212121212",
        ),
        ({"system": "urn:oid:1.2.3", "value": "42"}, "needs a personnummer or samordningsnummer"),
    ],
)
def test_patient_create_refuses_anyone_but_test_and_reserve_identities(
    fhir: httpx.Client, identifier: dict[str, str], expected: str
) -> None:
    answer = post(fhir, {"resourceType": "Patient", "identifier": [identifier]})
    assert answer.status_code == 422
    assert expected in issues(answer)


def test_reserve_identity_patient_can_be_created_and_found(fhir: httpx.Client) -> None:
    reserve = {"system": RESERVNUMMER_SYSTEM, "value": "19810829M071"}
    created = post(fhir, {"resourceType": "Patient", "identifier": [reserve], "gender": "male"})
    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith(f"/Patient/{created.json()['id']}/_history/1")
    [found] = entries(fhir.get("/Patient", params={"identifier": "19810829m071"}))
    assert found["id"] == created.json()["id"]


def test_patient_update_versions_and_conflicts(fhir: httpx.Client) -> None:
    pid = patient_id(LILLA)
    current = fhir.get(f"/Patient/{pid}").json()
    changed = {**current, "telecom": [{"system": "phone", "value": "+46 70 000 00 00"}]}
    updated = fhir.put(
        f"/Patient/{pid}", json=changed, headers={"If-Match": f'W/"{current["meta"]["versionId"]}"'}
    )
    assert updated.status_code == 200, updated.text
    assert int(updated.json()["meta"]["versionId"]) == int(current["meta"]["versionId"]) + 1
    stale = fhir.put(
        f"/Patient/{pid}", json=changed, headers={"If-Match": f'W/"{current["meta"]["versionId"]}"'}
    )
    assert stale.status_code == 412 and "is at version" in issues(stale)
    wrong_id = fhir.put(f"/Patient/{pid}", json={**changed, "id": "other"})
    assert wrong_id.status_code == 400 and "must equal the URL's id" in issues(wrong_id)
    real_person = {**changed, "identifier": [{"system": PERSONNUMMER_SYSTEM, "value": "198001010027"}]}
    refused = fhir.put(f"/Patient/{pid}", json=real_person)
    assert refused.status_code == 422 and "not a test identity" in issues(refused)
    assert fhir.get(f"/Patient/{pid}").json()["identifier"][0]["value"] == "201001010113"


# -- Encounter, ServiceRequest, Task ----------------------------------------------------------------------


def encounter(pid: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": f"Patient/{pid}"},
        "serviceProvider": {"reference": "Organization/sas-boras"},
        "location": [{"location": {"reference": "Location/sas-boras"}}],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_encounter_create_read_search(fhir: httpx.Client) -> None:
    pid = patient_id(TESTA)
    created = post(fhir, encounter(pid))
    assert created.status_code == 201, created.text
    eid = created.json()["id"]
    assert fhir.get(f"/Encounter/{eid}").json()["class"]["code"] == "EMER"
    for params in ({"patient": pid}, {"subject": f"Patient/{pid}", "status": "in-progress"},
                   {"service-provider": "sas-boras"}, {"location": "Location/sas-boras"}):  # fmt: skip
        assert eid in [e["id"] for e in entries(fhir.get("/Encounter", params=params))], params
    assert eid not in [e["id"] for e in entries(fhir.get("/Encounter", params={"status": "finished"}))]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"class": None}, "class is required"),
        ({"status": "ongoing"}, "status must be one of"),
        ({"subject": {"reference": "Patient/pat-nobody"}}, "Patient/pat-nobody does not exist"),
        (
            {"serviceProvider": {"reference": "Location/sas-boras"}},
            "serviceProvider must reference Organization",
        ),
        ({"location": [{"location": {"reference": "#nowhere"}}]}, "#nowhere names no contained resource"),
        ({"period": {"start": ""}}, "empty values are not allowed"),
    ],
)
def test_encounter_validation(fhir: httpx.Client, changes: dict[str, Any], expected: str) -> None:
    answer = post(fhir, encounter(patient_id(TESTA), **changes))
    assert answer.status_code == 422
    assert expected in issues(answer)


def test_service_request_create_read_and_search_by_category(fhir: httpx.Client) -> None:
    pid = patient_id(TESTA)
    created = post(fhir, lab_order(pid))
    assert created.status_code == 201, created.text
    sr = created.json()
    assert created.headers["location"].endswith(f"/fhir/ServiceRequest/{sr['id']}/_history/1")
    assert created.headers["etag"] == 'W/"1"'
    lab = f"{LAB_CATEGORY['system']}|{LAB_CATEGORY['code']}"
    for params in ({"subject": f"Patient/{pid}"}, {"patient": pid}, {"patient": f"Patient/{pid}"},
                   {"code": f"{NPU}|NPU19748"}, {"category": lab}):  # fmt: skip
        assert sr["id"] in [e["id"] for e in entries(fhir.get("/ServiceRequest", params=params))], params
    referrals = entries(fhir.get("/ServiceRequest", params={"category": f"|{REFERRAL_CATEGORY['code']}"}))
    assert sr["id"] not in [r["id"] for r in referrals]
    assert sr["id"] not in [
        e["id"] for e in entries(fhir.get("/ServiceRequest", params={"patient": patient_id(LILLA)}))
    ]


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ("{not json", 400, "not valid JSON"),
        ('["a list"]', 400, "JSON object"),
        ('{"resourceType": "Patient"}', 400, "posted to /ServiceRequest"),
    ],
)
def test_service_request_rejects_what_is_not_a_service_request(
    fhir: httpx.Client, body: str, status: int, expected: str
) -> None:
    answer = fhir.post("/ServiceRequest", content=body, headers={"Content-Type": FHIR})
    assert answer.status_code == status
    assert expected in issues(answer)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status": None}, "status is required"),
        ({"intent": "wish"}, "intent must be one of"),
        ({"code": None}, "code is required for a lab order"),
        ({"code": {"coding": [{"system": NPU}]}}, "code must be a CodeableConcept with a coding or text"),
        ({"subject": None}, "subject is required"),
        ({"subject": {"display": "someone"}}, "a lab order needs subject.reference to a Patient"),
        ({"subject": {"reference": "Organization/sas-boras"}}, "subject must reference Patient, Group"),
        ({"subject": {"reference": "Patient/pat-nobody"}}, "Patient/pat-nobody does not exist"),
        (
            {"requester": {"reference": "Practitioner/SE2321000131-P0"}},
            "Practitioner/SE2321000131-P0 does not exist",
        ),
        ({"category": [{"coding": [REFERRAL_CATEGORY]}]}, "a referral needs a performer"),
        ({"subject": {"reference": "urn:uuid:1"}}, "only a transaction Bundle can define it"),
    ],
)
def test_service_request_validation_is_422_operation_outcome(
    fhir: httpx.Client, changes: dict[str, Any], expected: str
) -> None:
    answer = post(fhir, lab_order(patient_id(TOLVAN), **changes))
    assert answer.status_code == 422
    assert expected in issues(answer)


def test_references_to_other_systems_are_kept_as_written(fhir: httpx.Client) -> None:
    by_hsa_id = {"identifier": {"system": HSA_ID_SYSTEM, "value": ANNA}, "display": "Anna"}
    order = lab_order(
        patient_id(TOLVAN), specimen=[{"reference": "Specimen/in-the-lab-system"}], requester=by_hsa_id
    )
    created = post(fhir, order)
    assert created.status_code == 201, created.text
    assert created.json()["specimen"] == [{"reference": "Specimen/in-the-lab-system"}]


def referral_pair(pid: str, owner: dict[str, Any], text: str = REFERRAL_TEXT) -> dict[str, Any]:
    """A referral as another system sends it: ServiceRequest + Task in one transaction, linked by urn."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:2b1f7f1e-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "category": [{"coding": [REFERRAL_CATEGORY]}],
                    "code": {"text": "Remiss"},
                    "subject": {"reference": f"Patient/{pid}"},
                    "performer": [owner],
                    "note": [{"text": text}],
                },  # fmt: skip
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "resource": {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "focus": {"reference": "urn:uuid:2b1f7f1e-0000-4000-8000-000000000001"},
                    "for": {"reference": f"Patient/{pid}"},
                    "owner": owner,
                },  # fmt: skip
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }


def test_task_workflow_search_and_validation(fhir: httpx.Client) -> None:
    pid = patient_id(TOLVAN)
    owner = {"reference": "Organization/nal-trollhattan"}
    done = fhir.post("/", json=referral_pair(pid, owner))
    assert done.status_code == 200, done.text
    request, task = (e["resource"] for e in done.json()["entry"])
    assert task["focus"] == {"reference": f"ServiceRequest/{request['id']}"}
    assert request["note"][0]["text"] == REFERRAL_TEXT
    for params in (
        {"owner": "nal-trollhattan", "status": "requested"},
        {"focus": request["id"]},
        {"patient": pid},
    ):
        assert task["id"] in [t["id"] for t in entries(fhir.get("/Task", params=params))], params
    received = fhir.put(f"/Task/{task['id']}", json={**task, "status": "received"})
    assert received.status_code == 200 and received.json()["meta"]["versionId"] == "2"
    answered = {**received.json(), "status": "completed",
                "output": [{"type": {"text": "Remissvar"}, "valueString": "Inget att anmärka."}]}  # fmt: skip
    assert fhir.put(f"/Task/{task['id']}", json=answered).status_code == 200
    assert task["id"] not in [t["id"] for t in entries(fhir.get("/Task", params={"status": "requested"}))]
    bad = fhir.put(f"/Task/{task['id']}", json={**answered, "status": "answered"})
    assert bad.status_code == 422 and "status must be one of" in issues(bad)
    no_type = fhir.put(f"/Task/{task['id']}", json={**answered, "output": [{"valueString": "x"}]})
    assert no_type.status_code == 422 and "output.type is required" in issues(no_type)


def test_logical_references_by_hsa_id_are_searchable(fhir: httpx.Client) -> None:
    hsa = NAL_UNIT  # the NÄL unit, as the bridge names a receiver
    owner = {"identifier": {"system": HSA_ID_SYSTEM, "value": hsa}, "display": "NÄL Akutmottagning"}
    done = fhir.post("/", json=referral_pair(patient_id(TESTA), owner))
    assert done.status_code == 200, done.text
    task = done.json()["entry"][1]["resource"]
    found = entries(fhir.get("/Task", params={"owner:identifier": f"{HSA_ID_SYSTEM}|{hsa}"}))
    assert [t["id"] for t in found] == [task["id"]]


# -- results --------------------------------------------------------------------------------------------


def place_order(fhir: httpx.Client, pid: str, requester: str | None = None) -> dict[str, Any]:
    role = {
        "nal": "se2321000131-p000000000201-nal-trollhattan",
        "sas": "se2321000131-p000000000101-sas-boras",
    }
    changes = {"requester": {"reference": f"PractitionerRole/{role[requester]}"}} if requester else {}
    created = post(fhir, lab_order(pid, **changes))
    assert created.status_code == 201, created.text
    return created.json()


def file_result(fhir: httpx.Client, order: dict[str, Any], value: float = 12.5) -> tuple[dict[str, Any], ...]:
    bundle = result_bundle(order, [ResultValue(CRP, value, "mg/L", 0, 5), ResultValue(CRP, "hemolys")])
    answer = fhir.post("/", json=bundle)
    assert answer.status_code == 200, answer.text
    assert [e["response"]["status"] for e in answer.json()["entry"]] == ["201 Created"] * 3
    return tuple(e["resource"] for e in answer.json()["entry"])


def test_results_are_filed_and_found_by_patient_and_order(fhir: httpx.Client) -> None:
    pid = patient_id(LILLA)
    order = place_order(fhir, pid)
    first, second, report = file_result(fhir, order)
    assert report["result"] == [
        {"reference": f"Observation/{first['id']}"},
        {"reference": f"Observation/{second['id']}"},
    ]
    assert first["valueQuantity"] == {"value": 12.5, "unit": "mg/L", "system": "http://unitsofmeasure.org",
                                      "code": "mg/L"}  # fmt: skip
    by_order = entries(fhir.get("/Observation", params={"based-on": f"ServiceRequest/{order['id']}"}))
    assert {o["id"] for o in by_order} == {first["id"], second["id"]}
    assert (
        entries(fhir.get("/DiagnosticReport", params={"patient": pid, "based-on": order["id"]}))[0]["id"]
        == report["id"]
    )
    assert (
        entries(fhir.get("/DiagnosticReport", params={"result": f"Observation/{first['id']}"}))[0]["id"]
        == report["id"]
    )


@pytest.mark.parametrize(
    ("rtype", "changes", "expected"),
    [
        ("Observation", {"code": None}, "code is required"),
        ("Observation", {"status": "done"}, "status must be one of"),
        ("Observation", {"hasMember": [{"reference": "Patient/x"}]}, "hasMember must reference Observation"),
        (
            "DiagnosticReport",
            {"result": [{"reference": "Observation/none"}]},
            "Observation/none does not exist",
        ),
        ("DiagnosticReport", {"status": None}, "status is required"),
    ],
)
def test_result_validation(fhir: httpx.Client, rtype: str, changes: dict[str, Any], expected: str) -> None:
    body = {
        "resourceType": rtype,
        "status": "final",
        "code": CRP,
        "subject": {"reference": f"Patient/{patient_id(TOLVAN)}"},
    }
    body.update(changes)
    answer = post(fhir, {k: v for k, v in body.items() if v is not None})
    assert answer.status_code == 422
    assert expected in issues(answer)


@pytest.mark.parametrize(
    ("rtype", "body", "expected"),
    [
        ("Organization", {"identifier": [{"system": HSA_ID_SYSTEM, "value": "SE123-Ö"}]}, "HSA-id must be"),
        ("Organization", {"active": True}, "needs an identifier or a name"),
        (
            "Practitioner",
            {"identifier": [{"system": HSA_ID_SYSTEM, "value": "XX2321000131-P1"}]},
            "HSA-id must be",
        ),
        (
            "PractitionerRole",
            {"practitioner": {"reference": "Organization/sas-boras"}},
            "practitioner must reference",
        ),
        ("Location", {"status": "open"}, "status must be one of"),
        ("Location", {"managingOrganization": {"reference": "Organization/nowhere"}}, "does not exist"),
    ],
)
def test_directory_resources_are_validated(
    fhir: httpx.Client, rtype: str, body: dict[str, Any], expected: str
) -> None:
    answer = post(fhir, {"resourceType": rtype, **body})
    assert answer.status_code == 422
    assert expected in issues(answer)


# -- transactions ---------------------------------------------------------------------------------------


def _tx(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_transaction_is_all_or_nothing(fhir: httpx.Client) -> None:
    marker = {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:6f0e4a52-5a43-4c3e-9a6e-0000000000aa"}
    orphan = {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/x"}}
    bundle = _tx(
        {
            "resource": encounter(patient_id(TOLVAN), identifier=[marker]),
            "request": {"method": "POST", "url": "Encounter"},
        },
        {"resource": orphan, "request": {"method": "POST", "url": "Observation"}},
    )
    refused = fhir.post("/", json=bundle)
    assert refused.status_code == 422
    text = issues(refused)
    assert "code is required" in text and "Patient/x does not exist" in text
    assert "Bundle.entry[1].resource.code" in str(refused.json())
    assert (
        entries(fhir.get("/Encounter", params={"identifier": f"{marker['system']}|{marker['value']}"})) == []
    )
    bundle["entry"].pop()
    done = fhir.post("/", json=bundle)
    assert done.status_code == 200 and done.json()["type"] == "transaction-response"
    assert (
        len(entries(fhir.get("/Encounter", params={"identifier": f"{marker['system']}|{marker['value']}"})))
        == 1
    )


def test_transaction_conditional_create_and_put_and_the_bare_base(
    fhir: httpx.Client, server: EhrServer
) -> None:
    marker = {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:6f0e4a52-5a43-4c3e-9a6e-0000000000bb"}
    query = f"identifier={marker['system']}|{marker['value']}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": encounter(patient_id(TESTA), identifier=[marker]),
             "request": {"method": "POST", "url": "Encounter", "ifNoneExist": query}},
            {"resource": {"resourceType": "Location", "id": "test-room", "name": "Rum 1", "status": "active"},
             "request": {"method": "PUT", "url": "Location/test-room"}},
        ],
    }  # fmt: skip
    first = httpx.post(server.fhir_base, json=bundle, timeout=10)  # no trailing slash: FHIR's [base]
    assert first.status_code == 200, first.text
    assert [e["response"]["status"] for e in first.json()["entry"]] == ["201 Created", "201 Created"]
    again = fhir.post("/", json=bundle)
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK", "200 OK"]
    assert again.json()["entry"][0]["resource"]["id"] == first.json()["entry"][0]["resource"]["id"]
    assert again.json()["entry"][1]["resource"]["meta"]["versionId"] == "2"
    single = post(fhir, encounter(patient_id(TESTA), identifier=[marker]), **{"If-None-Exist": query})
    assert single.status_code == 200 and single.json()["id"] == first.json()["entry"][0]["resource"]["id"]


LOCATION = {"resourceType": "Location"}


@pytest.mark.parametrize(
    ("bundle", "expected"),
    [
        ({"resourceType": "Bundle", "type": "batch", "entry": []}, "only type 'transaction'"),
        ({"resourceType": "Patient"}, "needs a Bundle"),
        (_tx({"resource": LOCATION}), "every entry needs a request"),
        (
            _tx({"resource": LOCATION, "request": {"method": "DELETE", "url": "Location/x"}}),
            "'DELETE' is not supported",
        ),
        (
            _tx({"resource": LOCATION, "request": {"method": "POST", "url": "Patient"}}),
            "POST of a Location to 'Patient'",
        ),
    ],
)
def test_transaction_refusals(fhir: httpx.Client, bundle: dict[str, Any], expected: str) -> None:
    answer = fhir.post("/", json=bundle)
    assert answer.status_code == 400
    assert expected in issues(answer)


def test_last_updated_search_finds_what_changed(fhir: httpx.Client) -> None:
    before = fhir.get("/metadata").json()["date"]  # an instant before anything this test writes
    order = place_order(fhir, patient_id(TOLVAN))
    changed = entries(
        fhir.get("/ServiceRequest", params={"_lastUpdated": f"ge{order['meta']['lastUpdated'][:-5]}"})
    )
    assert order["id"] in [o["id"] for o in changed]
    assert entries(fhir.get("/ServiceRequest", params={"_lastUpdated": "lt2000-01-01"})) == []
    assert order["id"] in [
        o["id"] for o in entries(fhir.get("/ServiceRequest", params={"_lastUpdated": f"ge{before}"}))
    ]
    bad = fhir.get("/ServiceRequest", params={"_lastUpdated": "yesterday"})
    assert bad.status_code == 400 and "not a FHIR date" in issues(bad)


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("GET", "/Medication", 404, "not supported"),
        ("GET", "/Patient?gender=male", 400, "unknown search parameter 'gender'"),
        ("DELETE", "/Patient/x", 405, "DELETE is not supported"),
        ("GET", "/Patient/x/_history/1", 404, "no FHIR endpoint"),
        ("GET", "/", 405, "POST a transaction Bundle"),
    ],
)
def test_errors_are_operation_outcomes(
    fhir: httpx.Client, method: str, path: str, status: int, expected: str
) -> None:
    answer = fhir.request(method, path)
    assert answer.status_code == status
    assert expected in issues(answer)


def test_wrong_content_type_is_415(fhir: httpx.Client) -> None:
    answer = fhir.post(
        "/Encounter", content=b"<Encounter/>", headers={"Content-Type": "application/fhir+xml"}
    )
    assert answer.status_code == 415 and "send application/fhir+json" in issues(answer)


def test_text_is_stored_byte_identical(fhir: httpx.Client) -> None:
    decomposed = unicodedata.normalize("NFD", "Inget fynd på höger sida")
    for text in (REFERRAL_TEXT, decomposed, "  ledande och avslutande blanksteg \t\n"):
        done = fhir.post(
            "/", json=referral_pair(patient_id(TOLVAN), {"reference": "Organization/sas-boras"}, text)
        )
        sr = done.json()["entry"][0]["resource"]
        assert fhir.get(f"/ServiceRequest/{sr['id']}").json()["note"][0]["text"].encode() == text.encode()


def test_basic_credentials_are_checked_and_anonymous_reads_still_work(fhir: httpx.Client) -> None:
    assert fhir.get("/metadata").status_code == 200
    assert fhir.get("/Patient", headers=basic(ANNA)).status_code == 200
    wrong = fhir.get("/Patient", headers=basic(ANNA, "wrong"))
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
    assert fhir.get("/Patient", headers={"Authorization": "Bearer abc"}).status_code == 401
    legacy_user = fhir.get("/Patient", headers=basic("SE2321000131-P000000000301"))
    assert legacy_user.status_code == 401  # users of legacy sites have no account in the new EHR


# -- faults, each on and off without a restart --------------------------------------------------------------


def _timed(call: Any) -> tuple[float, httpx.Response]:
    start = time.monotonic()
    answer = call()
    return time.monotonic() - start, answer


def test_slow_lab_order_slows_lab_orders_only_while_set(fhir: httpx.Client, server: EhrServer) -> None:
    pid = patient_id(TESTA)
    with fault(server, "slow-lab-order"):
        slow, answer = _timed(lambda: post(fhir, lab_order(pid)))
        assert answer.status_code == 201 and slow >= SLOW_LAB_ORDER_S
        entry = {"resource": lab_order(pid), "request": {"method": "POST", "url": "ServiceRequest"}}
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        slow_tx, answer = _timed(lambda: fhir.post("/", json=bundle))
        assert answer.status_code == 200 and slow_tx >= SLOW_LAB_ORDER_S
        other, answer = _timed(lambda: post(fhir, encounter(pid)))
        assert answer.status_code == 201 and other < SLOW_LAB_ORDER_S
    fast, answer = _timed(lambda: post(fhir, lab_order(pid)))
    assert answer.status_code == 201 and fast < SLOW_LAB_ORDER_S


def test_login_denied_role_refuses_the_sites_users_in_web_and_fhir(
    server: EhrServer, fhir: httpx.Client, web: httpx.Client
) -> None:
    with fault(server, "login-denied-role", "sas-boras"):
        denied = web.post("/login", data={"hsa_id": ANNA, "password": PASSWORD})
        assert denied.status_code == 403
        assert "Rollen sjuksköterska ger ingen behörighet" in denied.text and "ehr_session" not in web.cookies
        forbidden = fhir.get("/Patient", headers=basic(ANNA))
        assert forbidden.status_code == 403 and "gives no access at sas-boras" in issues(forbidden)
        assert fhir.get("/Patient", headers=basic(BJORN)).status_code == 200
        assert fhir.get("/Patient").status_code == 200
        with httpx.Client(base_url=server.web_base, timeout=10) as other:
            assert other.post("/login", data={"hsa_id": BJORN, "password": PASSWORD}).status_code == 303
    assert web.post("/login", data={"hsa_id": ANNA, "password": PASSWORD}).status_code == 303
    assert fhir.get("/Patient", headers=basic(ANNA)).status_code == 200


def test_login_denied_role_also_stops_a_running_session(server: EhrServer, web: httpx.Client) -> None:
    login(web, ANNA)
    with fault(server, "login-denied-role", "sas-boras"):
        page = web.get(f"/patients/{patient_id(TOLVAN)}")
        assert page.status_code == 403 and "Ingen behörighet" in page.text
    assert web.get(f"/patients/{patient_id(TOLVAN)}").status_code == 200


def test_ehr_down_answers_503_on_fhir_and_web(
    server: EhrServer, fhir: httpx.Client, web: httpx.Client
) -> None:
    with fault(server, "ehr-down"):
        down = fhir.get("/metadata")
        assert down.status_code == 503 and "unavailable" in issues(down)
        assert fhir.post("/", json={}).status_code == 503
        page = web.get("/login")
        assert page.status_code == 503 and "Journalen är inte tillgänglig" in page.text
    assert fhir.get("/metadata").status_code == 200
    assert web.get("/login").status_code == 200


@pytest.mark.parametrize("site", [None, "nal-trollhattan"])
def test_wrong_patient_result_files_results_on_another_patient(
    server: EhrServer, fhir: httpx.Client, site: str | None
) -> None:
    pid = patient_id(TOLVAN)
    nal_order = place_order(fhir, pid, requester="nal")
    sas_order = place_order(fhir, pid, requester="sas")
    with fault(server, "wrong-patient-result", site):
        observation, _, report = file_result(fhir, nal_order)
        assert observation["subject"]["reference"] != f"Patient/{pid}"
        assert report["subject"] == observation["subject"]
        assert observation["subject"]["reference"] in {
            f"Patient/{patient_id(i.personnummer)}" for i in server.plan.test_identities
        }
        other_site, _, _ = file_result(fhir, sas_order)
        assert (other_site["subject"]["reference"] == f"Patient/{pid}") == (site is not None)
    observation, _, _ = file_result(fhir, nal_order)
    assert observation["subject"]["reference"] == f"Patient/{pid}"


def test_hsa_mismatch_gives_the_site_another_hsa_id_until_cleared(
    server: EhrServer, fhir: httpx.Client
) -> None:
    plan_hsa = server.plan.site("nal-trollhattan").hsa_id
    with fault(server, "hsa-mismatch", "nal-trollhattan"):
        org = fhir.get("/Organization/nal-trollhattan").json()
        wrong = org["identifier"][0]["value"]
        assert wrong != plan_hsa and wrong.startswith("SE2321000131-")
        unit = fhir.get("/Organization/nal-akut").json()["identifier"][0]["value"]
        assert unit != NAL_UNIT
        assert entries(fhir.get("/Organization", params={"identifier": f"{HSA_ID_SYSTEM}|{plan_hsa}"})) == []
        assert (
            fhir.get("/Organization/sas-boras").json()["identifier"][0]["value"]
            == server.plan.site("sas-boras").hsa_id
        )
    restored = fhir.get("/Organization/nal-trollhattan").json()
    assert restored["identifier"][0]["value"] == plan_hsa
    assert int(restored["meta"]["versionId"]) == int(org["meta"]["versionId"]) + 1


# -- web UI (browser flows are in test_pages.py) -------------------------------------------------------------


def test_web_requires_login_and_refuses_wrong_password(web: httpx.Client) -> None:
    assert web.get("/patients").headers["location"] == "/login"
    refused = web.post("/login", data={"hsa_id": ANNA, "password": "wrong"})
    assert refused.status_code == 401
    assert "Fel HSA-id eller lösenord." in refused.text
    assert "ehr_session" not in web.cookies


def test_web_shows_who_is_logged_in_with_role_and_site(web: httpx.Client) -> None:
    login(web, BJORN)
    assert "Inloggad som Björn Björk (läkare), NÄL, Trollhättan" in web.get("/patients").text


def test_web_order_is_the_fhir_service_request(web: httpx.Client, fhir: httpx.Client) -> None:
    csrf = login(web, BJORN)
    found = web.get("/patients", params={"personnummer": LILLA})
    assert found.headers["location"] == f"/patients/{patient_id(LILLA)}"
    forged = web.post(f"{found.headers['location']}/orders", data={"test": "P-Na", "csrf": "forged"})
    assert "Formuläret har gått ut" in web.get(forged.headers["location"]).text
    placed = web.post(f"{found.headers['location']}/orders", data={"test": "P-Na", "csrf": csrf})
    assert placed.status_code == 303
    assert "Beställning skickad: P-Na" in web.get(placed.headers["location"]).text
    orders = entries(
        fhir.get("/ServiceRequest", params={"patient": patient_id(LILLA), "code": f"{NPU}|NPU03429"})
    )
    [order] = orders
    assert order["requester"]["identifier"]["value"] == BJORN
    assert order["requester"]["reference"] == "PractitionerRole/se2321000131-p000000000201-nal-trollhattan"


def test_web_escapes_what_it_echoes(web: httpx.Client) -> None:
    login(web, ANNA)
    answer = web.get("/patients", params={"personnummer": "<script>alert(1)</script>"})
    assert answer.status_code == 400
    assert "<script>alert" not in answer.text and "&lt;script&gt;" in answer.text


def test_web_registration_of_known_and_unknown_patients(web: httpx.Client, fhir: httpx.Client) -> None:
    csrf = login(web, ANNA)
    known = web.post(
        "/register", data={"personnummer": "191212121212", "phone": "+46 70 123 45 67", "csrf": csrf}
    )
    assert known.headers["location"] == f"/patients/{patient_id(TOLVAN)}"
    assert (
        "Patienten är registrerad: Tolvan Tolvansson, 19121212-1212"
        in web.get(known.headers["location"]).text
    )
    assert fhir.get(f"/Patient/{patient_id(TOLVAN)}").json()["telecom"][0]["value"] == "+46 70 123 45 67"
    refused = web.post("/register", data={"personnummer": NOT_IN_PLAN, "csrf": csrf})
    assert "19800101-0027 finns inte bland testidentiteterna" in web.get(refused.headers["location"]).text
    numbers = []
    for _ in range(2):
        made = web.post("/register/unknown", data={"sex": "female", "birth_date": "1975-03-14", "csrf": csrf})
        page = web.get(made.headers["location"]).text
        number = page.split("reservnummer ", 1)[1][:12]
        assert check_reservnummer(number) == number and number.startswith("19750314")
        assert int(number[9:11]) % 2 == 0  # even serial: a woman
        numbers.append(number)
        [patient] = entries(fhir.get("/Patient", params={"identifier": f"{RESERVNUMMER_SYSTEM}|{number}"}))
        assert (patient["gender"], patient["birthDate"]) == ("female", "1975-03-14")
        assert patient["name"][0]["text"] == f"Okänd kvinna {number}"
    assert numbers[0] != numbers[1]
    bad_date = web.post("/register/unknown", data={"sex": "male", "birth_date": "14/3", "csrf": csrf})
    assert "Ange ett födelsedatum" in web.get(bad_date.headers["location"]).text


def test_web_admission_creates_an_encounter_at_the_users_site(web: httpx.Client, fhir: httpx.Client) -> None:
    csrf = login(web, BJORN)
    pid = patient_id(LILLA)
    admitted = web.post(f"/patients/{pid}/admissions", data={"klass": "IMP", "csrf": csrf})
    assert (
        "Patienten är inskriven: Slutenvård, NÄL, Trollhättan" in web.get(admitted.headers["location"]).text
    )
    [stay] = entries(fhir.get("/Encounter", params={"patient": pid, "service-provider": "nal-trollhattan"}))
    assert (stay["status"], stay["class"]["code"]) == ("in-progress", "IMP")
    assert stay["participant"][0]["individual"]["reference"] == f"Practitioner/{BJORN}"
    again = web.post(f"/patients/{pid}/admissions", data={"klass": "IMP", "csrf": csrf})
    assert "redan inskriven" in web.get(again.headers["location"]).text
    placed = web.post(f"/patients/{pid}/orders", data={"test": "B-Hb", "csrf": csrf})
    web.get(placed.headers["location"])
    [order] = entries(fhir.get("/ServiceRequest", params={"patient": pid, "code": f"{NPU}|NPU02319"}))
    assert order["encounter"] == {"reference": f"Encounter/{stay['id']}"}


def test_web_referral_round_trip_keeps_the_text_byte_identical(server: EhrServer, fhir: httpx.Client) -> None:
    pid = patient_id(TESTA)
    answer_text = "Inga fynd. Ingen fraktur, inget utgjutning, ej behov av uppföljning.\nÅter vid behov – ö."
    with (
        httpx.Client(base_url=server.web_base, timeout=10) as anna,
        httpx.Client(base_url=server.web_base, timeout=10) as bjorn,
    ):
        csrf = login(anna, ANNA)
        typed = REFERRAL_TEXT.replace("\n", "\r\n")  # what a browser's textarea sends
        sent = anna.post(f"/patients/{pid}/referrals", data={"receiver": "nal-trollhattan", "question": typed,
                                                             "csrf": csrf})  # fmt: skip
        assert "Remissen är skickad till NÄL, Trollhättan" in anna.get(sent.headers["location"]).text
        [task] = entries(
            fhir.get("/Task", params={"patient": pid, "owner": "nal-trollhattan", "status": "requested"})
        )
        request = fhir.get(task["focus"]["reference"].replace("ServiceRequest", "/ServiceRequest")).json()
        assert request["note"][0]["text"] == REFERRAL_TEXT
        assert request["requester"]["identifier"]["value"] == ANNA
        # the sender cannot answer a referral to another unit
        stolen = anna.post(f"/referrals/{task['id']}/answer", data={"answer": "x", "csrf": csrf})
        assert "inte ställd till Södra Älvsborgs Sjukhus" in anna.get(stolen.headers["location"]).text
        csrf_b = login(bjorn, BJORN)
        inbox = bjorn.get("/referrals").text
        assert f"/referrals/{task['id']}" in inbox and "Testa Testsson" in inbox
        bjorn.post(f"/referrals/{task['id']}/receive", data={"csrf": csrf_b})
        assert fhir.get(f"/Task/{task['id']}").json()["status"] == "received"
        bjorn.post(
            f"/referrals/{task['id']}/answer",
            data={"answer": answer_text.replace("\n", "\r\n"), "csrf": csrf_b},
        )
        done = fhir.get(f"/Task/{task['id']}").json()
        assert done["status"] == "completed"
        assert done["output"] == [{"type": {"text": "Remissvar"}, "valueString": answer_text}]
        assert fhir.get(f"/ServiceRequest/{request['id']}").json()["status"] == "completed"
        shown = anna.get(f"/patients/{pid}/referrals").text
        assert "Besvarad" in shown and "Ingen fraktur, inget utgjutning, ej behov" in shown


def test_web_inbox_shows_referrals_addressed_by_hsa_id_to_a_unit(
    server: EhrServer, fhir: httpx.Client
) -> None:
    owner = {
        "identifier": {"system": HSA_ID_SYSTEM, "value": NAL_UNIT},
        "display": "NÄL Akut",
    }
    done = fhir.post("/", json=referral_pair(patient_id(LILLA), owner, "Från gamla journalen: inte akut."))
    task = done.json()["entry"][1]["resource"]
    with httpx.Client(base_url=server.web_base, timeout=10) as bjorn:
        csrf = login(bjorn, BJORN)
        assert f"/referrals/{task['id']}" in bjorn.get("/referrals").text
        bjorn.post(
            f"/referrals/{task['id']}/answer", data={"answer": "Besvarad i nya journalen.", "csrf": csrf}
        )
    assert fhir.get(f"/Task/{task['id']}").json()["status"] == "completed"


def test_web_results_view_shows_values_filed_on_the_patient(web: httpx.Client, fhir: httpx.Client) -> None:
    pid = patient_id(LILLA)
    order = place_order(fhir, pid)
    file_result(fhir, order, 6.3)
    login(web, ANNA)
    page = web.get(f"/patients/{pid}/results").text
    assert "Provsvar – Lilla Provsson" in page
    assert "<td>6,3</td><td>mg/L</td><td>0–5</td>" in page and "hemolys" in page


# -- printing: the module against real peers ----------------------------------------------------------------


class RecordingPrinter:
    """A plain TCP listener on loopback keeping every connection's bytes (a ZPL port that never answers)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.jobs: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        data += chunk
                self.jobs.append(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def zpl_port() -> Iterator[RecordingPrinter]:
    printer = RecordingPrinter()
    yield printer
    printer.close()


def test_send_zpl_delivers_the_job_and_asks_for_status(zpl_port: RecordingPrinter) -> None:
    job = wristband_zpl(
        "Tolvan Tolvansson", "Personnummer", "19121212-1212", "1912-12-12", "NÄL", "191212121212"
    )
    result = asyncio.run(send_zpl(zpl_port.uri, job, timeout=2, status_wait=0.2))
    assert result.accepted and result.confirmed is None and result.sent_bytes == len(job.encode())
    deadline = time.monotonic() + 5
    while not zpl_port.jobs and time.monotonic() < deadline:
        time.sleep(0.02)
    assert zpl_port.jobs == [job.encode("utf-8") + b"~HS"]
    assert "^CI28" in job and "Tolvan Tolvansson" in job


def test_send_zpl_reports_a_closed_port_and_refuses_what_is_not_zpl() -> None:
    port = free_port()
    result = asyncio.run(send_zpl(f"tcp://127.0.0.1:{port}", "^XA^FDx^FS^XZ", timeout=2))
    assert (result.accepted, result.reason) == (False, "refused")
    assert asyncio.run(send_zpl("ipp://127.0.0.1:1/ipp", "^XA^XZ", timeout=1)).reason == "bad-uri"
    with pytest.raises(ValueError, match=r"\^XA"):
        asyncio.run(send_zpl(f"tcp://127.0.0.1:{port}", "hello", timeout=1))


# ~HS as a Zebra answers: three STX…ETX frames (line 1: paper out, paused; line 2: head open, ribbon out)
HS_READY = (
    b"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n"
    b"\x02000,0,0,0,0,2,4,0,00000000,1,000\x03\r\n"
    b"\x021234,0\x03\r\n"
)
HS_BROKEN = HS_READY.replace(b"030,0,0,", b"030,1,1,").replace(b"000,0,0,0,0,", b"000,0,1,1,0,")


@pytest.mark.parametrize(
    ("reply", "problems"),
    [
        (HS_READY, []),
        (HS_BROKEN, ["paper-out", "paused", "head-open", "ribbon-out"]),
    ],
)
def test_host_status_replies_are_read_field_by_field(reply: bytes, problems: list[str]) -> None:
    assert parse_host_status(reply) == problems
    with pytest.raises(ValueError, match="1 of 3 frames"):
        parse_host_status(reply.split(b"\r\n")[0])


@pytest.mark.slow
def test_send_ipp_prints_a_document_on_a_real_ipp_printer(tmp_path: Path) -> None:
    from reference_hospital.printers import PrinterFleet

    printer = Printer(id="test-dok", kind="document", uri=f"ipp://127.0.0.1:{free_port()}/ipp/print")
    with PrinterFleet([printer], tmp_path):
        pdf = simple_pdf("Patientöversikt – Tolvan Tolvansson", ["Personnummer: 19121212-1212"])
        result = asyncio.run(send_ipp(printer.uri, pdf, timeout=5, job_name="Test"))
        assert result.accepted and result.job_id is not None and result.job_id > 0, result
        wrong_path = asyncio.run(send_ipp(printer.uri.replace("/ipp/print", "/nowhere"), pdf, timeout=5))
        assert not wrong_path.accepted and wrong_path.reason in ("http-error", "ipp-error")
    gone = asyncio.run(send_ipp(printer.uri, pdf, timeout=2))
    assert (gone.accepted, gone.reason) == (False, "refused")


# -- inside the whole hospital -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    workdir = tmp_path_factory.mktemp("hospital")
    with Hospital(plan_on(free_port()), [], workdir, environ={"REHEARSAL_PASSWORD": PASSWORD}) as running:
        yield running


def test_hospital_switches_the_ehrs_own_faults(hospital: Hospital) -> None:
    base = hospital.fhir_base
    assert set(hospital.board.handled()) >= {"slow-lab-order", "login-denied-role", "ehr-down",
                                              "wrong-patient-result", "hsa-mismatch"}  # fmt: skip
    assert hospital.set_fault("ehr-down") == ["ehr-down"]
    try:
        assert httpx.get(f"{base}/metadata", timeout=5).status_code == 503
        assert httpx.get(f"{hospital.admin_url}/health", timeout=5).status_code == 200
    finally:
        hospital.clear_fault("ehr-down")
    assert httpx.get(f"{base}/metadata", timeout=5).status_code == 200


@pytest.mark.slow
def test_slow_patient_search_fault_slows_search_only_while_set(hospital: Hospital) -> None:
    def timed_search() -> float:
        start = time.monotonic()
        answer = httpx.get(f"{hospital.fhir_base}/Patient", params={"identifier": TOLVAN}, timeout=10)
        assert answer.json()["total"] == 1
        return time.monotonic() - start

    assert hospital.set_fault("slow-patient-search") == ["slow-patient-search"]
    try:
        slow: list[float] = []
        searcher = threading.Thread(target=lambda: slow.append(timed_search()))
        searcher.start()
        time.sleep(0.1)
        start = time.monotonic()
        assert httpx.get(f"{hospital.fhir_base}/metadata", timeout=5).status_code == 200
        assert time.monotonic() - start < SLOW_PATIENT_SEARCH_S, "the server must stay responsive meanwhile"
        searcher.join(timeout=10)
        assert slow and slow[0] >= SLOW_PATIENT_SEARCH_S * 0.95
    finally:
        assert hospital.clear_fault("slow-patient-search") == []
    assert timed_search() < SLOW_PATIENT_SEARCH_S


def test_user_without_password_env_cannot_log_in(tmp_path: Path) -> None:
    with EhrServer(plan_on(free_port()), tmp_path, environ={}) as bare:
        answer = httpx.post(f"{bare.web_base}/login", data={"hsa_id": ANNA, "password": ""}, timeout=5)
        assert answer.status_code == 401


def test_port_taken_is_one_line_target_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(TargetError, match=f"port {port} is already in use"):
            Hospital(plan_on(port), [], tmp_path).start()


@pytest.mark.parametrize(
    ("fhir", "web", "expected"),
    [
        ("http://10.1.2.3:{p}/fhir", "http://10.1.2.3:{p}", "only listens on loopback"),
        ("http://127.0.0.1:{p}/fhir", "http://127.0.0.1:{q}", "must share host and port"),
        ("https://127.0.0.1:{p}/fhir", "https://127.0.0.1:{p}", "plain http only"),
        ("http://127.0.0.1:{p}/ehr", "http://127.0.0.1:{p}/ehr", "need different paths"),
    ],
)
def test_hospital_refuses_targets_it_cannot_be(tmp_path: Path, fhir: str, web: str, expected: str) -> None:
    p, q = free_port(), free_port()
    plan = plan_on(p, fhir.format(p=p), web.format(p=p, q=q))
    with pytest.raises(UsageError, match=expected):
        Hospital(plan, [], tmp_path)


def test_polling_by_last_updated_returns_resources_in_the_order_they_changed(fhir: httpx.Client) -> None:
    pid = patient_id(LILLA)
    first, second = place_order(fhir, pid), place_order(fhir, pid)
    time.sleep(0.01)  # lastUpdated has millisecond resolution
    changed = fhir.put(f"/ServiceRequest/{first['id']}", json={**first, "status": "on-hold"}).json()
    since = f"ge{second['meta']['lastUpdated']}"
    found = entries(fhir.get("/ServiceRequest", params={"_lastUpdated": since, "patient": pid}))
    assert [o["id"] for o in found] == [second["id"], changed["id"]]
    page = entries(fhir.get("/ServiceRequest", params={"_lastUpdated": since, "_count": "1", "patient": pid}))
    assert [o["id"] for o in page] == [second["id"]]
