"""The coexistence bridge: the integration engine between the new EHR, the legacy EHR and the lab.

While some units work in the new EHR and others still in the legacy one, critical flows
cross the boundary here, each over the real protocol of the side it talks to:

- **Referrals**, both directions. New side: a ServiceRequest (category referral) with a
  Task whose status goes requested → received → completed, the answer in ``Task.output``
  (FHIR R4 over HTTP). Legacy side: its JSON API (``/api/referrals``). The bridge carries
  the referral to the receiver, the receipt and the answer back to the sender.
- **Lab orders** placed in the new EHR by sites whose plan route is ``bridge``: read as
  ServiceRequests, sent to the lab as ORM^O01 over MLLP.
- **Lab results**: the lab sends every ORU^R01 to the bridge's MLLP port; the bridge files
  it with whichever side ordered (new: DiagnosticReport + Observation over FHIR; legacy:
  its ``/api/results``). A result for an unknown receiver goes to the catch-all queue.
- **NPÖ-like read**: ``GET /npo/Patient/{personnummer}`` returns both sides' published
  records for a test identity.

The bridge polls (``coexistence.bridge.poll_interval_s``, at most ``batch`` items per
read, FHIR ``_lastUpdated`` and the legacy change counter as cursors) and keeps every
message in an inspectable queue (``GET /bridge/queues``), including the catch-all queue
where messages without a route are parked, and a heartbeat (``GET /bridge/heartbeat``).
Faults that bite here: ``referral-dropped``, ``referral-negation-loss``,
``text-encoding-loss``, ``orphan-queue`` (each for the site that sent the referral or
owns the order).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import hl7
import hl7.mllp
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from reference_hospital.faults import (
    ORPHAN_QUEUE,
    REFERRAL_DROPPED,
    REFERRAL_NEGATION_LOSS,
    TEXT_ENCODING_LOSS,
    FaultBoard,
    drop_negations,
    mangle_encoding,
)
from reference_hospital.hospital import (
    Component,
    Hospital,
    LoopThread,
    bind_socket,
    endpoint_address,
    serve_http,
    stop_http,
)
from reference_hospital.mllp_peer import answer_each_block
from rehearsal.clients import hl7 as mllp
from rehearsal.errors import TargetError
from rehearsal.identities import HSA_ID_SYSTEM, PERSONNUMMER_OID, SAMORDNINGSNUMMER_OID
from rehearsal.plan import Plan, Site, Timeouts

log = logging.getLogger("reference_hospital.bridge")

FHIR_JSON = "application/fhir+json"
NEW_EHR_APP = "NEWEHR"
BRIDGE_SENDER = ("BRIDGE", "SAMEXISTENS")
LEGACY_APP = "LEGACY"
SNOMED = "http://snomed.info/sct"
LAB_CATEGORY = "108252007"  # Laboratory procedure
REFERRAL_CATEGORY = "3457005"  # Patient referral
#: Identifier system of the Tasks and ServiceRequests the bridge creates for legacy referrals.
LEGACY_REFERRAL_SYSTEM = "urn:rehearsal:legacy:referral"
#: Identifier system of the lab's filler order number on DiagnosticReports.
LAB_FILLER_SYSTEM = "urn:rehearsal:lab:filler"
PNR_SYSTEMS = (f"urn:oid:{PERSONNUMMER_OID}", f"urn:oid:{SAMORDNINGSNUMMER_OID}")
MAX_ATTEMPTS = 200
KEEP_MESSAGES = 5000


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pnr_digits(value: str) -> str:
    return value.replace("-", "").replace("+", "").strip()


def pnr_display(digits: str) -> str:
    return f"{digits[:8]}-{digits[8:]}" if len(digits) == 12 else digits


# -- who is where --------------------------------------------------------------------------------


class SiteMap:
    """HSA-ids of the plan (sites, their units, their users) → the site they belong to."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._by_hsa: dict[str, Site] = {}
        self.unit_hsa: dict[str, str] = {}  # plan id of a site or unit (its Organization id) → HSA-id
        for site in plan.sites:
            self._by_hsa[site.hsa_id] = site
            self.unit_hsa[site.id] = site.hsa_id
            for unit in site.units:
                self._by_hsa[unit.hsa_id] = site
                self.unit_hsa[unit.id] = unit.hsa_id
            for user in site.users:
                self._by_hsa.setdefault(user.hsa_id, site)

    def site_of(self, hsa_id: str | None) -> Site | None:
        return self._by_hsa.get((hsa_id or "").strip())

    def system_of(self, hsa_id: str | None) -> str | None:
        """Which EHR a site or unit works in (a unit may differ from its site); None if unknown."""
        site = self.site_of(hsa_id)
        if site is None:
            return None
        unit = next((u for u in site.units if u.hsa_id == (hsa_id or "").strip()), None)
        return (unit.system if unit is not None and unit.system else None) or site.system

    def site(self, site_id: str) -> Site | None:
        return next((s for s in self.plan.sites if s.id == site_id), None)

    def names(self) -> dict[str, str]:
        """HSA-id → display name of every unit, for messages and the legacy UI."""
        out = {}
        for site in self.plan.sites:
            out[site.hsa_id] = site.name
            for unit in site.units:
                out[unit.hsa_id] = f"{unit.name}, {site.name}"
        return out

    def identity_name(self, personnummer: str) -> str | None:
        digits = pnr_digits(personnummer)
        return next((t.name for t in self.plan.test_identities if pnr_digits(t.personnummer) == digits), None)


def _hsa_of(reference: Any) -> str | None:
    """The HSA-id in a FHIR Reference's identifier (any system ending in the HSA OID)."""
    if not isinstance(reference, dict):
        return None
    ident = reference.get("identifier")
    if (
        isinstance(ident, dict)
        and ident.get("value")
        and ident.get("system", HSA_ID_SYSTEM)
        in (
            HSA_ID_SYSTEM,
            "urn:oid:1.2.752.129.2.1.4.1",
        )
    ):
        return str(ident["value"])
    return None


