"""The reference bridge as integration monitoring: its heartbeat and its queues, message by message.

The reference bridge lists every message it carried with its queue (a route or the catch-all
queue), status and error, on its own clock, so the check can name each parked or failed
message of the site. No real engine has this listing; see
:class:`rehearsal.adapters.monitoring.StandardsMonitoring` for one that only shows counters.
"""

from __future__ import annotations

from typing import Any

from rehearsal.adapters.bridge_reference import BridgeClient
from rehearsal.adapters.monitoring import Activity, Heartbeat
from rehearsal.plan import Plan, Site


class ReferenceMonitoring:
    """``adapter(plan)``: the bridge at ``environment.bridge_base``; the mark is the bridge's clock."""

    def __init__(self, plan: Plan) -> None:
        self.bridge = BridgeClient.for_plan(plan)

    @classmethod
    def missing(cls, plan: Plan) -> str | None:
        return None if plan.environment.bridge_base else "planen anger ingen environment.bridge_base"

    @classmethod
    def endpoints(cls, plan: Plan) -> dict[str, str]:
        base = plan.environment.bridge_base
        return {"bridge_base": base} if base else {}

    def close(self) -> None:
        self.bridge.close()

    def heartbeat(self) -> Heartbeat:
        status, body = self.bridge.heartbeat()
        links = body.get("links") or {}
        broken = [f"{n}: {link.get('error') or 'fel'}" for n, link in links.items() if not link.get("ok")]
        ok = status == 200 and body.get("status") == "ok"
        problem = "" if ok else f"bryggan: HTTP {status}, status {body.get('status')!r}; " + "; ".join(broken)
        return Heartbeat(ok, problem, {"http": status, **body})

    def mark(self) -> str:
        """The bridge's clock (ISO, UTC) now: messages created from then on are this rehearsal's."""
        return self.bridge.time()

    def activity(self, mark: object, site: Site | None = None) -> Activity:
        since = mark if isinstance(mark, str) and mark else None
        messages = self.bridge.messages(site.id if site else None, since=since)
        parked = [
            f"{m['kind']} {m['key']} ({m.get('patient', '')}): {m.get('error', '')}"
            for m in messages
            if m.get("queue") == "catch-all"
        ]
        failed = [
            f"{m['kind']} {m['key']} i {m['queue']}: {m.get('error', '')}"
            for m in messages
            if m.get("status") == "failed"
        ]
        listed: tuple[dict[str, Any], ...] = tuple(messages)
        return Activity(tuple(parked), tuple(failed), listed, list(messages))
