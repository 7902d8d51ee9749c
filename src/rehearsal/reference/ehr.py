"""The reference EHR: its resource types, business rules and FHIR R4 REST API.

Built from a plan: the patients are exactly the plan's ``test_identities`` and the
clinicians are the plan's site users, so nothing outside the test data can ever be
searched or shown. The :class:`Ehr` object is what both faces use — the FHIR API here
and the web UI in :mod:`rehearsal.reference.webui` — so a lab order placed in the browser
is the same ServiceRequest the API returns.

Resource types are declared in :data:`RESOURCE_TYPES` (interactions, search parameters,
validation); the REST layer and the CapabilityStatement are generated from them, so a
new type (Encounter, Task, DiagnosticReport, …) is a declaration plus a validator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rehearsal.identities import (
    HSA_ID_SYSTEM,
    PERSONNUMMER_OID,
    SAMORDNINGSNUMMER_OID,
    is_samordningsnummer,
)
from rehearsal.plan import Plan
from rehearsal.reference.faults import FaultBoard, patient_search_delay
from rehearsal.reference.store import Resource, ResourceStore, SearchParam, UnknownSearchParam, now

log = logging.getLogger("rehearsal.reference.ehr")

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"
PERSONNUMMER_SYSTEM = f"urn:oid:{PERSONNUMMER_OID}"
SAMORDNINGSNUMMER_SYSTEM = f"urn:oid:{SAMORDNINGSNUMMER_OID}"
#: NPU terminology (Nomenclature, Properties and Units), the code system Swedish labs order by.
NPU_SYSTEM = "urn:oid:1.2.208.176.2.1"

_PNR_ANY = re.compile(r"^(\d{8})[-+ ]?(\d{4})$")
_REFERENCE_TAIL = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


# -- test data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabTest:
    """An orderable lab analysis: the short name clinicians know, its NPU code, a Swedish name."""

    code: str
    npu: str
    display: str

    def concept(self) -> dict[str, Any]:
        return {
            "coding": [{"system": NPU_SYSTEM, "code": self.npu, "display": self.code}],
            "text": f"{self.code} {self.display}",
        }


LAB_TESTS: dict[str, LabTest] = {
    t.code: t
    for t in (
        LabTest("B-Hb", "NPU02319", "Hemoglobin"),
        LabTest("P-CRP", "NPU19748", "C-reaktivt protein"),
        LabTest("P-Na", "NPU03429", "Natrium"),
    )
}


@dataclass(frozen=True)
class Clinician:
    """A plan user who can log in to the web UI; ``password`` is None when its env var is unset."""

    hsa_id: str
    name: str
    role: str
    site_id: str
    site_name: str
    password: str | None = field(default=None, repr=False, compare=False)


def personnummer_digits(value: str) -> str | None:
    """``19121212-1212``, ``191212121212`` (or with ``+``) → ``191212121212``; None if not that shape."""
    match = _PNR_ANY.match(value.strip())
    return match.group(1) + match.group(2) if match else None


def personnummer_display(digits: str) -> str:
    """The 12-digit form back to ``YYYYMMDD-NNNN`` (with the century written out, always a dash)."""
    return f"{digits[:8]}-{digits[8:]}"


def patient_id(personnummer: str) -> str:
    """A stable, opaque Patient id: the same test identity has the same id in every run and plan."""
    return "pat-" + hashlib.sha256(personnummer_digits(personnummer).encode()).hexdigest()[:10]


def patient_resource(personnummer: str, name: str) -> Resource:
    digits = personnummer_digits(personnummer)
    assert digits is not None  # the plan validated it
    samordning = is_samordningsnummer(personnummer)
    day = int(digits[6:8]) - (60 if samordning else 0)
    given, _, family = name.rpartition(" ")
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "official",
                "system": SAMORDNINGSNUMMER_SYSTEM if samordning else PERSONNUMMER_SYSTEM,
                "value": digits,
            }
        ],
        "active": True,
        "name": [{"use": "official", "text": name, "family": family or name, "given": given.split() or []}],
        "gender": "male" if int(digits[10]) % 2 else "female",
        "birthDate": f"{digits[:4]}-{digits[4:6]}-{day:02d}",
    }


def personnummer_of(patient: Resource) -> str:
    """The patient's personnummer (or samordningsnummer) in display form."""
    for ident in patient.get("identifier", []):
        if ident.get("system") in (PERSONNUMMER_SYSTEM, SAMORDNINGSNUMMER_SYSTEM):
            return personnummer_display(ident["value"])
    return ""


def name_of(patient: Resource) -> str:
    names = patient.get("name") or [{}]
    return names[0].get("text") or " ".join([*names[0].get("given", []), names[0].get("family", "")]).strip()


