"""Referrals across the coexistence boundary: the legacy side's end of a referral round trip.

The new EHR's end is FHIR R4 (``fhir_base``: a ServiceRequest and its Task, below); the legacy
side's end is what this interface reaches. The round trip (:mod:`rehearsal.workflows.referrals`)
writes on one side, waits for the referral on the other, answers there and waits for the answer
to come back, comparing the text byte for byte::

    legacy = plan.environment.adapter("referrals")(plan)
    rid = legacy.send(personnummer, sender, receiver, text)       # a legacy unit refers to the new side
    legacy.answered(rid) -> (status, answer or None)             # … until the new side's answer arrives
    legacy.find(personnummer, receiver, ref) -> Arrived | None   # a referral from the new side, arrived
    legacy.acknowledge(rid); legacy.answer(rid, text, by)        # the legacy unit takes it and answers
    legacy.close()

Class methods ``missing(plan)`` and ``endpoints(plan)`` as every adapter (``@needs:referrals``).

Adapters: ``reference`` (the reference hospital's legacy EHR and bridge, each API in
:mod:`rehearsal.adapters.referrals_reference`) and ``standards`` (below: the legacy system's FHIR
face, ``environment.referrals.legacy_fhir``; whatever integration engine carries the referrals
between the two FHIR endpoints is what the round trip proves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rehearsal import patient_gate
from rehearsal.clients.fhir import FhirClient, reference_id
from rehearsal.errors import TargetError, UsageError
from rehearsal.identities import HSA_ID_SYSTEM
from rehearsal.plan import Plan
from rehearsal.workflows.routines import Unit

SNOMED = "http://snomed.info/sct"
REFERRAL_CATEGORY = {"system": SNOMED, "code": "3457005", "display": "Patient referral"}
ANSWER_TYPE = "Remissvar"


@dataclass(frozen=True)
class Arrived:
    """A referral as it arrived on the legacy side: its id there and its text as stored."""

    id: str
    text: str


@runtime_checkable
class Referrals(Protocol):
    """Built as ``adapter(plan)``; ids are the legacy side's, as text."""

    def send(self, personnummer: str, sender: Unit, receiver: Unit, text: str) -> str:
        """A referral written at the legacy unit ``sender`` to ``receiver`` (a new-EHR unit)."""
        ...

    def answered(self, rid: str) -> tuple[str, str | None]:
        """The referral's status on the legacy side, and the answer once it has one (else None)."""
        ...

    def find(self, personnummer: str, receiver: Unit, ref: str) -> Arrived | None:
        """The referral to the legacy unit ``receiver`` whose text carries ``ref``, if it arrived."""
        ...

    def acknowledge(self, rid: str) -> None: ...

    def answer(self, rid: str, text: str, by: str) -> None: ...

    def close(self) -> None: ...


# -- referrals in FHIR R4: ServiceRequest (the question) + Task (the workflow, owner by HSA-id) -----


class Addressee(Protocol):
    """A referral's receiving unit: a plan unit, or a load user's receiver (rehearsal.load.Receiver)."""

    @property
    def hsa_id(self) -> str: ...

    @property
    def name(self) -> str: ...


def unit_reference(unit: Addressee) -> dict[str, Any]:
    """A unit as a logical reference by HSA-id (ids differ per server; the HSA-id does not)."""
    return {"identifier": {"system": HSA_ID_SYSTEM, "value": unit.hsa_id}, "display": unit.name}


