"""Clients for the coexistence systems: the legacy EHR's JSON API (and, re-exported, the bridge's).

The plan names them (``environment.legacy_base``, ``environment.bridge_base``; their
requests are listed in plans/README.md). Scenarios act through them as the people and
systems on the other side of the boundary would: a clinician at a legacy unit who answers
a referral, an integration team that looks at the bridge's queues.
"""

from __future__ import annotations

# Both APIs are the reference hospital's contracts: they live with the reference adapters
# (rehearsal.adapters.legacy_reference, rehearsal.adapters.bridge_reference); re-exported here.
from rehearsal.adapters.bridge_reference import BridgeClient
from rehearsal.adapters.legacy_reference import LegacyClient

__all__ = ["BridgeClient", "LegacyClient"]
