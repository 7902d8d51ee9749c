"""The reference hospital's integration bridge: its own JSON API, known only to the reference adapters.

``/bridge/heartbeat`` and ``/bridge/queues`` (monitoring), ``/npo/Patient/{pnr}`` (the other
side's records), ``/migration/Appointment`` (migrated bookings). No real integration engine
has these; a target without the reference bridge uses the ``standards`` adapters
(:mod:`rehearsal.adapters.monitoring`, :mod:`rehearsal.adapters.migration`).
"""

from __future__ import annotations

from typing import Any

from rehearsal import patient_gate
from rehearsal.clients.jsonhttp import HttpError, JsonClient
from rehearsal.errors import UsageError
from rehearsal.plan import Plan

#: The bridge's health, also what the central gate asks of ``environment.bridge_base``.
HEARTBEAT = "/bridge/heartbeat"


class BridgeClient(JsonClient):
    """The bridge: ``/bridge/heartbeat``, ``/bridge/queues``, ``/npo/Patient/{pnr}``, ``/migration``."""

    @classmethod
    def for_plan(cls, plan: Plan) -> BridgeClient:
        env = plan.environment
        if env.bridge_base is None:
            raise UsageError("the plan names no bridge (environment.bridge_base)")
        return cls(env.bridge_base, env.timeouts, env.allowed_hosts, field="environment.bridge_base")

    def heartbeat(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): 503 is an answer here (the worker stopped), not an error."""
        response = self.response("GET", HEARTBEAT)
        try:
            body = response.json()
        except ValueError:
            raise HttpError(f"GET {self.base}{HEARTBEAT}: reply is not JSON", response.status_code) from None
        return response.status_code, body

    def queues(self, site: str | None = None) -> dict[str, Any]:
        return self.call("GET", "/bridge/queues", params={"site": site} if site else None)

    def messages(self, site: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
        """Every message the bridge shows (per queue), oldest first; ``since`` an ISO time (its clock)."""
        snapshot = self.queues(site)
        found = [m for q in snapshot.get("queues", {}).values() for m in q.get("messages", [])]
        if since is not None:
            found = [m for m in found if str(m.get("created", "")) >= since]
        return sorted(found, key=lambda m: (str(m.get("created", "")), m.get("id", 0)))

    def time(self) -> str:
        """The bridge's clock (ISO, UTC), as its queue snapshot states it."""
        return str(self.queues().get("time", ""))

    def npo(self, personnummer: str) -> tuple[int, dict[str, Any]]:
        """(status, body) of the NPÖ-like read: 502 says which side did not answer, in the body."""
        response = self.response("GET", f"/npo/Patient/{patient_gate.check(personnummer, 'läsa NPÖ för')}")
        try:
            return response.status_code, response.json()
        except ValueError:
            raise HttpError(
                f"GET {self.base}/npo/Patient/…: reply is not JSON", response.status_code
            ) from None

    def migrated_appointments(self) -> list[dict[str, Any]]:
        """The migrated bookings as FHIR Appointments (a searchset Bundle at ``/migration/Appointment``)."""
        bundle = self.call("GET", "/migration/Appointment")
        return [e["resource"] for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]
