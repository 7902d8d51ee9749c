"""Referral round trips across the coexistence boundary, through each side's own interface.

Whole referrals vanished after real go-lives, and words fell out of answers. A round trip
is sent from the site under test and followed to the end:

- **new → legacy**: the site's user writes the referral in the new EHR (FHIR ServiceRequest
  + Task ``requested``, owner the legacy unit by HSA-id); it must appear in the legacy
  side's inbox with the question byte for byte; the legacy unit acknowledges and answers;
  the Task must become ``completed`` with the answer byte for byte.
- **legacy → new**: the site's legacy unit writes a referral to the site's new unit; it must
  appear in the new EHR (a ServiceRequest with the question, a Task owned by the unit); the
  site's user acknowledges and answers there (Task ``received`` → ``completed``); the
  legacy referral must become ``answered`` with the answer byte for byte.

Every stage has ``crossing_s`` to happen (:func:`crossing_s`); a referral is found by a
reference token in its text (ASCII, so it survives a broken encoding). The legacy end is the
plan's ``referrals`` adapter (:mod:`rehearsal.adapters.referrals`: the reference legacy EHR's
API, or FHIR on the legacy side too); the new end is always FHIR R4.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rehearsal import fidelity
from rehearsal.adapters.referrals import (
    Referrals,
    answered_task,
    create_referral,
    find_referral_task,
    question_of,
    task_answer,
)
from rehearsal.clients.fhir import FhirClient
from rehearsal.plan import Plan, Site
from rehearsal.workflows.routines import Unit

POLL_S = 0.15
#: What the technical round trip writes: every negation the faults strip, and å, ä, ö.
QUESTION = (
    "Remiss för bedömning. Ingen känd läkemedelsallergi; patienten är inte gravid.\n"
    "Smärta i höger knä sedan två veckor, inget trauma, ej feber; går utan kryckor.\n"
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


def new_to_legacy(
    fhir: FhirClient,
    legacy: Referrals,
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
    stored, made = create_referral(fhir, patient[0], trip.question, requester, receiver)
    trip.ids.update(service_request=stored["id"], task=made["id"])
    row = poll(lambda: legacy.find(patient[1], receiver, ref), within)
    trip.stages["fram till äldre systemet"] = round(time.monotonic() - started, 2)
    if row is None:
        trip.problems.append(
            f"remissen från {site.name} kom aldrig fram till {receiver.name} inom {within:g} s"
        )
        return trip
    trip.ids["legacy_referral"] = row.id
    trip.received_question = row.text
    if problem := fidelity.difference(trip.question, trip.received_question, "frågeställningen"):
        trip.problems.append(problem)
    legacy.acknowledge(row.id)
    legacy.answer(row.id, answer, f"{receiver.name} (repetition)")
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
    legacy: Referrals,
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
    rid = legacy.send(patient[1], sender, receiver, trip.question)
    trip.ids["legacy_referral"] = rid
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
    fhir.update(answered_task(task, answer))
    answered_at = time.monotonic()
    done = poll(lambda: legacy.answered(rid)[1], within)
    trip.stages["svaret tillbaka"] = round(time.monotonic() - answered_at, 2)
    if done is None:
        status = legacy.answered(rid)[0]
        trip.problems.append(
            f"svaret från {receiver.name} kom inte fram till {sender.name} inom {within:g} s ({status})"
        )
        return trip
    trip.received_answer = done
    if problem := fidelity.difference(answer, trip.received_answer, "remissvaret"):
        trip.problems.append(problem)
    return trip
