"""Central systems first: a per-site scenario is blocked, not failed, while one it needs is down.

When the new EHR answers 503 everywhere, every site's login, lab order and referral fails
for one central reason. Counting that as a failure of each site would send the panel to
every site's owner for one fix. Instead the central checks (heartbeats, FHIR) fail and
name it, and each per-site scenario that needs the system is *blocked*: skipped with
the reason, shown as not run (pending) on its line, never as passed. ``rehearse rerun``
runs them once the central system is back.

Writes are refused on a production target (``environment.kind: production``) and on any
host outside ``environment.allowed_hosts``: such a scenario does not run at all.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from rehearsal.plan import Plan

PROBES = {
    "fhir_base": "/metadata",
    "web_base": "/",
    "legacy_base": "/",
    "bridge_base": "/bridge/heartbeat",
}
NAMES = {
    "fhir_base": "den nya journalens FHIR-gränssnitt",
    "web_base": "den nya journalens webbklient",
    "legacy_base": "det äldre journalsystemet",
    "bridge_base": "integrationsbryggan",
    "lab_mllp": "labbsystemets MLLP-port",
    "bridge_mllp": "bryggans MLLP-port",
    "directory": "HSA/KiV-katalogen",
}


def blocked(plan: Plan, needs: Iterable[str], plan_dir: Path | None = None) -> str | None:
    """Why a scenario needing these endpoints cannot run now (a central system is down), or None."""
    env = plan.environment
    timeout = httpx.Timeout(env.timeouts.read, connect=env.timeouts.connect)
    for field in dict.fromkeys(needs):
        where = getattr(env, field, None)
        if where is None:
            continue
        problem = None
        if field in PROBES:
            url = where.rstrip("/") + PROBES[field]
            try:
                status = httpx.get(url, timeout=timeout).status_code
                if status >= 500:
                    problem = f"HTTP {status} från {url}"
            except httpx.HTTPError as exc:
                problem = f"{url}: {exc.__class__.__name__}"
        elif "://" in where:
            parts = urlsplit(where)
            try:
                socket.create_connection((parts.hostname, parts.port), timeout=env.timeouts.connect).close()
            except OSError as exc:
                problem = f"{where}: {exc.strerror or exc}"
        elif not (
            Path(where) if Path(where).is_absolute() or plan_dir is None else plan_dir / where
        ).exists():
            problem = f"{where} finns inte"
        if problem:
            return (
                f"blockerad av central störning: {NAMES.get(field, field)} svarar inte ({problem}); "
                "de centrala kontrollerna visar felet, kör om platsen när det är åtgärdat"
            )
    return None


def write_refusal(plan: Plan) -> str | None:
    """Why scenarios that write (orders, referrals, registrations) must not run against this target."""
    env = plan.environment
    if env.kind == "production":
        return "planen pekar på produktion (environment.kind: production): skrivande scenarier körs inte"
    for field in ("fhir_base", "web_base", "legacy_base", "bridge_base"):
        url = getattr(env, field)
        if url and not env.host_allowed(url):
            return f"environment.{field} ({url}) ligger utanför environment.allowed_hosts: körs inte"
    return None
