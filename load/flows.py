"""What a clinician does in the EHR under load, one plain function per load path.

Each flow takes the running Locust user and sends its requests under ``name=<path id>``,
so Locust keeps one statistic per plan load path and the harness can hold each path to
its own SLO. Flows check the business answer (did the search find the patient?), not
only the status code: a fast empty answer is a failure, not a good response time.

Flows are functions, not ``@task`` methods on a mixin (Locust ignores those); a user class
picks them with ``tasks = tasks_for(path_ids, WEIGHTS)``. A new flow (login, open chart,
lab order, referral) is a function here plus its path id in :data:`FLOWS`; a role with a
different mix gets its own weights dict and its own user class in the locustfile.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from rehearsal.identities import PERSONNUMMER_OID

PERSONNUMMER_SYSTEM = f"urn:oid:{PERSONNUMMER_OID}"

Flow = Callable[[Any], None]


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def find_patient(bundle: Any, personnummer: str) -> bool:
    """True when a searchset Bundle holds a Patient carrying this personnummer.

    Digits are compared, so ``19121212-1212`` matches ``191212121212`` as FHIR servers
    in Sweden usually store it.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return False
    wanted = _digits(personnummer)
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
            continue
        for ident in resource.get("identifier") or []:
            if not isinstance(ident, dict):
                continue
            if ident.get("system") not in (None, PERSONNUMMER_SYSTEM):
                continue
            if _digits(str(ident.get("value", ""))) == wanted:
                return True
    return False


def patient_search(user: Any) -> None:
    """Search one of the plan's test patients by personnummer and expect to find it."""
    identity = random.choice(user.identities)
    query = urlencode({"identifier": f"{PERSONNUMMER_SYSTEM}|{identity.personnummer}"})
    with user.client.get(
        f"/Patient?{query}",
        name="patient-search",
        headers={"Accept": "application/fhir+json"},
        catch_response=True,
    ) as response:
        if response.status_code != 200:
            response.failure(f"HTTP {response.status_code}")
            return
        try:
            bundle = response.json()
        except Exception:  # any undecodable body is the same business failure
            response.failure("answer is not JSON")
            return
        if not find_patient(bundle, identity.personnummer):
            response.failure("no Patient with the searched personnummer in the Bundle")
        else:
            response.success()


# Plan load path id -> flow. The request name of every request a flow sends is its path id.
FLOWS: dict[str, Flow] = {
    "patient-search": patient_search,
}

# How often each flow runs relative to the others, for the clinician user class.
WEIGHTS: dict[str, int] = {
    "patient-search": 1,
}


def tasks_for(path_ids: Iterable[str], weights: Mapping[str, int] = WEIGHTS) -> dict[Flow, int]:
    """The Locust ``tasks`` dict for the plan's load paths; an unknown path id is an error.

    Only the paths the plan lists are run, so each path the plan holds to an SLO gets
    traffic and nothing else does.
    """
    tasks: dict[Flow, int] = {}
    for path_id in path_ids:
        if path_id not in FLOWS:
            raise ValueError(
                f"plan load path {path_id!r} has no flow in load/flows.py (known: {', '.join(sorted(FLOWS))})"
            )
        tasks[FLOWS[path_id]] = weights.get(path_id, 1)
    return tasks