def referral_resources(
    patient_id: str,
    text: str,
    requester: dict[str, Any] | None,
    receiver: Addressee,
    *,
    authored: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A referral (ServiceRequest) and its Task to a unit named by HSA-id (a logical reference).

    One construction for the round trip and the load's create-referral flow. ``authored``
    (a FHIR dateTime) stamps both and the note, as a clinician's client would; the Task's
    ``focus``/``basedOn`` are the caller's, since the request's id is known only once stored
    (or by a transaction's urn).
    """
    owner = unit_reference(receiver)
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [REFERRAL_CATEGORY], "text": "Remiss"}],
        "code": {"coding": [REFERRAL_CATEGORY], "text": f"Remiss till {receiver.name}"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "performer": [owner],
        "note": [{"text": text}],
    }
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "for": {"reference": f"Patient/{patient_id}"},
        "owner": owner,
    }
    if requester is not None:
        request["requester"] = task["requester"] = requester
    if authored is not None:
        request["authoredOn"] = task["authoredOn"] = request["note"][0]["time"] = authored
    return request, task


def create_referral(
    fhir: FhirClient, patient_id: str, text: str, requester: dict[str, Any], receiver: Unit
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the ServiceRequest, then its Task (``focus`` and ``basedOn`` the request): both as stored."""
    request, task = referral_resources(patient_id, text, requester, receiver)
    stored = fhir.create(request)
    task["focus"] = {"reference": f"ServiceRequest/{stored['id']}"}
    task["basedOn"] = [{"reference": f"ServiceRequest/{stored['id']}"}]
    return stored, fhir.create(task)


def find_referral_task(
    fhir: FhirClient, patient_id: str, ref: str, receiver: Unit
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The referral (request, Task) of this patient whose text carries ``ref``, its Task owned by the unit."""
    requests = fhir.search(
        "ServiceRequest",
        {"subject": f"Patient/{patient_id}", "category": f"{SNOMED}|{REFERRAL_CATEGORY['code']}"},
    )
    for request in reversed(requests):
        if ref not in question_of(request):
            continue
        for task in fhir.search("Task", {"focus": f"ServiceRequest/{request['id']}"}):
            owner = task.get("owner") or {}
            owned = (owner.get("identifier") or {}).get("value") == receiver.hsa_id or reference_id(
                owner, "Organization"
            ) == receiver.id
            if owned:
                return request, task
    return None


def question_of(request: dict[str, Any]) -> str:
    notes = request.get("note") or [{}]
    return str(notes[0].get("text", ""))


def task_answer(task: dict[str, Any]) -> str | None:
    for output in task.get("output") or []:
        if isinstance(output.get("valueString"), str):
            return str(output["valueString"])
    return None


def answered_task(task: dict[str, Any], text: str) -> dict[str, Any]:
    """The Task as the answering unit leaves it: ``completed``, the answer as its output."""
    return {**task, "status": "completed", "output": [{"type": {"text": ANSWER_TYPE}, "valueString": text}]}


class StandardsReferrals:
    """The legacy side over FHIR R4 (``environment.referrals.legacy_fhir``), shaped as the new side:
    a ServiceRequest (the question in ``note``, category SNOMED 3457005) and its Task (owner the
    receiving unit by HSA-id); the receiver acknowledges (Task ``received``) and answers (Task
    ``completed``, the answer as ``output.valueString``). The patient is found on that side by
    personnummer (12 digits or dashed), never by the new side's id.
    """

    def __init__(self, plan: Plan) -> None:
        settings = plan.environment.referrals
        if settings is None:
            raise UsageError("environment.referrals: the standards referrals adapter needs legacy_fhir")
        self.fhir = FhirClient(plan.environment.model_copy(update={"fhir_base": settings.legacy_fhir}))

    @classmethod
    def missing(cls, plan: Plan) -> str | None:
        return None if plan.environment.referrals else "planen anger ingen environment.referrals"

    @classmethod
    def endpoints(cls, plan: Plan) -> dict[str, str]:
        settings = plan.environment.referrals
        return {"referrals.legacy_fhir": settings.legacy_fhir} if settings else {}

    def close(self) -> None:
        self.fhir.close()

    def _patient(self, personnummer: str) -> str:
        found = self.fhir.patients_by_personnummer(personnummer)
        if len(found) != 1:
            raise TargetError(f"{self.fhir.base}: {len(found)} patienter med personnumret (väntat 1)")
        return str(found[0]["id"])

    def send(self, personnummer: str, sender: Unit, receiver: Unit, text: str) -> str:
        patient_gate.check(personnummer, "skicka remiss för")
        _, task = create_referral(
            self.fhir, self._patient(personnummer), text, unit_reference(sender), receiver
        )
        return str(task["id"])

    def answered(self, rid: str) -> tuple[str, str | None]:
        task = self.fhir.read("Task", rid)
        status = str(task.get("status", ""))
        return status, task_answer(task) if status == "completed" else None

    def find(self, personnummer: str, receiver: Unit, ref: str) -> Arrived | None:
        patient_gate.check(personnummer, "läsa remisser för")
        found = find_referral_task(self.fhir, self._patient(personnummer), ref, receiver)
        return None if found is None else Arrived(str(found[1]["id"]), question_of(found[0]))

    def acknowledge(self, rid: str) -> None:
        self.fhir.update({**self.fhir.read("Task", rid), "status": "received"})

    def answer(self, rid: str, text: str, by: str) -> None:
        self.fhir.update(answered_task(self.fhir.read("Task", rid), text))
