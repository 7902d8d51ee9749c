"""What the reference EHR knows about FHIR R4 resources: search parameters, validation, builders.

Each resource type the EHR holds is one :class:`ResourceType` in :data:`RESOURCE_TYPES`:
its interactions, its search parameters (with the function that finds their values)
and its validator. The REST layer, the store's index and the CapabilityStatement are
generated from these declarations, so adding a type is a declaration plus a validator.

Validation on the way in has three layers, every problem one :class:`Issue` with a
FHIRPath-like ``expression``:

1. FHIR JSON rules for any resource (no ``null``, no empty strings, arrays or objects,
   a valid ``id``);
2. identifiers and references: Swedish identifiers (personnummer, samordningsnummer,
   VGR reservnummer, HSA-id) must pass their rules; with the test-identity guard on,
   every personnummer anywhere must be one of the plan's test identities; a reference
   to a type this EHR holds must resolve (``#id`` to a contained resource), and the
   main references must point at the types R4 allows;
3. per type: R4's required elements and required value sets, plus the local profile
   of lab orders and referrals (which category codes mean what is in this module).

The builders at the end (patients, organisations, lab orders, referrals, results) are
what the web UI and the seed write, so the UI and the API produce the same resources.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from reference_hospital.store import FHIR_ID, IndexValue, Resource, SearchParam, now
from rehearsal.identities import (
    HSA_ID_SYSTEM,
    PERSONNUMMER_OID,
    RESERVNUMMER_OID,
    SAMORDNINGSNUMMER_OID,
    IdentityError,
    check_hsa_id,
    check_personnummer,
    check_reservnummer,
    is_samordningsnummer,
)

PERSONNUMMER_SYSTEM = f"urn:oid:{PERSONNUMMER_OID}"
SAMORDNINGSNUMMER_SYSTEM = f"urn:oid:{SAMORDNINGSNUMMER_OID}"
RESERVNUMMER_SYSTEM = f"urn:oid:{RESERVNUMMER_OID}"
#: NPU terminology (Nomenclature, Properties and Units), the code system Swedish labs order by.
NPU_SYSTEM = "urn:oid:1.2.208.176.2.1"
SNOMED = "http://snomed.info/sct"
#: ServiceRequest.category of a lab order and of a referral (SNOMED CT); search with
#: ``category=http://snomed.info/sct|108252007`` (lab) or ``…|3457005`` (referral).
LAB_CATEGORY = {"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"}
REFERRAL_CATEGORY = {"system": SNOMED, "code": "3457005", "display": "Patient referral"}
TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
URI_IDENTIFIER = "urn:ietf:rfc:3986"
PATIENT_SYSTEMS = (PERSONNUMMER_SYSTEM, SAMORDNINGSNUMMER_SYSTEM, RESERVNUMMER_SYSTEM)

_PNR_ANY = re.compile(r"^(\d{8})[-+ ]?(\d{4})$")
_REFERENCE = re.compile(
    r"^(?:(?P<base>[a-z][a-z0-9+.-]*://.*?)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)


# -- problems ----------------------------------------------------------------------------------


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

    def __init__(self, status: int, *issues: Issue, headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(i.diagnostics for i in issues))
        self.status = status
        self.issues = issues
        self.headers = headers or {}


# -- identifiers ---------------------------------------------------------------------------------


def personnummer_digits(value: str) -> str | None:
    """``19121212-1212``, ``191212121212`` (or with ``+``) → ``191212121212``; None if not that shape."""
    match = _PNR_ANY.match(value.strip())
    return match.group(1) + match.group(2) if match else None


def personnummer_display(digits: str) -> str:
    """The 12-digit form back to ``YYYYMMDD-NNNN`` (with the century written out, always a dash)."""
    return f"{digits[:8]}-{digits[8:]}"


def patient_identifier_value(value: str) -> str:
    """Patient identifiers as indexed: personnummer as 12 digits, reservnummer in capitals."""
    digits = personnummer_digits(value)
    if digits:
        return digits
    text = value.strip()
    return text.upper() if re.fullmatch(r"\d{8}[kmxKMX]\d{3}", text) else text


def patient_id(identifier: str) -> str:
    """A stable, opaque Patient id: the same identity has the same id in every run and plan."""
    return "pat-" + hashlib.sha256(patient_identifier_value(identifier).encode()).hexdigest()[:10]


def stable_id(*parts: str) -> str:
    """A readable FHIR id from parts (``sas-boras-akutmottagningen``), hashed when it would not fit."""
    text = "-".join(parts).lower()
    for swedish, plain in (("å", "a"), ("ä", "a"), ("ö", "o"), ("é", "e"), ("ü", "u")):
        text = text.replace(swedish, plain)
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if slug and len(slug) <= 64:
        return slug
    return "id-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _check_identifier(system: str, value: str) -> str | None:
    """Why a Swedish identifier is malformed, or None when it is fine (other systems are not ours)."""
    try:
        if system in (PERSONNUMMER_SYSTEM, SAMORDNINGSNUMMER_SYSTEM):
            digits = personnummer_digits(value)
            if digits is None:
                return f"{value!r} is not a 12-digit personnummer (YYYYMMDDNNNN)"
            check_personnummer(personnummer_display(digits))
            samordning = is_samordningsnummer(digits)
            if system == PERSONNUMMER_SYSTEM and samordning:
                return f"{value} is a samordningsnummer; use system {SAMORDNINGSNUMMER_SYSTEM}"
            if system == SAMORDNINGSNUMMER_SYSTEM and not samordning:
                return f"{value} is not a samordningsnummer (day of birth + 60)"
        elif system == RESERVNUMMER_SYSTEM:
            check_reservnummer(value)
        elif system == HSA_ID_SYSTEM:
            check_hsa_id(value)
    except IdentityError as exc:
        return str(exc)
    return None


# -- walking resources ---------------------------------------------------------------------------


def values_at(resource: Any, path: str) -> Iterator[Any]:
    """Every value at a dotted path, stepping through lists (``location.location`` of an Encounter)."""
    current: list[Any] = [resource]
    for part in path.split("."):
        following: list[Any] = []
        for node in current:
            items = node if isinstance(node, list) else [node]
            for item in items:
                if isinstance(item, dict) and part in item:
                    value = item[part]
                    following.extend(value if isinstance(value, list) else [value])
        current = following
    yield from current


def walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every (FHIRPath-like path, value) pair in a JSON tree, depth first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def parse_reference(ref: str, base: str = "") -> tuple[str, str] | None:
    """``Type/id`` (optionally ``…/_history/n``, or an absolute URL) → (type, id); None if it is not one."""
    match = _REFERENCE.match(ref)
    if not match:
        return None
    return match.group("type"), match.group("id")


def is_local(ref: str, base: str) -> bool:
    """A relative reference, or an absolute one into this server's base URL."""
    if "://" not in ref:
        return True
    return bool(base) and ref.startswith(base.rstrip("/") + "/")


