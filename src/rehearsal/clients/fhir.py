"""A small FHIR R4 REST client: the calls the scenarios make, with the plan's timeouts.

Requests go through the harness's one HTTP layer (:mod:`rehearsal.clients.http`): only to
hosts in ``environment.allowed_hosts``, only to the origin of ``environment.fhir_base`` (a
Bundle ``next`` link or a redirect elsewhere is refused, naming the link), within one total
deadline per call. Transport failures become TargetError naming the URL, so a scenario
fails with "what and where" instead of an httpx traceback. An answer with an error status
is a :class:`FhirError` carrying the status, so a check can tell "refused (403)" from "down
(503)". With ``auth=(hsa_id, password)`` every request runs as that plan user (HTTP Basic),
the way a clinician's client would; without it the client is a system (the bridge, the lab).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self

import httpx

from rehearsal import patient_gate
from rehearsal.clients.http import GuardedClient, HttpError
from rehearsal.errors import TargetError
from rehearsal.identities import HSA_ID_SYSTEM, personnummer_tokens
from rehearsal.plan import Environment

FHIR_JSON = "application/fhir+json"
Params = dict[str, str] | list[tuple[str, str]] | None


class FhirError(HttpError):
    """The server answered with an error status; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status)


class FhirClient:
    def __init__(self, environment: Environment, auth: tuple[str, str] | None = None) -> None:
        self.base = environment.fhir_base
        self._http = GuardedClient(
            self.base,
            environment.timeouts,
            environment.allowed_hosts,
            field="environment.fhir_base",
            auth=auth,
            headers={"Accept": FHIR_JSON},
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self, method: str, path: str, *, params: Params = None, body: Any = None, link: str | None = None
    ) -> httpx.Response:
        """One request (``path`` below the base, or a link of this origin); transport problems as
        TargetError, error statuses as FhirError."""
        headers = {"Content-Type": FHIR_JSON} if body is not None else None
        response = self._http.request(method, path, params=params, json=body, headers=headers, link=link)
        if response.status_code >= 400:
            raise FhirError(
                f"{method} {self._http.url(path)}: HTTP {response.status_code}: {_outcome_text(response)}",
                response.status_code,
            )
        return response

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except (ValueError, RecursionError):  # RecursionError: nested too deeply for the json module
            raise TargetError(f"{response.request.url}: reply is not JSON") from None
        if not isinstance(data, dict):
            raise TargetError(f"{response.request.url}: reply is not a FHIR resource")
        return data

    def get(self, path: str, params: Params = None) -> dict[str, Any]:
        return self._json(self.request("GET", path, params=params))

    def capabilities(self) -> dict[str, Any]:
        return self.get("metadata")

    def search(self, rtype: str, params: Params = None) -> list[dict[str, Any]]:
        """Every resource of a search (the entries of the searchset Bundle, following ``next`` links).

        A ``next`` link to another origin than ``environment.fhir_base`` is refused (HostRefused,
        naming the link) before anything is sent: the client's credentials stay with its server.

        A third-party server's Bundle may be odd (``entry`` not a list, an entry that is a number):
        what is not a resource is skipped, never a crash.
        """
        bundle = self.get(rtype, params)
        found = _resources(bundle)
        for _ in range(100):  # a server that pages: follow `next`, bounded
            links = bundle.get("link")
            following = next(
                (
                    lk.get("url")
                    for lk in (links if isinstance(links, list) else [])
                    if isinstance(lk, dict) and lk.get("relation") == "next"
                ),
                None,
            )
            if not isinstance(following, str) or not following:
                break
            bundle = self._json(self.request("GET", following, link="the Bundle's next link"))
            found += _resources(bundle)
        return found

    def read(self, rtype: str, rid: str) -> dict[str, Any]:
        return self.get(f"{rtype}/{rid}")

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        return self._json(self.request("POST", resource["resourceType"], body=resource))

    def update(self, resource: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in resource.items() if k != "meta"}
        return self._json(self.request("PUT", f"{resource['resourceType']}/{resource['id']}", body=body))

    def server_time(self) -> datetime:
        """The server's clock now: a searchset's ``meta.lastUpdated``, else the HTTP Date header.

        Windows such as "changed during this rehearsal" are taken on the target's clock, so a
        skewed workstation clock never hides or adds a resource.
        """
        response = self.request("GET", "Patient", params={"_id": "rehearsal-clock", "_count": "1"})
        stamp = (self._json(response).get("meta") or {}).get("lastUpdated")
        if isinstance(stamp, str):
            try:
                return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
            except ValueError:
                pass
        date = response.headers.get("date")
        if date:
            return parsedate_to_datetime(date).astimezone(UTC)
        return datetime.now(UTC)

    def patients_by_personnummer(self, personnummer: str) -> list[dict[str, Any]]:
        """The patients with this personnummer, stored as 12 digits (Swedish profile) or dashed.

        One search for both forms (``identifier=sys|193912099805,sys|19391209-9805``): a server
        matches a token exactly, and a patient stored in either form is found once.
        """
        patient_gate.check(personnummer, "söka efter")
        return self.search("Patient", {"identifier": ",".join(personnummer_tokens(personnummer))})

    def patient_by_identifier(self, value: str) -> dict[str, Any] | None:
        """The one patient with this personnummer, samordningsnummer or reservnummer, or None."""
        patient_gate.check(value.rpartition("|")[2], "söka efter")
        found = self.search("Patient", {"identifier": value})
        return found[0] if found else None

    def by_hsa_id(self, rtype: str, hsa_id: str) -> list[dict[str, Any]]:
        return self.search(rtype, {"identifier": f"{HSA_ID_SYSTEM}|{hsa_id}"})


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    entries = bundle.get("entry")
    return [
        e["resource"]
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


MAX_OUTCOME_TEXT = 300  # characters of a server's own words kept in an error message


def _outcome_text(response: httpx.Response) -> str:
    """The OperationOutcome's diagnostics (else codes) as one line, else the reason phrase.

    An error body can be anything (HTML from a proxy, truncated JSON, an ``issue`` that is not
    a list of objects, diagnostics with line breaks): only strings in the expected places are
    used, and the result is one line, because it ends up in a one-line TargetError.
    """
    try:
        data = response.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deeply, a 5000-digit number
        data = None
    issues = data.get("issue") if isinstance(data, dict) else None
    texts = []
    for issue in issues if isinstance(issues, list) else []:
        said = [issue.get(k) for k in ("diagnostics", "code")] if isinstance(issue, dict) else []
        texts += [t for t in said if isinstance(t, str) and t.strip()][:1]
    return _one_line("; ".join(texts) or response.reason_phrase or "no reason given")


def _one_line(text: str) -> str:
    """Line breaks and runs of whitespace as one space, other control characters escaped, clipped."""
    text = " ".join(text.split())
    if len(text) > MAX_OUTCOME_TEXT:
        text = text[:MAX_OUTCOME_TEXT] + "…"
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def supports_search(capabilities: dict[str, Any], resource: str, param: str) -> bool:
    for rest in capabilities.get("rest", []):
        for res in rest.get("resource", []):
            if res.get("type") == resource:
                return any(p.get("name") == param for p in res.get("searchParam", []))
    return False


def patient_name(patient: dict[str, Any]) -> str:
    names = patient.get("name") or [{}]
    first = names[0]
    return first.get("text") or " ".join([*first.get("given", []), first.get("family", "")]).strip()


def reference_id(reference: Any, rtype: str) -> str | None:
    """``{"reference": "Patient/abc"}`` (or a full URL to it) → ``abc``; None for another type."""
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if isinstance(ref, str) and f"{rtype}/" in ref:
        return ref.rsplit(f"{rtype}/", 1)[1].split("/")[0]
    return None


def identifier_values(resource: dict[str, Any], *systems: str) -> list[str]:
    """The identifier values of a resource (of these systems, when given)."""
    return [
        str(i["value"])
        for i in resource.get("identifier") or []
        if i.get("value") and (not systems or i.get("system") in systems)
    ]


def hsa_id_of(resource: dict[str, Any]) -> str | None:
    found = identifier_values(resource, HSA_ID_SYSTEM)
    return found[0] if found else None


def fhir_instant(moment: datetime) -> str:
    """A FHIR instant in UTC with milliseconds: ``2026-11-26T04:01:02.345Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
