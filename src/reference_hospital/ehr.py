"""The reference EHR: its records, business rules and FHIR R4 REST API.

Built from a plan: the patients are the plan's ``test_identities`` (plus reserve
identities registered for unknown patients), the organisations and locations are the
plan's sites, the practitioners are the sites' users — so nothing outside the test data
can ever be searched or shown. The :class:`Ehr` object is what both faces use, the FHIR
API here and the web UI in :mod:`reference_hospital.webui`, so a lab order placed in
the browser is the same ServiceRequest the API returns.

Every write goes one way: faults that bite on writes, validation of every resource
(:mod:`reference_hospital.fhir_resources`), then one all-or-nothing store transaction.
A single create, a PUT, a transaction Bundle and a referral answered in the browser
differ only in how many resources they bring.

Resource types are declared in ``fhir_resources.RESOURCE_TYPES``; the REST face is
:mod:`reference_hospital.fhir_api`, its routes and the CapabilityStatement are generated
from the declarations.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

from reference_hospital.ehr_faults import (
    EHR_DOWN,
    HSA_MISMATCH,
    LOGIN_DENIED_ROLE,
    WRONG_PATIENT_RESULT,
    active_at,
    lab_order_delay,
    mismatched_hsa_id,
    register_ehr_faults,
)
from reference_hospital.faults import FaultBoard, patient_search_delay
from reference_hospital.fhir_resources import (
    ANSWER_TYPE,
    LAB_CATEGORY,
    NPU_SYSTEM,
    PERSONNUMMER_SYSTEM,
    REFERRAL_CATEGORY,
    RESERVNUMMER_SYSTEM,
    RESOURCE_TYPES,
    SAMORDNINGSNUMMER_SYSTEM,
    Context,
    FhirError,
    Issue,
    ResourceType,
    encounter_resource,
    hsa_identifier,
    name_of,
    parse_reference,
    patient_id,
    patient_resource,
    personnummer_digits,
    personnummer_display,
    personnummer_of,
    reference,
    referral_resources,
    requester,
    reserve_patient_resource,
    role_id,
    stable_id,
    validate,
)
from reference_hospital.store import (
    BadSearchValue,
    Resource,
    ResourceStore,
    UnknownSearchParam,
    VersionConflict,
    Write,
    Written,
    now,
)
from rehearsal.identities import HSA_ID_SYSTEM, IdentityError, make_reservnummer
from rehearsal.plan import Plan

log = logging.getLogger("reference_hospital.ehr")

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"

__all__ = [
    "FHIR_JSON",
    "LAB_TESTS",
    "NPU_SYSTEM",
    "PERSONNUMMER_SYSTEM",
    "RESERVNUMMER_SYSTEM",
    "SAMORDNINGSNUMMER_SYSTEM",
    "Clinician",
    "Ehr",
    "FhirError",
    "Issue",
    "Refusal",
    "Resource",
    "name_of",
    "patient_id",
    "personnummer_digits",
    "personnummer_display",
    "personnummer_of",
]


# -- test data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabTest:
    """An orderable lab analysis: the short name clinicians know, its NPU code, a Swedish name."""

    code: str
    npu: str
    display: str
    unit: str = ""

    def concept(self) -> dict[str, Any]:
        return {
            "coding": [{"system": NPU_SYSTEM, "code": self.npu, "display": self.code}],
            "text": f"{self.code} {self.display}",
        }


LAB_TESTS: dict[str, LabTest] = {
    t.code: t
    for t in (
        LabTest("B-Hb", "NPU02319", "Hemoglobin", "g/L"),
        LabTest("P-CRP", "NPU19748", "C-reaktivt protein", "mg/L"),
        LabTest("P-Na", "NPU03429", "Natrium", "mmol/L"),
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

    def as_requester(self) -> dict[str, Any]:
        """The clinician in their role at their site, as the requester of an order or referral."""
        return requester(
            role_id(self.hsa_id, self.site_id), self.hsa_id, self.name, self.role, self.site_name
        )


@dataclass(frozen=True)
class OrgUnit:
    """A site or a unit of the plan as the EHR sees it: its Organization, HSA-id, site, and EHR."""

    id: str
    name: str
    hsa_id: str
    site: str
    parent: str | None
    system: str  # "new" or "legacy"


class Refusal(Exception):
    """A clinical action the EHR refuses by its rules; the message is Swedish, for the user."""


@dataclass(frozen=True)
class Referral:
    """A referral as the screens show it: the request, its workflow task, and the patient."""

    request: Resource
    task: Resource
    patient: Resource | None


# -- the EHR -------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """One resource on its way in: what to do with it, and how the answer should describe it."""

    action: Literal["create", "update"]
    resource: Resource
    id: str | None = None
    if_match: str | None = None
    where: str = ""  # prefix for issue expressions (``Bundle.entry[2].resource``)


class Ehr:
    """The hospital's record: store, known clinicians and the rules both the API and the UI go through.

    ``test_identities_only=False`` switches the test-identity guard off; it exists to load
    foreign example data (the official HL7 examples test) and is never off in a hospital.
    """

    def __init__(
        self,
        plan: Plan,
        database: Path | str,
        board: FaultBoard | None = None,
        environ: dict[str, str] | None = None,
        *,
        test_identities_only: bool = True,
    ) -> None:
        self.plan = plan
        self.board = board or FaultBoard()
        self.types: dict[str, ResourceType] = dict(RESOURCE_TYPES)
        self.store = ResourceStore(database, {t.name: t.params for t in self.types.values()})
        self.clinicians = _clinicians(plan, os.environ if environ is None else environ)
        self.started = now()
        self.base = plan.environment.fhir_base
        self.test_identities: frozenset[str] | None = (
            frozenset(personnummer_digits(i.personnummer) or "" for i in plan.test_identities)
            if test_identities_only
            else None
        )
        register_ehr_faults(self.board, self.set_site_hsa)

    # -- seed ----------------------------------------------------------------------------------

    def seed(self) -> None:
        """Write the plan into the record: sites and units, their locations, users and roles, test patients.

        Every site and unit is an Organization with its HSA-id (units ``partOf`` their site)
        and a Location; printer locations named in the plan are Locations within the site.
        Practitioners and roles are the users of sites on the new EHR (legacy sites work in
        the legacy EHR). Idempotent: every resource has a stable id and is written as an update.
        """
        entries: list[_Entry] = []
        for site in self.plan.sites:
            site_ref = reference("Organization", site.id, site.name)
            entries.append(_Entry("update", self._organization(site.id), site.id))
            entries.append(_Entry("update", _location(site.name, "si", "Site", site_ref), site.id))
            for unit in site.units:
                entries.append(_Entry("update", self._organization(unit.id), unit.id))
                entries.append(
                    _Entry(
                        "update",
                        _location(
                            unit.name,
                            "wa",
                            "Ward",
                            reference("Organization", unit.id, unit.name),
                            reference("Location", site.id, site.name),
                        ),
                        unit.id,
                    )
                )
            for place in dict.fromkeys(p.location for p in site.printers if p.location):
                entries.append(
                    _Entry(
                        "update",
                        _location(place, "area", "Area", site_ref, reference("Location", site.id, site.name)),
                        stable_id(site.id, place),
                    )
                )
        seen: set[str] = set()
        for site in self.plan.sites:
            if site.system == "legacy":
                continue
            for user in site.users:
                if user.hsa_id not in seen:
                    seen.add(user.hsa_id)
                    entries.append(_Entry("update", _practitioner(user.hsa_id, user.name), user.hsa_id))
                entries.append(
                    _Entry(
                        "update",
                        {
                            "resourceType": "PractitionerRole",
                            "identifier": [hsa_identifier(user.hsa_id)],
                            "active": True,
                            "practitioner": reference("Practitioner", user.hsa_id, user.name),
                            "organization": reference("Organization", site.id, site.name),
                            "location": [reference("Location", site.id, site.name)],
                            "code": [{"text": user.role}],
                        },
                        role_id(user.hsa_id, site.id),
                    )
                )
        for identity in self.plan.test_identities:
            entries.append(
                _Entry(
                    "update",
                    patient_resource(identity.personnummer, identity.name),
                    patient_id(identity.personnummer),
                )
            )
        self._commit_now(entries)

    def units(self) -> dict[str, OrgUnit]:
        """Every site and unit of the plan by Organization id (the site's or unit's id), in plan order."""
        found: dict[str, OrgUnit] = {}
        for site in self.plan.sites:
            found[site.id] = OrgUnit(site.id, site.name, site.hsa_id, site.id, None, site.system)
            for unit in site.units:
                found[unit.id] = OrgUnit(
                    unit.id, unit.name, unit.hsa_id, site.id, site.id, unit.system or site.system
                )
        return found

    def _organization(self, org_id: str, mismatched: bool | None = None) -> Resource:
        unit = self.units()[org_id]
        hsa = unit.hsa_id
        if mismatched if mismatched is not None else active_at(self.board, HSA_MISMATCH, unit.site):
            hsa = mismatched_hsa_id(hsa)
        organization: Resource = {
            "resourceType": "Organization",
            "identifier": [{"use": "official", **hsa_identifier(hsa)}],
            "active": True,
            "name": unit.name,
        }
        if unit.parent:
            organization["partOf"] = reference("Organization", unit.parent, self.units()[unit.parent].name)
        return organization

    def set_site_hsa(self, site_id: str, mismatched: bool) -> None:
        """The ``hsa-mismatch`` effect: the Organizations of a site and its units get a wrong HSA-id."""
        ids = [org for org, unit in self.units().items() if unit.site == site_id]
        self._commit_now([_Entry("update", self._organization(org, mismatched), org) for org in ids])

    def site_of_reference(self, ref: Any) -> str | None:
        """The plan site behind a Reference: an Organization or PractitionerRole of ours, or an HSA-id.

        The HSA-id (``Reference.identifier``) may be a site's, a unit's or a user's: other
        systems (the coexistence bridge) write logical references like that.
        """
        if not isinstance(ref, dict):
            return None
        units = self.units()
        parsed = parse_reference(str(ref.get("reference", "")))
        if parsed and parsed[0] == "Organization" and parsed[1] in units:
            return units[parsed[1]].site
        if parsed and parsed[0] == "PractitionerRole":
            role = self.store.read("PractitionerRole", parsed[1]) or {}
            return self.site_of_reference(role.get("organization"))
        ident = ref.get("identifier") if isinstance(ref.get("identifier"), dict) else {}
        value = ident.get("value")
        if isinstance(value, str):
            if value in self.clinicians:
                return self.clinicians[value].site_id
            by_hsa = {unit.hsa_id: unit.site for unit in units.values()}
            return by_hsa.get(value)
        return None

    def site_of(self, order: Resource) -> str | None:
        """The plan site an order (or referral) comes from: its requester, else its encounter's unit."""
        site = self.site_of_reference(order.get("requester"))
        if site is not None:
            return site
        enc = parse_reference(str((order.get("encounter") or {}).get("reference", "")))
        encounter = self.store.read("Encounter", enc[1]) if enc and enc[0] == "Encounter" else None
        return self.site_of_reference((encounter or {}).get("serviceProvider"))

    # -- people --------------------------------------------------------------------------------

    def authenticate(self, hsa_id: str, password: str) -> Clinician | None:
        """The clinician when HSA-id and password match; None otherwise (no hint which part was wrong)."""
        clinician = self.clinicians.get(hsa_id.strip())
        if clinician is None or clinician.password is None:
            return None
        if not hmac.compare_digest(clinician.password.encode(), password.encode()):
            return None
        return clinician

    def access_denied(self, clinician: Clinician) -> str | None:
        """Why this (authenticated) clinician's role gives no access now, in Swedish; None when it does."""
        if active_at(self.board, LOGIN_DENIED_ROLE, clinician.site_id):
            return (
                f"Rollen {clinician.role} ger ingen behörighet till journalen på {clinician.site_name}. "
                "Kontakta behörighetsadministrationen."
            )
        return None

    @property
    def down(self) -> bool:
        return self.board.active(EHR_DOWN)

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
        self, rtype: str, criteria: Sequence[tuple[str, str]], limit: int | None = None
    ) -> list[Resource]:
        self.resource_type(rtype)
        if rtype == "Patient":
            await patient_search_delay(self.board)
        return self.search_now(rtype, criteria, limit)

    def search_now(
        self, rtype: str, criteria: Sequence[tuple[str, str]], limit: int | None = None
    ) -> list[Resource]:
        """A search without the fault delays (for the screens' own look-ups of related records)."""
        try:
            return self.store.search(rtype, criteria, limit)
        except (UnknownSearchParam, BadSearchValue) as exc:
            raise FhirError(
                400, Issue(str(exc), "not-supported" if isinstance(exc, UnknownSearchParam) else "value")
            ) from exc

    async def create(self, resource: Any, if_none_exist: str | None = None) -> Written:
        """FHIR create (optionally conditional): validated, stored with a server id; or the match (200)."""
        rtype = self._writable(resource)
        if if_none_exist:
            found = self._matches(rtype.name, if_none_exist)
            if found is not None:
                return Written(found, False)
        return (await self._commit([_Entry("create", resource)]))[0]

    async def update(self, name: str, rid: str, resource: Any, if_match: str | None = None) -> Written:
        """FHIR update: a new version of ``name/rid``, or its first version (update as create)."""
        self._writable(resource)
        return (await self._commit([_Entry("update", resource, rid, if_match)]))[0]

    def _writable(self, resource: Any) -> ResourceType:
        if not isinstance(resource, dict):
            raise FhirError(400, Issue("body must be a JSON object (a FHIR resource)", "structure"))
        name = resource.get("resourceType")
        if not isinstance(name, str) or not name:
            raise FhirError(400, Issue("resourceType is missing", "structure", "resourceType"))
        rtype = self.resource_type(name)
        if "create" not in rtype.interactions:
            raise FhirError(405, Issue(f"{name} cannot be created here", "not-supported"))
        return rtype

    def _matches(self, name: str, query: str) -> Resource | None:
        """The one resource a conditional create's query finds; None for none; 412 for several."""
        criteria = parse_qsl(query.lstrip("?"), keep_blank_values=True)
        if not criteria:
            raise FhirError(400, Issue(f"If-None-Exist {query!r} has no search parameters", "invalid"))
        found = self.search_now(name, criteria, limit=2)
        if len(found) > 1:
            raise FhirError(
                412, Issue(f"If-None-Exist {query!r} matches more than one {name}", "multiple-matches")
            )
        return found[0] if found else None

    async def transaction(self, bundle: Any) -> Resource:
        """A transaction Bundle: every entry is written, or none is (the first problems are reported)."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise FhirError(400, Issue("POST to the base needs a Bundle", "structure", "resourceType"))
        if bundle.get("type") != "transaction":
            raise FhirError(
                400,
                Issue(
                    f"only type 'transaction' is processed here, not {bundle.get('type')!r}",
                    "not-supported",
                    "Bundle.type",
                ),
            )
        raw_entries = bundle.get("entry") or []
        if not isinstance(raw_entries, list):
            raise FhirError(400, Issue("entry must be a list", "structure", "Bundle.entry"))
        entries: list[_Entry] = []
        answers: list[Resource | None] = []  # a conditional create that matched answers with the match
        names: dict[str, str] = {}  # fullUrl → Type/id
        targets: set[str] = set()
        for index, raw in enumerate(raw_entries):
            where = f"Bundle.entry[{index}]"
            if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
                raise FhirError(400, Issue("every entry needs a request", "structure", f"{where}.request"))
            request, resource = raw["request"], raw.get("resource")
            method, url = request.get("method"), str(request.get("url") or "")
            if method not in ("POST", "PUT"):
                raise FhirError(
                    400,
                    Issue(
                        f"entry method {method!r} is not supported (POST and PUT are)",
                        "not-supported",
                        f"{where}.request.method",
                    ),
                )
            rtype = self._writable(resource)
            path = url.split("?", 1)[0].strip("/")
            if method == "POST":
                if path != rtype.name:
                    raise FhirError(
                        400, Issue(f"POST of a {rtype.name} to {url!r}", "invalid", f"{where}.request.url")
                    )
                match = (
                    self._matches(rtype.name, request["ifNoneExist"]) if request.get("ifNoneExist") else None
                )
                rid = match["id"] if match else str(_uuid())
                action = "create"
            else:
                parsed = parse_reference(path)
                if parsed is None or parsed[0] != rtype.name or path != f"{parsed[0]}/{parsed[1]}":
                    raise FhirError(
                        400,
                        Issue(
                            f"PUT of a {rtype.name} needs url {rtype.name}/[id], got {url!r}",
                            "invalid",
                            f"{where}.request.url",
                        ),
                    )
                rid, match, action = parsed[1], None, "update"
                if resource.get("id") not in (None, rid):
                    raise FhirError(
                        400,
                        Issue(
                            f"resource id {resource.get('id')!r} differs from url {url!r}",
                            "invalid",
                            f"{where}.resource.id",
                        ),
                    )
            key = f"{rtype.name}/{rid}"
            if key in targets:
                raise FhirError(400, Issue(f"{key} appears twice in the transaction", "duplicate", where))
            targets.add(key)
            if isinstance(raw.get("fullUrl"), str):
                names[raw["fullUrl"]] = key
            answers.append(match)
            if match is None:
                if_match = request.get("ifMatch")
                entries.append(
                    _Entry(
                        action,
                        resource,
                        rid,
                        etag_version(if_match) if if_match else None,
                        f"{where}.resource",
                    )
                )
        for entry in entries:
            _rewrite_references(entry.resource, names)
        written = iter(await self._commit(entries))
        response_entries = []
        for match in answers:
            done = Written(match, False) if match is not None else next(written)
            stored = done.resource
            response_entries.append(
                {
                    "fullUrl": f"{self.base}/{stored['resourceType']}/{stored['id']}",
                    "resource": stored,
                    "response": {
                        "status": "201 Created" if done.created else "200 OK",
                        "location": _history_url(stored),
                        "etag": f'W/"{stored["meta"]["versionId"]}"',
                        "lastModified": stored["meta"]["lastUpdated"],
                    },
                }
            )
        return {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "meta": {"lastUpdated": now()},
            "entry": response_entries,
        }

    # -- the one way in ------------------------------------------------------------------------

    def context(self, pending: set[str] | None = None) -> Context:
        return Context(
            exists=self.store.exists,
            stored_types=frozenset(self.types),
            base=self.base,
            test_identities=self.test_identities,
            pending=pending or set(),
            patients_with=lambda system, value: [
                p["id"] for p in self.store.search("Patient", [("identifier", f"{system}|{value}")])
            ],
        )

    async def _commit(self, entries: list[_Entry]) -> list[Written]:
        """Faults that bite on writes, then validation and the all-or-nothing store transaction."""
        if any(f.name == WRONG_PATIENT_RESULT for f in self.board.faults()):
            for entry in entries:
                self._misfile(entry.resource)
        created = [e.resource for e in entries if e.action == "create" or not self._exists(e)]
        await lab_order_delay(self.board, created)
        return self._commit_now(entries)

    def _exists(self, entry: _Entry) -> bool:
        return entry.id is not None and self.store.exists(entry.resource["resourceType"], entry.id)

    def _commit_now(self, entries: list[_Entry]) -> list[Written]:
        pending = {f"{e.resource['resourceType']}/{e.id}" for e in entries if e.id}
        for entry in entries:
            if entry.action == "create" and entry.id is None:
                entry.id = str(_uuid())
                pending.add(f"{entry.resource['resourceType']}/{entry.id}")
        ctx = self.context(pending)
        issues: list[Issue] = []
        for entry in entries:
            name = entry.resource["resourceType"]
            body = {**entry.resource, "id": entry.id} if entry.id else entry.resource
            for issue in validate(ctx, self.types[name], body):
                if entry.where and issue.expression:
                    issue = Issue(
                        issue.diagnostics,
                        issue.code,
                        entry.where + issue.expression[len(name) :],
                        issue.severity,
                    )
                issues.append(issue)
        if issues:
            raise FhirError(422, *issues)
        try:
            return self.store.apply([Write(e.action, e.resource, e.id, e.if_match) for e in entries])
        except VersionConflict as exc:
            raise FhirError(412, Issue(str(exc), "conflict")) from exc
        except ValueError as exc:
            raise FhirError(409, Issue(str(exc), "duplicate")) from exc

    def _misfile(self, resource: Resource) -> None:
        """The ``wrong-patient-result`` fault: file a result on another test patient than its order's.

        Hospital-wide the fault hits every result; at a site, the results of that site's orders.
        """
        if resource.get("resourceType") not in ("DiagnosticReport", "Observation"):
            return
        subject = resource.get("subject")
        parsed = parse_reference(subject.get("reference", "")) if isinstance(subject, dict) else None
        if parsed is None or parsed[0] != "Patient":
            return
        orders = [
            self.store.read("ServiceRequest", ref[1])
            for ref in (parse_reference(str(b.get("reference", ""))) for b in resource.get("basedOn") or [])
            if ref and ref[0] == "ServiceRequest"
        ]
        sites = {self.site_of(order) for order in orders if order is not None}
        if not any(active_at(self.board, WRONG_PATIENT_RESULT, site) for site in sites | {None}):
            return
        plan_ids = [patient_id(i.personnummer) for i in self.plan.test_identities]
        others = [p for p in plan_ids if p != parsed[1]]
        if not others:
            others = [p["id"] for p in self.store.search("Patient") if p["id"] != parsed[1]]
        if not others:
            log.warning("wrong-patient-result: no other patient to file %s on", subject)
            return
        after = (
            plan_ids[(plan_ids.index(parsed[1]) + 1) % len(plan_ids)] if parsed[1] in plan_ids else others[0]
        )
        resource["subject"] = {"reference": f"Patient/{after if after != parsed[1] else others[0]}"}

    # -- the clinic's work (what the web UI does) ------------------------------------------------

    async def find_patient(self, identity: str) -> Resource | None:
        """The patient with this personnummer or reservnummer (any common spelling), or None."""
        if personnummer_digits(identity) is None and not re.fullmatch(
            r"\d{8}[KMXkmx]\d{3}", identity.strip()
        ):
            return None
        found = await self.search("Patient", [("identifier", identity.strip())])
        return found[0] if found else None

    async def register_known(self, personnummer: str, phone: str = "") -> Resource:
        """Register a plan test patient (the population register is the plan): demographics refreshed."""
        digits = personnummer_digits(personnummer)
        if digits is None:
            raise Refusal(f"Ogiltigt personnummer: {personnummer}. Skriv ÅÅÅÅMMDD-NNNN.")
        identity = next(
            (i for i in self.plan.test_identities if personnummer_digits(i.personnummer) == digits), None
        )
        if identity is None:
            raise Refusal(
                f"{personnummer_display(digits)} finns inte bland testidentiteterna. "
                "Registrera patienten som okänd (reservnummer)."
            )
        pid = patient_id(digits)
        current = self.store.read("Patient", pid) or {}
        patient = patient_resource(identity.personnummer, identity.name, phone.strip() or None)
        if not phone.strip() and current.get("telecom"):
            patient["telecom"] = current["telecom"]
        return (await self.update("Patient", pid, patient)).resource

    async def register_unknown(self, sex: str, birth_date: date) -> Resource:
        """Register an unidentified patient under a new VGR reservnummer (never a real person)."""
        issued = {
            i["value"]
            for p in self.store.search("Patient", [("identifier", f"{RESERVNUMMER_SYSTEM}|")])
            for i in p.get("identifier", [])
            if i.get("system") == RESERVNUMMER_SYSTEM
        }
        try:
            number = make_reservnummer(birth_date, sex, issued)
        except IdentityError as exc:
            raise Refusal(f"Inget reservnummer kunde skapas: {exc}") from exc
        return (
            await self.update("Patient", patient_id(number), reserve_patient_resource(number, sex))
        ).resource

    def encounters(self, patient: str) -> list[Resource]:
        return self.search_now("Encounter", [("subject", f"Patient/{patient}")])

    def current_encounter(self, patient: str, site_id: str) -> Resource | None:
        """The patient's ongoing admission at the site, if any."""
        ongoing = self.search_now(
            "Encounter",
            [
                ("subject", f"Patient/{patient}"),
                ("status", "in-progress"),
                ("service-provider", f"Organization/{site_id}"),
            ],
        )
        return ongoing[-1] if ongoing else None

    async def admit(self, patient: str, clinician: Clinician, klass: str) -> Resource:
        """Admit the patient at the clinician's site (an in-progress Encounter); one at a time per site."""
        self._patient(patient)
        if self.current_encounter(patient, clinician.site_id) is not None:
            raise Refusal(f"Patienten är redan inskriven på {clinician.site_name}.")
        encounter = encounter_resource(
            patient, clinician.site_id, clinician.site_name, klass, clinician.hsa_id, clinician.name
        )
        return (await self.create(encounter)).resource

    async def order_lab(self, patient: str, test: str, clinician: Clinician) -> Resource:
        """Place a lab order as a clinician in the web UI: the same ServiceRequest the API would take."""
        lab = LAB_TESTS.get(test)
        if lab is None:
            raise Refusal(f"Okänd analys {test!r} (kända: {', '.join(LAB_TESTS)}).")
        order: Resource = {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "category": [{"coding": [LAB_CATEGORY]}],
            "code": lab.concept(),
            "subject": {"reference": f"Patient/{patient}"},
            "authoredOn": now(),
            "requester": clinician.as_requester(),
        }
        encounter = self.current_encounter(patient, clinician.site_id)
        if encounter is not None:
            order["encounter"] = reference("Encounter", encounter["id"])
        return (await self.create(order)).resource

    def orders(self, patient: str) -> list[Resource]:
        """The patient's lab orders (referrals are listed separately)."""
        return [
            o
            for o in self.search_now("ServiceRequest", [("subject", f"Patient/{patient}")])
            if not _has(o, REFERRAL_CATEGORY)
        ]

    def results(self, patient: str) -> tuple[list[Resource], list[Resource]]:
        """The patient's result reports and observations, oldest first."""
        return (
            self.search_now("DiagnosticReport", [("subject", f"Patient/{patient}")]),
            self.search_now("Observation", [("subject", f"Patient/{patient}")]),
        )

    async def send_referral(
        self, patient: str, clinician: Clinician, receiver_site: str, question: str
    ) -> Referral:
        """Write a referral to another unit: a ServiceRequest and its Task (requested), in one transaction."""
        self._patient(patient)
        if not question.strip():
            raise Refusal("Skriv en frågeställning.")
        site = self.units().get(receiver_site)
        if site is None:
            raise Refusal(f"Okänd mottagare: {receiver_site}.")
        encounter = self.current_encounter(patient, clinician.site_id)
        request, task = referral_resources(
            patient,
            question,
            (site.id, site.name),
            clinician.as_requester(),
            encounter["id"] if encounter else None,
        )
        request_id = str(_uuid())
        task["focus"] = reference("ServiceRequest", request_id)
        task["basedOn"] = [reference("ServiceRequest", request_id)]
        stored = await self._commit([_Entry("create", request, request_id), _Entry("create", task)])
        return Referral(stored[0].resource, stored[1].resource, self.store.read("Patient", patient))

    def referrals_sent(self, patient: str) -> list[Referral]:
        """The patient's referrals with their workflow state, oldest first."""
        found = []
        for request in self.search_now(
            "ServiceRequest", [("subject", f"Patient/{patient}"), ("category", _token(REFERRAL_CATEGORY))]
        ):
            tasks = self.search_now("Task", [("focus", f"ServiceRequest/{request['id']}")])
            if tasks:
                found.append(Referral(request, tasks[-1], None))
        return found

    def referral_inbox(self, site_id: str) -> list[Referral]:
        """Referrals to the site and its units on the new EHR (Tasks they own, by reference or HSA-id).

        Referrals to a unit still on the legacy EHR are the bridge's to carry, not this inbox's.
        """
        orgs = [(u.id, u.hsa_id) for u in self.units().values() if u.site == site_id and u.system == "new"]
        tasks = {
            t["id"]: t
            for criteria in (
                [("owner", ",".join(f"Organization/{org}" for org, _ in orgs))],
                [("owner:identifier", ",".join(f"{HSA_ID_SYSTEM}|{hsa}" for _, hsa in orgs))],
            )
            for t in self.search_now("Task", criteria)
        }
        found = []
        for task in sorted(
            tasks.values(), key=lambda t: str(t.get("authoredOn") or t["meta"]["lastUpdated"])
        ):
            focus = parse_reference((task.get("focus") or {}).get("reference", ""))
            request = self.store.read("ServiceRequest", focus[1]) if focus else None
            if request is None or not _has(request, REFERRAL_CATEGORY):
                continue
            subject = parse_reference((request.get("subject") or {}).get("reference", ""))
            patient = self.store.read("Patient", subject[1]) if subject and subject[0] == "Patient" else None
            found.append(Referral(request, task, patient))
        return found

    def referral(self, task_id: str) -> Referral:
        task = self.store.read("Task", task_id)
        focus = parse_reference((task or {}).get("focus", {}).get("reference", "")) if task else None
        request = self.store.read("ServiceRequest", focus[1]) if focus else None
        if task is None or request is None:
            raise Refusal("Remissen finns inte.")
        subject = parse_reference((request.get("subject") or {}).get("reference", ""))
        patient = self.store.read("Patient", subject[1]) if subject and subject[0] == "Patient" else None
        return Referral(request, task, patient)

    def _owned(self, task_id: str, clinician: Clinician) -> Referral:
        referral = self.referral(task_id)
        if self.site_of_reference(referral.task.get("owner")) != clinician.site_id:
            raise Refusal(f"Remissen är inte ställd till {clinician.site_name}.")
        return referral

    async def receive_referral(self, task_id: str, clinician: Clinician) -> Referral:
        """The receiving unit acknowledges the referral: Task requested → received."""
        referral = self._owned(task_id, clinician)
        task = dict(referral.task)
        if task["status"] != "requested":
            return referral
        task.update(status="received", businessStatus={"text": "Mottagen"}, lastModified=now())
        stored = await self.update("Task", task_id, task, if_match=task["meta"]["versionId"])
        return Referral(referral.request, stored.resource, referral.patient)

    async def answer_referral(self, task_id: str, clinician: Clinician, answer: str) -> Referral:
        """The receiving unit answers: Task completed with the answer as output, the request completed."""
        referral = self._owned(task_id, clinician)
        if not answer.strip():
            raise Refusal("Skriv ett svar.")
        if referral.task["status"] == "completed":
            raise Refusal("Remissen är redan besvarad.")
        stamp = now()
        task = dict(referral.task)
        task.update(
            status="completed",
            businessStatus={"text": "Besvarad"},
            lastModified=stamp,
            output=[{"type": {"text": ANSWER_TYPE}, "valueString": answer}],
            note=[
                {
                    "authorReference": reference("Practitioner", clinician.hsa_id, clinician.name),
                    "time": stamp,
                    "text": f"Besvarad av {clinician.name}, {clinician.site_name}",
                }
            ],
        )
        request = dict(referral.request, status="completed")
        stored = await self._commit(
            [
                _Entry("update", task, task_id, task["meta"]["versionId"]),
                _Entry("update", request, request["id"], request["meta"]["versionId"]),
            ]
        )
        return Referral(stored[1].resource, stored[0].resource, referral.patient)

    def _patient(self, patient: str) -> Resource:
        found = self.store.read("Patient", patient)
        if found is None:
            raise Refusal("Patienten finns inte.")
        return found

    # -- capability ------------------------------------------------------------------------------

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
                    "documentation": "Transaction Bundles are all-or-nothing (POST [base]/ with type "
                    "transaction, entries POST or PUT, ifNoneExist honoured).",
                    "security": {
                        "description": "Anonymous access is allowed. With HTTP Basic (HSA-id and password of "
                        "a plan user) the request runs as that user: wrong credentials 401, a role without "
                        "access 403."
                    },
                    "interaction": [{"code": "transaction"}],
                    "resource": [
                        {
                            "type": t.name,
                            "documentation": t.documentation,
                            "interaction": [{"code": code} for code in t.interactions],
                            "versioning": "versioned-update",
                            "updateCreate": "update" in t.interactions,
                            "conditionalCreate": "create" in t.interactions,
                            "searchParam": [
                                {"name": "_id", "type": "token"},
                                {
                                    "name": "_lastUpdated",
                                    "type": "date",
                                    "documentation": "with gt, ge, lt, le or eq",
                                },
                                *(
                                    {
                                        "name": p.name,
                                        "type": p.type,
                                        "documentation": p.documentation
                                        + (
                                            " (also :identifier=system|value)"
                                            if p.type == "reference"
                                            else ""
                                        ),
                                    }
                                    for p in t.params
                                    if ":" not in p.name
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


def _location(
    name: str,
    kind: str,
    kind_display: str,
    organization: dict[str, Any],
    part_of: dict[str, Any] | None = None,
) -> Resource:
    location: Resource = {
        "resourceType": "Location",
        "status": "active",
        "name": name,
        "mode": "instance",
        "physicalType": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                    "code": kind,
                    "display": kind_display,
                }
            ]
        },
        "managingOrganization": organization,
    }
    if part_of:
        location["partOf"] = part_of
    return location


def _practitioner(hsa_id: str, name: str) -> Resource:
    given, _, family = name.rpartition(" ")
    human: dict[str, Any] = {"use": "official", "text": name, "family": family or name}
    if given:
        human["given"] = given.split()
    return {
        "resourceType": "Practitioner",
        "identifier": [hsa_identifier(hsa_id)],
        "active": True,
        "name": [human],
    }


def _has(resource: Resource, category: dict[str, str]) -> bool:
    return any(
        c.get("system") == category["system"] and c.get("code") == category["code"]
        for concept in resource.get("category") or []
        for c in concept.get("coding") or []
    )


def _token(coding: dict[str, str]) -> str:
    return f"{coding['system']}|{coding['code']}"


def _uuid() -> str:
    return str(uuid.uuid4())


def _rewrite_references(node: Any, names: dict[str, str]) -> None:
    """Point references at a transaction's own entries (``urn:uuid:…`` fullUrls) to their new ids."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in names:
            node["reference"] = names[ref]
        for value in node.values():
            _rewrite_references(value, names)
    elif isinstance(node, list):
        for value in node:
            _rewrite_references(value, names)


def _history_url(stored: Resource) -> str:
    return f"{stored['resourceType']}/{stored['id']}/_history/{stored['meta']['versionId']}"


def etag_version(etag: str) -> str:
    """``W/"3"`` or ``"3"`` or ``3`` → ``3``."""
    return etag.strip().removeprefix("W/").strip('"')


def _clinicians(plan: Plan, environ: Any) -> dict[str, Clinician]:
    clinicians: dict[str, Clinician] = {}
    for site in plan.sites:
        if site.system == "legacy":
            continue  # their accounts are in the legacy EHR
        for user in site.users:
            if user.hsa_id in clinicians:
                continue
            password = environ.get(user.password_env) or None
            if password is None:
                log.warning(
                    "user %s (%s) cannot log in: environment variable %s is not set",
                    user.hsa_id,
                    user.name,
                    user.password_env,
                )
            clinicians[user.hsa_id] = Clinician(
                user.hsa_id, user.name, user.role, site.id, site.name, password
            )
    return clinicians