# -- search value extractors -----------------------------------------------------------------------


def tokens(*paths: str) -> Callable[[Resource], Iterable[IndexValue]]:
    """Token values at paths: codes, Codings, CodeableConcepts (each coding) and Identifiers."""

    def extract(resource: Resource) -> Iterable[IndexValue]:
        found: list[IndexValue] = []
        for path in paths:
            for value in values_at(resource, path):
                if isinstance(value, str | bool):
                    found.append((None, str(value).lower() if isinstance(value, bool) else value))
                elif isinstance(value, dict):
                    if isinstance(value.get("coding"), list):
                        found += [
                            (c.get("system"), c["code"])
                            for c in value["coding"]
                            if isinstance(c, dict) and isinstance(c.get("code"), str)
                        ]
                    elif isinstance(value.get("value"), str):
                        found.append((value.get("system"), value["value"]))
                    elif isinstance(value.get("code"), str):
                        found.append((value.get("system"), value["code"]))
        return found

    return extract


def references(*paths: str, types: tuple[str, ...] = ()) -> Callable[[Resource], Iterable[IndexValue]]:
    """``Type/id`` of the references at paths (only to ``types`` when given), for reference search."""

    def extract(resource: Resource) -> Iterable[IndexValue]:
        found: list[IndexValue] = []
        for path in paths:
            for value in values_at(resource, path):
                ref = value.get("reference") if isinstance(value, dict) else None
                parsed = parse_reference(ref) if isinstance(ref, str) else None
                if parsed and (not types or parsed[0] in types):
                    found.append((None, f"{parsed[0]}/{parsed[1]}"))
        return found

    extract.paths = paths  # type: ignore[attr-defined]  # for the :identifier modifier
    return extract


def reference_identifiers(*paths: str) -> Callable[[Resource], Iterable[IndexValue]]:
    """The ``identifier`` of the references at paths, for ``param:identifier=system|value`` searches.

    A logical reference (an HSA-id without a ``reference``, as another system writes it)
    is found this way.
    """

    def extract(resource: Resource) -> Iterable[IndexValue]:
        found: list[IndexValue] = []
        for path in paths:
            for value in values_at(resource, path):
                ident = value.get("identifier") if isinstance(value, dict) else None
                if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                    found.append((ident.get("system"), ident["value"]))
        return found

    return extract


def with_identifier_modifiers(params: Iterable[SearchParam]) -> tuple[SearchParam, ...]:
    """Each reference parameter plus its ``:identifier`` companion (token search on Reference.identifier)."""
    result: list[SearchParam] = []
    for param in params:
        result.append(param)
        paths = getattr(param.extract, "paths", None)
        if param.type == "reference" and paths:
            result.append(
                SearchParam(
                    f"{param.name}:identifier", "token", reference_identifiers(*paths), "system|value"
                )
            )
    return tuple(result)


def strings(*paths: str) -> Callable[[Resource], Iterable[IndexValue]]:
    """String values at paths; HumanName and Address contribute each of their parts."""

    def extract(resource: Resource) -> Iterable[IndexValue]:
        found: list[IndexValue] = []
        for path in paths:
            for value in values_at(resource, path):
                if isinstance(value, str):
                    found.append((None, value))
                elif isinstance(value, dict):
                    for key in ("text", "family", "given", "city", "line"):
                        parts = value.get(key)
                        for part in parts if isinstance(parts, list) else [parts]:
                            if isinstance(part, str):
                                found.append((None, part))
        return found

    return extract


def _patient_reference(*paths: str) -> Callable[[Resource], Iterable[IndexValue]]:
    return references(*paths, types=("Patient",))


# -- validation ----------------------------------------------------------------------------------