# -- resource types ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue; ``code`` is from the FHIR issue-type value set."""

    diagnostics: str
    code: str = "invalid"
    expression: str | None = None
    severity: str = "error"

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


class FhirError(Exception):
    """A request the FHIR API refuses; becomes an OperationOutcome with this HTTP status."""

    def __init__(self, status: int, *issues: Issue) -> None:
        super().__init__("; ".join(i.diagnostics for i in issues))
        self.status = status
        self.issues = issues


Validator = Callable[["Ehr", Resource], list[Issue]]


@dataclass(frozen=True)
class ResourceType:
    """What the EHR offers for one resource type; drives routing, validation and the CapabilityStatement."""

    name: str
    interactions: tuple[str, ...]
    params: tuple[SearchParam, ...] = ()
    validate: Validator | None = None
    documentation: str = ""


def _identifiers(resource: Resource) -> Iterable[tuple[str | None, str]]:
    return [(i.get("system"), i["value"]) for i in resource.get("identifier", []) if i.get("value")]


def _patient_identifier_value(value: str) -> str:
    return personnummer_digits(value) or value


def _reference(path: str) -> Callable[[Resource], Iterable[tuple[str | None, str]]]:
    def extract(resource: Resource) -> Iterable[tuple[str | None, str]]:
        ref = (resource.get(path) or {}).get("reference") or ""
        match = _REFERENCE_TAIL.search(ref)
        return [(None, f"{match.group(1)}/{match.group(2)}")] if match else []

    return extract


def _patient_reference(resource: Resource) -> Iterable[tuple[str | None, str]]:
    return [(s, v) for s, v in _reference("subject")(resource) if v.startswith("Patient/")]


SERVICE_REQUEST_STATUS = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown")
SERVICE_REQUEST_INTENT = (
    "proposal", "plan", "directive", "order", "original-order", "reflex-order", "filler-order",
    "instance-order", "option",
)  # fmt: skip


def _validate_service_request(ehr: Ehr, resource: Resource) -> list[Issue]:
    issues = []
    status = resource.get("status")
    if status not in SERVICE_REQUEST_STATUS:
        issues.append(
            Issue(
                f"status must be one of {', '.join(SERVICE_REQUEST_STATUS)}; got {status!r}",
                "required" if status is None else "value",
                "ServiceRequest.status",
            )
        )
    intent = resource.get("intent")
    if intent not in SERVICE_REQUEST_INTENT:
        issues.append(
            Issue(
                f"intent must be one of {', '.join(SERVICE_REQUEST_INTENT)}; got {intent!r}",
                "required" if intent is None else "value",
                "ServiceRequest.intent",
            )
        )
    subject = resource.get("subject")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(ref, str) or not ref:
        issues.append(
            Issue("subject.reference to a Patient is required", "required", "ServiceRequest.subject")
        )
    else:
        match = re.fullmatch(r"(?:.*/)?Patient/([A-Za-z0-9\-.]{1,64})", ref)
        if not match:
            issues.append(
                Issue(f"subject must reference a Patient, got {ref!r}", "value", "ServiceRequest.subject")
            )
        elif not ehr.store.exists("Patient", match.group(1)):
            issues.append(Issue(f"subject {ref} does not exist", "not-found", "ServiceRequest.subject"))
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    has_coding = isinstance(codings, list) and any(isinstance(c, dict) and c.get("code") for c in codings)
    if not isinstance(code, dict) or not (has_coding or code.get("text")):
        issues.append(
            Issue("code must be a CodeableConcept with a coding or text", "required", "ServiceRequest.code")
        )
    return issues


RESOURCE_TYPES: dict[str, ResourceType] = {
    t.name: t
    for t in (
        ResourceType(
            "Patient",
            ("read", "search-type"),
            (
                SearchParam(
                    "identifier",
                    "token",
                    _identifiers,
                    f"personnummer as {PERSONNUMMER_SYSTEM}|YYYYMMDDNNNN (dash optional, system optional)",
                    normalize=_patient_identifier_value,
                ),
            ),
            documentation="Only the plan's test identities exist; patients cannot be created.",
        ),
        ResourceType(
            "ServiceRequest",
            ("read", "search-type", "create"),
            (
                SearchParam("subject", "reference", _reference("subject"), "Patient/{id}", target="Patient"),
                SearchParam(
                    "patient", "reference", _patient_reference, "Patient/{id} or {id}", target="Patient"
                ),
            ),
            validate=_validate_service_request,
            documentation="Lab orders; requires status, intent, code and a subject Patient that exists.",
        ),
    )
}


# -- the EHR -------------------------------------------------------------------------------------


