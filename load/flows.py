"""Clinician workflows as plain Locust behaviour: one function per plan load path.

Each flow is a task function taking the Locust user; every request it sends is named by
its plan path id (``name="open-chart"``), so Locust's statistics — and the SLOs — are per
path (per path and site, ``open-chart@sas-boras``, when the plan judges the load per site: the
locustfile names them so). Each checks the business answer, not only the status code (a search without the
searched patient, an order stored on another patient, a result filed on the wrong one
are failures), through ``catch_response``.

The user (see locustfile.py) carries what the flows need: ``plan``, ``identities`` (the
plan's test identities: the only patients ever touched), ``account`` (the plan user it
logs in as, or None), ``receivers`` (units a referral may go to). Flows talk standard
FHIR R4 to ``environment.fhir_base``:

============== ===============================================================================
login          GET Practitioner?identifier=HSA-id with HTTP Basic (no FHIR login endpoint)
patient-search GET Patient?identifier=sys|12 digits,sys|dashed (the patient stored in either form)
open-chart     GET Patient/{id}, Encounter?patient={id}, DiagnosticReport?patient={id}
lab-order      POST ServiceRequest (category laboratory procedure, an NPU analysis)
view-results   GET DiagnosticReport?patient={id}, Observation?patient={id}
create-referral POST [base] transaction: ServiceRequest (category referral) + its Task
============== ===============================================================================

A new flow is a function here plus its path id in :data:`FLOWS`; its weight per role is
the plan's (``load.paths[].weight`` / ``weights``).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import gevent.lock

from rehearsal import redact
from rehearsal.adapters.referrals import referral_resources
from rehearsal.identities import HSA_ID_SYSTEM, PERSONNUMMER_OID, SAMORDNINGSNUMMER_OID, personnummer_tokens
from rehearsal.load import request_name

PERSONNUMMER_SYSTEM = f"urn:oid:{PERSONNUMMER_OID}"
#: Systems a patient's personnummer (or samordningsnummer) is recognised under; None: no system given.
PERSON_SYSTEMS = (None, PERSONNUMMER_SYSTEM, f"urn:oid:{SAMORDNINGSNUMMER_OID}")
SNOMED = "http://snomed.info/sct"
NPU_SYSTEM = "urn:oid:1.2.208.176.2.1"
LAB_CATEGORY = {"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"}
TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
#: Analyses a load lab order asks for: (NPU code, short name, Swedish name).
LAB_TESTS = (
    ("NPU02319", "B-Hb", "Hemoglobin"),
    ("NPU19748", "P-CRP", "C-reaktivt protein"),
    ("NPU03429", "P-Na", "Natrium"),
)
FHIR_JSON = "application/fhir+json"
WRITE_HEADERS = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
FORMAT = ("_format", "json")  # FHIR's own override of content negotiation: JSON answers, no header to build
PATIENT_IDS_ENV = "REHEARSAL_PATIENT_IDS"
ROLES_ENV = "REHEARSAL_ROLES"  # JSON file: HSA-id -> requester, found before the load
PAGE = 20  # _count of the chart's and results' searches: what one screen shows

Flow = Callable[[Any], None]


class FlowError(Exception):
    """A flow could not even send its request (nothing to log in as, writes not allowed, …)."""


def _digits(value: str) -> str:
    plain = value.replace("-", "")
    return plain if plain.isdigit() else re.sub(r"\D", "", value)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- answers -----------------------------------------------------------------------------


def _resources(bundle: Any, rtype: str) -> list[dict[str, Any]] | None:
    """The resources of one type in a searchset Bundle; None when it is not a Bundle at all."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return None
    found = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == rtype:
            found.append(resource)
    return found


def carries_personnummer(resource: dict[str, Any], personnummer: str, wanted: str | None = None) -> bool:
    """Digits are compared, so ``19121212-1212`` matches ``191212121212`` as Swedish servers store it."""
    wanted = wanted or _digits(personnummer)
    for ident in resource.get("identifier") or ():
        if not isinstance(ident, dict) or ident.get("system") not in PERSON_SYSTEMS:
            continue
        value = ident.get("value")
        if value == wanted or (isinstance(value, str) and _digits(value) == wanted):
            return True
    return False


