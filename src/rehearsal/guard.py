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

The guard itself never fetches a patient it may not see: it reads the run's own patients by
their identities, and of everything else that changed it asks only for ids and patient
references (``_elements``). A changed patient that is not the run's own is named by its id
in the EHR (``Patient/…``), which the hospital's own tools can open; its record, number and
name are never fetched. Numbers in what it reports are masked.
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
    personnummer_tokens,
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


def admit_created(run_dir: Path) -> None:
    """Let through this session's gate the reservnummer any session of the run made (``--jobs``
    runs them side by side; the guard's session then reads them as the run's own)."""
    for identity in created(run_dir):
        patient_gate.admit(identity)


@dataclass
class Touched:
    """Every identity seen, with where it was seen (for the message).

    Keys are identities in digit form, or ``Patient/{id}`` for a patient of the EHR that is
    not the run's own and so was never read.
    """

    seen: dict[str, set[str]] = field(default_factory=dict)

    def add(self, identity: str, where: str) -> None:
        if identity:
            name = identity if identity.startswith("Patient/") else digits(identity)
            self.seen.setdefault(name, set()).add(where)

    def to_json(self) -> dict[str, list[str]]:
        """For the attachment: every number masked (``19121212-****``), the run's own included."""
        masked: dict[str, set[str]] = {}
        for k, v in self.seen.items():
            masked.setdefault(patient_gate.mask_all(k), set()).update(patient_gate.mask_all(w) for w in v)
        return {k: sorted(v) for k, v in sorted(masked.items())}


#: Where each type of :data:`TOUCHING` names its patient (asked for alone, with ``_elements``).
PATIENT_ELEMENTS = {"Encounter": "subject", "ServiceRequest": "subject", "Task": "for",
                    "DiagnosticReport": "subject", "Observation": "subject"}  # fmt: skip
_BATCH = 20


def own_patients(fhir: FhirClient, identities: Iterable[str]) -> dict[str, list[str]]:
    """Patient id → identifier values, for the run's own identities only (searched by them; a
    personnummer as 12 digits and as written, since a server matches the stored form only)."""
    wanted = list(dict.fromkeys(t for i in identities if i and i.strip() for t in personnummer_tokens(i)))
    found: dict[str, list[str]] = {}
    for at in range(0, len(wanted), _BATCH):  # OR within one search parameter (FHIR 3.1.1.4.3)
        for patient in fhir.search("Patient", {"identifier": ",".join(wanted[at : at + _BATCH])}):
            values = [str(i.get("value", "")) for i in patient.get("identifier") or [] if isinstance(i, dict)]
            found[str(patient.get("id"))] = [v for v in values if v]
    return found


def touched_in_ehr(
    fhir: FhirClient, since: str, touched: Touched, allowed: Iterable[str] | None = None
) -> None:
    """Patients changed since ``since``, and patients of every resource of :data:`TOUCHING` changed since.

    ``allowed`` are the identities the run may see (default: the patient gate's, i.e. the
    plan's test identities and the reservnummer this run made). Only those patients are read;
    any other is added as ``Patient/{id}`` from an id-only answer.
    """
    own = own_patients(fhir, patient_gate.own() if allowed is None else allowed)
    patient_ids: dict[str, set[str]] = {}
    for patient in fhir.search("Patient", {"_lastUpdated": f"ge{since}", "_elements": "id"}):
        patient_ids.setdefault(str(patient.get("id")), set()).add("Patient")
    for rtype in TOUCHING:
        element = PATIENT_ELEMENTS[rtype]
        for resource in fhir.search(rtype, {"_lastUpdated": f"ge{since}", "_elements": element}):
            pid = reference_id(resource.get(element), "Patient")
            if pid:
                patient_ids.setdefault(pid, set()).add(f"{rtype}/{resource.get('id')}")
    for pid, where in patient_ids.items():
        said = "nya journalen: " + ", ".join(sorted(where))[:200]
        if pid not in own:
            touched.add(f"Patient/{pid}", said)  # not the run's own: never read
            continue
        for value in own[pid]:
            touched.add(value, said)


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
        seen_in = patient_gate.mask_all("; ".join(sorted(where)))
        if identity.startswith("Patient/"):
            found.append(f"{identity} (inte en testidentitet; posten hämtades inte), sedd i: {seen_in}")
            continue
        kind = (
            "reservnummer som repetitionen inte skapat"
            if is_reservnummer(identity)
            else "inte en testidentitet"
        )
        found.append(f"{patient_gate.mask(identity)} ({kind}), sedd i: {seen_in}")
    return found
