"""The reference hospital's NPÖ-like read: the legacy EHR's ``/api/records`` and the bridge's overview.

A legacy unit publishes through the legacy EHR's own API; the reference bridge answers
``/npo/Patient/{pnr}`` with both sides' records and, per side, whether it answered. Both are
reference-only APIs; :class:`rehearsal.adapters.records.StandardsRecords` reads FHIR on both sides.
"""

from __future__ import annotations

from rehearsal.adapters.bridge_reference import BridgeClient
from rehearsal.adapters.records import Overview, Record
from rehearsal.clients.coexistence import LegacyClient
from rehearsal.plan import Plan


class ReferenceRecords:
    """``adapter(plan)``: publish at ``environment.legacy_base``, read at ``environment.bridge_base``."""

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

    def publish(self, personnummer: str, unit: str, title: str, text: str) -> str:
        return str(self.legacy.publish(personnummer, unit, title, text).get("id", ""))

    def overview(self, personnummer: str) -> Overview:
        status, body = self.bridge.npo(personnummer)
        sources: dict[str, str | None] = {
            name: None if s.get("ok") else str(s.get("error") or "svarar inte")
            for name, s in (body.get("sources") or {}).items()
        }
        if status != 200 and not any(sources.values()):
            sources["bryggan"] = f"HTTP {status}: {body.get('error', '')}".strip()
        records = tuple(
            Record(
                str(r.get("source", "")),
                str(r.get("id", "")),
                str(r.get("title") or ""),
                str(r.get("text") or ""),
            )
            for r in body.get("records") or []
        )
        return Overview(sources, records, {"http": status, **body})