def find_patient(bundle: Any, personnummer: str) -> bool:
    """True when a searchset Bundle holds a Patient carrying this personnummer.

    The hot path of every patient search under load, so written out as one loop.
    """
    if type(bundle) is not dict or bundle.get("resourceType") != "Bundle":
        return False
    wanted = _WANTED.get(personnummer) or _WANTED.setdefault(personnummer, _digits(personnummer))
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if type(entry) is dict else None
        if type(resource) is dict and resource.get("resourceType") == "Patient":
            if carries_personnummer(resource, personnummer, wanted):
                return True
    return False


_WANTED: dict[str, str] = {}  # personnummer -> its digits


def _ref_id(ref: Any, rtype: str) -> str | None:
    text = str((ref or {}).get("reference", "")) if isinstance(ref, dict) else ""
    kind, _, rid = text.rpartition("/")
    return rid if kind.rsplit("/", 1)[-1] == rtype and rid else None


_SCAN = json.JSONDecoder().scan_once  # the C scanner behind json.loads, without its two regex passes


def _json(response: Any) -> Any:
    """The body as JSON, decoded as UTF-8 (RFC 8259): Locust's ``response.json()`` runs charset
    detection on every body without a charset parameter, which costs more than the request."""
    try:
        text = (response.content or b"").decode("utf-8")
        try:
            value, end = _SCAN(text, 0)
        except StopIteration:  # leading whitespace or not JSON: the full parser decides
            return json.loads(text)
        return value if end == len(text) or not text[end:].strip() else json.loads(text)
    except (AttributeError, UnicodeDecodeError, ValueError):  # any undecodable body is a business failure
        return None


def _refused(response: Any, user: Any = None) -> str:
    """``HTTP 401: wrong HSA-id or password`` — the status and the OperationOutcome's words.

    With no HTTP answer at all (status 0) it names the address and the plan's timeouts
    instead: a silent target must read as "did not answer", not as "HTTP 0".
    """
    if response.status_code == 0:
        return _no_answer(response, user)
    location = response.headers.get("location") if 300 <= response.status_code < 400 else None
    if location:  # Clinician.max_redirects = 0: not followed, so no credentials went anywhere else
        where = redact.text(" ".join(str(location).split()))[:200]
        return f"HTTP {response.status_code}: redirect to {where} not followed"
    body = _json(response)
    words = ""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        words = "; ".join(
            str(i.get("diagnostics", "")) for i in body.get("issue") or [] if isinstance(i, dict)
        )
    return f"HTTP {response.status_code}" + (f": {redact.text(words)}" if words else "")  # an echoed header


def _no_answer(response: Any, user: Any) -> str:
    """``environment.fhir_base (127.0.0.1:18080): no answer within the plan's timeouts (…)``."""
    error = getattr(response, "error", None)
    cause = getattr(error, "original", None) or error
    url = urlsplit(str(getattr(getattr(response, "request", None), "url", "") or ""))
    address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
    where = f"{address[0]}:{address[1]}"
    base = urlsplit(str(getattr(getattr(getattr(user, "plan", None), "environment", None), "fhir_base", "")))
    if (base.hostname, base.port or (443 if base.scheme == "https" else 80)) == address:
        where = f"environment.fhir_base ({where})"
    if isinstance(cause, TimeoutError) or "timed out" in str(cause).lower():
        connect, read = getattr(user, "connection_timeout", None), getattr(user, "network_timeout", None)
        if connect is None or read is None:
            return f"{where}: no answer (timed out)"
        return f"{where}: no answer within the plan's timeouts (connect {connect:g} s, read {read:g} s)"
    return f"{where}: no answer: {cause.__class__.__name__}: {cause}"


def _fail_without_request(user: Any, name: str, message: str) -> None:
    """Count a flow that could not be attempted as a failed request of its path (0 ms, nothing sent),
    under the user's site when the load is judged per site (``path@site``)."""
    site = getattr(user, "site_id", None)
    user.environment.events.request.fire(
        request_type="FLOW", name=request_name(name, site), response_time=0, response_length=0,
        exception=FlowError(message), context={}, url=None, response=None,
    )  # fmt: skip


# --- who the user is ---------------------------------------------------------------------


# Reads ask for JSON with ``_format=json`` in the URL (FHIR's standard override of the Accept
# header) and carry the user's credentials through ``client.auth_header`` once logged in, so a
# read builds no headers of its own: per request that would cost more than the business check.


