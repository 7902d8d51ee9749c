"""The reference hospital's workstations: facts files as a collector would leave them, per site.

Generated from the plan: one file per ``sites[].workstations[]`` entry, at the place the
hardware check reads it (``rehearsal.hardware.facts_path``), meeting the plan's baseline
with a margin (newer versions, more RAM, the peripherals the role needs). The
``workstation-outdated`` fault rewrites a site's files as an unpatched machine would
report: an OS build, a browser and a Citrix Workspace app below the baseline.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rehearsal.hardware import facts_path
from rehearsal.plan import Baseline, Plan, Site, Workstation
from rehearsal.probes.workstation import SCHEMA_ID, version_tuple


def _bump(version: str, by: int = 1) -> str:
    parts = list(version_tuple(version)) or [1]
    parts[0] += by
    return ".".join(str(p) for p in parts)


def _older(version: str) -> str:
    parts = list(version_tuple(version)) or [1]
    for i in range(len(parts) - 1, -1, -1):  # the last non-zero part, one lower
        if parts[i] > 0:
            parts[i] -= 1
            return ".".join(str(p) for p in parts)
    return "0"


def facts_for(
    site: Site, workstation: Workstation, baseline: Baseline | None, *, outdated: bool = False
) -> dict[str, Any]:
    """Facts of a healthy (or, with ``outdated``, an unpatched) Windows workstation for this baseline."""
    b = baseline or Baseline()
    windows = b.os.get("windows", "10.0.19045")
    os_version = _older(windows) if outdated else windows + ".4291"
    browsers = {
        name: (_older(v) if outdated else _bump(v)) for name, v in (b.browsers or {"edge": "120"}).items()
    }
    citrix = b.citrix_workspace or "2203"
    width, height = (int(n) for n in (b.min_display or "1920x1080").split("x"))
    kinds = b.peripherals.get(workstation.role, [])
    facts: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "hostname": workstation.id.upper(),
        "collected_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "collector": "rehearsal reference hospital (simulated)",
        "os": {
            "family": "windows",
            "name": "Microsoft Windows 11 Enterprise",
            "version": os_version,
            "build": os_version.split(".")[2] if os_version.count(".") >= 2 else "",
        },
        "hardware": {
            "manufacturer": "HP",
            "model": "EliteDesk 800 G6",
            "ram_gb": (b.min_ram_gb or 8) * 2,
            "disk_free_gb": (b.min_disk_free_gb or 20) + 60,
        },
        "displays": [{"width": width, "height": height}],
        "browsers": browsers,
        "citrix_workspace": _older(citrix) if outdated else _bump(citrix, 100),
        "peripherals": [{"kind": k, "name": f"Simulated {k}", "status": "ok"} for k in kinds],
        "printers": [{"name": p.id, "driver": "Generic", "port": p.uri} for p in site.printers],
        "endpoints": [],
        "clock": {"skew_s": 0.2, "reference": "simulated"},
    }
    if b.endpoints is not None:
        facts["endpoints"] = [
            {
                "url": "https://ehr.reference.invalid/",
                "latency_ms": 4.0,
                "tls_trusted": True,
                "cert_days_left": 365,
                "error": None,
            }
        ]
    return facts


class WorkstationFacts:
    """Writes (and on faults rewrites) the facts files of the plan's workstations."""

    def __init__(self, plan: Plan, plan_dir: Path | None, fallback_dir: Path):
        self.plan, self.plan_dir, self.fallback_dir = plan, plan_dir, fallback_dir
        self.outdated: set[str] = set()
        self.written: list[Path] = []

    def path(self, site: Site, workstation: Workstation) -> Path:
        if self.plan_dir is None:  # no plan file to be relative to: keep them out of the way
            return self.fallback_dir / site.id / f"{workstation.id}.json"
        return facts_path(self.plan, self.plan_dir, site, workstation)

    def write_all(self) -> None:
        for site in self.plan.sites:
            self.write_site(site.id)

    def write_site(self, site_id: str) -> None:
        site = self.plan.site(site_id)
        for workstation in site.workstations:
            path = self.path(site, workstation)
            path.parent.mkdir(parents=True, exist_ok=True)
            facts = facts_for(site, workstation, self.plan.baseline, outdated=site_id in self.outdated)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(facts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            os.replace(tmp, path)
            if path not in self.written:
                self.written.append(path)

    def set_outdated(self, site_id: str, outdated: bool) -> None:
        (self.outdated.add if outdated else self.outdated.discard)(site_id)
        self.write_site(site_id)

    def remove_all(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()


__all__ = ["WorkstationFacts", "facts_for"]
