"""The test-identity guard: every patient the rehearsal touched is one it may touch.

A rehearsal runs in an environment that may hold copies of real records; it must only
ever create, change or look at the plan's test identities (Skatteverket's test numbers,
``test_identities``) and the reserve identities (reservnummer) it registered itself for
unknown patients. Steps that create a reserve identity record it in the run's ledger
(``identities.jsonl`` in the run folder); the guard then gathers every patient that
appears in what changed during the rehearsal — in the new EHR (Patient, Encounter,
ServiceRequest, Task, DiagnosticReport, Observation changed since the run began), in the
bridge's messages of the run and in the legacy EHR's referrals of the run — and lists
every identity that is neither.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rehearsal import patient_gate
from rehearsal.clients.fhir import FhirClient, reference_id
from rehearsal.identities import (
    PERSONNUMMER_OID,
    RESERVNUMMER_OID,
    SAMORDNINGSNUMMER_OID,
    is_reservnummer,
)
from rehearsal.plan import Plan

LEDGER = "identities.jsonl"
PATIENT_SYSTEMS = {
    f"urn:oid:{PERSONNUMMER_OID}": "personnummer",
    f"urn:oid:{SAMORDNINGSNUMMER_OID}": "samordningsnummer",
    f"urn:oid:{RESERVNUMMER_OID}": "reservnummer",
}
#: Resource types whose subject (or ``for``) is a patient, searched for what changed in the run.
TOUCHING = ("Encounter", "ServiceRequest", "Task", "DiagnosticReport", "Observation")
_lock = threading.Lock()


def digits(identity: str) -> str:
    return identity.replace("-", "").replace("+", "").strip().upper()


def record(run_dir: Path, identity: str, why: str) -> None:
    """Note that this run created ``identity`` itself (a reservnummer for an unknown patient)."""
    line = {"identity": identity, "why": why, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    with _lock, (Path(run_dir) / LEDGER).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    patient_gate.admit(identity)


def created(run_dir: Path) -> set[str]:
    path = Path(run_dir) / LEDGER
    if not path.exists():
        return set()
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.add(digits(json.loads(line)["identity"]))
        except (ValueError, KeyError, TypeError):
            continue
    return found


@dataclass
class Touched:
    """Every identity seen, with where it was seen (for the message)."""

    seen: dict[str, set[str]] = field(default_factory=dict)

    def add(self, identity: str, where: str) -> None:
        if identity:
            self.seen.setdefault(digits(identity), set()).add(where)

    def to_json(self) -> dict[str, list[str]]:
        return {k: sorted(v) for k, v in sorted(self.seen.items())}


def touched_in_ehr(fhir: FhirClient, since: str, touched: Touched) -> None:
    """Patients changed since ``since``, and patients of every resource of :data:`TOUCHING` changed since."""
    patient_ids: dict[str, set[str]] = {}
    for patient in fhir.search("Patient", {"_lastUpdated": f"ge{since}"}):
        patient_ids.setdefault(str(patient["id"]), set()).add("Patient")
    for rtype in TOUCHING:
        for resource in fhir.search(rtype, {"_lastUpdated": f"ge{since}"}):
            for key in ("subject", "for", "patient"):
                pid = reference_id(resource.get(key), "Patient")
                if pid:
                    patient_ids.setdefault(pid, set()).add(f"{rtype}/{resource.get('id')}")
    for pid, where in patient_ids.items():
        patient = fhir.read("Patient", pid)
        values = [
            (PATIENT_SYSTEMS.get(str(i.get("system")), str(i.get("system"))), str(i.get("value", "")))
            for i in patient.get("identifier") or []
        ]
        if not values:
            touched.add(f"Patient/{pid} (utan identitet)", ", ".join(sorted(where)))
        for _, value in values:
            touched.add(value, "nya journalen: " + ", ".join(sorted(where))[:200])


def touched_in_messages(messages: Iterable[dict[str, Any]], where: str, touched: Touched) -> None:
    for message in messages:
        value = str(message.get("patient") or message.get("personnummer") or "")
        if value:
            what = message.get("kind", message.get("direction", ""))
            touched.add(value, f"{where}: {what} {message.get('key', message.get('id', ''))}")


def problems(plan: Plan, touched: Touched, own: set[str]) -> list[str]:
    """Every identity that is neither a plan test identity nor a reservnummer this run created."""
    allowed = {digits(t.personnummer) for t in plan.test_identities}
    found = []
    for identity, where in sorted(touched.seen.items()):
        if identity in allowed or identity in own:
            continue
        kind = (
            "reservnummer som repetitionen inte skapat"
            if is_reservnummer(identity)
            else "inte en testidentitet"
        )
        found.append(f"{patient_gate.mask(identity)} ({kind}), sedd i: {'; '.join(sorted(where))}")
    return found