@dataclass
class Context:
    """What validation may look up: which resources exist, the server base, the test-identity guard.

    ``pending`` are ``Type/id`` that a transaction is about to create, so references
    between entries of one Bundle resolve. ``test_identities`` is the set of 12-digit
    personnummer the plan allows; None switches the guard off (loading foreign examples).
    """

    exists: Callable[[str, str], bool]
    stored_types: frozenset[str]
    base: str = ""
    test_identities: frozenset[str] | None = None
    pending: set[str] = field(default_factory=set)
    patients_with: Callable[[str, str], list[str]] = lambda system, value: []

    def resolves(self, rtype: str, rid: str) -> bool:
        return f"{rtype}/{rid}" in self.pending or self.exists(rtype, rid)


Validator = Callable[[Context, Resource], list[Issue]]


def check_json(resource: Resource) -> list[Issue]:
    """FHIR JSON rules: no nulls, no empty strings/arrays/objects, a valid id."""
    rtype = resource.get("resourceType", "Resource")
    issues = []
    for path, value in walk(resource, str(rtype)):
        if value is None:
            issues.append(Issue("null is not allowed in FHIR JSON; leave the element out", "structure", path))
        elif value == "" or value == [] or value == {}:
            issues.append(Issue("empty values are not allowed in FHIR JSON", "structure", path))
    rid = resource.get("id")
    if rid is not None and (not isinstance(rid, str) or not FHIR_ID.match(rid)):
        issues.append(Issue(f"id {rid!r} is not a FHIR id ([A-Za-z0-9-.], 1–64)", "value", f"{rtype}.id"))
    return issues


def check_identifiers(ctx: Context, resource: Resource) -> list[Issue]:
    """Swedish identifiers anywhere in the resource follow their rules; personnummer are test identities."""
    issues = []
    for path, value in walk(resource, str(resource.get("resourceType"))):
        if not (isinstance(value, dict) and isinstance(value.get("system"), str)):
            continue
        system, ident = value["system"], value.get("value")
        if not isinstance(ident, str):
            continue
        problem = _check_identifier(system, ident)
        if problem:
            issues.append(Issue(problem, "value", f"{path}.value"))
        elif (
            ctx.test_identities is not None
            and system in (PERSONNUMMER_SYSTEM, SAMORDNINGSNUMMER_SYSTEM)
            and personnummer_digits(ident) not in ctx.test_identities
        ):
            issues.append(
                Issue(
                    f"{ident} is not a test identity of the plan; only the plan's test_identities "
                    "(and reserve identities) may be stored",
                    "business-rule",
                    f"{path}.value",
                )
            )
    return issues


def check_references(ctx: Context, resource: Resource) -> list[Issue]:
    """References to types held here resolve; ``#id`` names a contained resource; URNs are Bundle-only."""
    rtype = str(resource.get("resourceType"))
    contained = {c.get("id") for c in resource.get("contained") or [] if isinstance(c, dict)}
    me = (rtype, resource.get("id"))
    issues = []
    for path, value in walk(resource, rtype):
        if not path.endswith(".reference") or not isinstance(value, str):
            continue
        where = path.removesuffix(".reference")
        if value.startswith("#"):
            if value != "#" and value[1:] not in contained:
                issues.append(Issue(f"{value} names no contained resource", "not-found", where))
            continue
        if value.startswith(("urn:uuid:", "urn:oid:")):
            issues.append(
                Issue(
                    f"{value} does not resolve (only a transaction Bundle can define it)", "not-found", where
                )
            )
            continue
        parsed = parse_reference(value)
        if parsed is None:
            if "://" not in value:
                issues.append(
                    Issue(f"{value!r} is not a reference (Type/id or an absolute URL)", "value", where)
                )
            continue
        target_type, target_id = parsed
        if not is_local(value, ctx.base) or target_type not in ctx.stored_types:
            continue  # another server's resource, or a type that lives in another system
        if (target_type, target_id) == me or ctx.resolves(target_type, target_id):
            continue
        issues.append(Issue(f"{target_type}/{target_id} does not exist", "not-found", where))
    return issues


def _targets(resource: Resource, rules: dict[str, tuple[str, ...]]) -> list[Issue]:
    """The main references point at the resource types R4 allows for them."""
    rtype = resource["resourceType"]
    issues = []
    for path, allowed in rules.items():
        for value in values_at(resource, path):
            ref = value.get("reference") if isinstance(value, dict) else None
            parsed = parse_reference(ref) if isinstance(ref, str) else None
            if parsed and parsed[0] not in allowed:
                names = ", ".join(allowed[:-1]) + (" or " if len(allowed) > 1 else "") + allowed[-1]
                issues.append(
                    Issue(f"{path} must reference {names}, got {ref!r}", "value", f"{rtype}.{path}")
                )
    return issues


def _code(resource: Resource, element: str, allowed: tuple[str, ...], required: bool) -> list[Issue]:
    value = resource.get(element)
    where = f"{resource['resourceType']}.{element}"
    if value is None:
        if required:
            return [Issue(f"{element} is required (one of {', '.join(allowed)})", "required", where)]
        return []
    if value not in allowed:
        return [Issue(f"{element} must be one of {', '.join(allowed)}; got {value!r}", "value", where)]
    return []


def _concept(resource: Resource, element: str, required: bool, why: str = "") -> list[Issue]:
    value = resource.get(element)
    where = f"{resource['resourceType']}.{element}"
    if value is None:
        return [Issue(f"{element} is required{why}", "required", where)] if required else []
    codings = value.get("coding") if isinstance(value, dict) else None
    has_coding = isinstance(codings, list) and any(isinstance(c, dict) and c.get("code") for c in codings)
    if not isinstance(value, dict) or not (has_coding or value.get("text")):
        return [Issue(f"{element} must be a CodeableConcept with a coding or text", "value", where)]
    return []


