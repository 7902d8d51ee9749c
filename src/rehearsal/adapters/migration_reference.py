"""The reference hospital's migration: the legacy EHR's CSV extract against the bridge's migrated bookings.

The legacy EHR exports ``bookings.csv`` (``;``-separated, UTF-8) and the reference bridge
serves the bookings migrated from it as FHIR Appointments; both are reference-only APIs
(:class:`~rehearsal.clients.coexistence.LegacyClient`,
:class:`~rehearsal.adapters.bridge_reference.BridgeClient`). A real target compares its
systems' FHIR Appointments (:class:`rehearsal.adapters.migration.StandardsMigration`).
"""

from __future__ import annotations

from typing import Any

from rehearsal.adapters.bridge_reference import BridgeClient
from rehearsal.clients.coexistence import LegacyClient
from rehearsal.plan import Plan
from rehearsal.reconcile import parse_extract


class ReferenceMigration:
    """``adapter(plan)``: the extract from ``environment.legacy_base``, the migrated from ``bridge_base``."""

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

    def source(self) -> list[dict[str, str]]:
        return parse_extract(self.legacy.extract("bookings"))

    def target(self) -> list[dict[str, Any]]:
        return self.bridge.migrated_appointments()
