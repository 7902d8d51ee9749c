"""Coexistence in the reference hospital over real protocols: lab (HL7 v2/MLLP), legacy EHR and
bridge (HTTP, FHIR), directory (LDAP and LDIF), migration; each coexistence fault on and off.

One hospital for the module (demo plan on free ports, without printers), so each test
uses its own patient or site where state could leak between tests.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import hl7
import hl7.client
import httpx
import pytest
import yaml

from conftest import free_port
from reference_hospital.directory import build_ldif
from reference_hospital.faults import drop_negations, mangle_encoding
from reference_hospital.hospital import Hospital
from rehearsal.clients import directory as kiv
from rehearsal.clients import hl7 as mllp
from rehearsal.errors import TargetError, UsageError
from rehearsal.identities import HSA_ID_SYSTEM
from rehearsal.plan import Plan, load_plan

pytestmark = pytest.mark.slow  # one reference hospital (with slapd) for the module

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "plans" / "demo.yaml"
PASSWORD = "coexistence-test-password"
FHIR = {"Content-Type": "application/fhir+json"}
TOLVAN, TESTA, LILLA = "19121212-1212", "19800101-0019", "20100101-0113"
ANNA, BJORN = "SE2321000131-P000000000101", "SE2321000131-P000000000201"  # sas-boras (bridge), nal (direct)
SAS, NAL_KEMI, NAL_ORTO = (
    "SE2321000131-E000000000101",
    "SE2321000131-E000000000202",
    "SE2321000131-E000000000203",
)
ANSWER = (
    "Ingen fraktur. Patienten är inte öm, ej svullen och inget blod i ledvätskan.\n"
    "Åter vid behov, öka ej dosen."
)


def coexistence_data(edit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The demo plan with every endpoint on a free port, quick lab and bridge, no printers."""
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    env = data["environment"]
    ehr = free_port()
    env.update(
        fhir_base=f"http://127.0.0.1:{ehr}/fhir",
        web_base=f"http://127.0.0.1:{ehr}",
        legacy_base=f"http://127.0.0.1:{free_port()}",
        lab_mllp=f"mllp://127.0.0.1:{free_port()}",
        bridge_base=f"http://127.0.0.1:{free_port()}",
        bridge_mllp=f"mllp://127.0.0.1:{free_port()}",
        directory=f"ldap://127.0.0.1:{free_port()}",
    )
    data["coexistence"]["lab"]["result_delay_s"] = 0.2
    data["coexistence"]["bridge"]["poll_interval_s"] = 0.2
    for site in data["sites"]:
        site["printers"] = []
    if edit:
        edit(data)
    return data


def plan_of(data: dict[str, Any], tmp: Path) -> Plan:
    path = tmp / "plan.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_plan(path).plan


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    tmp = tmp_path_factory.mktemp("coexistence")
    plan = plan_of(coexistence_data(), tmp)
    with Hospital(plan, [], tmp / "hospital", environ={"REHEARSAL_PASSWORD": PASSWORD}) as running:
        yield running


@pytest.fixture
def env(hospital: Hospital) -> Any:
    return hospital.plan.environment


@pytest.fixture
def fhir(env: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=env.fhir_base, timeout=5) as client:
        yield client


@pytest.fixture
def legacy(env: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=env.legacy_base, timeout=5) as client:
        yield client


@pytest.fixture
def bridge(env: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=env.bridge_base, timeout=5) as client:
        yield client


@pytest.fixture
def faults(hospital: Hospital) -> Iterator[Hospital]:
    """The hospital, with every fault cleared again after the test."""
    yield hospital
    hospital.clear_fault()


