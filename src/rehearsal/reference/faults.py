"""Named faults the reference hospital can be told to suffer, so a rehearsal can prove it says NO-GO.

A fault is a registered name (``slow-patient-search``), optionally scoped to one plan
site (``printer-paper-out@sas-boras``). The registry below is the only list of what
exists: ``parse_fault`` validates against it, the README and the CLI print it, and the
hospital attaches each fault's effect to a :class:`FaultBoard`. A new fault is one more
:class:`FaultSpec` plus the code that looks at ``board.active(...)`` or an effect
registered with ``board.on(...)``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rehearsal.errors import UsageError
from rehearsal.plan import Plan

SLOW_PATIENT_SEARCH = "slow-patient-search"
PRINTER_PAPER_OUT = "printer-paper-out"

#: How long a patient search waits while ``slow-patient-search`` is active: well above
#: any sane p95 SLO for a search, short enough that a load run still finishes.
SLOW_PATIENT_SEARCH_S = 1.0


@dataclass(frozen=True)
class FaultSpec:
    """One kind of fault: its name, what it does (for humans), and whether it needs ``@SITE``."""

    name: str
    description: str
    per_site: bool = False

    @property
    def usage(self) -> str:
        return f"{self.name}@SITE" if self.per_site else self.name


REGISTRY: dict[str, FaultSpec] = {
    spec.name: spec
    for spec in (
        FaultSpec(
            SLOW_PATIENT_SEARCH,
            f"every patient search (FHIR and web) waits {SLOW_PATIENT_SEARCH_S:g} s before answering",
        ),
        FaultSpec(
            PRINTER_PAPER_OUT,
            "every printer of the site reports media-empty (paper out)",
            per_site=True,
        ),
    )
}


@dataclass(frozen=True, order=True)
class Fault:
    """An active (or requested) fault: a registered name and, for per-site faults, the site id."""

    name: str
    site: str | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.site}" if self.site else self.name

    @property
    def spec(self) -> FaultSpec:
        return REGISTRY[self.name]


def known_faults() -> str:
    """The registry as one short line, for error messages and help texts."""
    return ", ".join(spec.usage for spec in REGISTRY.values())


def parse_fault(text: str, plan: Plan) -> Fault:
    """Turn ``name`` or ``name@SITE`` into a Fault; UsageError (one line) if either part is unknown."""
    name, _, site = text.strip().partition("@")
    spec = REGISTRY.get(name)
    if spec is None:
        raise UsageError(f"unknown fault {text!r} (known faults: {known_faults()})")
    if spec.per_site:
        sites = [s.id for s in plan.sites]
        if not site:
            raise UsageError(f"fault {name!r} needs a site: {name}@SITE (sites: {', '.join(sites)})")
        if site not in sites:
            raise UsageError(f"fault {text!r}: plan has no site {site!r} (sites: {', '.join(sites)})")
        return Fault(name, site)
    if site:
        raise UsageError(f"fault {name!r} applies to the whole hospital; drop '@{site}'")
    return Fault(name)


Effect = Callable[[Fault], None]


class FaultBoard:
    """The set of active faults, shared by the EHR (which asks) and the hospital (which acts).

    Effects registered with :meth:`on` run when a fault of that name is switched on or
    off (e.g. telling printers they are out of paper); faults without an effect are
    simply looked up where they matter. Thread-safe: the admin endpoint, the serve
    process and request handlers touch it from different threads.
    """

    def __init__(self) -> None:
        self._active: set[Fault] = set()
        self._effects: dict[str, tuple[Effect, Effect]] = {}
        self._lock = threading.RLock()

    def on(self, name: str, apply: Effect, clear: Effect) -> None:
        if name not in REGISTRY:
            raise ValueError(f"no fault named {name!r} in the registry")
        self._effects[name] = (apply, clear)

    def activate(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._active:
                return
            if fault.name in self._effects:
                self._effects[fault.name][0](fault)
            self._active.add(fault)

    def deactivate(self, fault: Fault) -> bool:
        """Switch a fault off; False if it was not on."""
        with self._lock:
            if fault not in self._active:
                return False
            if fault.name in self._effects:
                self._effects[fault.name][1](fault)
            self._active.discard(fault)
            return True

    def clear_all(self) -> None:
        for fault in self.faults():
            self.deactivate(fault)

    def active(self, name: str, site: str | None = None) -> bool:
        with self._lock:
            return Fault(name, site) in self._active

    def faults(self) -> list[Fault]:
        with self._lock:
            return sorted(self._active)

    def names(self) -> list[str]:
        return [str(f) for f in self.faults()]


async def patient_search_delay(board: FaultBoard) -> None:
    """Where ``slow-patient-search`` bites; an async sleep so other requests still get answers."""
    if board.active(SLOW_PATIENT_SEARCH):
        await asyncio.sleep(SLOW_PATIENT_SEARCH_S)
