"""The faults the new EHR suffers itself, and where each one bites.

============================  ==========================================================
``slow-lab-order``            creating a lab-order ServiceRequest (FHIR create, PUT,
                              transaction or the web UI) waits :data:`SLOW_LAB_ORDER_S`
``login-denied-role@SITE``    users of SITE authenticate, but their role gives no access:
                              the web UI says so, FHIR calls with their credentials → 403
``ehr-down``                  the FHIR API and the web UI answer 503 (admin endpoints stay up)
``wrong-patient-result@SITE`` results (DiagnosticReport, Observation) of SITE's lab orders
                              are filed on another test patient than the order's
``hsa-mismatch@SITE``         the Organization of SITE carries another HSA-id than the plan
============================  ==========================================================

The names, descriptions and per-site flags live in ``faults.REGISTRY``;
:func:`register_ehr_faults` declares these names on the board and attaches the one
effect that changes stored data (``hsa-mismatch``); every other fault is looked up
where it bites. :class:`~reference_hospital.ehr.Ehr` calls it from its constructor,
so a hospital needs no extra hook. Checks accept a fault hospital-wide or per site
(:func:`active_at`), so the registry may scope them either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from reference_hospital.faults import REGISTRY, FaultBoard
from reference_hospital.fhir_resources import is_lab_order
from reference_hospital.store import Resource

log = logging.getLogger("reference_hospital.ehr")

SLOW_LAB_ORDER = "slow-lab-order"
LOGIN_DENIED_ROLE = "login-denied-role"
EHR_DOWN = "ehr-down"
WRONG_PATIENT_RESULT = "wrong-patient-result"
HSA_MISMATCH = "hsa-mismatch"

#: How long a lab order waits while ``slow-lab-order`` is active (above any sane SLO, below timeouts).
SLOW_LAB_ORDER_S = 1.0

#: The faults the EHR implements (their FaultSpecs are in ``faults.REGISTRY``).
EHR_FAULT_NAMES: tuple[str, ...] = (
    SLOW_LAB_ORDER,
    LOGIN_DENIED_ROLE,
    EHR_DOWN,
    WRONG_PATIENT_RESULT,
    HSA_MISMATCH,
)


def register_ehr_faults(board: FaultBoard, set_site_hsa: Callable[[str, bool], None]) -> None:
    """Declare the EHR's faults on ``board`` and attach the ``hsa-mismatch`` effect (idempotent).

    The effect is handed in (the EHR's ``set_site_hsa``) rather than the EHR itself, so this
    module never imports ``ehr``: the EHR depends on its faults, not the other way round.

    A name missing from ``faults.REGISTRY`` is skipped with a warning (it cannot be set anyway).
    """
    for name in EHR_FAULT_NAMES:
        if name not in REGISTRY:
            log.warning("fault %s is not in faults.REGISTRY; the EHR cannot offer it", name)
        elif name == HSA_MISMATCH:
            board.on(
                name,
                lambda fault: set_site_hsa(fault.site or "", True),
                lambda fault: set_site_hsa(fault.site or "", False),
            )
        else:
            board.handle(name)


def active_at(board: FaultBoard, name: str, site: str | None) -> bool:
    """Whether fault ``name`` is on hospital-wide, or at ``site`` (works whether it is per site or not)."""
    return any(f.name == name and f.site in (None, site) for f in board.faults())


def mismatched_hsa_id(hsa_id: str) -> str:
    """A well-formed HSA-id that differs from ``hsa_id``: same owner prefix, the local part changed."""
    prefix, _, local = hsa_id.partition("-")
    changed = ("Z" if local[:1] != "Z" else "Y") + local[1:]
    return f"{prefix}-{changed}"


async def lab_order_delay(board: FaultBoard, created: Iterable[Resource]) -> None:
    """Where ``slow-lab-order`` bites: an async sleep, so other requests still get answers meanwhile."""
    if board.active(SLOW_LAB_ORDER) and any(is_lab_order(r) for r in created):
        await asyncio.sleep(SLOW_LAB_ORDER_S)