def _required(resource: Resource, *elements: str) -> list[Issue]:
    return [
        Issue(f"{e} is required", "required", f"{resource['resourceType']}.{e}")
        for e in elements
        if resource.get(e) is None
    ]


def has_category(resource: Resource, category: dict[str, str]) -> bool:
    return any(
        c.get("system") == category["system"] and c.get("code") == category["code"]
        for c in values_at(resource, "category.coding")
        if isinstance(c, dict)
    )


def is_lab_order(resource: Resource) -> bool:
    return resource.get("resourceType") == "ServiceRequest" and has_category(resource, LAB_CATEGORY)


def is_referral(resource: Resource) -> bool:
    return resource.get("resourceType") == "ServiceRequest" and has_category(resource, REFERRAL_CATEGORY)


GENDER = ("male", "female", "other", "unknown")
ENCOUNTER_STATUS = (
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
)
REQUEST_STATUS = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown")
REQUEST_INTENT = (
    "proposal",
    "plan",
    "directive",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
)
REQUEST_PRIORITY = ("routine", "urgent", "asap", "stat")
TASK_STATUS = (
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
)
TASK_INTENT = (
    "unknown",
    "proposal",
    "plan",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
)
REPORT_STATUS = (
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
    "unknown",
)
OBSERVATION_STATUS = (
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
)
LOCATION_STATUS = ("active", "suspended", "inactive")
LOCATION_MODE = ("instance", "kind")

_PRACTITIONERS = ("Practitioner", "PractitionerRole")
_PERFORMERS = (
    *_PRACTITIONERS,
    "Organization",
    "CareTeam",
    "HealthcareService",
    "Patient",
    "Device",
    "RelatedPerson",
)


def validate_patient(ctx: Context, resource: Resource) -> list[Issue]:
    issues = _code(resource, "gender", GENDER, required=False)
    issues += _targets(
        resource,
        {
            "managingOrganization": ("Organization",),
            "generalPractitioner": ("Organization", "Practitioner", "PractitionerRole"),
            "link.other": ("Patient", "RelatedPerson"),
        },
    )
    if ctx.test_identities is None:
        return issues
    ours = [
        (i.get("system"), i.get("value"))
        for i in resource.get("identifier") or []
        if isinstance(i, dict) and i.get("system") in PATIENT_SYSTEMS and isinstance(i.get("value"), str)
    ]
    if not ours:
        issues.append(
            Issue(
                "a patient needs a personnummer or samordningsnummer from the plan's test identities, "
                f"or a reservnummer ({RESERVNUMMER_SYSTEM})",
                "business-rule",
                "Patient.identifier",
            )
        )
    for system, value in ours:
        others = [pid for pid in ctx.patients_with(system, value) if pid != resource.get("id")]
        if others:
            issues.append(
                Issue(
                    f"another patient already has {value}: Patient/{others[0]}",
                    "duplicate",
                    "Patient.identifier",
                )
            )
    return issues


def validate_encounter(ctx: Context, resource: Resource) -> list[Issue]:
    issues = _code(resource, "status", ENCOUNTER_STATUS, required=True)
    klass = resource.get("class")
    if klass is None:
        issues.append(
            Issue("class is required (a Coding, e.g. v3-ActCode IMP/EMER/AMB)", "required", "Encounter.class")
        )
    elif not isinstance(klass, dict) or not klass.get("code"):
        issues.append(Issue("class must be a Coding with a code", "value", "Encounter.class"))
    return issues + _targets(
        resource,
        {
            "subject": ("Patient", "Group"),
            "serviceProvider": ("Organization",),
            "location.location": ("Location",),
            "participant.individual": (*_PRACTITIONERS, "RelatedPerson"),
            "partOf": ("Encounter",),
            "basedOn": ("ServiceRequest",),
        },
    )


def validate_service_request(ctx: Context, resource: Resource) -> list[Issue]:
    issues = _code(resource, "status", REQUEST_STATUS, required=True)
    issues += _code(resource, "intent", REQUEST_INTENT, required=True)
    issues += _code(resource, "priority", REQUEST_PRIORITY, required=False)
    lab, referral = is_lab_order(resource), is_referral(resource)
    subject = resource.get("subject")
    target = parse_reference(str(subject.get("reference", ""))) if isinstance(subject, dict) else None
    if not isinstance(subject, dict):
        issues.append(Issue("subject is required", "required", "ServiceRequest.subject"))
    elif (lab or referral) and (target is None or target[0] != "Patient"):
        what = "lab order" if lab else "referral"
        issues.append(
            Issue(f"a {what} needs subject.reference to a Patient", "required", "ServiceRequest.subject")
        )
    kind = " for a lab order" if lab else " for a referral" if referral else ""
    issues += _concept(resource, "code", required=lab or referral, why=kind)
    if referral and not resource.get("performer"):
        issues.append(
            Issue("a referral needs a performer (the receiving unit)", "required", "ServiceRequest.performer")
        )
    return issues + _targets(
        resource,
        {
            "subject": ("Patient", "Group", "Location", "Device"),
            "encounter": ("Encounter",),
            "requester": (*_PRACTITIONERS, "Organization", "Patient", "RelatedPerson", "Device"),
            "performer": _PERFORMERS,
            "basedOn": ("CarePlan", "ServiceRequest", "MedicationRequest"),
            "locationReference": ("Location",),
        },
    )