def writes_allowed(user: Any) -> str | None:
    """Why this user may not write here (production, or a host the plan does not allow); None if it may.

    The locustfile refuses such a run before it starts; this is the second lock, at the write.
    """
    env = user.plan.environment
    if env.kind != "test":
        return f"writes refused: environment {env.name!r} is kind {env.kind!r}"
    host = urlsplit(user.host or "").hostname or ""
    if host not in env.allowed_hosts:
        return f"writes refused: host {host!r} is not in environment.allowed_hosts"
    return None


def login(user: Any) -> None:
    """Log in as the user's plan account: HTTP Basic on a look-up of the user's own Practitioner.

    The FHIR API has no login interaction of its own; the first authenticated request is the
    login (wrong password → 401, a role without access → 403): ``Practitioner?identifier=`` the
    HSA-id, where the Swedish profiles put it. The user's PractitionerRole at their site becomes
    the requester of their orders and referrals: the harness finds it before the load
    (``REHEARSAL_ROLES``, not measured); without that (Locust run by hand) the login looks it up
    itself, standard FHIR only, each request counted under ``login`` (see :func:`_find_role`).
    """
    account = user.account
    if account is None:
        _fail_without_request(user, "login", "the plan has no users to log in as (sites[].users)")
        return
    password = os.environ.get(account.password_env)
    if not password:
        _fail_without_request(
            user,
            "login",
            f"no password for {account.hsa_id}: environment variable {account.password_env} is unset",
        )
        return
    user.client.auth_header = None  # logged out until this login succeeds
    token = base64.b64encode(f"{account.hsa_id}:{password}".encode()).decode("ascii")
    auth = f"Basic {token}"
    query = urlencode({"identifier": f"{HSA_ID_SYSTEM}|{account.hsa_id}", FORMAT[0]: FORMAT[1]})
    with user.client.get(
        f"/Practitioner?{query}", name="login", headers={"Authorization": auth}, catch_response=True,
    ) as response:  # fmt: skip
        if response.status_code != 200:
            response.failure(_refused(response, user))
            return
        people = _resources(_json(response), "Practitioner")
        if people is None:
            response.failure("answer is not a FHIR Bundle")
            return
        me = next((p for p in people if _has_hsa_id(p, account.hsa_id) and p.get("id")), None)
        if me is None:
            response.failure(f"no Practitioner with HSA-id {account.hsa_id}")
            return
        response.success()
    requester = _handed_over_roles().get(account.hsa_id) or _find_role(user, auth, str(me["id"]))
    if requester is not None:
        user.client.auth_header = auth  # every later request of this user carries it
        user.requester = requester


def _has_hsa_id(resource: dict[str, Any], hsa_id: str) -> bool:
    return any(
        isinstance(i, dict) and i.get("system") in (None, HSA_ID_SYSTEM) and i.get("value") == hsa_id
        for i in resource.get("identifier") or ()
    )


def _find_role(user: Any, auth: str, practitioner_id: str) -> dict[str, Any] | None:
    """The user's PractitionerRole at their site, by standard searches (each counted as ``login``).

    ``PractitionerRole?practitioner=Practitioner/{id}``; the site's role is the one whose
    organisation carries the site's HSA-id: on the reference itself (``organization.identifier``)
    or on the Organization read by its id. The plan's role (``code`` text, coding display or
    code) decides between several there; a role elsewhere stands in when none is at the site.
    """
    account = user.account
    query = urlencode({"practitioner": f"Practitioner/{practitioner_id}", FORMAT[0]: FORMAT[1]})
    headers = {"Authorization": auth}
    with user.client.get(
        f"/PractitionerRole?{query}", name="login", headers=headers, catch_response=True
    ) as response:
        roles = _resources(_json(response), "PractitionerRole") if response.status_code == 200 else None
        if roles is None:
            response.failure(
                _refused(response, user) if response.status_code != 200 else "answer is not a Bundle"
            )
            return None
        roles = [r for r in roles if r.get("id")]
        if not roles:
            response.failure(f"no PractitionerRole for {account.hsa_id}")
            return None
        response.success()
    site_hsa = getattr(account, "site_hsa_id", "")
    at_site = [r for r in roles if _hsa_id_of_ref(r.get("organization")) == site_hsa]
    for org_id in dict.fromkeys(_ref_id(r.get("organization"), "Organization") for r in roles):
        if at_site or not org_id or not site_hsa:
            break
        with user.client.get(
            f"/Organization/{org_id}?_format=json", name="login", headers=headers, catch_response=True
        ) as response:
            org = _json(response)
            if response.status_code != 200 or not isinstance(org, dict):
                response.failure(_refused(response, user))
                return None
            response.success()
        if _has_hsa_id(org, site_hsa):
            at_site = [r for r in roles if _ref_id(r.get("organization"), "Organization") == org_id]
    candidates = at_site or roles
    role = next((r for r in candidates if _names_role(r, account.role)), candidates[0])
    return {"reference": f"PractitionerRole/{role['id']}", "display": account.name}


