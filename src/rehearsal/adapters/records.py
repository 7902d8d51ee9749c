"""The other side's records (NPÖ-like): what a unit on one EHR can read of what the other published.

During coexistence a unit on the new EHR must still see what a unit on the legacy system
published about the patient, and the other way round (Nationell patientöversikt). The
technical scenario publishes a note on the legacy side and reads the overview, through this
interface::

    records = plan.environment.adapter("records")(plan)
    records.publish(personnummer, unit_hsa_id, title, text)   # as a legacy unit would
    records.overview(personnummer) -> Overview               # both sides' records, and which answered
    records.close()

Class methods ``missing(plan)`` and ``endpoints(plan)`` as every adapter (``@needs:records``).

Adapters: ``reference`` (the legacy EHR's ``/api/records`` and the reference bridge's NPÖ-like
read: :mod:`rehearsal.adapters.records_reference`) and ``standards`` (below: FHIR on both sides).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rehearsal import patient_gate
from rehearsal.clients.fhir import FhirClient
from rehearsal.errors import TargetError, UsageError
from rehearsal.identities import HSA_ID_SYSTEM
from rehearsal.plan import Plan

NEW, LEGACY = "new", "legacy"


@dataclass(frozen=True)
class Record:
    """One published record: which side (``new``/``legacy``), its id there, title and text as read."""

    source: str
    id: str
    title: str = ""
    text: str = ""


@dataclass(frozen=True)
class Overview:
    """Both sides' records of one patient; ``sources`` says per side ``None`` (answered) or why not."""

    sources: dict[str, str | None]
    records: tuple[Record, ...] = ()
    evidence: Any = field(default=None, compare=False)


@runtime_checkable
class Records(Protocol):
    """Built as ``adapter(plan)``."""

    def publish(self, personnummer: str, unit: str, title: str, text: str) -> str:
        """A note published by a legacy unit (HSA-id ``unit``); its id on that side."""
        ...

    def overview(self, personnummer: str) -> Overview: ...

    def close(self) -> None: ...


class StandardsRecords:
    """Both sides over FHIR R4: the new EHR (``fhir_base``) and the legacy system's FHIR face
    (``environment.records.legacy_fhir``).

    A note is a ``DocumentReference`` (``status: current``, ``subject`` the patient found by
    personnummer on that side, ``custodian`` the unit by HSA-id, the text as a UTF-8
    ``text/plain`` attachment), so å/ä/ö and every byte survive or the check says where not. The
    overview reads ``DocumentReference`` and ``DiagnosticReport`` of the patient on each side;
    a side that does not answer (or does not know the patient) is named with its error, not
    left out.
    """

    def __init__(self, plan: Plan) -> None:
        settings = plan.environment.records
        if settings is None:
            raise UsageError("environment.records: the standards records adapter needs legacy_fhir")
        env = plan.environment
        self._sides = {
            NEW: FhirClient(env),
            LEGACY: FhirClient(env.model_copy(update={"fhir_base": settings.legacy_fhir})),
        }

    @classmethod
    def missing(cls, plan: Plan) -> str | None:
        return None if plan.environment.records else "planen anger ingen environment.records"

    @classmethod
    def endpoints(cls, plan: Plan) -> dict[str, str]:
        settings = plan.environment.records
        if settings is None:
            return {}
        return {"fhir_base": plan.environment.fhir_base, "records.legacy_fhir": settings.legacy_fhir}

    def close(self) -> None:
        for side in self._sides.values():
            side.close()

    def _patient(self, side: str, personnummer: str) -> str:
        found = self._sides[side].patients_by_personnummer(personnummer)
        if len(found) != 1:
            raise TargetError(f"{self._sides[side].base}: {len(found)} patienter med personnumret (väntat 1)")
        return str(found[0]["id"])

    def publish(self, personnummer: str, unit: str, title: str, text: str) -> str:
        patient_gate.check(personnummer, "publicera anteckning för")
        patient = self._patient(LEGACY, personnummer)
        note = {
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": {"reference": f"Patient/{patient}"},
            "custodian": {"identifier": {"system": HSA_ID_SYSTEM, "value": unit}},
            "description": title,
            "content": [{"attachment": {
                "contentType": "text/plain; charset=utf-8", "title": title,
                "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
            }}],
        }  # fmt: skip
        return str(self._sides[LEGACY].create(note).get("id", ""))

    def overview(self, personnummer: str) -> Overview:
        patient_gate.check(personnummer, "läsa NPÖ för")
        sources: dict[str, str | None] = {}
        records: list[Record] = []
        for side, fhir in self._sides.items():
            try:
                patient = self._patient(side, personnummer)
                for rtype in ("DocumentReference", "DiagnosticReport"):
                    found = fhir.search(rtype, {"subject": f"Patient/{patient}"})
                    records += [_record(side, r) for r in found if r.get("resourceType") == rtype]
                sources[side] = None
            except TargetError as exc:
                sources[side] = " ".join(str(exc).split())[:300]
        evidence = {"sources": sources, "records": [vars(r) for r in records]}
        return Overview(sources, tuple(records), evidence)


def _record(side: str, resource: dict[str, Any]) -> Record:
    """A DocumentReference (text from its attachments) or a DiagnosticReport (its conclusion)."""
    rid = f"{resource.get('resourceType')}/{resource.get('id')}"
    if resource.get("resourceType") == "DiagnosticReport":
        code = resource.get("code") or {}
        return Record(side, rid, str(code.get("text", "")), str(resource.get("conclusion", "")))
    texts = []
    for content in resource.get("content") or []:
        attachment = (content or {}).get("attachment") or {}
        data = attachment.get("data")
        if isinstance(data, str):
            try:
                texts.append(base64.b64decode(data, validate=True).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                texts.append(f"(bilaga som inte är UTF-8-text: {len(data)} tecken base64)")
    return Record(side, rid, str(resource.get("description", "")), "\n".join(texts))
