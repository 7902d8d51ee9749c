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

from rehearsal import adapters, silence
from rehearsal.adapters import bridge_reference
from rehearsal.clients.http import GuardedClient, HttpError
from rehearsal.plan import Plan

PROBES = {
    "fhir_base": "/metadata",
    "web_base": "/",
    "legacy_base": "/",
    "bridge_base": bridge_reference.HEARTBEAT,  # the reference bridge's own API
}
NAMES = {
    "fhir_base": "den nya journalens FHIR-gränssnitt",
    "web_base": "den nya journalens webbklient",
    "legacy_base": "det äldre journalsystemet",
    "bridge_base": "integrationsbryggan",
    "lab_mllp": "labbsystemets MLLP-port",
    "bridge_mllp": "bryggans MLLP-port",
    "directory": "HSA/KiV-katalogen",
    "monitoring.url": "integrationsövervakningen",
    "monitoring.heartbeat_url": "integrationsövervakningens hjärtslag",
}


def blocked(plan: Plan, needs: Iterable[str], plan_dir: Path | None = None) -> str | None:
    """Why a scenario needing these endpoints cannot run now (a central system is down), or None."""
    for field, where in _endpoints(plan, dict.fromkeys(needs)):
        try:
            silence.check(where)  # timed out earlier in this run: blocked at once, not after another wait
            problem = _probe(plan, field, where, plan_dir)
        except silence.Silent as exc:
            problem = str(exc)
        if problem:
            return (
                f"blockerad av central störning: {NAMES.get(field, field)} svarar inte ({problem}); "
                "de centrala kontrollerna visar felet, kör om platsen när det är åtgärdat"
            )
    return None


def _endpoints(plan: Plan, needs: Iterable[str]) -> list[tuple[str, str]]:
    """(field, address) of each endpoint the needs name; an interface (``monitoring``) names its adapter's."""
    found: list[tuple[str, str]] = []
    for field in needs:
        if field in adapters.INTERFACES:
            found += adapters.endpoints(plan, field).items()
        elif (where := getattr(plan.environment, field, None)) is not None:
            found.append((field, where))
    return list(dict.fromkeys(found))


def _probe(plan: Plan, field: str, where: str, plan_dir: Path | None) -> str | None:
    """What is wrong with one endpoint now, or None; a timeout is recorded (rehearsal.silence)."""
    t = plan.environment.timeouts
    if field in PROBES:
        url = where.rstrip("/") + PROBES[field]
        env = plan.environment
        try:  # the harness's one HTTP layer: allowed hosts, this origin only, a total deadline
            with GuardedClient(where, t, env.allowed_hosts, field=f"environment.{field}") as http:
                status = http.request("GET", PROBES[field], follow_redirects=False).status_code
        except HttpError as exc:  # a timeout is recorded there (rehearsal.silence)
            return str(exc)
        return f"HTTP {status} från {url}" if status >= 500 else None
    if "://" in where:
        parts = urlsplit(where)
        try:
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
            socket.create_connection((parts.hostname, port), timeout=t.connect).close()
        except TimeoutError:
            return silence.timed_out(where, t.connect, "connect", "no connection")
        except OSError as exc:
            return f"{where}: {exc.strerror or exc}"
        return None
    path = Path(where) if Path(where).is_absolute() or plan_dir is None else plan_dir / where
    return None if path.exists() else f"{where} finns inte"


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