def _hsa_id_of_ref(ref: Any) -> str | None:
    ident = ref.get("identifier") if isinstance(ref, dict) else None
    return str(ident.get("value")) if isinstance(ident, dict) and ident.get("value") else None


def _names_role(role: dict[str, Any], planned: str) -> bool:
    """Does the PractitionerRole name the plan's role (code text, coding display or code; any case)?"""
    names = set()
    for concept in role.get("code") or ():
        if isinstance(concept, dict):
            names.add(str(concept.get("text", "")).casefold())
            for coding in concept.get("coding") or ():
                if isinstance(coding, dict):
                    names |= {str(coding.get(k, "")).casefold() for k in ("display", "code")}
    return planned.casefold() in names


_ROLES: dict[str, dict[str, Any]] | None = None


def _handed_over_roles() -> dict[str, dict[str, Any]]:
    """HSA-id → requester (the user's PractitionerRole at their site), found by the harness
    before the load (``REHEARSAL_ROLES``); empty when Locust runs on its own."""
    global _ROLES
    if _ROLES is None:
        path = os.environ.get(ROLES_ENV)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
        except (OSError, ValueError):
            data = {}
        _ROLES = {str(k): v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}
    return _ROLES


# --- the patients: the plan's test identities, by their id in the EHR ------------------------


class PatientDirectory:
    """Server ids of the plan's test identities, known once per Locust process.

    The harness looks them up before the load starts (not measured) and hands them over
    in the JSON file named by ``REHEARSAL_PATIENT_IDS``. Without it (Locust run by hand),
    the first user needing them searches for all at once (FHIR ``identifier=a,b,c``, then
    one by one for any the server did not return), counted under ``patient-search`` since
    that is what it is; the others wait for that one look-up. A failed look-up is tried
    again; an identity the server does not have stays unknown (flows use the others).
    """

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._done = False
        self._lock = gevent.lock.BoundedSemaphore(1)

    def ids(self, user: Any) -> dict[str, str]:
        if self._done:
            return self._ids
        with self._lock:
            if not self._done:
                self._ids.update(_handed_over())
                missing = [i for i in user.identities if i.personnummer not in self._ids]
                answered = not missing or self._lookup(user, missing)
                for identity in [i for i in missing if i.personnummer not in self._ids] if answered else ():
                    self._lookup(user, [identity])
                self._done = answered
        return self._ids

    def _lookup(self, user: Any, identities: list[Any]) -> bool:
        """One search; True when the server answered it (found or not)."""
        values = ",".join(t for i in identities for t in personnummer_tokens(i.personnummer))
        with user.client.get(
            f"/Patient?{urlencode({'identifier': values, FORMAT[0]: FORMAT[1]})}", name="patient-search",
            catch_response=True,
        ) as response:  # fmt: skip
            patients = _resources(_json(response), "Patient") if response.status_code == 200 else None
            if patients is None:
                response.failure(
                    _refused(response, user) if response.status_code != 200 else "answer is not a Bundle"
                )
                return False
            for identity in identities:
                hit = next((p for p in patients if carries_personnummer(p, identity.personnummer)), None)
                if hit is not None and hit.get("id"):
                    self._ids[identity.personnummer] = str(hit["id"])
            response.success()
            return True

    def reset(self) -> None:
        self._ids.clear()
        self._done = False


def _handed_over() -> dict[str, str]:
    """The ids the harness looked up before the load (``REHEARSAL_PATIENT_IDS``), if any."""
    path = os.environ.get(PATIENT_IDS_ENV)
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


DIRECTORY = PatientDirectory()


def _patient(user: Any, path: str) -> tuple[str, Any] | None:
    """A random test patient (its id, its identity) for a flow; a counted failure when none is known."""
    ids = DIRECTORY.ids(user)
    known = [i for i in user.identities if i.personnummer in ids]
    if not known:
        _fail_without_request(user, path, "none of the plan's test identities was found in the EHR")
        return None
    identity = random.choice(known)
    return ids[identity.personnummer], identity


def _subject_is(resource: dict[str, Any], patient_id: str) -> bool:
    ref = resource.get("subject") or resource.get("for")
    return _ref_id(ref, "Patient") == patient_id


