"""Integration monitoring for the (fictional) Acme integration engine, which shows its health only
as Prometheus text metrics (``GET /metrics``, ``text/plain; version=0.0.4``)::

    acme_engine_last_beat_timestamp_seconds 1764662400.5
    acme_engine_parked_messages_total{site="sas-boras"} 0
    acme_engine_failed_messages_total{site="sas-boras"} 0

A third-party adapter for the harness: registered by the entry point ``monitoring:acme-engine``
in the group ``rehearsal.adapters`` (see pyproject.toml beside this file), chosen by the plan::

    environment:
      adapters: {monitoring: acme-engine}
      monitoring: {url: "http://engine:9102/metrics", max_heartbeat_age_s: 30}

It reuses the plan's ``environment.monitoring`` for where and how old a beat may be, and the
harness's guarded HTTP client (allowed hosts, timeouts); the rehearsal's steps do not change.
"""

from __future__ import annotations

import re
import time
from typing import Any

from rehearsal.adapters.monitoring import Activity, Heartbeat
from rehearsal.clients.http import GuardedClient, HttpError

LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
BEAT = "acme_engine_last_beat_timestamp_seconds"
PARKED = "acme_engine_parked_messages_total"
FAILED = "acme_engine_failed_messages_total"


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in Prometheus text exposition format."""
    samples = []
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if m and not line.startswith("#"):
            try:
                samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
            except ValueError:
                continue
    return samples


class AcmeEngineMonitoring:
    """``adapter(plan)``: the Acme engine's /metrics at ``environment.monitoring.url``."""

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        probe = plan.environment.monitoring
        env = plan.environment
        self.url, self.max_age = probe.url, probe.max_heartbeat_age_s
        self._http = GuardedClient(self.url, env.timeouts, env.allowed_hosts, field="environment.monitoring")

    @classmethod
    def missing(cls, plan: Any) -> str | None:
        return None if plan.environment.monitoring else "planen anger ingen environment.monitoring"

    @classmethod
    def endpoints(cls, plan: Any) -> dict[str, str]:
        probe = plan.environment.monitoring
        return {"monitoring.url": probe.url} if probe else {}

    def close(self) -> None:
        self._http.close()

    def _samples(self) -> list[tuple[str, dict[str, str], float]]:
        response = self._http.request("GET", self.url)
        if response.status_code != 200:
            raise HttpError(f"Acme engine {self.url}: HTTP {response.status_code}", response.status_code)
        return parse(response.text)

    def heartbeat(self) -> Heartbeat:
        try:
            samples = self._samples()
        except HttpError as exc:
            return Heartbeat(False, f"Acme engine: {exc}")
        beats = [v for name, _, v in samples if name == BEAT]
        if not beats:
            return Heartbeat(False, f"Acme engine {self.url}: no {BEAT}", {"samples": len(samples)})
        age = time.time() - max(beats)
        evidence = {"url": self.url, "beat_age_s": round(age, 1)}
        if age > self.max_age:
            return Heartbeat(
                False, f"Acme engine: last beat {age:.0f} s ago (at most {self.max_age:g} s)", evidence
            )
        return Heartbeat(True, "", evidence)

    def _counts(self) -> dict[str, dict[str, float]]:
        counts: dict[str, dict[str, float]] = {}
        for name, labels, value in self._samples():
            if name in (PARKED, FAILED):
                counts.setdefault(labels.get("site", ""), {}).setdefault(name, 0.0)
                counts[labels.get("site", "")][name] += value
        return counts

    def mark(self) -> dict[str, dict[str, float]]:
        return self._counts()

    def activity(self, mark: object, site: Any = None) -> Activity:
        before = mark if isinstance(mark, dict) else {}
        now = self._counts()
        keys = [site.id] if site is not None else sorted(now)
        lines: dict[str, list[str]] = {PARKED: [], FAILED: []}
        for key in keys:
            for name, what in ((PARKED, "parkerade (catch-all)"), (FAILED, "misslyckade")):
                grew = now.get(key, {}).get(name, 0.0) - before.get(key, {}).get(name, 0.0)
                if grew > 0:
                    lines[name].append(f"Acme engine: {grew:g} nya {what} meddelanden för {key or 'alla'}")
        return Activity(tuple(lines[PARKED]), tuple(lines[FAILED]), None, {"before": before, "now": now})
