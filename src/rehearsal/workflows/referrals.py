"""Referral round trips across the coexistence boundary, through each side's own interface.

Whole referrals vanished after real go-lives, and words fell out of answers. A round trip
is sent from the site under test and followed to the end:

- **new → legacy**: the site's user writes the referral in the new EHR (FHIR ServiceRequest
  + Task ``requested``, owner the legacy unit by HSA-id); it must appear in the legacy
  EHR's inbox with the question byte for byte; the legacy unit acknowledges and answers;
  the Task must become ``completed`` with the answer byte for byte.
- **legacy → new**: the site's legacy unit writes a referral to the site's new unit; it must
  appear in the new EHR (a ServiceRequest with the question, a Task owned by the unit); the
  site's user acknowledges and answers there (Task ``received`` → ``completed``); the
  legacy referral must become ``answered`` with the answer byte for byte.

Every stage has ``crossing_s`` to happen (:func:`crossing_s`); a referral is found by a
reference token in its text (ASCII, so it survives a broken encoding).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rehearsal import fidelity
from rehearsal.clients.coexistence import LegacyClient
from rehearsal.clients.fhir import FhirClient, reference_id
from rehearsal.identities import HSA_ID_SYSTEM
from rehearsal.plan import Plan, Site
from rehearsal.workflows.routines import Unit

SNOMED = "http://snomed.info/sct"
REFERRAL_CATEGORY = {"system": SNOMED, "code": "3457005", "display": "Patient referral"}
ANSWER_TYPE = "Remissvar"
POLL_S = 0.15
#: What the technical round trip writes: every negation the faults strip, and å, ä, ö.
QUESTION = (
    "Remiss för bedömning. Ingen känd läkemedelsallergi; patienten är inte gravid.\n"
    "Smärta i höger knä sedan två veckor, inget trauma, ej feber.\n"
    "Önskar bedömning av ortoped – är åtgärd nödvändig?"
)
ANSWER = (
    "Bedömd. Ingen fraktur och inget tecken på infektion; knät är inte svullet.\n"
    "Ej behov av operation. Återbesök vid försämring – åtgärd: sjukgymnastik."
)
T = TypeVar("T")


def crossing_s(plan: Plan) -> float:
    """How long one crossing of the boundary may take: the plan's read timeout plus four bridge cycles."""
    return plan.environment.timeouts.read + 4 * plan.coexistence.bridge.poll_interval_s


def token(site: Site, what: str) -> str:
    """A reference that finds one referral again: ASCII only, unique per run and site."""
    return f"Ref {site.id}-{what}-{secrets.token_hex(3)}"


def with_token(text: str, ref: str) -> str:
    return f"{text}\n{ref}"


def poll(check: Callable[[], T | None], within_s: float, interval: float = POLL_S) -> T | None:
    """Call ``check`` until it returns something (returned) or ``within_s`` passed (None)."""
    deadline = time.monotonic() + within_s
    while True:
        found = check()
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(interval)


@dataclass
class RoundTrip:
    """One referral's journey and what arrived at each end."""

    direction: str
    site: str
    sender: str
    receiver: str
    patient: str
    ref: str
    question: str
    answer: str
    received_question: str | None = None
    received_answer: str | None = None
    stages: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    ids: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "riktning": self.direction,
            "plats": self.site,
            "från": self.sender,
            "till": self.receiver,
            "patient": self.patient,
            "referens": self.ref,
            "skickad fråga": self.question,
            "mottagen fråga": self.received_question,
            "skickat svar": self.answer,
            "mottaget svar": self.received_answer,
            "sekunder per steg": self.stages,
            "id": self.ids,
            "problem": self.problems,
        }


