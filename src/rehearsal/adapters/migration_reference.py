"""The reference hospital's migration: the legacy EHR's CSV extract against the bridge's migrated bookings.

The legacy EHR exports ``bookings.csv`` (``;``-separated, UTF-8) and the reference bridge
serves the bookings migrated from it as FHIR Appointments; both are reference-only APIs
(:class:`~rehearsal.clients.coexistence.LegacyClient`,
:class:`~rehearsal.adapters.bridge_reference.BridgeClient`). A real target compares its
systems' FHIR Appointments (:class:`rehearsal.adapters.migration.StandardsMigration`).
"""

from __future__ import annotations

from typing import Any

from rehearsal.adapters.legacy_reference import LegacyAndBridge
from rehearsal.reconcile import parse_extract


class ReferenceMigration(LegacyAndBridge):
    """``adapter(plan)``: the extract from ``environment.legacy_base``, the migrated from ``bridge_base``."""

    def source(self) -> list[dict[str, str]]:
        return parse_extract(self.legacy.extract("bookings"))

    def target(self) -> list[dict[str, Any]]:
        return self.bridge.migrated_appointments()