def _has_category(resource: dict[str, Any], code: str, words: tuple[str, ...]) -> bool:
    for category in resource.get("category") or []:
        for coding in (category or {}).get("coding") or []:
            if coding.get("code") == code or str(coding.get("code", "")).lower() in words:
                return True
        if str((category or {}).get("text", "")).lower() in words:
            return True
    return False


def is_lab_order(resource: dict[str, Any]) -> bool:
    return _has_category(resource, LAB_CATEGORY, ("laboratory", "lab", "labb"))


def is_referral(resource: dict[str, Any]) -> bool:
    return _has_category(resource, REFERRAL_CATEGORY, ("referral", "remiss"))


def referral_text(request: dict[str, Any]) -> str:
    """The referral's question: first note, else reasonCode text, else code text."""
    for note in request.get("note") or []:
        if note.get("text"):
            return str(note["text"])
    for reason in request.get("reasonCode") or []:
        if reason.get("text"):
            return str(reason["text"])
    return str((request.get("code") or {}).get("text", ""))


def task_answer(task: dict[str, Any]) -> str | None:
    for output in task.get("output") or []:
        for key in ("valueString", "valueMarkdown"):
            if isinstance(output.get(key), str):
                return output[key]
        annotation = output.get("valueAnnotation")
        if isinstance(annotation, dict) and isinstance(annotation.get("text"), str):
            return annotation["text"]
    return None


def _reference_id(reference: Any, rtype: str) -> str | None:
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if isinstance(ref, str) and f"{rtype}/" in ref:
        return ref.rsplit(f"{rtype}/", 1)[1].split("/")[0]
    return None


# -- the new EHR over FHIR -----------------------------------------------------------------------