class Ehr:
    """The hospital's record: store, known clinicians and the rules both the API and the UI go through."""

    def __init__(
        self,
        plan: Plan,
        database: Path | str,
        board: FaultBoard | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.board = board or FaultBoard()
        self.types = dict(RESOURCE_TYPES)
        self.store = ResourceStore(database, {t.name: t.params for t in self.types.values()})
        self.clinicians = _clinicians(plan, os.environ if environ is None else environ)
        self.started = now()

    def seed(self) -> None:
        """Create the plan's test identities (once; a fresh database per hospital start)."""
        for identity in self.plan.test_identities:
            pid = patient_id(identity.personnummer)
            if not self.store.exists("Patient", pid):
                self.store.create(patient_resource(identity.personnummer, identity.name), id=pid)

    # -- people --------------------------------------------------------------------------------

    def authenticate(self, hsa_id: str, password: str) -> Clinician | None:
        """The clinician when HSA-id and password match; None otherwise (no hint which part was wrong)."""
        clinician = self.clinicians.get(hsa_id.strip())
        if clinician is None or clinician.password is None:
            return None
        if not hmac.compare_digest(clinician.password.encode(), password.encode()):
            return None
        return clinician

    # -- resources -----------------------------------------------------------------------------

    def resource_type(self, name: str) -> ResourceType:
        rtype = self.types.get(name)
        if rtype is None:
            raise FhirError(
                404,
                Issue(
                    f"resource type {name!r} is not supported here (supported: {', '.join(self.types)})",
                    "not-supported",
                ),
            )
        return rtype

    def read(self, rtype: str, rid: str) -> Resource:
        self.resource_type(rtype)
        resource = self.store.read(rtype, rid)
        if resource is None:
            raise FhirError(404, Issue(f"{rtype}/{rid} does not exist", "not-found"))
        return resource

    async def search(
        self, rtype: str, criteria: list[tuple[str, str]], limit: int | None = None
    ) -> list[Resource]:
        self.resource_type(rtype)
        if rtype == "Patient":
            await patient_search_delay(self.board)
        try:
            return self.store.search(rtype, criteria, limit)
        except UnknownSearchParam as exc:
            raise FhirError(400, Issue(str(exc), "not-supported")) from exc

    def create(self, resource: Any) -> Resource:
        if not isinstance(resource, dict):
            raise FhirError(400, Issue("body must be a JSON object (a FHIR resource)", "structure"))
        name = resource.get("resourceType")
        if not isinstance(name, str) or not name:
            raise FhirError(400, Issue("resourceType is missing", "structure", "resourceType"))
        rtype = self.resource_type(name)
        if "create" not in rtype.interactions:
            raise FhirError(405, Issue(f"{name} cannot be created here", "not-supported"))
        issues = rtype.validate(self, resource) if rtype.validate else []
        if issues:
            raise FhirError(422, *issues)
        return self.store.create(resource)

    async def find_patient(self, personnummer: str) -> Resource | None:
        """The patient with this personnummer (any common spelling), or None."""
        digits = personnummer_digits(personnummer)
        if digits is None:
            return None
        found = await self.search("Patient", [("identifier", digits)])
        return found[0] if found else None

    def order_lab(self, patient: str, test: str, clinician: Clinician) -> Resource:
        """Place a lab order as a clinician in the web UI: the same ServiceRequest the API would take."""
        lab = LAB_TESTS.get(test)
        if lab is None:
            raise FhirError(
                422, Issue(f"unknown lab test {test!r} (known: {', '.join(LAB_TESTS)})", "code-invalid")
            )
        return self.create(
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://snomed.info/sct",
                                "code": "108252007",
                                "display": "Laboratory procedure",
                            }
                        ]
                    }
                ],
                "code": lab.concept(),
                "subject": {"reference": f"Patient/{patient}"},
                "authoredOn": now(),
                "requester": {
                    "identifier": {"system": HSA_ID_SYSTEM, "value": clinician.hsa_id},
                    "display": f"{clinician.name}, {clinician.role}, {clinician.site_name}",
                },
            }
        )

    def orders(self, patient: str) -> list[Resource]:
        return self.store.search("ServiceRequest", [("subject", f"Patient/{patient}")])

    def capability_statement(self, base: str) -> Resource:
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": self.started,
            "publisher": "golive-rehearsal",
            "kind": "instance",
            "software": {"name": "golive-rehearsal reference EHR"},
            "implementation": {
                "description": f"Referenssjukhuset ({self.plan.environment.name})",
                "url": base,
            },
            "fhirVersion": FHIR_VERSION,
            "format": [FHIR_JSON, "json"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": t.name,
                            "documentation": t.documentation,
                            "interaction": [{"code": code} for code in t.interactions],
                            "searchParam": [
                                {"name": "_id", "type": "token"},
                                *(
                                    {"name": p.name, "type": p.type, "documentation": p.documentation}
                                    for p in t.params
                                ),
                            ],
                        }
                        for t in self.types.values()
                    ],
                }
            ],
        }

    def close(self) -> None:
        self.store.close()