def validate_task(ctx: Context, resource: Resource) -> list[Issue]:
    issues = _code(resource, "status", TASK_STATUS, required=True)
    issues += _code(resource, "intent", TASK_INTENT, required=True)
    issues += _code(resource, "priority", REQUEST_PRIORITY, required=False)
    for index, output in enumerate(resource.get("output") or []):
        if isinstance(output, dict) and "type" not in output:
            issues.append(Issue("output.type is required", "required", f"Task.output[{index}].type"))
    return issues + _targets(
        resource,
        {
            "partOf": ("Task",),
            "encounter": ("Encounter",),
            "requester": ("Device", "Organization", "Patient", *_PRACTITIONERS, "RelatedPerson"),
            "owner": _PERFORMERS,
            "location": ("Location",),
        },
    )


def validate_diagnostic_report(ctx: Context, resource: Resource) -> list[Issue]:
    issues = _code(resource, "status", REPORT_STATUS, required=True)
    issues += _concept(resource, "code", required=True)
    return issues + _targets(
        resource,
        {
            "subject": ("Patient", "Group", "Device", "Location"),
            "encounter": ("Encounter",),
            "basedOn": (
                "CarePlan",
                "ImmunizationRecommendation",
                "MedicationRequest",
                "NutritionOrder",
                "ServiceRequest",
            ),
            "performer": (*_PRACTITIONERS, "Organization", "CareTeam"),
            "resultsInterpreter": (*_PRACTITIONERS, "Organization", "CareTeam"),
            "result": ("Observation",),
            "specimen": ("Specimen",),
        },
    )


def validate_observation(ctx: Context, resource: Resource) -> list[Issue]:
    issues = _code(resource, "status", OBSERVATION_STATUS, required=True)
    issues += _concept(resource, "code", required=True)
    return issues + _targets(
        resource,
        {
            "subject": ("Patient", "Group", "Device", "Location"),
            "encounter": ("Encounter",),
            "basedOn": (
                "CarePlan",
                "DeviceRequest",
                "ImmunizationRecommendation",
                "MedicationRequest",
                "NutritionOrder",
                "ServiceRequest",
            ),
            "performer": (*_PRACTITIONERS, "Organization", "CareTeam", "Patient", "RelatedPerson"),
            "hasMember": ("Observation", "QuestionnaireResponse", "MolecularSequence"),
        },
    )


def validate_organization(ctx: Context, resource: Resource) -> list[Issue]:
    issues = []
    if not resource.get("identifier") and not resource.get("name"):
        issues.append(
            Issue("an Organization needs an identifier or a name (org-1)", "invariant", "Organization")
        )
    return issues + _targets(resource, {"partOf": ("Organization",)})


def validate_location(ctx: Context, resource: Resource) -> list[Issue]:
    issues = _code(resource, "status", LOCATION_STATUS, required=False)
    issues += _code(resource, "mode", LOCATION_MODE, required=False)
    return issues + _targets(resource, {"managingOrganization": ("Organization",), "partOf": ("Location",)})


def validate_practitioner(ctx: Context, resource: Resource) -> list[Issue]:
    return _code(resource, "gender", GENDER, required=False)


def validate_practitioner_role(ctx: Context, resource: Resource) -> list[Issue]:
    return _targets(
        resource,
        {"practitioner": ("Practitioner",), "organization": ("Organization",), "location": ("Location",)},
    )


# -- the declarations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    """What the EHR offers for one resource type; drives routing, validation and the CapabilityStatement."""

    name: str
    interactions: tuple[str, ...]
    params: tuple[SearchParam, ...] = ()
    validate: Validator | None = None
    documentation: str = ""


WRITE = ("read", "search-type", "create", "update")


def _token(coding: dict[str, str]) -> str:
    return f"{coding['system']}|{coding['code']}"


def _identifier_param(documentation: str = "system|value") -> SearchParam:
    return SearchParam("identifier", "token", tokens("identifier"), documentation)


def _patient_params(*paths: str) -> tuple[SearchParam, ...]:
    return (
        SearchParam("subject", "reference", references(*paths), "Patient/{id}", target="Patient"),
        SearchParam(
            "patient", "reference", _patient_reference(*paths), "Patient/{id} or {id}", target="Patient"
        ),
    )