class Inbox:
    """Resources read from a cursor that still need handling; what fails on a read is offered again.

    A cursor moves on once a resource has been read, so a lab order or referral whose
    handling failed halfway (the EHR blinked) would otherwise never be seen again: a lost
    order made by the bridge itself. Handling stops at the first retryable failure and
    resumes there next cycle; an item failing ``limit`` times is given up (and logged).
    """

    def __init__(self, name: str, limit: int = 50) -> None:
        self.name = name
        self.limit = limit
        self._items: dict[str, dict[str, Any]] = {}
        self._tries: dict[str, int] = {}

    def add(self, resources: Any) -> None:
        for resource in resources:
            version = (resource.get("meta") or {}).get("versionId")
            key = f"{resource.get('resourceType')}/{resource.get('id')}/{version}"
            self._items.setdefault(key, resource)

    def __len__(self) -> int:
        return len(self._items)

    async def work(self, handle: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        for key, resource in list(self._items.items()):
            try:
                await handle(resource)
            except LinkError as exc:
                self._tries[key] = self._tries.get(key, 0) + 1
                if exc.retry and self._tries[key] < self.limit:
                    raise
                log.warning("%s: giving up on %s after %d tries: %s", self.name, key, self._tries[key], exc)
            self._items.pop(key, None)
            self._tries.pop(key, None)


class LinkError(Exception):
    """A call to another system failed; ``retry`` says whether trying again later may help."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True)
class LabResult:
    """A lab result on its way to the new EHR (from an ORU^R01 or the lab's direct route)."""

    personnummer: str
    placer: str
    filler: str
    test_code: str
    test_name: str
    values: tuple[mllp.LabValue, ...]
    site_id: str | None
    service_request: str | None = None
    lab_name: str = "Laboratoriet"


class NewEhrLink:
    """The FHIR R4 client the bridge (and the lab's direct route) use to talk to the new EHR."""

    def __init__(self, fhir_base: str, timeouts: Timeouts, sites: SiteMap) -> None:
        self.base = fhir_base.rstrip("/")
        self.sites = sites
        self._http = httpx.AsyncClient(
            base_url=self.base,
            timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect),
            headers={"Accept": FHIR_JSON},
        )
        self._patients: dict[str, str] = {}
        self._hsa_of_ref: dict[str, str | None] = {}
        self._cursors: dict[str, str] = {}
        self._seen: dict[str, set[str]] = {}

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise LinkError(f"new EHR {self.base}/{path}: no answer in time") from None
        except httpx.TransportError as exc:
            raise LinkError(f"new EHR {self.base}/{path}: {exc.__class__.__name__}") from None
        if answer.status_code >= 400:
            detail = answer.text[:300]
            try:
                issues = answer.json().get("issue", [])
                detail = "; ".join(str(i.get("diagnostics", "")) for i in issues) or detail
            except ValueError:
                pass
            retry = answer.status_code >= 500 or answer.status_code == 429
            raise LinkError(f"new EHR {method} {path}: HTTP {answer.status_code}: {detail}", retry)
        try:
            return answer.json()
        except ValueError:
            raise LinkError(f"new EHR {method} {path}: reply is not JSON") from None

    async def search(
        self, rtype: str, params: dict[str, str] | list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        bundle = await self._call("GET", rtype, params=params)
        return [e["resource"] for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]

    async def read(self, rtype: str, rid: str) -> dict[str, Any]:
        return await self._call("GET", f"{rtype}/{rid}")

    async def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        return await self._call(
            "POST", resource["resourceType"], json=prune(resource), headers={"Content-Type": FHIR_JSON}
        )

    async def update(self, resource: dict[str, Any]) -> dict[str, Any]:
        body = prune({k: v for k, v in resource.items() if k != "meta"})
        return await self._call(
            "PUT",
            f"{resource['resourceType']}/{resource['id']}",
            json=body,
            headers={"Content-Type": FHIR_JSON},
        )

    async def changed(self, rtype: str, batch: int) -> list[dict[str, Any]]:
        """Resources of a type created or changed since the last call (each version once), oldest first."""
        cursor = self._cursors.get(rtype)
        params = [("_count", str(batch))]
        if cursor:
            params.append(("_lastUpdated", f"ge{cursor}"))
        found = await self.search(rtype, params)
        seen = self._seen.setdefault(rtype, set())
        fresh = []
        for resource in found:
            version = f"{resource.get('id')}/{(resource.get('meta') or {}).get('versionId', '')}"
            updated = (resource.get("meta") or {}).get("lastUpdated")
            if updated and (cursor is None or updated > cursor):
                cursor = updated
            if version not in seen:
                seen.add(version)
                fresh.append(resource)
        if cursor:
            self._cursors[rtype] = cursor
        if len(seen) > 20000:  # bounded memory: versions older than the cursor are never returned again
            seen.clear()
            seen.update(f"{r.get('id')}/{(r.get('meta') or {}).get('versionId', '')}" for r in found)
        return fresh

    async def patient_id(self, personnummer: str) -> str:
        digits = pnr_digits(personnummer)
        if digits not in self._patients:
            found = await self.search("Patient", {"identifier": digits})
            if not found:
                raise LinkError(f"new EHR has no patient {pnr_display(digits)}", retry=False)
            self._patients[digits] = str(found[0]["id"])
        return self._patients[digits]

    async def personnummer_of(self, patient_ref: Any) -> str | None:
        pid = _reference_id(patient_ref, "Patient")
        if pid is None:
            return None
        patient = await self.read("Patient", pid)
        for ident in patient.get("identifier") or []:
            if ident.get("system") in PNR_SYSTEMS and ident.get("value"):
                digits = pnr_digits(str(ident["value"]))
                self._patients[digits] = pid
                return pnr_display(digits)
        return None

    async def hsa_of(self, reference: Any) -> str | None:
        """The HSA-id behind a Reference: its identifier, or that of the resource it points to."""
        direct = _hsa_of(reference)
        if direct:
            return direct
        ref = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(ref, str) or "/" not in ref:
            return None
        if ref in self._hsa_of_ref:
            return self._hsa_of_ref[ref]
        rtype, _, rid = ref.rstrip("/").rpartition("/")
        rtype = rtype.rsplit("/", 1)[-1]
        if rtype == "Organization" and rid in self.sites.unit_hsa:
            # the bridge's routing table maps the EHR's organisations to HSA-ids (configured from the
            # plan), as an integration engine's does: what the Organization says *now* does not
            # reroute it, and a route never depends on whether it was looked up before or after a change
            return self.sites.unit_hsa[rid]
        hsa = None
        try:
            resource = await self.read(rtype, rid)
        except LinkError:
            return None
        for ident in resource.get("identifier") or []:
            if ident.get("system") == HSA_ID_SYSTEM and ident.get("value"):
                hsa = str(ident["value"])
                break
        if hsa is None and rtype == "PractitionerRole":
            hsa = await self.hsa_of(resource.get("organization") or resource.get("practitioner"))
        self._hsa_of_ref[ref] = hsa
        return hsa

    async def site_of_request(self, request: dict[str, Any]) -> Site | None:
        """The plan site that placed a ServiceRequest: by its requester (person, role or unit)."""
        for ref in [request.get("requester"), *(request.get("performer") or [])][:1]:
            site = self.sites.site_of(await self.hsa_of(ref))
            if site is not None:
                return site
        return None

    async def file_result(self, result: LabResult) -> str:
        """Observations and a DiagnosticReport for one lab result; the report's id."""
        patient = await self.patient_id(result.personnummer)
        when = utcnow()
        based_on = []
        if result.service_request:  # an order placed outside the EHR has a placer number but no request
            try:
                await self.read("ServiceRequest", result.service_request)
                based_on = [{"reference": f"ServiceRequest/{result.service_request}"}]
            except LinkError as exc:
                if exc.retry:
                    raise
        observations = []
        for value in result.values:
            observation: dict[str, Any] = {
                "resourceType": "Observation",
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "laboratory",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [
                        {"system": "urn:oid:1.2.208.176.2.1", "code": value.code, "display": value.name}
                    ],
                    "text": value.name,
                },
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": when,
                "issued": when,
                "valueQuantity": _quantity(value),
            }
            if based_on:
                observation["basedOn"] = based_on
            if value.reference:
                observation["referenceRange"] = [{"text": value.reference}]
            if value.flag:
                observation["interpretation"] = [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                "code": value.flag,
                            }
                        ]
                    }
                ]
            observations.append(await self.create(observation))
        report: dict[str, Any] = {
            "resourceType": "DiagnosticReport",
            "identifier": [{"system": LAB_FILLER_SYSTEM, "value": result.filler}],
            "status": "final",
            "category": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}
            ],
            "code": {
                "coding": [
                    {
                        "system": "urn:oid:1.2.208.176.2.1",
                        "code": result.test_code,
                        "display": result.test_name,
                    }
                ],
                "text": result.test_name,
            },
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": when,
            "issued": when,
            "performer": [{"display": result.lab_name}],
            "result": [{"reference": f"Observation/{o['id']}"} for o in observations],
            "conclusion": "; ".join(f"{v.name} {v.value} {v.unit}".strip() for v in result.values),
        }
        if based_on:
            report["basedOn"] = based_on
        created = await self.create(report)
        return str(created["id"])


def prune(value: Any) -> Any:
    """A resource without empty strings, lists and objects (FHIR JSON forbids them)."""
    if isinstance(value, dict):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ("", [], {}, None)}
    if isinstance(value, list):
        return [v for v in (prune(v) for v in value) if v not in ("", [], {}, None)]
    return value


def _quantity(value: mllp.LabValue) -> dict[str, Any]:
    try:
        number: float | int = int(value.value) if value.value.isdigit() else float(value.value)
    except ValueError:
        return {"unit": value.unit} if value.unit else {}
    if not value.unit:  # FHIR JSON forbids empty strings: a unitless value is just a value
        return {"value": number}
    return {"value": number, "unit": value.unit, "system": "http://unitsofmeasure.org", "code": value.unit}


def values_of(message: hl7.Message) -> tuple[mllp.LabValue, ...]:
    """The OBX segments of an ORU^R01 as LabValues (read from the segment text, field by field)."""
    values = []
    for segment in str(message).split("\r"):
        if not segment.startswith("OBX|"):
            continue
        fields = segment.split("|") + [""] * 10
        code, _, rest = fields[3].partition("^")
        values.append(
            mllp.LabValue(
                code=code,
                name=mllp.unescape(rest.partition("^")[0]),
                value=mllp.unescape(fields[5]),
                unit=mllp.unescape(fields[6]),
                reference=mllp.unescape(fields[7]),
                flag=fields[8],
            )
        )
    return tuple(values)


# -- the legacy EHR over its API ----------------------------------------------------------------------


