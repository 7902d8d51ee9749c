"""The FHIR R4 REST face of the reference EHR: routes, content negotiation, credentials, errors.

Everything a request asks for is done by :class:`~reference_hospital.ehr.Ehr`; this module
turns HTTP into those calls and their outcomes (including :class:`FhirError`) into FHIR
answers: resources and Bundles as ``application/fhir+json``, every refusal an
OperationOutcome with the right status. ``ehr-down`` answers 503 here, and HTTP Basic
credentials of a plan user are checked here (anonymous requests are served).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reference_hospital.ehr import FHIR_JSON, Clinician, Ehr, etag_version
from reference_hospital.fhir_resources import FhirError, Issue
from reference_hospital.store import Written, now

log = logging.getLogger("reference_hospital.ehr")


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def outcome(status: int, *issues: Issue, headers: dict[str, str] | None = None) -> FhirResponse:
    return FhirResponse(
        {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}, status, headers=headers
    )


class FhirApi:
    """The FHIR R4 REST face of an :class:`Ehr`, mounted at the path of ``environment.fhir_base``.

    ``routes()`` serve ``[base]/``; a request to the bare base path (``/fhir`` without the
    slash) never reaches a mount, so the hospital adds ``base_route(path)`` at its top level.
    """

    def __init__(self, ehr: Ehr, base_url: str) -> None:
        self.ehr = ehr
        self.base = base_url.rstrip("/")

    def routes(self) -> list[Route]:
        every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return [
            Route("/", self._guard(self.system_level), methods=every),
            Route("/metadata", self._guard(self.metadata), methods=every),
            Route("/{rtype}", self._guard(self.type_level), methods=every),
            Route("/{rtype}/{rid}", self._guard(self.instance_level), methods=every),
            Route("/{rest:path}", self._guard(self.unknown), methods=every),
        ]

    def base_route(self, path: str) -> Route:
        """The route for ``[base]`` itself (transactions POSTed without a trailing slash)."""
        return Route(path, self._guard(self.system_level), methods=["GET", "HEAD", "POST", "PUT", "DELETE"])

    def _guard(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                if self.ehr.down:
                    raise FhirError(
                        503,
                        Issue("the EHR is unavailable (fault ehr-down)", "transient"),
                        headers={"Retry-After": "5"},
                    )
                self._caller(request)
                return await handler(request)
            except FhirError as exc:
                return outcome(exc.status, *exc.issues, headers=exc.headers)
            except Exception:  # one bad request must not look like a dead server
                log.exception("FHIR request %s %s failed", request.method, request.url.path)
                return outcome(500, Issue("internal error in the reference EHR (see its log)", "exception"))

        return endpoint

    def _caller(self, request: Request) -> Clinician | None:
        """The plan user of an HTTP Basic request (None when anonymous); 401/403 when refused."""
        header = request.headers.get("authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Basic realm="referenssjukhuset", charset="UTF-8"'}
        if scheme.lower() != "basic":
            raise FhirError(
                401, Issue(f"{scheme} authorization is not supported; use Basic", "login"), headers=challenge
            )
        try:
            hsa_id, _, password = (
                base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise FhirError(401, Issue("malformed Basic credentials", "login"), headers=challenge) from None
        clinician = self.ehr.authenticate(hsa_id, password)
        if clinician is None:
            raise FhirError(401, Issue("wrong HSA-id or password", "login"), headers=challenge)
        if self.ehr.access_denied(clinician):
            raise FhirError(
                403,
                Issue(
                    f"role {clinician.role} of {clinician.hsa_id} gives no access at {clinician.site_id}",
                    "forbidden",
                ),
            )
        return clinician

    async def metadata(self, request: Request) -> Response:
        _only(request, "GET")
        return FhirResponse(self.ehr.capability_statement(self.base))

    async def system_level(self, request: Request) -> Response:
        if request.method != "POST":
            raise FhirError(
                405,
                Issue(
                    f"{request.method} [base] is not supported; POST a transaction Bundle", "not-supported"
                ),
            )
        body = await _json_body(request)
        return FhirResponse(await self.ehr.transaction(body))

    async def type_level(self, request: Request) -> Response:
        name = request.path_params["rtype"]
        rtype = self.ehr.resource_type(name)
        if request.method in ("GET", "HEAD"):
            if "search-type" not in rtype.interactions:
                raise FhirError(405, Issue(f"{name} cannot be searched here", "not-supported"))
            return await self.search(request, name)
        if request.method == "POST":
            body = await _json_body(request)
            _same_type(body, name)
            done = await self.ehr.create(body, request.headers.get("if-none-exist"))
            return self._written(done)
        raise _not_allowed(request)

    async def search(
        self, request: Request, name: str, form: list[tuple[str, str]] | None = None
    ) -> Response:
        """Search by query string (GET) or form body (POST [type]/_search); strict about unknown names."""
        criteria, limit, elements = [], None, None
        items = list(request.query_params.multi_items()) + (form or [])
        for key, value in items:
            if key == "_elements":  # only these top-level elements (and id, meta): FHIR R4 3.1.1.5.9
                elements = {"resourceType", "id", "meta", *(e.strip() for e in value.split(",") if e.strip())}
            elif key == "_count":
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
                        "resource": r if elements is None else _subset(r, elements),
                        "search": {"mode": "match"},
                    }
                    for r in found
                ],
            }
        )

    async def instance_level(self, request: Request) -> Response:
        name, rid = request.path_params["rtype"], request.path_params["rid"]
        if rid == "_search" and request.method == "POST":
            self.ehr.resource_type(name)
            form = await request.form()
            return await self.search(request, name, [(k, str(v)) for k, v in form.multi_items()])
        if request.method == "PUT":
            rtype = self.ehr.resource_type(name)
            if "update" not in rtype.interactions:
                raise FhirError(405, Issue(f"{name} cannot be updated here", "not-supported"))
            body = await _json_body(request)
            _same_type(body, name)
            if body.get("id") != rid:
                raise FhirError(
                    400,
                    Issue(
                        f"the body's id ({body.get('id')!r}) must equal the URL's id ({rid!r})",
                        "invalid",
                        f"{name}.id",
                    ),
                )
            if_match = request.headers.get("if-match")
            done = await self.ehr.update(name, rid, body, etag_version(if_match) if if_match else None)
            return self._written(done)
        if request.method not in ("GET", "HEAD"):
            raise _not_allowed(request)
        resource = self.ehr.read(name, rid)
        return FhirResponse(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})

    def _written(self, done: Written) -> Response:
        stored = done.resource
        version = stored["meta"]["versionId"]
        return FhirResponse(
            stored,
            201 if done.created else 200,
            headers={
                "Location": f"{self.base}/{stored['resourceType']}/{stored['id']}/_history/{version}",
                "ETag": f'W/"{version}"',
                "Last-Modified": stored["meta"]["lastUpdated"],
            },
        )

    async def unknown(self, request: Request) -> Response:
        raise FhirError(404, Issue(f"no FHIR endpoint at {request.url.path}", "not-found"))


def _subset(resource: dict[str, Any], elements: set[str]) -> dict[str, Any]:
    """The resource with only the asked-for elements, marked SUBSETTED as R4 asks."""
    kept = {k: v for k, v in resource.items() if k in elements}
    tag = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
    kept["meta"] = {**(resource.get("meta") or {}), "tag": [tag]}
    return kept


async def _json_body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in (FHIR_JSON, "application/json"):
        raise FhirError(415, Issue(f"send {FHIR_JSON}, not {ctype or 'no content type'}", "not-supported"))
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise FhirError(400, Issue(f"body is not valid JSON: {exc}", "structure")) from exc


def _same_type(body: Any, name: str) -> None:
    if isinstance(body, dict) and body.get("resourceType") not in (None, name):
        raise FhirError(
            400,
            Issue(f"resourceType {body.get('resourceType')!r} posted to /{name}", "invalid", "resourceType"),
        )


def _only(request: Request, method: str) -> None:
    if request.method != method and not (method == "GET" and request.method == "HEAD"):
        raise _not_allowed(request)


def _not_allowed(request: Request) -> FhirError:
    return FhirError(405, Issue(f"{request.method} is not supported on {request.url.path}", "not-supported"))