# --- flows -------------------------------------------------------------------------------


_SEARCH_URLS: dict[str, str] = {}


def _search_url(personnummer: str) -> str:
    url = _SEARCH_URLS.get(personnummer)
    if url is None:
        url = _SEARCH_URLS[personnummer] = "/Patient?" + urlencode(
            {"identifier": ",".join(personnummer_tokens(personnummer)), FORMAT[0]: FORMAT[1]}
        )
    return url


def patient_search(user: Any) -> None:
    """Search one of the plan's test patients by personnummer and expect to find it."""
    identities = user.identities
    identity = identities[int(random.random() * len(identities))]
    with user.client.get(
        _search_url(identity.personnummer), name="patient-search", catch_response=True
    ) as response:
        if response.status_code != 200:
            response.failure(_refused(response, user))
        elif not find_patient(_json(response), identity.personnummer):
            response.failure("no Patient with the searched personnummer in the Bundle")
        else:
            response.success()


def _search_own(user: Any, path: str, rtype: str, patient_id: str) -> bool:
    """GET rtype?patient=…: a Bundle whose every resource is the patient's."""
    query = urlencode({"patient": patient_id, "_count": PAGE, FORMAT[0]: FORMAT[1]})
    with user.client.get(f"/{rtype}?{query}", name=path, catch_response=True) as response:
        if response.status_code != 200:
            response.failure(_refused(response, user))
            return False
        found = _resources(_json(response), rtype)
        if found is None:
            response.failure(f"{rtype} search did not answer a Bundle")
            return False
        strangers = [r.get("id") for r in found if not _subject_is(r, patient_id)]
        if strangers:
            response.failure(f"{rtype} of another patient in the chart of {patient_id}: {strangers[0]}")
            return False
        mixed = _results_of_others(user, found, patient_id) if rtype == "DiagnosticReport" else None
        if mixed:
            response.failure(mixed)
            return False
        response.success()
        return True


def _results_of_others(user: Any, reports: list[dict[str, Any]], patient_id: str) -> str | None:
    """A report based on an order this user placed for another patient: a result on the wrong patient."""
    for report in reports:
        for based in report.get("basedOn") or []:
            ordered_for = user.orders.get(_ref_id(based, "ServiceRequest") or "")
            if ordered_for and ordered_for != patient_id:
                return (
                    f"result {report.get('id')} of the order for patient {ordered_for} "
                    f"is filed on patient {patient_id}"
                )
    return None


def open_chart(user: Any) -> None:
    """Open a test patient's chart: the patient, their encounters and their latest results."""
    found = _patient(user, "open-chart")
    if found is None:
        return
    patient_id, identity = found
    with user.client.get(
        f"/Patient/{patient_id}?_format=json", name="open-chart", catch_response=True
    ) as response:
        body = _json(response)
        if response.status_code != 200:
            response.failure(_refused(response, user))
            return
        if (
            not isinstance(body, dict)
            or body.get("resourceType") != "Patient"
            or body.get("id") != patient_id
        ):
            response.failure(f"Patient/{patient_id} did not answer that Patient")
            return
        if not carries_personnummer(body, identity.personnummer):
            response.failure(f"Patient/{patient_id} does not carry the personnummer it was found by")
            return
        response.success()
    if _search_own(user, "open-chart", "Encounter", patient_id):
        _search_own(user, "open-chart", "DiagnosticReport", patient_id)


def lab_order(user: Any) -> None:
    """Place a lab order (ServiceRequest, an NPU analysis) for a test patient; expect it stored as sent."""
    refused = writes_allowed(user)
    if refused:
        _fail_without_request(user, "lab-order", refused)
        return
    found = _patient(user, "lab-order")
    if found is None:
        return
    patient_id, _ = found
    code, short, name = random.choice(LAB_TESTS)
    order: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [LAB_CATEGORY]}],
        "code": {"coding": [{"system": NPU_SYSTEM, "code": code, "display": short}], "text": name},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": _now(),
    }
    if getattr(user, "requester", None):
        order["requester"] = user.requester
    with user.client.post(
        "/ServiceRequest",
        json=order,
        name="lab-order",
        headers=WRITE_HEADERS,
        catch_response=True,
    ) as response:
        body = _json(response)
        if response.status_code != 201:
            response.failure(_refused(response, user))
            return
        if not isinstance(body, dict) or body.get("resourceType") != "ServiceRequest" or not body.get("id"):
            response.failure("201 without the stored ServiceRequest")
            return
        if not _subject_is(body, patient_id):
            response.failure(f"order stored on another patient than {patient_id}")
            return
        user.orders[str(body["id"])] = patient_id
        while len(user.orders) > 50:  # remember the latest orders only
            user.orders.pop(next(iter(user.orders)))
        response.success()


