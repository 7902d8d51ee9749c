"""The reference EHR over real HTTP: FHIR API, faults, web UI basics, and what Hospital refuses."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rehearsal.errors import TargetError, UsageError
from rehearsal.plan import Plan, load_plan
from rehearsal.reference.ehr import PERSONNUMMER_SYSTEM, patient_id
from rehearsal.reference.faults import SLOW_PATIENT_SEARCH_S
from rehearsal.reference.hospital import Hospital

DEMO = Path(__file__).resolve().parents[1] / "plans" / "demo.yaml"
PASSWORD = "test-only-password"
TOLVAN = "19121212-1212"
NOT_IN_PLAN = "19800101-0027"  # a well-formed personnummer that is not a plan test identity
FHIR = "application/fhir+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plan_on(port: int, fhir: str | None = None, web: str | None = None) -> Plan:
    """The demo plan moved to a free port, without printers (this file tests the EHR only)."""
    plan = load_plan(DEMO).plan
    env = plan.environment.model_copy(
        update={
            "fhir_base": fhir or f"http://127.0.0.1:{port}/fhir",
            "web_base": web or f"http://127.0.0.1:{port}",
        }
    )
    sites = [s.model_copy(update={"printers": []}) for s in plan.sites]
    return plan.model_copy(update={"environment": env, "sites": sites})


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    plan = plan_on(free_port())
    workdir = tmp_path_factory.mktemp("hospital")
    with Hospital(plan, [], workdir, environ={"REHEARSAL_PASSWORD": PASSWORD}) as running:
        yield running


@pytest.fixture
def fhir(hospital: Hospital) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hospital.fhir_base, timeout=5, headers={"Accept": FHIR}) as client:
        yield client


@pytest.fixture
def web(hospital: Hospital) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hospital.web_base, timeout=5) as client:
        yield client


def _issues(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert response.headers["content-type"].startswith(FHIR)
    return " | ".join(i["diagnostics"] for i in body["issue"])


# -- FHIR ------------------------------------------------------------------------------------------


def test_metadata_describes_patient_and_service_request(fhir: httpx.Client) -> None:
    answer = fhir.get("/metadata")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(FHIR)
    cap = answer.json()
    assert cap["resourceType"] == "CapabilityStatement"
    assert cap["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in cap["rest"][0]["resource"]}
    assert {i["code"] for i in resources["Patient"]["interaction"]} == {"read", "search-type"}
    assert {i["code"] for i in resources["ServiceRequest"]["interaction"]} == {
        "read",
        "search-type",
        "create",
    }
    assert "identifier" in {p["name"] for p in resources["Patient"]["searchParam"]}
    assert {"subject", "patient"} <= {p["name"] for p in resources["ServiceRequest"]["searchParam"]}


@pytest.mark.parametrize(
    "identifier",
    [f"{PERSONNUMMER_SYSTEM}|{TOLVAN}", f"{PERSONNUMMER_SYSTEM}|191212121212", TOLVAN, "191212121212"],
)
def test_patient_search_by_identifier_finds_the_test_identity(fhir: httpx.Client, identifier: str) -> None:
    answer = fhir.get("/Patient", params={"identifier": identifier})
    assert answer.status_code == 200
    bundle = answer.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 1)
    patient = bundle["entry"][0]["resource"]
    assert patient["name"][0]["text"] == "Tolvan Tolvansson"
    assert patient["identifier"][0] == {
        "use": "official",
        "system": PERSONNUMMER_SYSTEM,
        "value": "191212121212",
    }
    assert bundle["entry"][0]["fullUrl"].endswith(f"/fhir/Patient/{patient['id']}")


@pytest.mark.parametrize("identifier", [NOT_IN_PLAN, f"urn:oid:1.2.3|{TOLVAN}", f"|{TOLVAN}"])
def test_patient_search_finds_nobody_else(fhir: httpx.Client, identifier: str) -> None:
    answer = fhir.get("/Patient", params={"identifier": identifier})
    assert answer.status_code == 200
    assert answer.json()["total"] == 0
    assert answer.json()["entry"] == []


def test_only_test_identities_exist(fhir: httpx.Client, hospital: Hospital) -> None:
    everyone = fhir.get("/Patient").json()
    wanted = {i.personnummer.replace("-", "") for i in hospital.plan.test_identities}
    assert {e["resource"]["identifier"][0]["value"] for e in everyone["entry"]} == wanted


def test_patient_read_and_unknown_id(fhir: httpx.Client) -> None:
    pid = patient_id(TOLVAN)
    assert fhir.get(f"/Patient/{pid}").json()["id"] == pid
    missing = fhir.get("/Patient/pat-nobody")
    assert missing.status_code == 404
    assert "Patient/pat-nobody does not exist" in _issues(missing)


def _order(pid: str, **changes: object) -> dict[str, object]:
    order: dict[str, object] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.1", "code": "NPU19748", "display": "P-CRP"}]},
        "subject": {"reference": f"Patient/{pid}"},
    }
    order.update(changes)
    return {k: v for k, v in order.items() if v is not None}


def test_service_request_create_read_and_search(fhir: httpx.Client) -> None:
    pid = patient_id("19800101-0019")
    created = fhir.post("/ServiceRequest", json=_order(pid), headers={"Content-Type": FHIR})
    assert created.status_code == 201, created.text
    sr = created.json()
    assert sr["id"] and sr["meta"]["versionId"] == "1"
    location = created.headers["location"]
    assert location.endswith(f"/fhir/ServiceRequest/{sr['id']}/_history/1")
    assert fhir.get(f"/ServiceRequest/{sr['id']}").json()["subject"] == {"reference": f"Patient/{pid}"}
    for params in ({"subject": f"Patient/{pid}"}, {"patient": pid}, {"patient": f"Patient/{pid}"}):
        found = fhir.get("/ServiceRequest", params=params).json()
        assert sr["id"] in [e["resource"]["id"] for e in found["entry"]], params
        assert found["total"] == len(found["entry"])
    other = fhir.get("/ServiceRequest", params={"patient": patient_id("20100101-0113")}).json()
    assert sr["id"] not in [e["resource"]["id"] for e in other["entry"]]


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
    assert expected in _issues(answer)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status": None}, "status must be one of"),
        ({"intent": "wish"}, "intent must be one of"),
        ({"code": {"coding": []}}, "code must be a CodeableConcept"),
        ({"subject": None}, "subject.reference to a Patient is required"),
        ({"subject": {"reference": "Group/1"}}, "subject must reference a Patient"),
        ({"subject": {"reference": "Patient/pat-nobody"}}, "subject Patient/pat-nobody does not exist"),
    ],
)
def test_service_request_validation_is_422_operation_outcome(
    fhir: httpx.Client, changes: dict[str, object], expected: str
) -> None:
    answer = fhir.post("/ServiceRequest", json=_order(patient_id(TOLVAN), **changes))
    assert answer.status_code == 422
    assert expected in _issues(answer)


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("GET", "/Observation", 404, "not supported"),
        ("GET", "/Patient?name=Tolvan", 400, "unknown search parameter 'name'"),
        ("POST", "/Patient", 405, "cannot be created"),
        ("DELETE", "/Patient/x", 405, "DELETE is not supported"),
        ("GET", "/Patient/x/_history/1", 404, "no FHIR endpoint"),
    ],
)
def test_errors_are_operation_outcomes(
    fhir: httpx.Client, method: str, path: str, status: int, expected: str
) -> None:
    answer = fhir.request(method, path, json={"resourceType": "Patient"} if method == "POST" else None)
    assert answer.status_code == status
    assert expected in _issues(answer)


# -- faults ----------------------------------------------------------------------------------------


def _timed_search(base: str) -> float:
    start = time.monotonic()
    answer = httpx.get(f"{base}/Patient", params={"identifier": TOLVAN}, timeout=10)
    assert answer.json()["total"] == 1
    return time.monotonic() - start


@pytest.mark.slow
def test_slow_patient_search_fault_slows_search_only_while_set(hospital: Hospital) -> None:
    base = hospital.fhir_base
    assert _timed_search(base) < 0.5
    assert hospital.set_fault("slow-patient-search") == ["slow-patient-search"]
    try:
        slow: list[float] = []
        searcher = threading.Thread(target=lambda: slow.append(_timed_search(base)))
        searcher.start()
        time.sleep(0.1)
        start = time.monotonic()
        assert httpx.get(f"{base}/metadata", timeout=5).status_code == 200
        assert time.monotonic() - start < 0.5, "the server must stay responsive while a search sleeps"
        searcher.join(timeout=10)
        assert slow and slow[0] >= SLOW_PATIENT_SEARCH_S * 0.95
    finally:
        assert hospital.clear_fault("slow-patient-search") == []
    assert _timed_search(base) < 0.5


def test_admin_endpoints_list_set_and_clear_faults(hospital: Hospital) -> None:
    admin = hospital.admin_url
    health = httpx.get(f"{admin}/health", timeout=5).json()
    assert health["status"] == "up" and health["rehearsal"] == "demo-gr1"
    assert httpx.post(f"{admin}/faults", json={"fault": "printer-paper-out@sas-boras"}, timeout=5).json() == [
        "printer-paper-out@sas-boras"
    ]
    assert httpx.get(f"{admin}/faults", timeout=5).json() == ["printer-paper-out@sas-boras"]
    refused = httpx.post(f"{admin}/faults", json={"fault": "printer-paper-out@mars"}, timeout=5)
    assert refused.status_code == 400 and "plan has no site 'mars'" in refused.json()["error"]
    cleared = httpx.delete(f"{admin}/faults", params={"fault": "printer-paper-out@sas-boras"}, timeout=5)
    assert cleared.json() == []


# -- web UI (the browser flows are in test_pages.py) -------------------------------------------


def test_web_requires_login_and_refuses_wrong_password(web: httpx.Client) -> None:
    assert web.get("/patients").headers["location"] == "/login"
    refused = web.post("/login", data={"hsa_id": "SE2321000131-P000000000101", "password": "wrong"})
    assert refused.status_code == 401
    assert "Fel HSA-id eller lösenord." in refused.text
    assert "ehr_session" not in web.cookies


def test_web_order_is_the_fhir_service_request(web: httpx.Client, fhir: httpx.Client) -> None:
    logged_in = web.post("/login", data={"hsa_id": "SE2321000131-P000000000201", "password": PASSWORD})
    assert logged_in.status_code == 303 and logged_in.headers["location"] == "/patients"
    found = web.get("/patients", params={"personnummer": "20100101-0113"})
    assert found.headers["location"] == f"/patients/{patient_id('20100101-0113')}"
    page = web.get(found.headers["location"]).text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    forged = web.post(f"{found.headers['location']}/orders", data={"test": "P-Na", "csrf": "forged"})
    assert forged.status_code == 403
    placed = web.post(f"{found.headers['location']}/orders", data={"test": "P-Na", "csrf": csrf})
    assert placed.status_code == 303
    orders = fhir.get("/ServiceRequest", params={"patient": patient_id("20100101-0113")}).json()
    [order] = [e["resource"] for e in orders["entry"]]
    assert order["code"]["coding"][0]["display"] == "P-Na"
    assert order["requester"]["identifier"]["value"] == "SE2321000131-P000000000201"
    assert "Beställning skickad: P-Na" in web.get(placed.headers["location"]).text


def test_web_escapes_what_it_echoes(web: httpx.Client) -> None:
    web.post("/login", data={"hsa_id": "SE2321000131-P000000000101", "password": PASSWORD})
    answer = web.get("/patients", params={"personnummer": "<script>alert(1)</script>"})
    assert answer.status_code == 400
    assert "<script>alert" not in answer.text and "&lt;script&gt;" in answer.text


def test_user_without_password_env_cannot_log_in(tmp_path: Path) -> None:
    with Hospital(plan_on(free_port()), [], tmp_path, environ={}) as bare:
        answer = httpx.post(
            f"{bare.web_base}/login",
            data={"hsa_id": "SE2321000131-P000000000101", "password": ""},
            timeout=5,
        )
        assert answer.status_code == 401


# -- what Hospital refuses -------------------------------------------------------------------------


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