class LegacyLink:
    """The bridge's client to the legacy EHR's JSON API."""

    def __init__(self, base: str, timeouts: Timeouts) -> None:
        self.base = base.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base, timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect)
        )
        self.since = 0

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise LinkError(f"legacy EHR {self.base}{path}: no answer in time") from None
        except httpx.TransportError as exc:
            raise LinkError(f"legacy EHR {self.base}{path}: {exc.__class__.__name__}") from None
        if answer.status_code >= 400:
            try:
                detail = answer.json().get("error", answer.text[:200])
            except ValueError:
                detail = answer.text[:200]
            raise LinkError(
                f"legacy EHR {method} {path}: HTTP {answer.status_code}: {detail}", answer.status_code >= 500
            )
        try:
            return answer.json()
        except ValueError:
            raise LinkError(f"legacy EHR {method} {path}: reply is not JSON") from None

    async def changed_referrals(self, batch: int) -> list[dict[str, Any]]:
        rows = await self.call(
            "GET", "/api/referrals", params={"since": str(self.since), "limit": str(batch)}
        )
        for row in rows:
            self.since = max(self.since, int(row.get("seq", 0)))
        return rows


# -- queues --------------------------------------------------------------------------------------------


ROUTES = ("new→lab", "lab→new", "lab→legacy", "new→legacy", "legacy→new")
CATCH_ALL = "catch-all"


@dataclass
class Message:
    """One message the bridge carries; its queue is its route (or the catch-all queue)."""

    id: int
    kind: str  # lab-order, lab-result, referral, referral-receipt, referral-answer
    queue: str
    site: str | None
    receiver: str
    key: str
    patient: str
    status: str = "pending"  # pending → delivered | failed | parked
    attempts: int = 0
    error: str = ""
    created: str = field(default_factory=utcnow)
    delivered: str | None = None
    summary: str = ""

    def public(self) -> dict[str, Any]:
        return asdict(self)


Delivery = Callable[[], Awaitable[None]]


