"""The test-identity guard never fetches a patient it has not been allowed.

The reference EHR runs with its own test-identity check off, so it holds a patient who is
no test identity of the plan, with an encounter changed during the "run", beside an
encounter of the plan's Tolvan. The guard talks to it through a recording proxy on
loopback that keeps every request and every answer: the foreign patient is never read,
and its number and name are in no answer the guard received; it is still reported, by
its id in the EHR, and what the guard attaches and says holds no whole number.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_hospital.ehr_server import EhrServer
from reference_hospital.fhir_resources import PERSONNUMMER_SYSTEM, patient_id
from rehearsal import guard, patient_gate
from rehearsal.clients.fhir import FhirClient
from rehearsal.identities import check_personnummer, luhn_digit
from rehearsal.plan import Plan, load_plan
from tests.conftest import free_port

FHIR = "application/fhir+json"
TOLVAN = "19121212-1212"
_YMD, _SERIAL = "19700101", "123"
FOREIGN = check_personnummer(f"{_YMD}-{_SERIAL}{luhn_digit(_YMD[2:] + _SERIAL)}")
FOREIGN_NAME = "Främling Utanför"


@dataclass
class Recording:
    """What passed through the proxy: (method, path with query, answer body)."""

    exchanges: list[tuple[str, str, bytes]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.exchanges]


def _proxy(target: str, recording: Recording) -> ThreadingHTTPServer:
    """A loopback HTTP proxy to ``target`` that records every exchange."""

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "content-type")}
            answer = httpx.request(
                self.command, target + self.path, content=body, headers=headers, timeout=10
            )
            recording.exchanges.append((self.command, self.path, answer.content))
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", FHIR))
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = _forward  # noqa: N815 (http.server's names)

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)


@dataclass
class Hospital:
    plan: Plan
    fhir: FhirClient  # through the recording proxy
    recording: Recording
    since: str
    foreign_id: str


@pytest.fixture
def hospital(make_plan: Callable[..., Path], tmp_path: Path) -> Iterator[Hospital]:
    plan = load_plan(make_plan()).plan
    with EhrServer(plan, tmp_path / "ehr", environ={}, test_identities_only=False) as ehr:
        direct = httpx.Client(base_url=ehr.fhir_base, headers={"Accept": FHIR}, timeout=10)
        recording = Recording()
        proxy = _proxy(ehr.fhir_base.rstrip("/"), recording)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        env = plan.environment.model_copy(update={"fhir_base": f"http://127.0.0.1:{proxy.server_port}"})
        try:
            with FhirClient(env) as fhir:
                since = fhir.server_time().isoformat().replace("+00:00", "Z")
                foreign = {
                    "resourceType": "Patient",
                    "identifier": [{"system": PERSONNUMMER_SYSTEM, "value": FOREIGN.replace("-", "")}],
                    "name": [{"text": FOREIGN_NAME, "family": "Utanför", "given": ["Främling"]}],
                }
                created = direct.post("/Patient", json=foreign, headers={"Content-Type": FHIR})
                assert created.status_code == 201, created.text
                foreign_id = created.json()["id"]
                for pid in (foreign_id, patient_id(TOLVAN)):
                    done = direct.post("/Encounter", json=_encounter(pid), headers={"Content-Type": FHIR})
                    assert done.status_code == 201, done.text
                recording.exchanges.clear()
                yield Hospital(plan, fhir, recording, since, foreign_id)
        finally:
            proxy.shutdown()
            proxy.server_close()
            direct.close()


def _encounter(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": f"Patient/{pid}"},
        "serviceProvider": {"reference": "Organization/sas-boras"},
        "location": [{"location": {"reference": "Location/sas-boras"}}],
    }


def _forms(number: str) -> list[bytes]:
    ymd, tail = number[:8], number[9:]
    return [f"{ymd}{sep}{tail}".encode() for sep in ("-", "")] + [f"{ymd[2:]}-{tail}".encode()]


def test_the_guard_never_reads_a_patient_it_was_not_allowed(hospital: Hospital) -> None:
    touched = guard.Touched()
    allowed = [t.personnummer for t in hospital.plan.test_identities]
    guard.touched_in_ehr(hospital.fhir, hospital.since, touched, allowed)

    exchanges = hospital.recording.exchanges
    assert exchanges, "the guard asked nothing"
    assert not [p for p in hospital.recording.paths() if f"Patient/{hospital.foreign_id}" in p]
    for method, path, answer in exchanges:
        leaked = [f for f in [*_forms(FOREIGN), FOREIGN_NAME.encode(), "Främling".encode()] if f in answer]
        assert not leaked, f"{method} {path} brought {leaked}"
    # ... and still it is found, by its id, next to the run's own Tolvan
    assert f"Patient/{hospital.foreign_id}" in touched.seen
    assert "191212121212" in touched.seen
    found = guard.problems(hospital.plan, touched, set())
    assert len(found) == 1
    assert found[0].startswith(f"Patient/{hospital.foreign_id} (inte en testidentitet; posten hämtades inte)")
    assert "Encounter/" in found[0]


def test_the_guard_reads_the_runs_own_patients_by_their_identities(hospital: Hospital) -> None:
    patient_gate.only([TOLVAN])
    try:
        touched = guard.Touched()
        guard.touched_in_ehr(hospital.fhir, hospital.since, touched)  # allowed: the gate's own
    finally:
        patient_gate.reopen()
    reads = [p for p in hospital.recording.paths() if "identifier=" in p]
    assert len(reads) == 1 and "19121212-1212" in reads[0].replace("%7C", "|")
    assert set(touched.seen) == {"191212121212", f"Patient/{hospital.foreign_id}"}


def test_what_the_guard_attaches_and_says_holds_no_whole_number(tmp_path: Path) -> None:
    touched = guard.Touched()
    touched.add(TOLVAN, "nya journalen: Encounter/1")
    touched.add(FOREIGN, f"bryggan: lab-order för {FOREIGN}")
    attached = json.dumps(touched.to_json(), ensure_ascii=False)
    plan = load_plan(Path(__file__).resolve().parents[1] / "plans" / "demo.yaml").plan
    said = "\n".join(guard.problems(plan, touched, guard.created(tmp_path)))
    for text in (attached, said):
        assert not [f for f in _forms(FOREIGN) + _forms(TOLVAN) if f.decode() in text], text
    assert f"{_YMD}-****" in attached and "19121212-****" in attached
    assert said == f"{_YMD}-**** (inte en testidentitet), sedd i: bryggan: lab-order för {_YMD}-****"