RESOURCE_TYPES: dict[str, ResourceType] = {
    t.name: replace(t, params=with_identifier_modifiers(t.params))
    for t in (
        ResourceType(
            "Patient",
            WRITE,
            (
                SearchParam(
                    "identifier",
                    "token",
                    tokens("identifier"),
                    f"personnummer as {PERSONNUMMER_SYSTEM}|YYYYMMDDNNNN (dash optional, system optional); "
                    f"reservnummer as {RESERVNUMMER_SYSTEM}|YYYYMMDDGggC",
                    normalize=patient_identifier_value,
                ),
                SearchParam("name", "string", strings("name"), "start of any part of the name, any case"),
                SearchParam("birthdate", "token", tokens("birthDate"), "YYYY-MM-DD"),
            ),
            validate_patient,
            "Only the plan's test identities, and reserve identities (VGR reservnummer) for unknown "
            "patients, may exist: any other personnummer is refused (422).",
        ),
        ResourceType(
            "Encounter",
            WRITE,
            (
                *_patient_params("subject"),
                SearchParam("status", "token", tokens("status"), "planned | in-progress | finished | …"),
                SearchParam("class", "token", tokens("class"), f"{ACT_CODE_SYSTEM}|IMP, EMER or AMB"),
                SearchParam(
                    "service-provider",
                    "reference",
                    references("serviceProvider"),
                    "Organization/{id}",
                    target="Organization",
                ),
                SearchParam(
                    "location",
                    "reference",
                    references("location.location"),
                    "Location/{id}",
                    target="Location",
                ),
                _identifier_param(),
            ),
            validate_encounter,
            "Admissions (inskrivning) at a site: serviceProvider is the site's Organization.",
        ),
        ResourceType(
            "ServiceRequest",
            WRITE,
            (
                *_patient_params("subject"),
                SearchParam(
                    "category",
                    "token",
                    tokens("category"),
                    f"lab orders {_token(LAB_CATEGORY)}, referrals {_token(REFERRAL_CATEGORY)}",
                ),
                SearchParam("code", "token", tokens("code"), f"e.g. {NPU_SYSTEM}|NPU19748 (P-CRP)"),
                SearchParam("status", "token", tokens("status"), "active | completed | …"),
                SearchParam("intent", "token", tokens("intent"), "order | …"),
                SearchParam(
                    "requester",
                    "reference",
                    references("requester"),
                    "Practitioner/{id}",
                    target="Practitioner",
                ),
                SearchParam(
                    "performer",
                    "reference",
                    references("performer"),
                    "Organization/{id} (receiver)",
                    target="Organization",
                ),
                SearchParam(
                    "encounter", "reference", references("encounter"), "Encounter/{id}", target="Encounter"
                ),
                _identifier_param(),
            ),
            validate_service_request,
            "Lab orders and referrals, told apart by category. A lab order needs a code; a referral "
            "needs a code and a performer (the receiving Organization); the referral question is "
            "note[0].text, kept byte-identical.",
        ),
        ResourceType(
            "Task",
            WRITE,
            (
                SearchParam("status", "token", tokens("status"), "requested | received | completed | …"),
                SearchParam(
                    "owner",
                    "reference",
                    references("owner"),
                    "Organization/{id} (receiving unit)",
                    target="Organization",
                ),
                SearchParam(
                    "requester",
                    "reference",
                    references("requester"),
                    "Practitioner/{id}",
                    target="Practitioner",
                ),
                SearchParam(
                    "focus",
                    "reference",
                    references("focus"),
                    "ServiceRequest/{id} (the referral)",
                    target="ServiceRequest",
                ),
                SearchParam(
                    "based-on",
                    "reference",
                    references("basedOn"),
                    "ServiceRequest/{id}",
                    target="ServiceRequest",
                ),
                SearchParam(
                    "subject", "reference", references("for"), "Patient/{id} (Task.for)", target="Patient"
                ),
                SearchParam(
                    "patient",
                    "reference",
                    _patient_reference("for"),
                    "Patient/{id} or {id}",
                    target="Patient",
                ),
                SearchParam("code", "token", tokens("code"), f"{TASK_CODE_SYSTEM}|fulfill"),
                SearchParam("business-status", "token", tokens("businessStatus"), "free text code"),
                _identifier_param(),
            ),
            validate_task,
            "Referral workflow: requested → received → completed; the answer is "
            "output[type.text='Remissvar'].valueString, kept byte-identical.",
        ),
        ResourceType(
            "DiagnosticReport",
            WRITE,
            (
                *_patient_params("subject"),
                SearchParam(
                    "based-on",
                    "reference",
                    references("basedOn"),
                    "ServiceRequest/{id} (the order)",
                    target="ServiceRequest",
                ),
                SearchParam("code", "token", tokens("code"), "system|code"),
                SearchParam("status", "token", tokens("status"), "final | preliminary | …"),
                SearchParam("category", "token", tokens("category"), "system|code"),
                SearchParam(
                    "result", "reference", references("result"), "Observation/{id}", target="Observation"
                ),
                _identifier_param(),
            ),
            validate_diagnostic_report,
            "Lab results; result lists the Observations.",
        ),
        ResourceType(
            "Observation",
            WRITE,
            (
                *_patient_params("subject"),
                SearchParam(
                    "based-on",
                    "reference",
                    references("basedOn"),
                    "ServiceRequest/{id} (the order)",
                    target="ServiceRequest",
                ),
                SearchParam("code", "token", tokens("code"), f"e.g. {NPU_SYSTEM}|NPU19748"),
                SearchParam("status", "token", tokens("status"), "final | preliminary | …"),
                SearchParam("category", "token", tokens("category"), "system|code"),
                SearchParam(
                    "encounter", "reference", references("encounter"), "Encounter/{id}", target="Encounter"
                ),
                _identifier_param(),
            ),
            validate_observation,
            "Measured values of a lab result.",
        ),
        ResourceType(
            "Organization",
            WRITE,
            (
                _identifier_param(f"HSA-id as {HSA_ID_SYSTEM}|SE…"),
                SearchParam("name", "string", strings("name", "alias"), "start of the name, any case"),
                SearchParam(
                    "partof", "reference", references("partOf"), "Organization/{id}", target="Organization"
                ),
            ),
            validate_organization,
            "One per plan site (id = the site id), identified by its HSA-id.",
        ),
        ResourceType(
            "Location",
            WRITE,
            (
                _identifier_param(),
                SearchParam("name", "string", strings("name", "alias"), "start of the name, any case"),
                SearchParam(
                    "organization",
                    "reference",
                    references("managingOrganization"),
                    "Organization/{id}",
                    target="Organization",
                ),
                SearchParam("partof", "reference", references("partOf"), "Location/{id}", target="Location"),
            ),
            validate_location,
            "One per plan site (id = the site id) and one per printer location named in the plan.",
        ),
        ResourceType(
            "Practitioner",
            WRITE,
            (
                _identifier_param(f"HSA-id as {HSA_ID_SYSTEM}|SE…"),
                SearchParam("name", "string", strings("name"), "start of any part of the name, any case"),
            ),
            validate_practitioner,
            "The plan's users (id = HSA-id).",
        ),
        ResourceType(
            "PractitionerRole",
            WRITE,
            (
                _identifier_param(f"HSA-id as {HSA_ID_SYSTEM}|SE…"),
                SearchParam(
                    "practitioner",
                    "reference",
                    references("practitioner"),
                    "Practitioner/{id}",
                    target="Practitioner",
                ),
                SearchParam(
                    "organization",
                    "reference",
                    references("organization"),
                    "Organization/{id}",
                    target="Organization",
                ),
                SearchParam("role", "token", tokens("code"), "the plan's role text, e.g. läkare"),
            ),
            validate_practitioner_role,
            "A plan user's role at a site (organization = the site).",
        ),
    )
}


