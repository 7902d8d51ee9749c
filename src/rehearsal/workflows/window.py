""" "During this rehearsal": the moment it began, on each target system's own clock.

Checks such as "no message of the site in the catch-all queue" or "every patient touched
is a test identity" look at what happened during the run, not at what earlier runs left
behind (a rerun after a fix must not fail on the backlog of the run it repeats). The
start is read from the target's clocks — the FHIR server's and the integration monitoring's
(the bridge's clock, an engine's counters) — so a skewed workstation clock neither hides nor
adds anything; when a system does not answer, the local clock (a second early) stands in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rehearsal.adapters import monitoring
from rehearsal.clients.fhir import FhirClient, fhir_instant
from rehearsal.errors import TargetError
from rehearsal.plan import Plan


@dataclass(frozen=True)
class Window:
    """When this rehearsal began: FHIR instant (new EHR clock), the monitoring's mark, local time.

    ``monitoring`` is what the plan's monitoring adapter marked (the reference bridge's clock,
    an engine's counters: :mod:`rehearsal.adapters.monitoring`); the local instant when it did
    not answer.
    """

    fhir_since: str
    monitoring: object
    local_since: datetime

    @property
    def bridge_since(self) -> str:
        """The reference bridge's clock at the start (its mark), else the local instant."""
        return self.monitoring if isinstance(self.monitoring, str) else fhir_instant(self.local_since)


def open_window(plan: Plan) -> Window:
    local = datetime.now(UTC) - timedelta(seconds=1)
    fhir_since = fhir_instant(local)
    mark: object = fhir_since
    try:
        with FhirClient(plan.environment) as fhir:
            fhir_since = fhir_instant(fhir.server_time() - timedelta(milliseconds=1))
    except TargetError:
        pass
    try:
        monitor = monitoring.for_plan(plan)
        if monitor is not None:
            try:
                mark = monitor.mark() or mark
            finally:
                monitor.close()
    except TargetError:
        pass
    return Window(fhir_since=fhir_since, monitoring=mark, local_since=local)
