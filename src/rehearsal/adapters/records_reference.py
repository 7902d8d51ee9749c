"""The reference hospital's NPÖ-like read: the legacy EHR's ``/api/records`` and the bridge's overview.

A legacy unit publishes through the legacy EHR's own API; the reference bridge answers
``/npo/Patient/{pnr}`` with both sides' records and, per side, whether it answered. Both are
reference-only APIs; :class:`rehearsal.adapters.records.StandardsRecords` reads FHIR on both sides.
"""

from __future__ import annotations

from rehearsal.adapters.legacy_reference import LegacyAndBridge
from rehearsal.adapters.records import Overview, Record


class ReferenceRecords(LegacyAndBridge):
    """``adapter(plan)``: publish at ``environment.legacy_base``, read at ``environment.bridge_base``."""

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
