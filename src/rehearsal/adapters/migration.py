"""Migration, source against target: the bookings as the old side had them and as the new side holds them.

Hospitals have gone live with migrated bookings moved to 00:05 and one in six "out of slot".
The technical scenario reconciles both sides per site (:func:`rehearsal.reconcile.reconcile_migration`:
counts, booking keys, patient, unit, times); this interface fetches them::

    migration = plan.environment.adapter("migration")(plan)
    migration.source() -> list[dict[str, str]]   # rows: bokning, personnummer, enhet_hsa_id, start, slut
    migration.target() -> list[dict]             # FHIR R4 Appointments as migrated
    migration.close()

Class methods ``missing(plan)`` (why it cannot serve the plan: ``@needs:migration``) and
``endpoints(plan)`` (what the central gate waits for), as every adapter.

Adapters: ``reference`` (the legacy EHR's CSV extract and the reference bridge's migrated
Appointments: :mod:`rehearsal.adapters.migration_reference`) and ``standards`` (below).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from rehearsal.clients.fhir import FhirClient
from rehearsal.errors import TargetError, UsageError
from rehearsal.plan import Plan
from rehearsal.reconcile import migrated_bookings


@runtime_checkable
class Migration(Protocol):
    """Built as ``adapter(plan)``; both sides as the reconciliation reads them."""

    def source(self) -> list[dict[str, str]]: ...

    def target(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class StandardsMigration:
    """Both sides as FHIR R4 ``Appointment`` (``environment.migration``): the old system's FHIR face
    (``source_fhir``) and the new EHR (``target_fhir``, default ``environment.fhir_base``).

    Each side is counted (``_summary=count``) and searched ``Appointment?_count=N``, following the
    Bundle's ``next`` links (same origin only); fewer than counted is an error, not a gap. A
    booking's key is its identifier value (``identifier_system`` picks which, else the first), as
    a migration keeps the source booking number; the patient is the participant
    whose actor is a Patient (its personnummer identifier), the unit the Organization,
    HealthcareService or Location actor (its HSA-id). Times are compared as instants, so
    ``08:30+01:00`` and ``07:30Z`` are the same booking time and ``00:05`` is not.
    """

    def __init__(self, plan: Plan) -> None:
        settings = plan.environment.migration
        if settings is None:
            raise UsageError("environment.migration: the standards migration adapter needs source_fhir")
        self.settings = settings
        env = plan.environment
        target = settings.target_fhir or env.fhir_base
        self._source = FhirClient(env.model_copy(update={"fhir_base": settings.source_fhir}))
        self._target = FhirClient(env.model_copy(update={"fhir_base": target}))

    @classmethod
    def missing(cls, plan: Plan) -> str | None:
        return None if plan.environment.migration else "planen anger ingen environment.migration"

    @classmethod
    def endpoints(cls, plan: Plan) -> dict[str, str]:
        settings = plan.environment.migration
        if settings is None:
            return {}
        return {
            "migration.source_fhir": settings.source_fhir,
            "fhir_base": settings.target_fhir or plan.environment.fhir_base,
        }

    def close(self) -> None:
        self._source.close()
        self._target.close()

    def _appointments(self, fhir: FhirClient) -> list[dict[str, Any]]:
        """Every Appointment of one side; a server that counts more than its pages hand over is an
        error (a server that does not page would otherwise look like a migration that lost bookings)."""
        counted = fhir.get("Appointment", {"_summary": "count"}).get("total")
        found = [
            a
            for a in fhir.search("Appointment", {"_count": str(self.settings.page_size)})
            if a.get("resourceType") == "Appointment"
        ]
        if isinstance(counted, int) and not isinstance(counted, bool) and counted > len(found):
            raise TargetError(
                f"{fhir.base}/Appointment: the server counts {counted} but its pages gave {len(found)} "
                f"(no next link after _count={self.settings.page_size}): "
                "raise environment.migration.page_size or let the server page"
            )
        return found

    def _keyed(self, appointments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Appointments with the chosen identifier first, so the reconciliation keys on it."""
        system = self.settings.identifier_system
        if not system:
            return appointments
        out = []
        for a in appointments:
            ids = [i for i in a.get("identifier") or [] if isinstance(i, dict)]
            chosen = [i for i in ids if i.get("system") == system]
            out.append({**a, "identifier": chosen or ids} if chosen else a)
        return out

    def source(self) -> list[dict[str, str]]:
        appointments = self._keyed(self._appointments(self._source))
        rows = []
        for appointment, booking in zip(appointments, migrated_bookings(appointments, set()), strict=True):
            rows.append({
                "bokning": booking.key,
                "personnummer": booking.patient,
                "enhet_hsa_id": booking.unit,
                "start": str(appointment.get("start", "")),
                "slut": str(appointment.get("end", "")),
            })  # fmt: skip
        return rows

    def target(self) -> list[dict[str, Any]]:
        return self._keyed(self._appointments(self._target))