class Queues:
    """Every message the bridge handled, by queue; bounded, thread-safe, JSON for /bridge/queues."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._messages: deque[Message] = deque(maxlen=KEEP_MESSAGES)
        self._deliveries: dict[int, Delivery] = {}

    def add(self, delivery: Delivery | None, **fields: Any) -> Message:
        with self._lock:
            message = Message(id=next(self._ids), **fields)
            self._messages.append(message)
            if delivery is not None and message.status == "pending":
                self._deliveries[message.id] = delivery
            return message

    def pending(self) -> list[tuple[Message, Delivery]]:
        with self._lock:
            by_id = {m.id: m for m in self._messages}
            return [(by_id[i], d) for i, d in self._deliveries.items() if i in by_id]

    def settle(self, message: Message, status: str, error: str = "") -> None:
        with self._lock:
            message.status, message.error = status, error
            if status == "delivered":
                message.delivered = utcnow()
            if status != "pending":
                self._deliveries.pop(message.id, None)

    def snapshot(self, site: str | None = None) -> dict[str, Any]:
        with self._lock:
            messages = [m for m in self._messages if site is None or m.site == site]
            queues: dict[str, Any] = {}
            for name in (*ROUTES, CATCH_ALL):
                mine = [m for m in messages if m.queue == name]
                counts = {
                    s: sum(1 for m in mine if m.status == s)
                    for s in ("pending", "delivered", "failed", "parked")
                }
                queues[name] = {"count": len(mine), **counts, "messages": [m.public() for m in mine[-200:]]}
        return {
            "time": utcnow(),
            "site": site,
            "queues": queues,
            "catch_all": queues[CATCH_ALL]["count"],
            "pending": sum(q["pending"] for q in queues.values()),
            "failed": sum(q["failed"] for q in queues.values()),
        }


@dataclass
class Referral:
    """One referral crossing the boundary: its Task, its legacy row, who sent it and which way."""

    task: str
    legacy_id: int
    direction: str  # "new→legacy" or "legacy→new"
    sender_site: str | None


# -- the bridge ----------------------------------------------------------------------------------------


class Bridge(Component):
    """HTTP face (queues, heartbeat, NPÖ, migration), MLLP inbound for results, and the polling worker."""

    name = "bridge"
    faults = (REFERRAL_DROPPED, REFERRAL_NEGATION_LOSS, TEXT_ENCODING_LOSS, ORPHAN_QUEUE)

    def __init__(self, hospital: Hospital) -> None:
        self.hospital = hospital
        plan = hospital.plan
        env = plan.environment
        assert env.bridge_base is not None
        self.plan = plan
        self.board: FaultBoard = hospital.board
        self.settings = plan.coexistence.bridge
        self.url = env.bridge_base
        self.host, self.port = endpoint_address("bridge_base", env.bridge_base, ("http",))
        self.mllp_at = (
            endpoint_address("bridge_mllp", env.bridge_mllp, ("mllp",)) if env.bridge_mllp else None
        )
        self.sites = SiteMap(plan)
        self.queues = Queues()
        self.loop = LoopThread("reference-bridge")
        self._sock = None
        self._mllp_sock = None
        self._server: Any = None
        self._mllp_server: Any = None
        self._worker: asyncio.Task[None] | None = None
        self.new: NewEhrLink | None = None
        self.legacy: LegacyLink | None = None
        self.cycles = 0
        self.last_cycle: float | None = None
        self.links: dict[str, dict[str, Any]] = {}
        # referral bookkeeping, both directions: the Task on the new side ↔ the legacy referral
        self._referrals: dict[str, Referral] = {}  # by Task id
        self._by_legacy: dict[int, str] = {}  # legacy referral id → Task id ("" while being created)
        self._task_status: dict[str, str] = {}  # the last Task status the bridge saw or wrote
        self._forwarded_orders: set[str] = set()
        self.inbox = Inbox("bridge")

    # -- component -----------------------------------------------------------------------------

    def describe(self) -> str:
        mllp_part = f", mllp://{self.mllp_at[0]}:{self.mllp_at[1]}" if self.mllp_at else ""
        return f"bridge ({self.url}{mllp_part})"

    def ports(self) -> list[int]:
        return [self.port] + ([self.mllp_at[1]] if self.mllp_at else [])

    def bind(self) -> None:
        self._sock = bind_socket(self.host, self.port, f"the coexistence bridge ({self.url})")
        if self.mllp_at:
            self._mllp_sock = bind_socket(
                *self.mllp_at, f"the bridge's MLLP inbound ({self.plan.environment.bridge_mllp})"
            )

    def start(self) -> None:
        self.loop.start()
        self.loop.call(self._start())

    async def _start(self) -> None:
        env = self.plan.environment
        self.new = NewEhrLink(env.fhir_base, env.timeouts, self.sites)
        self.legacy = LegacyLink(env.legacy_base, env.timeouts) if env.legacy_base else None
        self._server = await serve_http(self.asgi(), self._sock, self.describe())
        if self._mllp_sock is not None:
            self._mllp_server = await hl7.mllp.start_hl7_server(self._mllp_client, sock=self._mllp_sock)
        self._worker = asyncio.get_running_loop().create_task(self._work())

    def stop(self) -> None:
        if self.loop.running:
            try:
                self.loop.call(self._stop(), timeout=10)
            except TargetError:
                pass
        self.loop.stop()
        for sock in (self._sock, self._mllp_sock):
            if sock is not None:
                sock.close()
        self._sock = self._mllp_sock = None

    async def _stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._mllp_server is not None:
            self._mllp_server.close()
        await stop_http(self._server)
        for link in (self.new, self.legacy):
            if link is not None:
                await link.close()

    def health(self) -> dict[str, Any]:
        alive = self._worker is not None and not self._worker.done() and self._server is not None
        return {"ok": bool(alive) and self.cycles > 0, "url": self.url, "cycles": self.cycles}

    # -- HTTP ----------------------------------------------------------------------------------

    def asgi(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route("/bridge/heartbeat", self._heartbeat, methods=["GET"]),
            Route("/bridge/queues", self._queues, methods=["GET"]),
            Route("/npo/Patient/{pnr}", self._npo, methods=["GET"]),
        ]
        migration = self._migration()
        if migration is not None:
            routes += migration.routes("/migration")
        return Starlette(routes=routes)

    def _migration(self) -> Any:
        try:
            return self.hospital.component("migration")
        except Exception:  # noqa: BLE001 - no migration component in this plan
            return None

    def heartbeat(self) -> tuple[dict[str, Any], int]:
        interval = self.settings.poll_interval_s
        age = None if self.last_cycle is None else time.monotonic() - self.last_cycle
        alive = self._worker is not None and not self._worker.done()
        fresh = age is not None and age < 5 * interval + 5
        links_ok = all(link.get("ok") for link in self.links.values())
        status = "ok" if alive and fresh and links_ok else ("degraded" if alive and fresh else "down")
        body = {
            "status": status,
            "time": utcnow(),
            "poll_interval_s": interval,
            "cycles": self.cycles,
            "seconds_since_cycle": None if age is None else round(age, 3),
            "links": self.links,
            "mllp": self.plan.environment.bridge_mllp,
        }
        return body, (200 if status != "down" else 503)

    async def _heartbeat(self, request: Request) -> Response:
        body, code = self.heartbeat()
        return JSONResponse(body, code)

    async def _queues(self, request: Request) -> Response:
        site = request.query_params.get("site")
        if site is not None and self.sites.site(site) is None:
            return JSONResponse({"error": f"no site {site!r} in the plan"}, 404)
        return JSONResponse(self.queues.snapshot(site))

    async def _npo(self, request: Request) -> Response:
        """Both sides' published records of one test identity (NPÖ-like); 404 for anyone else."""
        digits = pnr_digits(request.path_params["pnr"])
        name = self.sites.identity_name(digits)
        if name is None:
            return JSONResponse({"error": f"{pnr_display(digits)} is not a test identity of this plan"}, 404)
        records: list[dict[str, Any]] = []
        sources: dict[str, Any] = {}
        try:
            found = await self._new_records(digits)
            records += found
            sources["new"] = {"ok": True, "count": len(found)}
        except LinkError as exc:
            sources["new"] = {"ok": False, "error": str(exc)}
        if self.legacy is not None:
            try:
                rows = await self.legacy.call(
                    "GET", "/api/records", params={"personnummer": pnr_display(digits)}
                )
                for row in rows:
                    records.append(
                        {
                            "source": "legacy",
                            **{
                                k: row.get(k) for k in ("id", "site", "unit", "kind", "date", "title", "text")
                            },
                        }
                    )
                sources["legacy"] = {"ok": True, "count": len(rows)}
            except LinkError as exc:
                sources["legacy"] = {"ok": False, "error": str(exc)}
        records.sort(key=lambda r: str(r.get("date") or ""))
        body = {"personnummer": pnr_display(digits), "name": name, "records": records, "sources": sources}
        return JSONResponse(body, 200 if all(s["ok"] for s in sources.values()) else 502)

    async def _new_records(self, digits: str) -> list[dict[str, Any]]:
        assert self.new is not None
        patient = await self.new.patient_id(digits)
        out = []
        for report in await self.new.search("DiagnosticReport", {"subject": f"Patient/{patient}"}):
            out.append(
                {
                    "source": "new",
                    "id": f"DiagnosticReport/{report.get('id')}",
                    "site": None,
                    "kind": "lab-result",
                    "date": report.get("issued") or report.get("effectiveDateTime"),
                    "title": (report.get("code") or {}).get("text", ""),
                    "text": report.get("conclusion", ""),
                }
            )
        return out

    # -- MLLP inbound: results from the lab ------------------------------------------------------

    async def _mllp_client(self, reader: Any, writer: Any) -> None:
        could_not = "the bridge could not take it"
        await answer_each_block(reader, writer, self.receive_result, _bare_ack, could_not)

    def receive_result(self, block: bytes) -> str:
        """Take one ORU^R01 into the right queue; the ACK to send back (AA, or AE/AR with the reason)."""
        try:
            message = mllp.parse(block.decode(mllp.ENCODING))
            message.segment("MSH")
        except Exception:  # noqa: BLE001 - python-hl7 raises several kinds on garbage
            return _bare_ack("AR", "", "not an HL7 v2 message")
        kind = (mllp.field(message, "MSH", 9, 1), mllp.field(message, "MSH", 9, 2))
        if kind != ("ORU", "R01"):
            return mllp.acknowledge(
                message, "AR", BRIDGE_SENDER, f"the bridge takes ORU^R01, not {'^'.join(kind)}"
            )
        pnr = mllp.field(message, "PID", 3, 1)
        placer = mllp.field(message, "ORC", 2, 1) or mllp.field(message, "OBR", 2, 1)
        if not pnr or not placer:
            return mllp.acknowledge(message, "AE", BRIDGE_SENDER, "PID-3 and ORC-2 are required")
        receiver_app = mllp.field(message, "MSH", 5)
        facility = mllp.field(message, "MSH", 6)
        site = self.sites.site_of(facility)
        result = LabResult(
            personnummer=pnr_display(pnr_digits(pnr)),
            placer=placer,
            filler=mllp.field(message, "ORC", 3, 1) or mllp.field(message, "OBR", 3, 1),
            test_code=mllp.field(message, "OBR", 4, 1),
            test_name=mllp.unescape(mllp.field(message, "OBR", 4, 2)),
            values=values_of(message),
            site_id=site.id if site else None,
            service_request=placer if receiver_app == NEW_EHR_APP else None,
        )
        route = {NEW_EHR_APP: "lab→new", LEGACY_APP: "lab→legacy"}.get(receiver_app)
        common = {
            "kind": "lab-result",
            "site": result.site_id,
            "receiver": f"{receiver_app}/{facility}",
            "key": placer,
            "patient": result.personnummer,
            "summary": f"{result.test_name or result.test_code} for order {placer}",
        }
        if route is None or site is None:
            why = (
                f"no route to receiving application {receiver_app!r}"
                if route is None
                else (f"no route to receiving facility {facility!r}")
            )
            self.queues.add(None, queue=CATCH_ALL, status="parked", error=why, **common)
        elif self.board.active(ORPHAN_QUEUE, site.id):
            self.queues.add(
                None, queue=CATCH_ALL, status="parked", error="no route (routing table)", **common
            )
        else:
            deliver = self._file_new(result) if route == "lab→new" else self._file_legacy(result, message)
            self.queues.add(deliver, queue=route, **common)
        return mllp.acknowledge(message, "AA", BRIDGE_SENDER)

    def _file_new(self, result: LabResult) -> Delivery:
        async def deliver() -> None:
            assert self.new is not None
            await self.new.file_result(result)

        return deliver

    def _file_legacy(self, result: LabResult, message: hl7.Message) -> Delivery:
        body = {
            "placer": result.placer,
            "filler": result.filler,
            "personnummer": result.personnummer,
            "test_code": result.test_code,
            "test_name": result.test_name,
            "values": [asdict(v) for v in result.values],
            "resulted": utcnow(),
        }

        async def deliver() -> None:
            if self.legacy is None:
                raise LinkError("the plan has no legacy EHR (environment.legacy_base)", retry=False)
            await self.legacy.call("POST", "/api/results", json=body)

        return deliver

    # -- the worker ----------------------------------------------------------------------------

    async def _work(self) -> None:
        """One cycle per poll interval: read new work on each side, deliver what is pending."""
        while True:
            began = time.monotonic()
            for link, step in (
                ("new-ehr", self._poll_new),
                ("legacy", self._poll_legacy),
                ("deliveries", self._deliver_pending),
            ):
                if link == "legacy" and self.legacy is None:
                    continue
                try:
                    await step()
                    self._link(link, True)
                except LinkError as exc:
                    self._link(link, False, str(exc))
                except Exception as exc:  # a bug must show in the heartbeat, not kill the worker
                    log.exception("bridge %s step failed", link)
                    self._link(link, False, f"{exc.__class__.__name__}: {exc}")
            self.cycles += 1
            self.last_cycle = time.monotonic()
            await asyncio.sleep(max(0.0, self.settings.poll_interval_s - (time.monotonic() - began)))

    def _link(self, name: str, ok: bool, error: str = "") -> None:
        entry = self.links.setdefault(name, {"ok": ok, "last_ok": None, "error": ""})
        entry["ok"] = ok
        if ok:
            entry["last_ok"] = utcnow()
            entry["error"] = ""
        else:
            entry["error"] = error

    async def _deliver_pending(self) -> None:
        for message, deliver in self.queues.pending():
            message.attempts += 1
            try:
                await deliver()
            except LinkError as exc:
                if exc.retry and message.attempts < MAX_ATTEMPTS:
                    message.error = str(exc)
                else:
                    self.queues.settle(message, "failed", str(exc))
                continue
            except mllp.MllpError as exc:
                if message.attempts < MAX_ATTEMPTS:
                    message.error = str(exc)
                else:
                    self.queues.settle(message, "failed", str(exc))
                continue
            self.queues.settle(message, "delivered")

    # -- new EHR side --------------------------------------------------------------------------

    async def _poll_new(self) -> None:
        assert self.new is not None
        batch = self.settings.batch
        self.inbox.add(r for r in await self.new.changed("ServiceRequest", batch) if is_lab_order(r))
        try:
            self.inbox.add(await self.new.changed("Task", batch))
        except LinkError as exc:
            if "not supported" not in str(exc) and "HTTP 404" not in str(exc):
                raise  # else this EHR has no Task: no referrals to carry
        await self.inbox.work(self._new_item)

    async def _new_item(self, resource: dict[str, Any]) -> None:
        if resource.get("resourceType") == "Task":
            await self._task_changed(resource)
        elif resource.get("status") == "active":
            await self._lab_order(resource)

    async def _lab_order(self, request: dict[str, Any]) -> None:
        assert self.new is not None
        rid = str(request["id"])
        if rid in self._forwarded_orders:
            return
        site = await self.new.site_of_request(request)
        if site is None or site.system != "new" or site.lab_route != "bridge":
            return  # another route's order (the lab's direct route), or no site: not ours
        pnr = await self.new.personnummer_of(request.get("subject"))
        coding = next(iter((request.get("code") or {}).get("coding") or []), {})
        requester_hsa = await self.new.hsa_of(request.get("requester")) or ""
        self._forwarded_orders.add(rid)  # every read done: from here on it is queued exactly once
        common = {
            "kind": "lab-order",
            "site": site.id,
            "receiver": f"{self.plan.coexistence.lab.application}",
            "key": rid,
            "patient": pnr or "",
            "summary": f"{coding.get('display') or coding.get('code')} from {site.name}",
        }
        if self.board.active(ORPHAN_QUEUE, site.id):
            self.queues.add(
                None, queue=CATCH_ALL, status="parked", error="no route (routing table)", **common
            )
            return
        if pnr is None:
            self.queues.add(
                None,
                queue="new→lab",
                status="failed",
                error="the order's patient has no personnummer",
                **common,
            )
            return
        order = mllp.LabOrder(
            placer=rid,
            personnummer=pnr,
            patient_name=self.sites.identity_name(pnr) or "",
            test_code=str(coding.get("code", "")),
            test_name=str(coding.get("display") or (request.get("code") or {}).get("text", "")),
            sending_application=NEW_EHR_APP,
            sending_facility=site.hsa_id,
            orderer_hsa_id=requester_hsa,
        )
        lab = self.plan.coexistence.lab
        text = mllp.build_order(order, receiver=(lab.application, lab.facility))
        uri = self.plan.environment.lab_mllp

        async def deliver() -> None:
            if uri is None:
                raise LinkError("the plan has no lab (environment.lab_mllp)", retry=False)
            ack = await mllp.send_message_async(uri, text, self.plan.environment.timeouts.read)
            code = mllp.ack_code(ack)
            if code not in ("AA", "CA"):
                raise LinkError(f"the lab answered {code}: {mllp.ack_text(ack)}", retry=False)

        self.queues.add(deliver, queue="new→lab", **common)

    async def _task_changed(self, task: dict[str, Any]) -> None:
        assert self.new is not None
        tid = str(task.get("id"))
        status = str(task.get("status"))
        previous = self._task_status.get(tid)
        if previous == status:
            return
        referral = self._referrals.get(tid)
        if referral is not None:
            self._task_status[tid] = status
            if referral.direction == "legacy→new":  # the new side moved it on: mirror it to the sender
                if status == "received":
                    self._to_legacy("referral-receipt", referral, {"status": "received"})
                elif status == "completed":
                    answer = self._answer_text(task_answer(task) or "", referral.sender_site)
                    self._to_legacy("referral-answer", referral, {"text": answer, "by": "nya journalen"})
            return
        if status != "requested" or previous is not None:
            self._task_status[tid] = status
            return
        await self._new_referral(task)  # may fail on a read: then the inbox offers it again
        self._task_status[tid] = status

    async def _new_referral(self, task: dict[str, Any]) -> None:
        """A referral requested in the new EHR to a unit still on the legacy one → the legacy inbox."""
        assert self.new is not None
        tid = str(task.get("id"))
        owner = await self.new.hsa_of(task.get("owner"))
        if self.sites.system_of(owner) != "legacy":
            return  # a referral inside the new EHR, or to no unit of the plan: not the bridge's
        focus_id = _reference_id(task.get("focus"), "ServiceRequest") or next(
            (_reference_id(b, "ServiceRequest") for b in task.get("basedOn") or []), None
        )
        request = await self.new.read("ServiceRequest", focus_id) if focus_id else {}
        if request and not is_referral(request):
            return
        sender_hsa = await self.new.hsa_of(task.get("requester") or request.get("requester"))
        sender = self.sites.site_of(sender_hsa)
        sender_id = sender.id if sender else None
        pnr = await self.new.personnummer_of(task.get("for") or request.get("subject")) or ""
        text = referral_text(request) or str(task.get("description", ""))
        common = {
            "kind": "referral",
            "site": sender_id,
            "receiver": owner or "",
            "key": f"Task/{tid}",
            "patient": pnr,
            "summary": f"remiss till {self.sites.names().get(owner or '', owner)}",
        }
        if self.legacy is None:
            self.queues.add(
                None, queue=CATCH_ALL, status="parked", error="no legacy EHR in the plan", **common
            )
            return
        if sender_id and self.board.active(REFERRAL_DROPPED, sender_id):
            self.queues.add(
                None, queue="new→legacy", status="delivered", **common
            )  # it "went"; it never arrives
            return
        if sender_id and self.board.active(ORPHAN_QUEUE, sender_id):
            self.queues.add(
                None, queue=CATCH_ALL, status="parked", error="no route (routing table)", **common
            )
            return
        if sender_id and self.board.active(TEXT_ENCODING_LOSS, sender_id):
            text = mangle_encoding(text)
        body = {
            "external_id": f"Task/{tid}",
            "personnummer": pnr,
            "from_unit": sender_hsa or "",
            "to_unit": owner,
            "text": text,
        }

        async def deliver() -> None:
            assert self.legacy is not None
            row = await self.legacy.call("POST", "/api/referrals/inbound", json=body)
            legacy_id = int(row["id"])
            self._referrals[tid] = Referral(tid, legacy_id, "new→legacy", sender_id)
            self._by_legacy[legacy_id] = tid

        self.queues.add(deliver, queue="new→legacy", **common)

    def _answer_text(self, answer: str, sender_site: str | None) -> str:
        """The answer as it crosses back to the sender (where negation and encoding faults bite)."""
        if sender_site is not None and self.board.active(REFERRAL_NEGATION_LOSS, sender_site):
            answer = drop_negations(answer)
        if sender_site is not None and self.board.active(TEXT_ENCODING_LOSS, sender_site):
            answer = mangle_encoding(answer)
        return answer

    def _to_legacy(self, kind: str, referral: Referral, body: dict[str, Any]) -> None:
        path = f"/api/referrals/{referral.legacy_id}/" + ("answer" if kind == "referral-answer" else "status")
        common = {
            "kind": kind,
            "site": referral.sender_site,
            "receiver": f"legacy referral {referral.legacy_id}",
            "key": f"Task/{referral.task}",
            "patient": "",
            "summary": kind,
        }

        async def deliver() -> None:
            assert self.legacy is not None
            await self.legacy.call("POST", path, json=body)

        self.queues.add(deliver, queue="new→legacy", **common)

    # -- legacy side ---------------------------------------------------------------------------

    async def _poll_legacy(self) -> None:
        assert self.legacy is not None
        for row in await self.legacy.changed_referrals(self.settings.batch):
            rid = int(row["id"])
            if row.get("direction") == "out" and row.get("status") == "new":
                await self._legacy_referral(row)
            elif row.get("direction") == "in" and self._by_legacy.get(rid):
                self._legacy_progress(row)

    async def _legacy_referral(self, row: dict[str, Any]) -> None:
        """A referral written in the legacy EHR to a unit on the new one → ServiceRequest + Task."""
        rid = int(row["id"])
        if rid in self._by_legacy:
            return
        if self.sites.system_of(row.get("to_unit")) != "new":
            return  # a referral inside the legacy EHR: not the bridge's
        sender = self.sites.site_of(row.get("from_unit"))
        sender_id = sender.id if sender else None
        self._by_legacy[rid] = ""  # claimed; the Task id comes with the delivery
        to_unit, from_unit = str(row.get("to_unit")), str(row.get("from_unit"))
        names = self.sites.names()
        common = {
            "kind": "referral",
            "site": sender_id,
            "receiver": to_unit,
            "key": f"legacy/{rid}",
            "patient": str(row.get("personnummer", "")),
            "summary": f"remiss till {names.get(to_unit, to_unit)}",
        }
        if sender_id and self.board.active(REFERRAL_DROPPED, sender_id):
            self.queues.add(None, queue="legacy→new", status="delivered", **common)
            return
        if sender_id and self.board.active(ORPHAN_QUEUE, sender_id):
            self.queues.add(
                None, queue=CATCH_ALL, status="parked", error="no route (routing table)", **common
            )
            return
        text = str(row.get("text", ""))
        if sender_id and self.board.active(TEXT_ENCODING_LOSS, sender_id):
            text = mangle_encoding(text)

        made: dict[str, str] = {}  # what a half-done delivery already created, so a retry does not repeat it

        async def deliver() -> None:
            assert self.new is not None and self.legacy is not None
            patient = await self.new.patient_id(str(row["personnummer"]))
            ident = {"system": LEGACY_REFERRAL_SYSTEM, "value": str(rid)}
            requester = {
                "identifier": {"system": HSA_ID_SYSTEM, "value": from_unit},
                "display": names.get(from_unit, from_unit),
            }
            owner = {
                "identifier": {"system": HSA_ID_SYSTEM, "value": to_unit},
                "display": names.get(to_unit, to_unit),
            }
            if "request" not in made:
                request = await self.new.create(
                    {
                        "resourceType": "ServiceRequest",
                        "identifier": [ident],
                        "status": "active",
                        "intent": "order",
                        "category": [
                            {
                                "coding": [
                                    {
                                        "system": SNOMED,
                                        "code": REFERRAL_CATEGORY,
                                        "display": "Patient referral",
                                    }
                                ],
                                "text": "Remiss",
                            }
                        ],
                        "code": {"text": "Remiss"},
                        "subject": {"reference": f"Patient/{patient}"},
                        "authoredOn": str(row.get("created") or utcnow()),
                        "requester": requester,
                        "performer": [owner],
                        "note": [{"text": text}],
                    }
                )
                made["request"] = str(request["id"])
            if "task" not in made:
                task = await self.new.create(
                    {
                        "resourceType": "Task",
                        "identifier": [ident],
                        "status": "requested",
                        "intent": "order",
                        "focus": {"reference": f"ServiceRequest/{made['request']}"},
                        "for": {"reference": f"Patient/{patient}"},
                        "authoredOn": utcnow(),
                        "requester": requester,
                        "owner": owner,
                        "description": f"Remiss från {requester['display']}",
                    }
                )
                made["task"] = tid = str(task["id"])
                self._referrals[tid] = Referral(tid, rid, "legacy→new", sender_id)
                self._by_legacy[rid] = tid
                self._task_status.setdefault(tid, "requested")
            await self.legacy.call(
                "POST",
                f"/api/referrals/{rid}/status",
                json={"status": "sent", "external_id": f"Task/{made['task']}"},
            )

        self.queues.add(deliver, queue="legacy→new", **common)

    def _legacy_progress(self, row: dict[str, Any]) -> None:
        """A new → legacy referral moved on in the legacy EHR: receipt or answer back to its Task."""
        rid = int(row["id"])
        tid = self._by_legacy[rid]
        referral = self._referrals.get(tid)
        status = str(row.get("status"))
        wanted = {"received": "received", "answered": "completed"}.get(status)
        if referral is None or wanted is None or self._task_status.get(tid) in (wanted, "completed"):
            return
        answer = (
            self._answer_text(str(row.get("answer") or ""), referral.sender_site)
            if wanted == "completed"
            else None
        )
        self._task_status[tid] = wanted
        common = {
            "kind": "referral-answer" if answer is not None else "referral-receipt",
            "site": referral.sender_site,
            "receiver": f"Task/{tid}",
            "key": f"legacy/{rid}",
            "patient": str(row.get("personnummer", "")),
            "summary": f"remiss {status}",
        }

        async def deliver() -> None:
            assert self.new is not None
            task = await self.new.read("Task", tid)
            if answer is not None and task.get("status") == "requested":
                task["status"] = "received"  # a Task goes requested → received → completed
                task = await self.new.update(task)
            task["status"] = wanted
            if answer is not None:
                task["output"] = [{"type": {"text": "Remissvar"}, "valueString": answer}]
            await self.new.update(task)

        self.queues.add(deliver, queue="legacy→new", **common)


def _bare_ack(code: str, control_id: str, text: str) -> str:
    """An ACK for input too broken to answer with python-hl7's create_ack."""
    return "\r".join(
        [
            f"MSH|^~\\&|BRIDGE||||{mllp.timestamp()}||ACK|ACK{mllp.timestamp()}|P|{mllp.VERSION}",
            f"MSA|{code}|{control_id}|{mllp.escape(text)}",
        ]
    )


def components(hospital: Hospital) -> list[Component]:
    return [Bridge(hospital)] if hospital.plan.environment.bridge_base else []