def view_results(user: Any) -> None:
    """Look at a test patient's lab results: reports and observations, every one the patient's own."""
    found = _patient(user, "view-results")
    if found is None:
        return
    patient_id, _ = found
    if _search_own(user, "view-results", "DiagnosticReport", patient_id):
        _search_own(user, "view-results", "Observation", patient_id)


def create_referral(user: Any) -> None:
    """Write a referral to another unit on the new EHR: ServiceRequest + Task in one transaction."""
    refused = writes_allowed(user)
    if refused:
        _fail_without_request(user, "create-referral", refused)
        return
    if not user.receivers:
        _fail_without_request(
            user, "create-referral", "the plan has no other unit on the new EHR to refer to"
        )
        return
    found = _patient(user, "create-referral")
    if found is None:
        return
    patient_id, _ = found
    receiver = random.choice(user.receivers)
    request_urn, stamp = f"urn:uuid:{uuid.uuid4()}", _now()
    request, task = referral_resources(
        patient_id,
        "Lasttest: bedömning önskas.",
        getattr(user, "requester", None) or None,
        receiver,
        authored=stamp,
    )
    task["code"] = {"coding": [{"system": TASK_CODE_SYSTEM, "code": "fulfill"}], "text": "Remiss"}
    task["focus"] = {"reference": request_urn}
    task["basedOn"] = [{"reference": request_urn}]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": request_urn,
                "resource": request,
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": task,
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }
    with user.client.post(
        "/", json=bundle, name="create-referral", headers=WRITE_HEADERS, catch_response=True
    ) as response:
        body = _json(response)
        if response.status_code != 200:
            response.failure(_refused(response, user))
            return
        entries = body.get("entry") if isinstance(body, dict) else None
        kind = body.get("type") if isinstance(body, dict) else None
        if kind != "transaction-response" or not isinstance(entries, list) or len(entries) != 2:
            response.failure("answer is not a transaction-response with the two entries")
            return
        statuses = [str((e.get("response") or {}).get("status", "")) for e in entries if isinstance(e, dict)]
        if not all(s.startswith("201") for s in statuses):
            response.failure(f"referral not created: {', '.join(statuses) or 'no statuses'}")
            return
        response.success()


# Plan load path id -> flow. The request name of every request a flow sends is its path id.
FLOWS: dict[str, Flow] = {
    "login": login,
    "patient-search": patient_search,
    "open-chart": open_chart,
    "lab-order": lab_order,
    "view-results": view_results,
    "create-referral": create_referral,
}


def logged_in(flow: Flow) -> Flow:
    """The flow, for a user who must be logged in: one who is not yet (or whose login failed)
    tries to log in instead, as a clinician would before anything else. Counted under ``login``."""

    def task(user: Any) -> None:
        if user.account is not None and user.client.auth_header is None:
            login(user)
        else:
            flow(user)

    task.__name__ = task.__qualname__ = flow.__name__
    task.__doc__ = flow.__doc__
    return task


def tasks_for(path_weights: Mapping[str, int] | Iterable[str], login_first: bool = False) -> dict[Flow, int]:
    """The Locust ``tasks`` dict for plan paths → weights; an unknown path id is an error.

    Only the paths the plan lists are run (weight 0 = not by this role), so each path the
    plan holds to an SLO gets traffic from the roles that do that work. With
    ``login_first`` every flow but ``login`` itself waits for a successful login.
    """
    weights = dict(path_weights) if isinstance(path_weights, Mapping) else dict.fromkeys(path_weights, 1)
    unknown = sorted(set(weights) - set(FLOWS))
    if unknown:
        raise ValueError(
            f"plan load path {unknown[0]!r} has no flow in load/flows.py (known: {', '.join(sorted(FLOWS))})"
        )
    return {
        (logged_in(FLOWS[path_id]) if login_first and path_id != "login" else FLOWS[path_id]): w
        for path_id, w in weights.items()
        if w > 0
    }


__all__ = ["DIRECTORY", "FLOWS", "FlowError", "find_patient", "logged_in", "tasks_for", "writes_allowed"]