def validate(ctx: Context, rtype: ResourceType, resource: Resource) -> list[Issue]:
    """Every problem with a resource on its way in (all three layers; empty when it may be stored)."""
    issues = check_json(resource)
    if issues:
        return issues
    issues = check_identifiers(ctx, resource) + check_references(ctx, resource)
    if rtype.validate is not None:
        issues += rtype.validate(ctx, resource)
    return issues


# -- builders: what the seed and the web UI write ---------------------------------------------------


def reference(rtype: str, rid: str, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"{rtype}/{rid}"}
    if display:
        ref["display"] = display
    return ref


def hsa_identifier(hsa_id: str) -> dict[str, str]:
    return {"system": HSA_ID_SYSTEM, "value": hsa_id}


def patient_resource(personnummer: str, name: str, phone: str | None = None) -> Resource:
    """A plan test identity as a Patient (personnummer or samordningsnummer as 12 digits)."""
    digits = personnummer_digits(personnummer)
    assert digits is not None  # the plan validated it
    samordning = is_samordningsnummer(digits)
    day = int(digits[6:8]) - (60 if samordning else 0)
    given, _, family = name.rpartition(" ")
    human: dict[str, Any] = {"use": "official", "text": name, "family": family or name}
    if given:
        human["given"] = given.split()
    patient: Resource = {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "official",
                "system": SAMORDNINGSNUMMER_SYSTEM if samordning else PERSONNUMMER_SYSTEM,
                "value": digits,
            }
        ],
        "active": True,
        "name": [human],
        "gender": "male" if int(digits[10]) % 2 else "female",
        "birthDate": f"{digits[:4]}-{digits[4:6]}-{day:02d}",
    }
    if phone:
        patient["telecom"] = [{"system": "phone", "value": phone, "use": "mobile"}]
    return patient


UNKNOWN_NAMES = {"male": "Okänd man", "female": "Okänd kvinna", "unknown": "Okänd patient"}


def reserve_patient_resource(reservnummer: str, sex: str) -> Resource:
    """An unidentified patient under a VGR reservnummer; the name says it is a reserve identity."""
    ymd = reservnummer[:8]
    return {
        "resourceType": "Patient",
        "identifier": [{"use": "temp", "system": RESERVNUMMER_SYSTEM, "value": reservnummer}],
        "active": True,
        "name": [{"use": "temp", "text": f"{UNKNOWN_NAMES[sex]} {reservnummer}"}],
        "gender": sex,
        "birthDate": f"{ymd[:4]}-{ymd[4:6]}-{ymd[6:]}",
    }


def identity_of(patient: Resource) -> tuple[str, str]:
    """(label, value) of the patient's Swedish identity for people: ("Personnummer", "19121212-1212")."""
    labels = {
        PERSONNUMMER_SYSTEM: "Personnummer",
        SAMORDNINGSNUMMER_SYSTEM: "Samordningsnummer",
        RESERVNUMMER_SYSTEM: "Reservnummer",
    }
    for ident in patient.get("identifier", []):
        system = ident.get("system")
        if system in labels and isinstance(ident.get("value"), str):
            value = ident["value"]
            return labels[system], (value if system == RESERVNUMMER_SYSTEM else personnummer_display(value))
    return "Identitet", ""


def personnummer_of(patient: Resource) -> str:
    """The patient's personnummer, samordningsnummer or reservnummer in display form ("" if none)."""
    return identity_of(patient)[1]


def name_of(patient: Resource) -> str:
    names = patient.get("name") or [{}]
    return names[0].get("text") or " ".join([*names[0].get("given", []), names[0].get("family", "")]).strip()


def new_identifier() -> dict[str, str]:
    """A business identifier that survives a trip through another system (the bridge correlates on it)."""
    return {"system": URI_IDENTIFIER, "value": f"urn:uuid:{uuid.uuid4()}"}


