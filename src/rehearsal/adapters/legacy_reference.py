"""The reference hospital's legacy EHR, reached through its JSON API (``environment.legacy_base``).

Like :mod:`rehearsal.adapters.bridge_reference`, this is the reference hospital's own
contract, kept with the reference adapters; :class:`LegacyAndBridge` is what the reference
adapters that need both sides (migration, records) share.
"""

from __future__ import annotations

from typing import Any

from rehearsal import patient_gate
from rehearsal.adapters.bridge_reference import BridgeClient
from rehearsal.clients.jsonhttp import JsonClient
from rehearsal.errors import UsageError
from rehearsal.plan import Plan


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


class LegacyAndBridge:
    """A reference adapter that needs the legacy EHR and the bridge: ``adapter(plan)``."""

    def __init__(self, plan: Plan) -> None:
        self.legacy = LegacyClient.for_plan(plan)
        self.bridge = BridgeClient.for_plan(plan)

    @classmethod
    def missing(cls, plan: Plan) -> str | None:
        for field in ("legacy_base", "bridge_base"):
            if getattr(plan.environment, field) is None:
                return f"planen anger ingen environment.{field}"
        return None

    @classmethod
    def endpoints(cls, plan: Plan) -> dict[str, str]:
        env = plan.environment
        return {f: u for f, u in (("legacy_base", env.legacy_base), ("bridge_base", env.bridge_base)) if u}

    def close(self) -> None:
        self.legacy.close()
        self.bridge.close()
