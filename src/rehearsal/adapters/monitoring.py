"""Integration monitoring: is the integration engine alive, and did anything of the site get lost?

On one hospital more than 11,000 orders went to an "unknown queue" and nobody noticed. The
technical scenarios ask the engine that carries the coexistence traffic three things, through
this interface::

    monitor = plan.environment.adapter("monitoring")(plan)
    monitor.heartbeat() -> Heartbeat                  # alive, answering, beating recently
    mark = monitor.mark()                             # at the start of the rehearsal (window)
    monitor.activity(mark, site) -> Activity          # since then: parked (catch-all) and failed
    monitor.close()

An adapter also says, as class methods, why it cannot serve a plan (``missing(plan)``: the
scenario is then not collected, ``@needs:monitoring``) and which endpoints it uses
(``endpoints(plan)``: the central gate waits for them).

Adapters: ``reference`` (the reference bridge's own heartbeat and queue listing, message by
message: :mod:`rehearsal.adapters.monitoring_reference`) and ``standards`` (below): a
configurable HTTP/JSON probe, since every engine shows its statistics in its own JSON.
"""

from __future__ import annotations

import email.utils
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from rehearsal import adapters, redact
from rehearsal.adapters import monitoring_jsonpath as jsonpath
from rehearsal.clients.http import GuardedClient, HttpError
from rehearsal.errors import UsageError
from rehearsal.plan import Plan, Site


@dataclass(frozen=True)
class Heartbeat:
    """The engine's health now: ``ok``, else one line saying what is wrong; what it said as evidence."""

    ok: bool
    problem: str = ""
    evidence: Any = None


@dataclass(frozen=True)
class Activity:
    """What the engine shows for a site since the mark, one line per problem.

    ``messages``: every message it carried, when the engine lists them one by one (the
    reference bridge does; a statistics page does not: None), for the checks that follow one
    message (a lab order through the bridge, the test-identity guard).
    """

    orphaned: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    messages: tuple[dict[str, Any], ...] | None = None
    evidence: Any = None


@runtime_checkable
class Monitoring(Protocol):
    """Built as ``adapter(plan)``; ``missing(plan)`` and ``endpoints(plan)`` are class methods."""

    def heartbeat(self) -> Heartbeat: ...

    def mark(self) -> object:
        """Where "during this rehearsal" begins, on the engine's own terms (its clock or its counters)."""
        ...

    def activity(self, mark: object, site: Site | None = None) -> Activity: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Reading:
    """One read of the statistics: the numbers the plan's paths gave (None: path not in the plan)."""

    orphaned: float | None = None
    failed: float | None = None
    depth: float | None = None
    said: Any = field(default=None, compare=False)