def _clinicians(plan: Plan, environ: Any) -> dict[str, Clinician]:
    clinicians: dict[str, Clinician] = {}
    for site in plan.sites:
        for user in site.users:
            if user.hsa_id in clinicians:
                continue
            password = environ.get(user.password_env) or None
            if password is None:
                log.warning(
                    "user %s (%s) cannot log in: environment variable %s is not set",
                    user.hsa_id, user.name, user.password_env,
                )  # fmt: skip
            clinicians[user.hsa_id] = Clinician(
                user.hsa_id, user.name, user.role, site.id, site.name, password
            )
    return clinicians


# -- FHIR REST API -------------------------------------------------------------------------------


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def outcome(status: int, *issues: Issue) -> FhirResponse:
    return FhirResponse({"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}, status)


class FhirApi:
    """The FHIR R4 REST face of an :class:`Ehr`, mounted at the path of ``environment.fhir_base``."""

    def __init__(self, ehr: Ehr, base_url: str) -> None:
        self.ehr = ehr
        self.base = base_url.rstrip("/")

    def routes(self) -> list[Route]:
        every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return [
            Route("/metadata", self._guard(self.metadata), methods=every),
            Route("/{rtype}", self._guard(self.type_level), methods=every),
            Route("/{rtype}/{rid}", self._guard(self.instance_level), methods=every),
            Route("/{rest:path}", self._guard(self.unknown), methods=every),
        ]

    def _guard(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except FhirError as exc:
                return outcome(exc.status, *exc.issues)
            except Exception:  # one bad request must not look like a dead server
                log.exception("FHIR request %s %s failed", request.method, request.url.path)
                return outcome(500, Issue("internal error in the reference EHR (see its log)", "exception"))

        return endpoint

    async def metadata(self, request: Request) -> Response:
        _only(request, "GET")
        return FhirResponse(self.ehr.capability_statement(self.base))

    async def type_level(self, request: Request) -> Response:
        name = request.path_params["rtype"]
        rtype = self.ehr.resource_type(name)
        if request.method == "GET":
            if "search-type" not in rtype.interactions:
                raise FhirError(405, Issue(f"{name} cannot be searched here", "not-supported"))
            return await self.search(request, name)
        if request.method == "POST":
            return await self.create(request)
        raise _not_allowed(request)

    async def search(self, request: Request, name: str) -> Response:
        criteria, limit = [], None
        for key, value in request.query_params.multi_items():
            if key == "_count":
                if not value.isdigit():
                    raise FhirError(
                        400, Issue(f"_count must be a non-negative integer, got {value!r}", "value")
                    )
                limit = int(value)
            elif key == "_format":
                if "json" not in value:
                    raise FhirError(406, Issue(f"only JSON is served here, not {value!r}", "not-supported"))
            else:
                criteria.append((key, value))
        found = await self.ehr.search(name, criteria, limit)
        return FhirResponse(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "meta": {"lastUpdated": now()},
                "total": len(found),
                "link": [{"relation": "self", "url": str(request.url)}],
                "entry": [
                    {
                        "fullUrl": f"{self.base}/{r['resourceType']}/{r['id']}",
                        "resource": r,
                        "search": {"mode": "match"},
                    }
                    for r in found
                ],
            }
        )

    async def create(self, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in (FHIR_JSON, "application/json"):
            raise FhirError(
                415, Issue(f"send {FHIR_JSON}, not {ctype or 'no content type'}", "not-supported")
            )
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise FhirError(400, Issue(f"body is not valid JSON: {exc}", "structure")) from exc
        if isinstance(body, dict) and body.get("resourceType") not in (None, request.path_params["rtype"]):
            raise FhirError(
                400,
                Issue(
                    f"resourceType {body.get('resourceType')!r} posted to /{request.path_params['rtype']}",
                    "invalid",
                    "resourceType",
                ),
            )
        created = self.ehr.create(body)
        location = f"{self.base}/{created['resourceType']}/{created['id']}/_history/1"
        return FhirResponse(
            created,
            201,
            headers={"Location": location, "ETag": 'W/"1"'},
        )

    async def instance_level(self, request: Request) -> Response:
        _only(request, "GET")
        resource = self.ehr.read(request.path_params["rtype"], request.path_params["rid"])
        return FhirResponse(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})

    async def unknown(self, request: Request) -> Response:
        raise FhirError(404, Issue(f"no FHIR endpoint at {request.url.path}", "not-found"))


def _only(request: Request, method: str) -> None:
    if request.method != method:
        raise _not_allowed(request)


def _not_allowed(request: Request) -> FhirError:
    return FhirError(405, Issue(f"{request.method} is not supported on {request.url.path}", "not-supported"))