ENCOUNTER_CLASSES = {
    "EMER": "Akut",
    "IMP": "Slutenvård",
    "AMB": "Öppenvård",
}


def encounter_resource(
    patient: str, site_id: str, site_name: str, klass: str, practitioner: str, practitioner_name: str
) -> Resource:
    return {
        "resourceType": "Encounter",
        "identifier": [new_identifier()],
        "status": "in-progress",
        "class": {"system": ACT_CODE_SYSTEM, "code": klass, "display": ENCOUNTER_CLASSES[klass]},
        "subject": reference("Patient", patient),
        "participant": [{"individual": reference("Practitioner", practitioner, practitioner_name)}],
        "period": {"start": now()},
        "location": [{"location": reference("Location", site_id, site_name), "status": "active"}],
        "serviceProvider": reference("Organization", site_id, site_name),
    }


def role_id(hsa_id: str, site_id: str) -> str:
    """The PractitionerRole id of a plan user at a site."""
    return stable_id(hsa_id, site_id)


def requester(role: str, hsa_id: str, name: str, role_name: str, site_name: str) -> dict[str, Any]:
    """A clinician as requester: their PractitionerRole (which names the site), HSA-id and a display."""
    return {
        "reference": f"PractitionerRole/{role}",
        "identifier": hsa_identifier(hsa_id),
        "display": f"{name}, {role_name}, {site_name}",
    }


def referral_resources(
    patient: str,
    question: str,
    receiver: tuple[str, str],
    sender: dict[str, Any],
    encounter: str | None = None,
) -> tuple[Resource, Resource]:
    """A referral (ServiceRequest) and its workflow Task (requested), to be created together.

    ``question`` is stored as written; the Task's ``focus`` is filled in by the caller
    (the ServiceRequest's id is known only once it is stored, or by a transaction's urn).
    """
    receiver_id, receiver_name = receiver
    stamp = now()
    request: Resource = {
        "resourceType": "ServiceRequest",
        "identifier": [new_identifier()],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [REFERRAL_CATEGORY], "text": "Remiss"}],
        "code": {"coding": [REFERRAL_CATEGORY], "text": f"Remiss till {receiver_name}"},
        "subject": reference("Patient", patient),
        "authoredOn": stamp,
        "requester": sender,
        "performer": [reference("Organization", receiver_id, receiver_name)],
        "note": [{"text": question, "time": stamp}],
    }
    if encounter:
        request["encounter"] = reference("Encounter", encounter)
    task: Resource = {
        "resourceType": "Task",
        "identifier": [new_identifier()],
        "status": "requested",
        "businessStatus": {"text": "Skickad"},
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": "fulfill"}], "text": "Remiss"},
        "for": reference("Patient", patient),
        "authoredOn": stamp,
        "lastModified": stamp,
        "requester": dict(sender),
        "owner": reference("Organization", receiver_id, receiver_name),
    }
    return request, task


ANSWER_TYPE = "Remissvar"


def referral_answer(task: Resource) -> str | None:
    """The answer text of a referral Task (``output`` of type "Remissvar"), or None if unanswered."""
    for output in task.get("output") or []:
        kind = output.get("type") or {}
        if kind.get("text") == ANSWER_TYPE and isinstance(output.get("valueString"), str):
            return str(output["valueString"])
    return None


def referral_question(request: Resource) -> str:
    notes = request.get("note") or [{}]
    return str(notes[0].get("text", ""))


@dataclass(frozen=True)
class ResultValue:
    """One measured value of a lab result, for :func:`result_bundle`."""

    code: dict[str, Any]
    value: float | str
    unit: str = ""
    low: float | None = None
    high: float | None = None


def result_bundle(order: Resource, values: list[ResultValue], performer: str = "Laboratoriet") -> Resource:
    """The transaction Bundle that files a lab result for an order: a DiagnosticReport and its Observations.

    This is the shape the coexistence bridge sends after an ORU^R01: every Observation and
    the report point at the order (``basedOn``) and at the order's patient (``subject``).
    """
    stamp = now()
    subject = order["subject"]
    observations = []
    for value in values:
        observation: Resource = {
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
            "code": value.code,
            "subject": subject,
            "basedOn": [reference("ServiceRequest", order["id"])],
            "effectiveDateTime": stamp,
            "issued": stamp,
        }
        if isinstance(value.value, str):
            observation["valueString"] = value.value
        else:
            quantity: dict[str, Any] = {"value": value.value}
            if value.unit:
                quantity.update(unit=value.unit, system="http://unitsofmeasure.org", code=value.unit)
            observation["valueQuantity"] = quantity
            if value.low is not None or value.high is not None:
                bounds: dict[str, Any] = {}
                for key, bound in (("low", value.low), ("high", value.high)):
                    if bound is not None:
                        bounds[key] = {"value": bound, **({"unit": value.unit} if value.unit else {})}
                observation["referenceRange"] = [bounds]
        observations.append((f"urn:uuid:{uuid.uuid4()}", observation))
    report: Resource = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}
        ],
        "code": order["code"],
        "subject": subject,
        "basedOn": [reference("ServiceRequest", order["id"])],
        "effectiveDateTime": stamp,
        "issued": stamp,
        "performer": [{"display": performer}],
        "result": [{"reference": url} for url, _ in observations],
    }
    entries = [
        {"fullUrl": url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
        for url, resource in [*observations, (f"urn:uuid:{uuid.uuid4()}", report)]
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
