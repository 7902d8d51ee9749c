"""A small FHIR R4 REST client: the calls the scenarios make, with the plan's timeouts.

Transport failures become TargetError naming the URL, so a scenario fails with
"what and where" instead of an httpx traceback.
"""

from __future__ import annotations

from typing import Any

import httpx

from rehearsal.errors import TargetError
from rehearsal.identities import PERSONNUMMER_OID
from rehearsal.plan import Environment

FHIR_JSON = "application/fhir+json"


class FhirClient:
    def __init__(self, environment: Environment) -> None:
        t = environment.timeouts
        self.base = environment.fhir_base
        self._http = httpx.Client(
            base_url=self.base,
            timeout=httpx.Timeout(t.read, connect=t.connect),
            headers={"Accept": FHIR_JSON},
        )

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.base}/{path}"
        try:
            response = self._http.get(path, params=params)
        except httpx.TimeoutException:
            raise TargetError(f"{url}: no answer within the plan's timeout") from None
        except httpx.TransportError as exc:
            raise TargetError(f"{url}: {exc.__class__.__name__}: {exc}") from None
        if response.status_code != 200:
            raise TargetError(f"{url}: HTTP {response.status_code}: {_outcome_text(response)}")
        try:
            return response.json()
        except ValueError:
            raise TargetError(f"{url}: reply is not JSON") from None

    def capabilities(self) -> dict[str, Any]:
        return self.get("metadata")

    def patients_by_personnummer(self, personnummer: str) -> list[dict[str, Any]]:
        bundle = self.get("Patient", {"identifier": f"urn:oid:{PERSONNUMMER_OID}|{personnummer}"})
        return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]


def _outcome_text(response: httpx.Response) -> str:
    try:
        issues = response.json().get("issue", [])
        return "; ".join(i.get("diagnostics") or i.get("code", "") for i in issues) or response.reason_phrase
    except (ValueError, AttributeError):
        return response.reason_phrase


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
