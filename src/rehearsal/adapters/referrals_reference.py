"""The reference hospital's legacy end of referrals: the legacy EHR's ``/api/referrals``.

The reference bridge carries referrals between the legacy EHR's JSON API and the new EHR's
FHIR, so the reference adapter needs both (``legacy_base``, ``bridge_base``); a target
without them uses :class:`rehearsal.adapters.referrals.StandardsReferrals` (FHIR on both sides).
"""

from __future__ import annotations

from rehearsal.adapters.legacy_reference import LegacyAndBridge
from rehearsal.adapters.referrals import Arrived
from rehearsal.workflows.routines import Unit


class ReferenceReferrals(LegacyAndBridge):
    """``adapter(plan)``: the legacy EHR at ``environment.legacy_base``."""

    def send(self, personnummer: str, sender: Unit, receiver: Unit, text: str) -> str:
        return str(self.legacy.send_referral(personnummer, sender.hsa_id, receiver.hsa_id, text)["id"])

    def answered(self, rid: str) -> tuple[str, str | None]:
        row = self.legacy.referral(int(rid))
        status = str(row.get("status", ""))
        return status, str(row.get("answer") or "") if status == "answered" else None

    def find(self, personnummer: str, receiver: Unit, ref: str) -> Arrived | None:
        rows = self.legacy.referrals(direction="in", unit=receiver.hsa_id, personnummer=personnummer)
        row = next((r for r in reversed(rows) if ref in str(r.get("text", ""))), None)
        return None if row is None else Arrived(str(row["id"]), str(row.get("text", "")))

    def acknowledge(self, rid: str) -> None:
        self.legacy.acknowledge(int(rid))

    def answer(self, rid: str, text: str, by: str) -> None:
        self.legacy.answer(int(rid), text, by)
