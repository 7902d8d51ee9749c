"""What the web UI's screens share: the session, Swedish status names, formatting of FHIR values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.datastructures import FormData

from reference_hospital.ehr import Clinician
from reference_hospital.store import Resource

STATUS_SV = {
    "draft": "Utkast",
    "active": "Aktiv",
    "on-hold": "Pausad",
    "revoked": "Makulerad",
    "completed": "Klar",
    "entered-in-error": "Felregistrerad",
    "unknown": "Okänd",
    "in-progress": "Pågående",
    "finished": "Avslutad",
    "planned": "Planerad",
    "arrived": "Anländ",
}

RESULT_STATUS_SV = {
    "registered": "Registrerat",
    "partial": "Delsvar",
    "preliminary": "Preliminärt",
    "final": "Slutligt",
    "amended": "Ändrat",
    "corrected": "Rättat",
    "appended": "Kompletterat",
    "cancelled": "Makulerat",
    "entered-in-error": "Felregistrerat",
    "unknown": "Okänt",
}

try:
    _LOCAL: ZoneInfo | None = ZoneInfo("Europe/Stockholm")
except ZoneInfoNotFoundError:  # pragma: no cover - Debian ships tzdata
    _LOCAL = None


@dataclass
class Session:
    """A logged-in clinician; ``flash`` holds what the next page says (``status`` done, ``alert`` refused)."""

    clinician: Clinician
    csrf: str
    expires: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # (role, text) shown on the next page


def analysis(order: Resource) -> str:
    """The short name of what was ordered (the NPU coding's display, e.g. "P-CRP")."""
    code: dict[str, Any] = order.get("code") or {}
    for coding in code.get("coding") or []:
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    return str(code.get("text", ""))


def display(ref: Any) -> str:
    """How a Reference reads on screen: its display, else the reference itself."""
    return str(ref.get("display") or ref.get("reference") or "") if isinstance(ref, dict) else ""


def looks_like_reservnummer(value: str) -> bool:
    """Shaped like ``19810829M071`` (the check digit is the EHR's business)."""
    text = value.strip().upper()
    return len(text) == 12 and text[:8].isdigit() and text[8] in "KMX" and text[9:].isdigit()


def local_time(instant: str) -> str:
    """A FHIR instant as Swedish local time, ``2025-03-01 14:05``."""
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return instant
    if _LOCAL is not None and moment.tzinfo is not None:
        moment = moment.astimezone(_LOCAL)
    return moment.strftime("%Y-%m-%d %H:%M")


def form_text(form: FormData, name: str) -> str:
    """A textarea's text as typed: browsers send line breaks as CRLF, the clinician typed LF."""
    return str(form.get(name, "")).replace("\r\n", "\n")


def number(value: Any) -> str:
    """A measured value the Swedish way (decimal comma): 6.3 → "6,3"."""
    return str(value).replace(".", ",") if isinstance(value, int | float) else str(value)


def quantity(observation: Resource) -> tuple[str, str]:
    """(value, unit) of an Observation's value[x] as shown in the results table."""
    if isinstance(observation.get("valueQuantity"), dict):
        q = observation["valueQuantity"]
        return number(q.get("value", "")), str(q.get("unit") or q.get("code") or "")
    for key in ("valueString", "valueInteger", "valueBoolean", "valueDateTime"):
        if key in observation:
            return number(observation[key]), ""
    concept = observation.get("valueCodeableConcept")
    if isinstance(concept, dict):
        codings = concept.get("coding") or [{}]
        return str(concept.get("text") or codings[0].get("display") or codings[0].get("code") or ""), ""
    return "", ""


def reference_range(observation: Resource) -> str:
    """``3,1–6,2`` from the first referenceRange (low and/or high), or its text."""
    ranges = observation.get("referenceRange") or []
    if not ranges:
        return ""
    first = ranges[0]
    low = (first.get("low") or {}).get("value")
    high = (first.get("high") or {}).get("value")
    if low is None and high is None:
        return str(first.get("text", ""))
    return f"{number(low) if low is not None else ''}–{number(high) if high is not None else ''}"


def concept_text(concept: Any) -> str:
    """What a CodeableConcept says to a person: its text, else its first coding's display or code."""
    if not isinstance(concept, dict):
        return ""
    codings = concept.get("coding") or [{}]
    return str(concept.get("text") or codings[0].get("display") or codings[0].get("code") or "")
