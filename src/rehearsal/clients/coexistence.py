"""Clients for the coexistence systems: the legacy EHR's JSON API (and, re-exported, the bridge's).

The plan names them (``environment.legacy_base``, ``environment.bridge_base``; their
requests are listed in plans/README.md). Scenarios act through them as the people and
systems on the other side of the boundary would: a clinician at a legacy unit who answers
a referral, an integration team that looks at the bridge's queues.
"""

from __future__ import annotations

from typing import Any

from rehearsal import patient_gate
from rehearsal.adapters.bridge_reference import BridgeClient
from rehearsal.clients.jsonhttp import JsonClient
from rehearsal.errors import UsageError
from rehearsal.plan import Plan

__all__ = ["BridgeClient", "LegacyClient"]


class LegacyClient(JsonClient):
    """The legacy EHR: ``/api/referrals``, ``/api/records``, ``/api/extract/*.csv``."""

    @classmethod
    def for_plan(cls, plan: Plan) -> LegacyClient:
        env = plan.environment
        if env.legacy_base is None:
            raise UsageError("the plan names no legacy EHR (environment.legacy_base)")
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


# The bridge's own API (heartbeat, queues, NPÖ, migration) is the reference hospital's contract:
# it lives with the reference adapters, rehearsal.adapters.bridge_reference.BridgeClient.