def wait_for(probe: Callable[[], Any], seconds: float = 10.0) -> Any:
    """The first truthy answer of ``probe`` within ``seconds``, else the last (falsy) one."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def patient_id(fhir: httpx.Client, pnr: str) -> str:
    return fhir.get("Patient", params={"identifier": pnr.replace("-", "")}).json()["entry"][0]["resource"][
        "id"
    ]


def lab_order(fhir: httpx.Client, pnr: str, requester_hsa: str, npu: str = "NPU19748") -> str:
    answer = fhir.post(
        "ServiceRequest",
        headers=FHIR,
        json={
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "108252007"}]}],
            "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.1", "code": npu}]},
            "subject": {"reference": f"Patient/{patient_id(fhir, pnr)}"},
            "requester": {"identifier": {"system": HSA_ID_SYSTEM, "value": requester_hsa}},
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def reports_for(fhir: httpx.Client, order: str) -> list[dict[str, Any]]:
    bundle = fhir.get("DiagnosticReport", params={"based-on": f"ServiceRequest/{order}"}).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def new_referral(fhir: httpx.Client, pnr: str, text: str, sender: str = SAS, receiver: str = NAL_ORTO) -> str:
    """A referral written in the new EHR (ServiceRequest + Task) to a unit on the legacy one."""
    hsa = {"system": HSA_ID_SYSTEM}
    request = fhir.post(
        "ServiceRequest",
        headers=FHIR,
        json={
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
            "code": {"text": "Remiss"},
            "subject": {"reference": f"Patient/{patient_id(fhir, pnr)}"},
            "requester": {"identifier": {**hsa, "value": sender}},
            "performer": [{"identifier": {**hsa, "value": receiver}}],
            "note": [{"text": text}],
        },
    ).json()
    task = fhir.post(
        "Task",
        headers=FHIR,
        json={
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "focus": {"reference": f"ServiceRequest/{request['id']}"},
            "for": {"reference": request["subject"]["reference"]},
            "requester": {"identifier": {**hsa, "value": sender}},
            "owner": {"identifier": {**hsa, "value": receiver}},
        },
    )
    assert task.status_code == 201, task.text
    return task.json()["id"]


def inbound_for(legacy: httpx.Client, task_id: str) -> dict[str, Any] | None:
    rows = legacy.get("/api/referrals", params={"direction": "in"}).json()
    return next((r for r in rows if r["external_id"] == f"Task/{task_id}"), None)


def legacy_referral(legacy: httpx.Client, pnr: str, text: str, to_unit: str = SAS) -> dict[str, Any]:
    answer = legacy.post(
        "/api/referrals", json={"personnummer": pnr, "from_unit": NAL_ORTO, "to_unit": to_unit, "text": text}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def task_for_legacy(fhir: httpx.Client, legacy_id: int) -> dict[str, Any] | None:
    bundle = fhir.get("Task", params={"identifier": f"urn:rehearsal:legacy:referral|{legacy_id}"}).json()
    entries = bundle.get("entry", [])
    return entries[0]["resource"] if entries else None


def answer_task(fhir: httpx.Client, task: dict[str, Any], text: str) -> None:
    for status in ("received", "completed"):
        task = fhir.get(f"Task/{task['id']}").json()
        task["status"] = status
        if status == "completed":
            task["output"] = [{"type": {"text": "Remissvar"}, "valueString": text}]
        assert fhir.put(f"Task/{task['id']}", headers=FHIR, json=task).status_code == 200


def order_message(
    placer: str, facility: str = NAL_ORTO, test: str = "NPU19748", kind: str = "ORM^O01^ORM_O01"
) -> str:
    order = mllp.LabOrder(placer, TOLVAN, "Tolvan Tolvansson", test, "P-CRP", "LEGACY", facility)
    return mllp.build_order(order, kind=kind)


def queue(bridge: httpx.Client, name: str, site: str | None = None) -> dict[str, Any]:
    params = {"site": site} if site else {}
    return bridge.get("/bridge/queues", params=params).json()["queues"][name]


# -- first: a clean hospital ---------------------------------------------------------------------


def test_heartbeat_and_queues_are_clean_on_a_clean_hospital(bridge: httpx.Client) -> None:
    """First in the module: before any test sends stray messages on purpose."""
    beat = bridge.get("/bridge/heartbeat")
    assert beat.status_code == 200 and beat.json()["status"] == "ok", beat.json()
    assert set(beat.json()["links"]) == {"new-ehr", "legacy", "deliveries"}
    snapshot = bridge.get("/bridge/queues").json()
    assert snapshot["catch_all"] == 0 and snapshot["failed"] == 0
    assert bridge.get("/bridge/queues", params={"site": "mars"}).status_code == 404


# -- lab: HL7 v2 over MLLP ----------------------------------------------------------------------------


def test_lab_acknowledges_orders_from_python_hl7s_own_client(env: Any) -> None:
    host, port = mllp.parse_uri(env.lab_mllp)
    with hl7.client.MLLPClient(host, port) as client:
        client.socket.settimeout(5)
        reply = client.send_message(order_message("HL7CLIENT-1"))
    ack = hl7.parse(reply.decode("utf-8").strip("\x0b\x1c\r"))
    assert mllp.ack_code(ack) == "AA"
    assert mllp.field(ack, "MSA", 2).startswith("HL7CLIENT-1")


@pytest.mark.parametrize(
    ("message", "code", "why"),
    [
        (order_message("OML-1", kind="OML^O21^OML_O21"), "AA", ""),
        (order_message("ADT-1", kind="ADT^A01^ADT_A01"), "AR", "not ADT"),
        (order_message("NOTEST-1", test="NPU99999"), "AE", "unknown test"),
        (order_message("NOFAC-1", facility="SE2321000131-E999999999999"), "AE", "unknown sending facility"),
        (order_message("NOPID-1").replace("191212121212^^^", "^^^"), "AE", "PID-3 patient id"),
    ],
)
def test_lab_answers_each_order_with_the_right_ack(env: Any, message: str, code: str, why: str) -> None:
    ack = mllp.send_message(env.lab_mllp, message, timeout=5)
    assert mllp.ack_code(ack) == code
    assert why in mllp.ack_text(ack)


def test_lab_rejects_what_is_not_hl7_or_not_utf8(env: Any) -> None:
    with mllp.MllpClient(env.lab_mllp, 5) as client:
        garbage = mllp.parse(client.send_raw(mllp.START_BLOCK + b"hello lab" + mllp.END_BLOCK).decode())
        latin1 = order_message("LATIN1-1").replace("Tolvansson", "Åström").encode("latin-1")
        not_utf8 = mllp.parse(client.send_raw(mllp.START_BLOCK + latin1 + mllp.END_BLOCK).decode())
    assert (mllp.ack_code(garbage), mllp.ack_code(not_utf8)) == ("AR", "AR")
    assert "not UTF-8" in mllp.ack_text(not_utf8)


def test_legacy_lab_order_gets_its_result_back_through_the_bridge(
    legacy: httpx.Client, bridge: httpx.Client
) -> None:
    order = legacy.post("/api/lab-orders", json={"personnummer": LILLA, "unit": NAL_ORTO, "test": "B-Hb"})
    assert order.status_code == 201, order.text
    assert (order.json()["status"], order.json()["ack"]) == ("sent", "AA")
    placer = order.json()["placer"]
    result = wait_for(lambda: [r for r in legacy.get("/api/results").json() if r["placer"] == placer])
    assert result and result[0]["personnummer"] == LILLA and "134 g/L" in result[0]["summary"]
    delivered = wait_for(
        lambda: [
            m
            for m in queue(bridge, "lab→legacy")["messages"]
            if m["key"] == placer and m["status"] == "delivered"
        ]
    )
    assert delivered


def test_legacy_lab_order_for_someone_else_or_elsewhere_is_refused(legacy: httpx.Client) -> None:
    nobody = legacy.post(
        "/api/lab-orders", json={"personnummer": "19900101-0017", "unit": NAL_ORTO, "test": "B-Hb"}
    )
    not_ours = legacy.post("/api/lab-orders", json={"personnummer": TOLVAN, "unit": SAS, "test": "B-Hb"})
    assert nobody.status_code == 404 and "test identities" in nobody.json()["error"]
    assert not_ours.status_code == 422 and "not a unit of this legacy EHR" in not_ours.json()["error"]


@pytest.mark.parametrize(("requester", "route"), [(ANNA, "mllp"), (BJORN, "fhir")], ids=["bridge", "direct"])
def test_new_ehr_lab_order_is_resulted_by_its_sites_route(
    hospital: Hospital, fhir: httpx.Client, requester: str, route: str
) -> None:
    order = lab_order(fhir, TESTA, requester)
    reports = wait_for(lambda: reports_for(fhir, order))
    assert len(reports) == 1 and reports[0]["status"] == "final"
    assert reports[0]["subject"]["reference"] == f"Patient/{patient_id(fhir, TESTA)}"
    observation = fhir.get(reports[0]["result"][0]["reference"]).json()
    assert observation["valueQuantity"] == {
        "value": 3,
        "unit": "mg/L",
        "system": "http://unitsofmeasure.org",
        "code": "mg/L",
    }
    lab = httpx.get(f"{hospital.admin_url}/lab/", timeout=5).json()
    mine = [o for o in lab["orders"] if o["placer"] == order]
    assert [(o["route"], o["delivery"]) for o in mine] == [(route, "delivered")]


# -- referrals across the boundary ------------------------------------------------------------------


def test_referral_from_the_legacy_side_round_trips_byte_identical(
    fhir: httpx.Client, legacy: httpx.Client
) -> None:
    question = "Öm över höger fotled efter fall, inte svullen. Ingen tidigare skada? Ej gipsad."
    sent = legacy_referral(legacy, TOLVAN, question)
    task = wait_for(lambda: task_for_legacy(fhir, sent["id"]))
    assert task and task["status"] == "requested"
    request = fhir.get(task["focus"]["reference"]).json()
    assert request["note"][0]["text"] == question
    answer_task(fhir, task, ANSWER)
    back = wait_for(
        lambda: (r := legacy.get(f"/api/referrals/{sent['id']}").json())["status"] == "answered" and r
    )
    assert back and back["answer"] == ANSWER
    assert back["answer"].encode("utf-8") == ANSWER.encode("utf-8")


def test_referral_from_the_new_side_round_trips_byte_identical(
    fhir: httpx.Client, legacy: httpx.Client
) -> None:
    question = "Bedömning av knä: ingen instabilitet, inte låst. Åäö ÅÄÖ."
    task_id = new_referral(fhir, TOLVAN, question)
    inbound = wait_for(lambda: inbound_for(legacy, task_id))
    assert inbound and inbound["text"] == question and inbound["to_unit"] == NAL_ORTO
    legacy.post(f"/api/referrals/{inbound['id']}/status", json={"status": "received"})
    assert wait_for(lambda: fhir.get(f"Task/{task_id}").json()["status"] == "received")
    legacy.post(f"/api/referrals/{inbound['id']}/answer", json={"text": ANSWER, "by": "Dr Ek"})
    done = wait_for(lambda: (t := fhir.get(f"Task/{task_id}").json())["status"] == "completed" and t)
    assert done and done["output"][0]["valueString"] == ANSWER


def test_npo_shows_both_sides_published_records_for_test_identities_only(
    fhir: httpx.Client, legacy: httpx.Client, bridge: httpx.Client
) -> None:
    legacy.post(
        "/api/records",
        json={"personnummer": LILLA, "unit": NAL_ORTO, "title": "Anteckning", "text": "Gips åter."},
    )
    order = lab_order(fhir, LILLA, ANNA)
    assert wait_for(lambda: reports_for(fhir, order))
    answer = bridge.get(f"/npo/Patient/{LILLA}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    sources = {r["source"] for r in body["records"]}
    assert sources == {"new", "legacy"} and body["name"] == "Lilla Provsson"
    assert any(r["text"] == "Gips åter." for r in body["records"])
    assert bridge.get("/npo/Patient/19900101-0017").status_code == 404


def test_bridge_parks_results_for_an_unknown_receiver_and_refuses_what_is_not_a_result(
    env: Any, legacy: httpx.Client, bridge: httpx.Client
) -> None:
    order = hl7.parse(order_message("STRAY-1").replace("|LEGACY|", "|OTHERAPP|", 1))
    stray = mllp.build_result(order, "LAB999", [mllp.LabValue("NPU19748", "P-CRP", "3", "mg/L")])
    assert mllp.ack_code(mllp.send_message(env.bridge_mllp, stray, 5)) == "AA"
    parked = [m for m in queue(bridge, "catch-all")["messages"] if m["key"] == "STRAY-1"]
    assert parked and parked[0]["status"] == "parked" and "OTHERAPP" in parked[0]["error"]
    wrong = mllp.send_message(env.bridge_mllp, order_message("STRAY-2"), 5)
    assert mllp.ack_code(wrong) == "AR"


def test_legacy_overview_page_and_api_errors(legacy: httpx.Client) -> None:
    page = legacy.get("/")
    assert (
        page.status_code == 200
        and "Journal (äldre system)" in page.text
        and "Ortopedmottagningen NÄL" in page.text
    )
    assert legacy.get("/api/units").json() == [
        {"hsa_id": NAL_ORTO, "name": "Ortopedmottagningen NÄL, NÄL, Trollhättan", "site": "nal-trollhattan"}
    ]
    assert legacy.post("/api/referrals", content=b"not json").status_code == 400
    empty = legacy.post(
        "/api/referrals", json={"personnummer": TOLVAN, "from_unit": NAL_ORTO, "to_unit": SAS}
    )
    assert empty.status_code == 422 and "text" in empty.json()["error"]


# -- directory -------------------------------------------------------------------------------------------


def test_directory_over_ldap_equals_the_ldif_and_the_plan(hospital: Hospital) -> None:
    plan = hospital.plan
    over_ldap = kiv.for_plan(plan)
    ldif = kiv.read_ldif(hospital.workdir / "directory" / "kiv.ldif", plan.coexistence.directory_base_dn)

    def facts(snapshot: kiv.DirectorySnapshot) -> set[tuple[str, ...]]:
        return {
            (e.kind, e.hsa_id, e.name, e.site_hsa_id or "", e.parent_hsa_id or "", e.title)
            for e in snapshot.entries
        }

    assert facts(over_ldap) == facts(ldif) and len(over_ldap.entries) > len(plan.sites)
    sites = {e.hsa_id: e.name for e in over_ldap.units() if e.kind == "site"}
    assert sites == {s.hsa_id: s.name for s in plan.sites}
    units = {e.hsa_id: e.site_hsa_id for e in over_ldap.units() if e.kind == "unit"}
    assert units == {u.hsa_id: s.hsa_id for s in plan.sites for u in s.units}
    people = {e.hsa_id: (e.name, e.title, e.site_hsa_id) for e in over_ldap.people()}
    assert people == {u.hsa_id: (u.name, u.role, s.hsa_id) for s in plan.sites for u in s.users}


def test_directory_unreachable_is_a_one_line_target_error(hospital: Hospital) -> None:
    with pytest.raises(kiv.DirectoryError) as caught:
        kiv.read_directory(f"ldap://127.0.0.1:{free_port()}", "o=VGR,c=SE", timeout=2)
    assert "\n" not in str(caught.value)
    with pytest.raises(kiv.DirectoryError, match="cannot read"):
        kiv.read_ldif("/nonexistent/kiv.ldif", "o=VGR,c=SE")


def test_ldif_carries_non_ascii_names_and_escaped_dns() -> None:
    plan = load_plan(DEMO).plan
    text = build_ldif(plan)
    records = kiv.parse_ldif(text)
    names = {r["ou"][0] for r in records if "ou" in r}
    assert "Södra Älvsborgs Sjukhus, Borås" in names and "dn:: " in text
    snapshot = kiv.snapshot("demo", plan.coexistence.directory_base_dn, records)
    assert {e.hsa_id for e in snapshot.of_site(plan.sites[1].hsa_id)} == {
        plan.sites[1].hsa_id,
        *(u.hsa_id for u in plan.sites[1].units),
        *(u.hsa_id for u in plan.sites[1].users),
    }


# -- migration ----------------------------------------------------------------------------------------


def migrated(bridge: httpx.Client, site: str) -> dict[str, str]:
    bundle = bridge.get("/migration/Appointment", params={"site": site}).json()
    return {e["resource"]["identifier"][0]["value"]: e["resource"]["start"] for e in bundle["entry"]}


def extract(legacy: httpx.Client, site: str) -> dict[str, str]:
    text = legacy.get("/api/extract/bookings.csv").text
    return {
        row["bokning"]: row["start"]
        for row in csv.DictReader(io.StringIO(text), delimiter=";")
        if row["plats"] == site
    }


def test_migrated_bookings_match_the_legacy_extract(
    legacy: httpx.Client, bridge: httpx.Client, hospital: Hospital
) -> None:
    for site in hospital.plan.sites:
        assert migrated(bridge, site.id) == extract(legacy, site.id)
    assert (
        len(extract(legacy, "sas-boras")) == 3 * 2
    )  # three identities, two bookings each, one unit (the site)
    summary = bridge.get("/migration").json()
    assert (
        summary["migrated"].endswith("/migration/Appointment")
        and "bookings" in summary["extract"]["bookings"]
    )


def test_migration_gap_drops_one_booking_and_moves_one_to_five_past_midnight(
    faults: Hospital, legacy: httpx.Client, bridge: httpx.Client
) -> None:
    source = extract(legacy, "sas-boras")
    faults.set_fault("migration-gap@sas-boras")
    gapped = migrated(bridge, "sas-boras")
    assert len(gapped) == len(source) - 1
    moved = [k for k in gapped if gapped[k] != source[k]]
    assert len(moved) == 1 and datetime.fromisoformat(gapped[moved[0]]).strftime("%H:%M") == "00:05"
    assert migrated(bridge, "nal-trollhattan") == extract(legacy, "nal-trollhattan")
    faults.clear_fault("migration-gap@sas-boras")
    assert migrated(bridge, "sas-boras") == source


def test_migration_gap_is_refused_at_a_site_still_on_the_legacy_ehr(tmp_path: Path) -> None:
    def nal_legacy(data: dict[str, Any]) -> None:
        data["sites"][1]["system"] = "legacy"

    plan = plan_of(coexistence_data(nal_legacy), tmp_path)
    with pytest.raises(UsageError, match="on the legacy EHR"):
        Hospital(plan, ["migration-gap@nal-trollhattan"], tmp_path)


# -- faults, each on and off without a restart ------------------------------------------------------------


def test_lab_results_lost_at_one_site_then_found_again(faults: Hospital, fhir: httpx.Client) -> None:
    faults.set_fault("lab-results-lost@sas-boras")
    lost = lab_order(fhir, TOLVAN, ANNA)
    elsewhere = lab_order(fhir, TOLVAN, BJORN)
    assert wait_for(lambda: reports_for(fhir, elsewhere))
    time.sleep(1.0)  # well past the 0.2 s result delay
    assert reports_for(fhir, lost) == []
    lab = httpx.get(f"{faults.admin_url}/lab/", timeout=5).json()
    assert [o["delivery"] for o in lab["orders"] if o["placer"] == lost] == ["lost"]
    faults.clear_fault("lab-results-lost@sas-boras")
    found = lab_order(fhir, TOLVAN, ANNA)
    assert wait_for(lambda: reports_for(fhir, found))


def test_referral_dropped_then_delivered_again(
    faults: Hospital, fhir: httpx.Client, legacy: httpx.Client
) -> None:
    faults.set_fault("referral-dropped@sas-boras")
    dropped = new_referral(fhir, TESTA, "Remiss som försvinner.")
    from_nal = legacy_referral(legacy, TESTA, "Remiss från NÄL kommer fram.")
    assert wait_for(lambda: task_for_legacy(fhir, from_nal["id"]))
    time.sleep(0.8)
    assert inbound_for(legacy, dropped) is None
    assert fhir.get(f"Task/{dropped}").json()["status"] == "requested"
    faults.clear_fault("referral-dropped@sas-boras")
    again = new_referral(fhir, TESTA, "Remiss som kommer fram.")
    assert wait_for(lambda: inbound_for(legacy, again))


def test_referral_negation_loss_drops_the_no_words_from_answers_then_not(
    faults: Hospital, fhir: httpx.Client, legacy: httpx.Client
) -> None:
    faults.set_fault("referral-negation-loss@sas-boras")
    task_id = new_referral(fhir, LILLA, "Fråga med negation: inte akut.")
    inbound = wait_for(lambda: inbound_for(legacy, task_id))
    assert inbound["text"] == "Fråga med negation: inte akut."  # the question crosses intact
    legacy.post(f"/api/referrals/{inbound['id']}/answer", json={"text": ANSWER, "by": "Dr Ek"})
    done = wait_for(lambda: (t := fhir.get(f"Task/{task_id}").json())["status"] == "completed" and t)
    received = done["output"][0]["valueString"]
    assert received == drop_negations(ANSWER) and received != ANSWER
    assert not any(f" {w} " in f" {received.lower()} " for w in ("inte", "ingen", "inget", "ej"))
    faults.clear_fault("referral-negation-loss@sas-boras")
    task_id = new_referral(fhir, LILLA, "Samma fråga igen.")
    inbound = wait_for(lambda: inbound_for(legacy, task_id))
    legacy.post(f"/api/referrals/{inbound['id']}/answer", json={"text": ANSWER, "by": "Dr Ek"})
    done = wait_for(lambda: (t := fhir.get(f"Task/{task_id}").json())["status"] == "completed" and t)
    assert done["output"][0]["valueString"] == ANSWER


def test_text_encoding_loss_mangles_a_and_o_across_the_bridge_then_not(
    faults: Hospital, fhir: httpx.Client, legacy: httpx.Client
) -> None:
    question = "Smärta i höger höft, ödem? Gå på kryckor."
    faults.set_fault("text-encoding-loss@nal-trollhattan")
    sent = legacy_referral(legacy, TOLVAN, question)
    task = wait_for(lambda: task_for_legacy(fhir, sent["id"]))
    request = fhir.get(task["focus"]["reference"]).json()
    assert request["note"][0]["text"] == mangle_encoding(question) and "Ã¶" in request["note"][0]["text"]
    faults.clear_fault("text-encoding-loss@nal-trollhattan")
    sent = legacy_referral(legacy, TOLVAN, question)
    task = wait_for(lambda: task_for_legacy(fhir, sent["id"]))
    assert fhir.get(task["focus"]["reference"]).json()["note"][0]["text"] == question


def test_orphan_queue_parks_one_sites_orders_silently_then_routes_again(
    faults: Hospital, fhir: httpx.Client, bridge: httpx.Client, legacy: httpx.Client
) -> None:
    at_nal = queue(bridge, "catch-all", "nal-trollhattan")["count"]
    faults.set_fault("orphan-queue@sas-boras")
    parked_order = lab_order(fhir, TESTA, ANNA)
    parked = wait_for(
        lambda: [m for m in queue(bridge, "catch-all", "sas-boras")["messages"] if m["key"] == parked_order]
    )
    assert parked and parked[0]["status"] == "parked" and parked[0]["kind"] == "lab-order"
    assert queue(bridge, "catch-all", "nal-trollhattan")["count"] == at_nal  # only the faulted site
    legacy_order = legacy.post(
        "/api/lab-orders", json={"personnummer": TESTA, "unit": NAL_ORTO, "test": "P-Na"}
    )
    assert legacy_order.json()["ack"] == "AA"  # the sender sees nothing wrong
    time.sleep(0.8)
    assert reports_for(fhir, parked_order) == []
    faults.clear_fault("orphan-queue@sas-boras")
    routed = lab_order(fhir, TESTA, ANNA)
    assert wait_for(lambda: reports_for(fhir, routed))
    assert [m["key"] for m in queue(bridge, "catch-all", "sas-boras")["messages"]] == [parked_order]


def test_faults_nobody_implements_yet_are_refused_not_ignored(faults: Hospital, tmp_path: Path) -> None:
    assert {"lab-results-lost", "orphan-queue", "migration-gap"} <= set(faults.board.handled())

    def no_bridge(data: dict[str, Any]) -> None:
        del data["environment"]["bridge_base"]

    smaller = Hospital(plan_of(coexistence_data(no_bridge), tmp_path), [], tmp_path / "h")
    assert (
        "orphan-queue" not in smaller.implemented_faults()
        and "lab-results-lost" in smaller.implemented_faults()
    )
    with pytest.raises(UsageError, match="'orphan-queue' is not implemented yet"):
        smaller.set_fault("orphan-queue@sas-boras")  # its board has no bridge to declare it
    assert smaller.board.names() == []


# -- start-up --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("lab_mllp", "lab system"),
        ("legacy_base", "legacy EHR"),
        ("bridge_mllp", "MLLP inbound"),
        ("directory", "HSA/KiV directory"),
    ],
)
def test_a_component_whose_port_is_taken_fails_in_one_line_naming_it(
    tmp_path: Path, field: str, name: str
) -> None:
    plan = plan_of(coexistence_data(), tmp_path)
    url = getattr(plan.environment, field)
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(TargetError) as caught:
            Hospital(plan, [], tmp_path / "h", environ={"REHEARSAL_PASSWORD": PASSWORD}).start()
    message = str(caught.value)
    assert name in message and f"port {port} is already in use" in message and "\n" not in message
    with socket.socket() as probe:  # nothing of the failed start is left listening
        assert (
            probe.connect_ex(("127.0.0.1", int(plan.environment.fhir_base.split(":")[2].split("/")[0]))) != 0
        )


def test_two_endpoints_on_one_port_are_refused_before_anything_starts(tmp_path: Path) -> None:
    def clash(data: dict[str, Any]) -> None:
        data["environment"]["bridge_mllp"] = data["environment"]["lab_mllp"]

    with pytest.raises(UsageError, match="both want port"):
        Hospital(plan_of(coexistence_data(clash), tmp_path), [], tmp_path)