def referral_resources(
    patient_id: str, text: str, requester: dict[str, Any], receiver: Unit
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A referral (ServiceRequest) and its Task to a unit named by HSA-id (a logical reference)."""
    owner = {"identifier": {"system": HSA_ID_SYSTEM, "value": receiver.hsa_id}, "display": receiver.name}
    request = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [REFERRAL_CATEGORY], "text": "Remiss"}],
        "code": {"coding": [REFERRAL_CATEGORY], "text": f"Remiss till {receiver.name}"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "requester": requester,
        "performer": [owner],
        "note": [{"text": text}],
    }
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "for": {"reference": f"Patient/{patient_id}"},
        "requester": requester,
        "owner": owner,
    }
    return request, task


def new_to_legacy(
    fhir: FhirClient,
    legacy: LegacyClient,
    plan: Plan,
    site: Site,
    requester: dict[str, Any],
    receiver: Unit,
    patient: tuple[str, str],
    question: str = QUESTION,
    answer: str = ANSWER,
) -> RoundTrip:
    """Send from the site's new EHR to a legacy unit, answer there, and see the answer come back.

    ``patient`` is (FHIR id, personnummer). Stops at the first stage that does not happen.
    """
    within = crossing_s(plan)
    ref = token(site, "ny-till-aldre")
    trip = RoundTrip(
        "ny→äldre", site.id, site.name, receiver.name, patient[1], ref, with_token(question, ref), answer
    )
    started = time.monotonic()
    request, task = referral_resources(patient[0], trip.question, requester, receiver)
    stored = fhir.create(request)
    task["focus"] = {"reference": f"ServiceRequest/{stored['id']}"}
    task["basedOn"] = [{"reference": f"ServiceRequest/{stored['id']}"}]
    made = fhir.create(task)
    trip.ids.update(service_request=stored["id"], task=made["id"])

    def arrived() -> dict[str, Any] | None:
        rows = legacy.referrals(direction="in", unit=receiver.hsa_id, personnummer=patient[1])
        return next((r for r in reversed(rows) if ref in str(r.get("text", ""))), None)

    row = poll(arrived, within)
    trip.stages["fram till äldre systemet"] = round(time.monotonic() - started, 2)
    if row is None:
        trip.problems.append(
            f"remissen från {site.name} kom aldrig fram till {receiver.name} inom {within:g} s"
        )
        return trip
    trip.ids["legacy_referral"] = row["id"]
    trip.received_question = str(row.get("text", ""))
    if problem := fidelity.difference(trip.question, trip.received_question, "frågeställningen"):
        trip.problems.append(problem)
    legacy.acknowledge(int(row["id"]))
    legacy.answer(int(row["id"]), answer, f"{receiver.name} (repetition)")
    answered_at = time.monotonic()

    def completed() -> dict[str, Any] | None:
        current = fhir.read("Task", made["id"])
        return current if current.get("status") == "completed" else None

    done = poll(completed, within)
    trip.stages["svaret tillbaka"] = round(time.monotonic() - answered_at, 2)
    if done is None:
        status = fhir.read("Task", made["id"]).get("status")
        trip.problems.append(
            f"svaret från {receiver.name} kom inte tillbaka inom {within:g} s (Task {status})"
        )
        return trip
    trip.received_answer = task_answer(done)
    if problem := fidelity.difference(answer, trip.received_answer, "remissvaret"):
        trip.problems.append(problem)
    return trip


def legacy_to_new(
    fhir: FhirClient,
    legacy: LegacyClient,
    plan: Plan,
    site: Site,
    sender: Unit,
    receiver: Unit,
    patient: tuple[str, str],
    question: str = QUESTION,
    answer: str = ANSWER,
) -> RoundTrip:
    """Send from the site's legacy unit to its new unit, answer in the new EHR, see the answer arrive."""
    within = crossing_s(plan)
    ref = token(site, "aldre-till-ny")
    trip = RoundTrip(
        "äldre→ny", site.id, sender.name, receiver.name, patient[1], ref, with_token(question, ref), answer
    )
    started = time.monotonic()
    row = legacy.send_referral(patient[1], sender.hsa_id, receiver.hsa_id, trip.question)
    trip.ids["legacy_referral"] = row["id"]
    found = poll(lambda: find_referral_task(fhir, patient[0], ref, receiver), within)
    trip.stages["fram till nya journalen"] = round(time.monotonic() - started, 2)
    if found is None:
        trip.problems.append(
            f"remissen från {sender.name} kom aldrig fram till {receiver.name} inom {within:g} s"
        )
        return trip
    request, task = found
    trip.ids.update(service_request=request["id"], task=task["id"])
    trip.received_question = question_of(request)
    if problem := fidelity.difference(trip.question, trip.received_question, "frågeställningen"):
        trip.problems.append(problem)
    task = fhir.update({**task, "status": "received"})
    fhir.update(
        {**task, "status": "completed", "output": [{"type": {"text": ANSWER_TYPE}, "valueString": answer}]}
    )
    answered_at = time.monotonic()

    def answered() -> dict[str, Any] | None:
        current = legacy.referral(int(row["id"]))
        return current if current.get("status") == "answered" else None

    done = poll(answered, within)
    trip.stages["svaret tillbaka"] = round(time.monotonic() - answered_at, 2)
    if done is None:
        status = legacy.referral(int(row["id"])).get("status")
        trip.problems.append(
            f"svaret från {receiver.name} kom inte fram till {sender.name} inom {within:g} s ({status})"
        )
        return trip
    trip.received_answer = str(done.get("answer") or "")
    if problem := fidelity.difference(answer, trip.received_answer, "remissvaret"):
        trip.problems.append(problem)
    return trip


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
