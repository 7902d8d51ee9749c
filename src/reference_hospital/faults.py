"""Named faults the reference hospital can be told to suffer, so a rehearsal can prove it says NO-GO.

A fault is a registered name (``slow-patient-search``), optionally scoped to one plan
site (``printer-paper-out@sas-boras``). The registry below is the only list of what
exists: ``parse_fault`` validates against it, the README and ``rehearse fault list`` print
it (what it does, which check should catch it), and the hospital attaches each fault's
effect to a :class:`FaultBoard`.

A registered fault only *works* once a running component has declared it with
``board.handle(NAME)`` (or ``board.on(NAME, apply, clear)`` when switching it needs an
effect); until then setting it is refused with "not implemented yet", never accepted
and silently ignored. A new fault is one more :class:`FaultSpec` plus that declaration
in the component that looks at ``board.active(NAME, site)``.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rehearsal.errors import UsageError
from rehearsal.plan import Plan

SLOW_PATIENT_SEARCH = "slow-patient-search"
PRINTER_PAPER_OUT = "printer-paper-out"
# Coexistence (lab, bridge, migration): reference_hospital/{lab,bridge,migration}.py.
LAB_RESULTS_LOST = "lab-results-lost"
REFERRAL_DROPPED = "referral-dropped"
REFERRAL_NEGATION_LOSS = "referral-negation-loss"
TEXT_ENCODING_LOSS = "text-encoding-loss"
ORPHAN_QUEUE = "orphan-queue"
MIGRATION_GAP = "migration-gap"
#: The words ``referral-negation-loss`` removes: a "no" that vanishes turns a finding around.
NEGATIONS = ("inte", "ingen", "inget", "ej")

#: How long a patient search waits while ``slow-patient-search`` is active: well above
#: any sane p95 SLO for a search, short enough that a load run still finishes.
SLOW_PATIENT_SEARCH_S = 1.0


@dataclass(frozen=True)
class FaultSpec:
    """One kind of fault: its name, what it does, which check catches it, whether it needs ``@SITE``.

    ``component`` says where it bites (and who implements it); ``systems`` limits a per-site
    fault to sites on those EHRs (``migration-gap`` makes no sense where nothing migrated).
    """

    name: str
    description: str
    per_site: bool = False
    caught_by: str = ""
    component: str = "ehr"
    systems: tuple[str, ...] = ("new", "legacy")

    @property
    def usage(self) -> str:
        return f"{self.name}@SITE" if self.per_site else self.name


_SPECS = (
    # -- EHR --------------------------------------------------------------------------------------
    FaultSpec(
        SLOW_PATIENT_SEARCH,
        f"every patient search (FHIR and web) waits {SLOW_PATIENT_SEARCH_S:g} s before answering",
        caught_by="load SLO patient-search p95 (criterion kind load_slo)",
    ),
    FaultSpec(
        "slow-lab-order",
        "placing a lab order in the new EHR is slow",
        caught_by="load/clinical response-time SLO for the lab-order workflow",
    ),
    FaultSpec(
        "login-denied-role",
        "the site's users cannot log in to the new EHR with their role",
        per_site=True,
        caught_by="teknisk: login and role per HSA-id per site",
    ),
    FaultSpec(
        "ehr-down",
        "the new EHR's FHIR API and web UI answer 503",
        caught_by="teknisk: FHIR heartbeat (tech-fhir); every clinical scenario",
    ),
    FaultSpec(
        "wrong-patient-result",
        "lab results for the site's orders are filed on another test patient",
        per_site=True,
        caught_by="teknisk/klinisk: every lab result on the right patient",
    ),
    FaultSpec(
        "hsa-mismatch",
        "the site's Organization in the new EHR carries an HSA-id that HSA/KiV does not have",
        per_site=True,
        caught_by="teknisk: directory reconciliation (EHR vs HSA/KiV, per site); login by role there",
    ),
    # -- devices and workstations ------------------------------------------------------------------
    FaultSpec(
        PRINTER_PAPER_OUT,
        "every printer of the site reports media-empty (paper out)",
        per_site=True,
        caught_by="teknisk: device readiness per site (criterion kind device_readiness)",
        component="printers",
    ),
    FaultSpec(
        "printer-offline",
        "the site's document printers stop answering",
        per_site=True,
        caught_by="teknisk: device readiness per site",
        component="printers",
    ),
    FaultSpec(
        "wristband-head-open",
        "the site's wristband printers report head open (~HS)",
        per_site=True,
        caught_by="teknisk: device readiness per site (wristband printers)",
        component="printers",
    ),
    FaultSpec(
        "label-printer-offline",
        "the site's specimen-label printers stop answering",
        per_site=True,
        caught_by="teknisk: device readiness per site (label printers)",
        component="printers",
    ),
    FaultSpec(
        "toner-low",
        "the site's document printers report toner below threshold",
        per_site=True,
        caught_by="teknisk: device readiness per site (supplies)",
        component="printers",
    ),
    FaultSpec(
        "workstation-outdated",
        "the site's workstations report an outdated browser/Citrix/OS build",
        per_site=True,
        caught_by="teknisk: workstation readiness per site",
        component="workstations",
    ),
    # -- coexistence: lab, bridge, migration ---------------------------------------------------------
    FaultSpec(
        LAB_RESULTS_LOST,
        "the lab ACKs the site's orders and marks them resulted, but the ORU^R01 result never "
        "reaches the ordering EHR (no error anywhere)",
        per_site=True,
        caught_by="teknisk: every lab order resulted within coexistence.lab.result_within_s; "
        "klinisk: lab order → result shown",
        component="lab",
    ),
    FaultSpec(
        REFERRAL_DROPPED,
        "the bridge takes referrals sent from the site and never delivers them (the sender sees "
        "nothing wrong, the receiver never gets them)",
        per_site=True,
        caught_by="teknisk/klinisk: referral round trip, every referral received and answered",
        component="bridge",
    ),
    FaultSpec(
        REFERRAL_NEGATION_LOSS,
        f"answers to referrals sent from the site lose the words {', '.join(NEGATIONS)} while "
        "crossing the bridge",
        per_site=True,
        caught_by="klinisk/teknisk: referral answer arrives byte-identical (sent and received shown)",
        component="bridge",
    ),
    FaultSpec(
        TEXT_ENCODING_LOSS,
        "referral text and answers of referrals sent from the site cross the bridge as UTF-8 read "
        "as Latin-1 (å → Ã¥, ä → Ã¤, ö → Ã¶)",
        per_site=True,
        caught_by="klinisk/teknisk: referral text and answer arrive byte-identical",
        component="bridge",
    ),
    FaultSpec(
        ORPHAN_QUEUE,
        "the bridge loses its route for the site: its lab orders, lab results and referrals are "
        "parked silently in the catch-all queue",
        per_site=True,
        caught_by="teknisk: no message in the orphan/catch-all queue (GET /bridge/queues); "
        "lab order resulted in time",
        component="bridge",
    ),
    FaultSpec(
        MIGRATION_GAP,
        "of the site's migrated bookings one is missing and one is moved to 00:05 the same day",
        per_site=True,
        caught_by="teknisk: migration reconciliation (extract vs migrated: counts, keys, times)",
        component="migration",
        systems=("new",),
    ),
)

REGISTRY: dict[str, FaultSpec] = {spec.name: spec for spec in _SPECS}


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


def _nothing(fault: Fault) -> None:
    return None


def not_implemented(name: str) -> str:
    """The one-line refusal for a registered fault that no running component implements."""
    spec = REGISTRY[name]
    return (
        f"fault {name!r} is not implemented yet in this reference hospital "
        f"(it belongs to the {spec.component} component, which does not provide it)"
    )


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
        system = plan.site(site).system
        if system not in spec.systems:
            fitting = [s.id for s in plan.sites if s.system in spec.systems]
            raise UsageError(
                f"fault {text!r}: site {site} is on the {system} EHR, where {name} cannot happen "
                f"(sites it applies to: {', '.join(fitting) or 'none'})"
            )
        return Fault(name, site)
    if site:
        raise UsageError(f"fault {name!r} applies to the whole hospital; drop '@{site}'")
    return Fault(name)


Effect = Callable[[Fault], None]


class FaultBoard:
    """The set of active faults, shared by the EHR (which asks) and the hospital (which acts).

    A component declares each fault it implements with :meth:`handle` (looked up where
    it matters with :meth:`active`) or :meth:`on` (with an effect that runs when the fault
    is switched on or off, e.g. telling printers they are out of paper). Switching on a
    fault nobody declared is refused (UsageError "not implemented yet"). Thread-safe: the
    admin endpoint, the serve process and request handlers touch it from different threads.
    """

    def __init__(self) -> None:
        self._active: set[Fault] = set()
        self._effects: dict[str, tuple[Effect, Effect]] = {}
        self._handled: set[str] = set()
        self._lock = threading.RLock()

    def handle(self, name: str, apply: Effect | None = None, clear: Effect | None = None) -> None:
        """Declare that a running component implements fault ``name`` (with optional effects)."""
        if name not in REGISTRY:
            raise ValueError(f"no fault named {name!r} in the registry")
        with self._lock:
            self._handled.add(name)
            if apply is not None or clear is not None:
                self._effects[name] = (apply or _nothing, clear or _nothing)

    def on(self, name: str, apply: Effect, clear: Effect) -> None:
        self.handle(name, apply, clear)

    def handled(self) -> list[str]:
        """Names of the faults this hospital can actually produce, in registry order."""
        with self._lock:
            return [n for n in REGISTRY if n in self._handled]

    def activate(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._active:
                return
            if fault.name not in self._handled:
                raise UsageError(not_implemented(fault.name))
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


_NEGATION_WORDS = re.compile(
    r"(?:(?<=^)|(?<=\n))(?:" + "|".join(NEGATIONS) + r")\b[ \t]*|[ \t]*\b(?:" + "|".join(NEGATIONS) + r")\b",
    re.IGNORECASE,
)


def drop_negations(text: str) -> str:
    """What ``referral-negation-loss`` does to an answer: "Ingen fraktur, inte öm" → "fraktur, öm".

    Each negation word goes with the blank before it (at the start of a line: after it),
    so the rest of the text and its line breaks stay as they were: the damage is exactly
    the missing words.
    """
    return _NEGATION_WORDS.sub("", text)


def mangle_encoding(text: str) -> str:
    """What ``text-encoding-loss`` does: UTF-8 bytes read as Latin-1 ("Är" → "Ã\\x84r")."""
    return text.encode("utf-8").decode("latin-1")
