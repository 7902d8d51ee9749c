"""Lab orders through the FHIR API, and their results: in time, on the right patient.

An order is a ServiceRequest (category SNOMED 108252007, an NPU code) placed as the site's
user; whichever route the site's routine takes it (through the bridge as HL7 v2, or read
by the lab directly), its result must come back as a DiagnosticReport ``basedOn`` the
order, about the *same* patient, within ``coexistence.lab.result_within_s``. Each order
is judged on its own, with what was expected and what came.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rehearsal.clients.fhir import FhirClient, identifier_values, reference_id

NPU_SYSTEM = "urn:oid:1.2.208.176.2.1"
SNOMED = "http://snomed.info/sct"
LAB_CATEGORY = {"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"}
#: Analyses every Swedish lab takes (NPU codes); the scenarios name them by their short name.
ANALYSES = {
    "B-Hb": ("NPU02319", "Hemoglobin"),
    "P-CRP": ("NPU19748", "C-reaktivt protein"),
    "P-Na": ("NPU03429", "Natrium"),
}
POLL_S = 0.2


def lab_order(patient_id: str, analysis: str, requester: dict[str, Any], note: str = "") -> dict[str, Any]:
    code, name = ANALYSES[analysis]
    order: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [LAB_CATEGORY]}],
        "code": {
            "coding": [{"system": NPU_SYSTEM, "code": code, "display": f"{analysis} {name}"}],
            "text": analysis,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "requester": requester,
    }
    if note:
        order["note"] = [{"text": note}]
    return order


@dataclass
class LabOutcome:
    """One order and what became of it."""

    order: str
    analysis: str
    patient: str  # the ordered patient's identifier (personnummer)
    patient_id: str
    seconds: float | None = None
    report: str | None = None
    report_patient_id: str | None = None
    report_patient: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def wait_for_results(
    fhir: FhirClient, orders: list[tuple[dict[str, Any], str]], within_s: float, started: float | None = None
) -> list[LabOutcome]:
    """Poll until every order has a DiagnosticReport based on it, or ``within_s`` has passed.

    ``orders`` are (the stored ServiceRequest, the patient's personnummer); ``started`` the
    monotonic time the orders were placed (default now).
    """
    started = time.monotonic() if started is None else started
    outcomes = {
        o["id"]: LabOutcome(
            o["id"],
            (o.get("code") or {}).get("text", ""),
            pnr,
            reference_id(o.get("subject"), "Patient") or "",
        )
        for o, pnr in orders
    }
    waiting = set(outcomes)
    while waiting:
        for oid in sorted(waiting):
            reports = fhir.search("DiagnosticReport", {"based-on": f"ServiceRequest/{oid}"})
            if reports:
                out = outcomes[oid]
                out.seconds = round(time.monotonic() - started, 2)
                out.report = reports[0]["id"]
                out.report_patient_id = reference_id(reports[0].get("subject"), "Patient")
                waiting.discard(oid)
        if not waiting or time.monotonic() - started > within_s:
            break
        time.sleep(POLL_S)
    for out in outcomes.values():
        if out.report is None:
            out.problems.append(
                f"beställning {out.order} ({out.analysis} för {out.patient}): inget svar inom {within_s:g} s"
            )
        elif out.report_patient_id != out.patient_id:
            out.report_patient = _identity(fhir, out.report_patient_id)
            out.problems.append(
                f"beställning {out.order} ({out.analysis} för {out.patient}): svaret {out.report} ligger på "
                f"fel patient, {out.report_patient or out.report_patient_id}"
            )
        elif out.seconds is not None and out.seconds > within_s:
            late = f"svaret kom efter {out.seconds:g} s (krav ≤ {within_s:g} s)"
            out.problems.append(f"beställning {out.order} ({out.analysis}): {late}")
    return list(outcomes.values())


def _identity(fhir: FhirClient, patient_id: str | None) -> str | None:
    if not patient_id:
        return None
    try:
        values = identifier_values(fhir.read("Patient", patient_id))
    except Exception:  # noqa: BLE001 - only for the message
        return None
    return values[0] if values else None