class StandardsMonitoring:
    """Any engine with an HTTP/JSON statistics page, read by the plan's ``environment.monitoring``.

    ``url`` (and ``heartbeat_url``) may contain ``{site}``: the plan site id, for engines that
    filter by site (then each site is judged on its own numbers); the JSON paths may too (a
    catch-all channel per site). Without it the numbers are the engine's, for every site.

    - heartbeat: the page answers 2xx with JSON; with ``heartbeat``, the time it names (ISO 8601
      or epoch seconds) is at most ``max_heartbeat_age_s`` old by the engine's own ``Date``
      header (its clock; the local one when it sends none); with ``queue_depth`` and
      ``max_queue_depth``, at most that many messages wait (read from ``url``).
    - activity: ``orphaned`` (the catch-all/orphan queue) and ``failed`` (errored messages)
      must not have grown since the mark, so only what happened during the run counts.
    """

    def __init__(self, plan: Plan) -> None:
        probe = plan.environment.monitoring
        if probe is None:
            raise UsageError(
                "environment.monitoring: the standards monitoring adapter needs its url and paths"
            )
        self.plan, self.probe = plan, probe
        self._token = (os.environ.get(probe.token_env) or None) if probe.token_env else None
        if self._token:
            redact.register(self._token)  # never in an artifact, whatever the engine echoes back
        self._clients: dict[str, GuardedClient] = {}

    @classmethod
    def missing(cls, plan: Plan) -> str | None:
        return None if plan.environment.monitoring else "planen anger ingen environment.monitoring"

    @classmethod
    def endpoints(cls, plan: Plan) -> dict[str, str]:
        probe = plan.environment.monitoring
        if probe is None:
            return {}
        first = plan.sites[0].id
        found = {"monitoring.url": probe.url.replace("{site}", first)}
        if probe.heartbeat_url:
            found["monitoring.heartbeat_url"] = probe.heartbeat_url.replace("{site}", first)
        return found

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    # -- heartbeat --------------------------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        url = self._url(self.probe.heartbeat_url or self.probe.url, None)
        try:
            status, body, date = self._get(url)
            evidence: dict[str, Any] = {"url": url, "http": status, "body": body}
            if status >= 300 or body is None:
                return Heartbeat(
                    False, f"integrationsmotorn ({url}): HTTP {status}, inget JSON-svar", evidence
                )
            problems = self._beat_problems(body, date) if self.probe.heartbeat else []
            if self.probe.queue_depth and self.probe.max_queue_depth is not None:
                depth = self._read(None).depth
                evidence["queue_depth"] = depth
                if depth is None:
                    problems.append(f"inget ködjup vid {self.probe.queue_depth}")
                elif depth > self.probe.max_queue_depth:
                    problems.append(
                        f"{depth:g} meddelanden väntar i köerna (högst {self.probe.max_queue_depth:g})"
                    )
        except HttpError as exc:
            return Heartbeat(False, f"integrationsmotorn: {exc}")
        if problems:
            return Heartbeat(False, f"integrationsmotorn ({url}): " + "; ".join(problems), evidence)
        return Heartbeat(True, "", evidence)

    def _beat_problems(self, body: Any, date: datetime | None) -> list[str]:
        assert self.probe.heartbeat
        found = jsonpath.values(jsonpath.parse(self.probe.heartbeat), body)
        beat = next((t for t in (_instant(v) for v in found) if t is not None), None)
        if beat is None:
            return [f"inget hjärtslag vid {self.probe.heartbeat} (fanns: {found[:3]!r})"]
        age = ((date or datetime.now(UTC)) - beat).total_seconds()
        if age > self.probe.max_heartbeat_age_s:
            return [f"senaste hjärtslag för {age:.0f} s sedan (högst {self.probe.max_heartbeat_age_s:g} s)"]
        return []

    # -- activity ---------------------------------------------------------------------------

    def mark(self) -> dict[str, Reading | str]:
        """A reading per site (one for all when nothing names ``{site}``); a site that did not
        answer keeps why, and is then counted from zero (stricter, never more lenient)."""
        marks: dict[str, Reading | str] = {}
        for key in [s.id for s in self.plan.sites] if self._per_site() else [""]:
            try:
                marks[key] = self._read(key or None)
            except HttpError as exc:
                marks[key] = str(exc)
        return marks

    def activity(self, mark: object, site: Site | None = None) -> Activity:
        key = site.id if site is not None and self._per_site() else ""
        before = mark.get(key) if isinstance(mark, dict) else None
        now = self._read(key or None)  # HttpError (a TargetError): the engine does not answer now
        start = before if isinstance(before, Reading) else Reading(0, 0, None)
        note = "" if isinstance(before, Reading) else " (inget utgångsläge från repetitionens början)"
        url = self._url(self.probe.url, key or None)
        lines: dict[str, list[str]] = {"orphaned": [], "failed": []}
        for name, what in (("orphaned", "i catch-all-kön"), ("failed", "misslyckade")):
            was, is_ = getattr(start, name) or 0, getattr(now, name)
            if is_ is not None and is_ > was:
                lines[name].append(
                    f"{is_ - was:g} nya meddelanden {what} enligt {url} ({was:g} → {is_:g}){note}"
                )
        evidence = {"url": url, "before": _plain(start), "now": _plain(now), "said": now.said}
        return Activity(tuple(lines["orphaned"]), tuple(lines["failed"]), None, evidence)

    # -- the wire ---------------------------------------------------------------------------

    def _per_site(self) -> bool:
        texts = (self.probe.url, self.probe.orphaned, self.probe.failed, self.probe.queue_depth)
        return any(t and "{site}" in t for t in texts)

    def _read(self, site: str | None) -> Reading:
        url = self._url(self.probe.url, site)
        status, body, _ = self._get(url)
        if status >= 300 or body is None:
            raise HttpError(f"GET {url}: HTTP {status}, inget JSON-svar", status)
        numbers = {
            name: _total(template.replace("{site}", site or self.plan.sites[0].id), body)
            if template
            else None
            for name, template in (
                ("orphaned", self.probe.orphaned),
                ("failed", self.probe.failed),
                ("depth", self.probe.queue_depth),
            )
        }
        return Reading(numbers["orphaned"], numbers["failed"], numbers["depth"], said=body)

    def _url(self, template: str, site: str | None) -> str:
        return template.replace("{site}", site or self.plan.sites[0].id)

    def _get(self, url: str) -> tuple[int, Any, datetime | None]:
        """(status, JSON body or None, the server's Date) of one GET through the guarded HTTP layer."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._clients:
            env = self.plan.environment
            self._clients[origin] = GuardedClient(
                origin, env.timeouts, env.allowed_hosts, field="environment.monitoring", bearer=self._token
            )
        response = self._clients[origin].request("GET", url, headers={"Accept": "application/json"})
        try:
            body = response.json()
        except ValueError:
            body = None
        try:
            date = email.utils.parsedate_to_datetime(response.headers.get("date", ""))
        except (TypeError, ValueError):
            date = None
        return response.status_code, body, date


def _total(path: str, body: Any) -> float | None:
    """The sum of the numbers the path reaches (a list of queues adds up); None when it reaches none."""
    numbers = [
        v
        for v in jsonpath.values(jsonpath.parse(path), body)
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return float(sum(numbers)) if numbers else None


def _instant(value: Any) -> datetime | None:
    """An ISO 8601 time or epoch seconds (milliseconds when above 10^11) as an aware datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _plain(reading: Reading) -> dict[str, float | None]:
    return {"orphaned": reading.orphaned, "failed": reading.failed, "depth": reading.depth}


def for_plan(plan: Plan) -> Monitoring | None:
    """The plan's monitoring adapter, made; None when it has nothing to watch in this plan."""
    if adapters.missing(plan, "monitoring") is not None:
        return None
    made: Monitoring = plan.environment.adapter("monitoring")(plan)
    return made
