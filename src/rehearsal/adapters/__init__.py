"""Target adapters: how a rehearsal reaches each interface of the environment it rehearses.

The steps, checks and locustfiles say *what* is rehearsed ("a lab order placed at this site
is acknowledged"); an adapter says *how* one target does it (its URLs, API shapes, labels).
Each interface has a typed ``Protocol`` beside its implementations, at least the reference
hospital's contract (``reference``) and one that needs nothing but public standards
(``standards``). The plan picks one per interface::

    environment:
      adapters: {print_witness: standards, web_ui: gnuhealth}

An interface the plan does not name gets ``reference``, so ``plans/demo.yaml`` needs none.
A third party adds an adapter without touching this package, by an entry point in the group
``rehearsal.adapters`` named ``<interface>:<name>``::

    [project.entry-points."rehearsal.adapters"]
    "web_ui:my-ehr" = "my_ehr_pages:MyEhrWebUi"

Built-ins are listed below as ``module:attribute`` strings, so that resolving one adapter
imports only that adapter (and naming a module here never imports the reference hospital).
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from rehearsal.errors import UsageError

ENTRY_POINT_GROUP = "rehearsal.adapters"
DEFAULT = "reference"

#: Every interface a plan may name, with what it covers (shown in errors and docs).
INTERFACES: dict[str, str] = {
    "web_ui": "the clinical web UI (page objects: log in, find and register patients, lab, referrals)",
    "patients": "patient directory and identity (FHIR Patient by identifier)",
    "login": "clinician login and role (FHIR Practitioner/PractitionerRole, HSA-id)",
    "lab": "lab order and result (HL7 v2 over MLLP, FHIR ServiceRequest/DiagnosticReport)",
    "referrals": "referral exchange across the coexistence boundary",
    "records": "the other side's records (NPÖ-like read)",
    "monitoring": "integration monitoring (heartbeat, queue depth, orphan queue)",
    "migration": "migration source against target",
    "print_witness": "what proves a print reached the printer",
}

#: Built-in adapters: (interface, name) -> "module:attribute". Add a line with a new adapter.
BUILTIN: dict[tuple[str, str], str] = {
    ("print_witness", "reference"): "rehearsal.adapters.print_witness_reference:ReferencePrintWitness",
    ("print_witness", "standards"): "rehearsal.adapters.print_witness:StandardsPrintWitness",
    ("monitoring", "reference"): "rehearsal.adapters.monitoring_reference:ReferenceMonitoring",
    ("monitoring", "standards"): "rehearsal.adapters.monitoring:StandardsMonitoring",
    ("migration", "reference"): "rehearsal.adapters.migration_reference:ReferenceMigration",
    ("migration", "standards"): "rehearsal.adapters.migration:StandardsMigration",
    ("records", "reference"): "rehearsal.adapters.records_reference:ReferenceRecords",
    ("records", "standards"): "rehearsal.adapters.records:StandardsRecords",
    ("lab", "reference"): "rehearsal.adapters.lab_reference:ReferenceLab",
    ("lab", "standards"): "rehearsal.adapters.lab:StandardsLab",
    ("referrals", "reference"): "rehearsal.adapters.referrals_reference:ReferenceReferrals",
    ("referrals", "standards"): "rehearsal.adapters.referrals:StandardsReferrals",
    ("web_ui", "reference"): "rehearsal.pages.reference:ReferenceWebUi",
    ("web_ui", "gnuhealth"): "rehearsal.pages.gnuhealth:GnuHealthWebUi",
}


class AdapterError(UsageError):
    """A plan names an adapter that is not installed or does not load."""


@cache
def _installed() -> dict[tuple[str, str], Any]:
    """Third-party adapters from the entry points, read once per process."""
    found: dict[tuple[str, str], Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        interface, sep, name = ep.name.partition(":")
        if sep and interface in INTERFACES and name:
            found[(interface, name)] = ep
    return found


def available(interface: str) -> list[str]:
    """The adapter names a plan may give for ``interface``, built-in first."""
    names = [n for (i, n) in BUILTIN if i == interface]
    return names + sorted(n for (i, n) in _installed() if i == interface and n not in names)


def check(interface: str, name: str) -> str | None:
    """Why a plan may not name this adapter (one line), or None when it may."""
    if interface not in INTERFACES:
        return f"unknown interface {interface!r} (known: {', '.join(INTERFACES)})"
    names = available(interface)
    if name not in names:
        known = ", ".join(names) or "none installed"
        return f"no {interface} adapter named {name!r} (available: {known})"
    return None


def resolve(interface: str, name: str = DEFAULT) -> Any:
    """The adapter object (usually a class or factory) registered as ``name`` for ``interface``."""
    if problem := check(interface, name):
        raise AdapterError(problem)
    spec = BUILTIN.get((interface, name))
    try:
        if spec is None:
            return _installed()[(interface, name)].load()
        module, _, attribute = spec.partition(":")
        return getattr(importlib.import_module(module), attribute)
    except Exception as exc:  # an adapter's own import error, in one line
        where = spec or _installed()[(interface, name)].value
        raise AdapterError(f"{interface} adapter {name!r} ({where}) does not load: {exc}") from None


def chosen(adapters: dict[str, str], interface: str) -> str:
    """The name a plan's ``environment.adapters`` picks for ``interface`` (default ``reference``)."""
    return adapters.get(interface, DEFAULT)


def missing(plan: Any, interface: str) -> str | None:
    """Why the plan's adapter for ``interface`` cannot serve this plan, or None (``@needs:<interface>``).

    An adapter says so by a class method ``missing(plan)`` (e.g. "planen anger ingen
    environment.bridge_base"); one without it is taken to need nothing more of the plan.
    """
    check = getattr(plan.environment.adapter(interface), "missing", None)
    return check(plan) if callable(check) else None


def endpoints(plan: Any, interface: str) -> dict[str, str]:
    """The endpoints (label → URL) the plan's adapter for ``interface`` reaches, for the central gate."""
    found = getattr(plan.environment.adapter(interface), "endpoints", None)
    return dict(found(plan)) if callable(found) else {}
