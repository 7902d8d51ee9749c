"""Clients for the coexistence systems: the legacy EHR's JSON API and the integration bridge.

The plan names them (``environment.legacy_base``, ``environment.bridge_base``; their
requests are listed in plans/README.md). Scenarios act through them as the people and
systems on the other side of the boundary would: a clinician at a legacy unit who answers
a referral, an integration team that looks at the bridge's queues.
"""

from __future__ import annotations

from typing import Any

from rehearsal import patient_gate
from rehearsal.clients.jsonhttp import HttpError, JsonClient
from rehearsal.errors import UsageError
from rehearsal.plan import Plan


class LegacyClient(JsonClient):
    """The legacy EHR: ``/api/referrals``, ``/api/records``, ``/api/extract/*.csv``."""

    @classmethod
    def for_plan(cls, plan: Plan) -> LegacyClient:
        if plan.environment.legacy_base is None:
            raise UsageError("the plan names no legacy EHR (environment.legacy_base)")
        env = plan.environment
        return cls(env.legacy_base, env.timeouts, env.allowed_hosts, field="environment.legacy_base")

    def send_referral(self, personnummer: str, from_unit: str, to_unit: str, text: str) -> dict[str, Any]:
        """A referral written at a legacy unit (``from_unit`` HSA-id) to any unit of the plan."""
        patient_gate.check(personnummer, "skicka remiss för")
        body = {"personnummer": personnummer, "from_unit": from_unit, "to_unit": to_unit, "text": text}
        return self.call("POST", "/api/referrals", json=body)

    def referral(self, rid: int) -> dict[str, Any]:
        return self.call("GET", f"/api/referrals/{rid}")

    def referrals(self, **query: str) -> list[dict[str, Any]]:
        """``direction``, ``status``, ``unit``, ``personnummer``, ``since`` (change counter), ``limit``."""
        patient_gate.check(query.get("personnummer", ""), "läsa remisser för")
        return list(self.call("GET", "/api/referrals", params={"limit": "1000", **query}))

    def acknowledge(self, rid: int) -> dict[str, Any]:
        return self.call("POST", f"/api/referrals/{rid}/status", json={"status": "received"})

    def answer(self, rid: int, text: str, by: str) -> dict[str, Any]:
        return self.call("POST", f"/api/referrals/{rid}/answer", json={"text": text, "by": by})

    def publish(self, personnummer: str, unit: str, title: str, text: str) -> dict[str, Any]:
        """A record (note) published by a legacy unit, as the NPÖ-like read will show it."""
        patient_gate.check(personnummer, "publicera anteckning för")
        body = {"personnummer": personnummer, "unit": unit, "title": title, "text": text}
        return self.call("POST", "/api/records", json=body)

    def extract(self, name: str) -> str:
        """One file of the migration extract (``bookings``, ``patients``, ``referrals``) as text."""
        return self.text(f"/api/extract/{name}.csv")


class BridgeClient(JsonClient):
    """The bridge: ``/bridge/heartbeat``, ``/bridge/queues``, ``/npo/Patient/{pnr}``, ``/migration``."""

    @classmethod
    def for_plan(cls, plan: Plan) -> BridgeClient:
        if plan.environment.bridge_base is None:
            raise UsageError("the plan names no bridge (environment.bridge_base)")
        env = plan.environment
        return cls(env.bridge_base, env.timeouts, env.allowed_hosts, field="environment.bridge_base")

    def heartbeat(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): 503 is an answer here (the worker stopped), not an error."""
        response = self.response("GET", "/bridge/heartbeat")
        try:
            body = response.json()
        except ValueError:
            raise HttpError(
                f"GET {self.base}/bridge/heartbeat: reply is not JSON", response.status_code
            ) from None
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
