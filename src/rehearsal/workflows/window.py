""" "During this rehearsal": the moment it began, on each target system's own clock.

Checks such as "no message of the site in the catch-all queue" or "every patient touched
is a test identity" look at what happened during the run, not at what earlier runs left
behind (a rerun after a fix must not fail on the backlog of the run it repeats). The
start is read from the target's clocks — the FHIR server's and the bridge's — so a skewed
workstation clock neither hides nor adds anything; when a system does not answer, the
local clock (a second early) stands in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rehearsal.clients.coexistence import BridgeClient
from rehearsal.clients.fhir import FhirClient, fhir_instant
from rehearsal.errors import TargetError
from rehearsal.plan import Plan


@dataclass(frozen=True)
class Window:
    """When this rehearsal began: FHIR instant (new EHR clock), bridge time, local time."""

    fhir_since: str
    bridge_since: str
    local_since: datetime


def open_window(plan: Plan) -> Window:
    local = datetime.now(UTC) - timedelta(seconds=1)
    fhir_since = bridge_since = fhir_instant(local)
    try:
        with FhirClient(plan.environment) as fhir:
            fhir_since = fhir_instant(fhir.server_time() - timedelta(milliseconds=1))
    except TargetError:
        pass
    if plan.environment.bridge_base:
        try:
            with BridgeClient.for_plan(plan) as bridge:
                bridge_since = bridge.time() or bridge_since
        except TargetError:
            pass
    return Window(fhir_since=fhir_since, bridge_since=bridge_since, local_since=local)
