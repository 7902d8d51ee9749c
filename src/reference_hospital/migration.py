"""Migration: the legacy extract of the units that go live, and the bookings migrated from it.

When a site moves to the new EHR its future bookings, open referrals and patients are
extracted from the legacy system (CSV, as such extracts usually are) and loaded into the
new EHR. A rehearsal reconciles the two: counts, keys and times must agree (NHS trusts
went live with appointments moved to 00:05 and 17 % "out of slot").

Built from the plan at start: for every site with ``system: new``, for each of its units
(the site itself when it has none) and each test identity,
``coexistence.migration.bookings_per_patient`` bookings on working days from
``coexistence.migration.first_day`` (default: the day after the start), at fixed local
times (Europe/Stockholm, written with their UTC offset).

Where things live (both regenerated at every start):

- the **extract**: ``<workdir>/migration/{patients,bookings,referrals}.csv`` (UTF-8,
  ``;``-separated, header row), served by the legacy EHR at
  ``{legacy_base}/api/extract/{name}.csv`` and by the bridge at
  ``{bridge_base}/migration/extract/{name}.csv``;
- the **migrated bookings**: FHIR R4 ``Appointment`` resources kept by this module (the
  new EHR has no Appointment type of its own), served by the bridge as a searchset Bundle
  at ``{bridge_base}/migration/Appointment`` (``?site=SITE``, ``?patient=PERSONNUMMER``).
  Each carries the legacy booking id as identifier ``urn:rehearsal:legacy:booking``.

Fault ``migration-gap@SITE``: of the site's migrated bookings the first is missing and
the second starts at 00:05 the same day (read time; off again restores them).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from reference_hospital.faults import MIGRATION_GAP, FaultBoard
from reference_hospital.hospital import Component, Hospital
from rehearsal.identities import HSA_ID_SYSTEM, PERSONNUMMER_OID, SAMORDNINGSNUMMER_OID, is_samordningsnummer
from rehearsal.plan import Plan

ZONE = ZoneInfo("Europe/Stockholm")
BOOKING_SYSTEM = "urn:rehearsal:legacy:booking"
SLOTS = (time(8, 30), time(10, 15), time(13, 0), time(14, 45))
KINDS = ("Återbesök", "Nybesök", "Provtagning", "Telefonkontakt")
EXTRACTS = ("patients", "bookings", "referrals")
GAP_TIME = time(0, 5)


@dataclass(frozen=True)
class Booking:
    """One future booking in the legacy extract."""

    booking_id: str
    personnummer: str
    name: str
    site: str
    unit_hsa_id: str
    unit_name: str
    start: datetime
    minutes: int
    kind: str

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)


def _workdays(first: date) -> Any:
    day = first
    while True:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def build_bookings(plan: Plan, first_day: date) -> list[Booking]:
    """The bookings of every new-EHR site's units, deterministic for a plan and a first day."""
    per = plan.coexistence.migration.bookings_per_patient
    bookings: list[Booking] = []
    counter = 0
    for site in plan.sites:
        if site.system != "new":
            continue
        live = [u for u in site.units if (u.system or site.system) == "new"]
        units = [(u.hsa_id, f"{u.name}, {site.name}") for u in live] or [(site.hsa_id, site.name)]
        days = _workdays(first_day)
        for unit_hsa, unit_name in units:
            for identity in plan.test_identities:
                for _ in range(per):
                    counter += 1
                    day = next(days)
                    slot = SLOTS[counter % len(SLOTS)]
                    bookings.append(
                        Booking(
                            booking_id=f"B{counter:06d}",
                            personnummer=identity.personnummer,
                            name=identity.name,
                            site=site.id,
                            unit_hsa_id=unit_hsa,
                            unit_name=unit_name,
                            start=datetime.combine(day, slot, ZONE),
                            minutes=30,
                            kind=KINDS[counter % len(KINDS)],
                        )
                    )
    return bookings


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _pnr_system(personnummer: str) -> str:
    oid = SAMORDNINGSNUMMER_OID if is_samordningsnummer(personnummer) else PERSONNUMMER_OID
    return f"urn:oid:{oid}"


def appointment(booking: Booking) -> dict[str, Any]:
    """A migrated booking as a FHIR R4 Appointment (participants referenced by identifier)."""
    digits = booking.personnummer.replace("-", "").replace("+", "")
    return {
        "resourceType": "Appointment",
        "id": f"mig-{booking.booking_id}",
        "identifier": [{"system": BOOKING_SYSTEM, "value": booking.booking_id}],
        "status": "booked",
        "serviceType": [{"text": booking.kind}],
        "start": booking.start.isoformat(),
        "end": booking.end.isoformat(),
        "minutesDuration": booking.minutes,
        "participant": [
            {
                "actor": {
                    "type": "Patient",
                    "identifier": {"system": _pnr_system(booking.personnummer), "value": digits},
                    "display": booking.name,
                },
                "status": "accepted",
            },
            {
                "actor": {
                    "type": "Organization",
                    "identifier": {"system": HSA_ID_SYSTEM, "value": booking.unit_hsa_id},
                    "display": booking.unit_name,
                },
                "status": "accepted",
            },
        ],
    }


class Migration(Component):
    """The extract (CSV files) and the migrated Appointments; no port of its own."""

    name = "migration"
    faults = (MIGRATION_GAP,)

    def __init__(self, hospital: Hospital) -> None:
        self.plan = hospital.plan
        self.board: FaultBoard = hospital.board
        self.folder = hospital.workdir / "migration"
        self.bookings: list[Booking] = []
        self.first_day: date | None = None
        self._extracts: dict[str, str] = {}

    def describe(self) -> str:
        return f"migration ({self.folder})"

    def start(self) -> None:
        settings = self.plan.coexistence.migration
        self.first_day = settings.first_day or (datetime.now(ZONE).date() + timedelta(days=1))
        self.bookings = build_bookings(self.plan, self.first_day)
        self._extracts = self._build_extracts()
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, text in self._extracts.items():
            (self.folder / f"{name}.csv").write_text(text, encoding="utf-8")

    def health(self) -> dict[str, Any]:
        written = all((self.folder / f"{n}.csv").exists() for n in EXTRACTS)
        return {
            "ok": bool(self._extracts) and written,
            "bookings": len(self.bookings),
            "folder": str(self.folder),
        }

    def _build_extracts(self) -> dict[str, str]:
        patients = _csv(
            ["personnummer", "namn"], [[t.personnummer, t.name] for t in self.plan.test_identities]
        )
        bookings = _csv(
            ["bokning", "personnummer", "plats", "enhet_hsa_id", "enhet", "start", "slut", "minuter", "typ"],
            [
                [
                    b.booking_id,
                    b.personnummer,
                    b.site,
                    b.unit_hsa_id,
                    b.unit_name,
                    b.start.isoformat(),
                    b.end.isoformat(),
                    b.minutes,
                    b.kind,
                ]
                for b in self.bookings
            ],
        )
        referrals = []
        counter = 0
        for site in self.plan.sites:
            if site.system != "new":
                continue
            for identity in self.plan.test_identities:
                counter += 1
                referrals.append(
                    [
                        f"R{counter:06d}",
                        identity.personnummer,
                        site.hsa_id,
                        (site.units[0].hsa_id if site.units else site.hsa_id),
                        datetime.combine(self.first_day or date.today(), time(9, 0), ZONE).isoformat(),
                        "öppen",
                        "Bedömning önskas. Ingen känd överkänslighet; inte tidigare undersökt här.",
                    ]
                )
        referrals_csv = _csv(
            ["remiss", "personnummer", "från_hsa_id", "till_hsa_id", "skickad", "status", "text"], referrals
        )
        return {"patients": patients, "bookings": bookings, "referrals": referrals_csv}

    def extract_csv(self, name: str) -> str:
        """One extract file's text; KeyError for an unknown name."""
        return self._extracts[name]

    def migrated(self, site: str | None = None, patient: str | None = None) -> list[dict[str, Any]]:
        """The migrated bookings as Appointments, as the new side holds them now (faults included)."""
        out = []
        gap_done: set[str] = set()
        shifted: set[str] = set()
        for booking in self.bookings:
            start = booking.start
            if self.board.active(MIGRATION_GAP, booking.site):
                if booking.site not in gap_done:
                    gap_done.add(booking.site)
                    continue  # the first of the site's bookings never made it
                if booking.site not in shifted:
                    shifted.add(booking.site)
                    start = datetime.combine(start.date(), GAP_TIME, ZONE)
            if site is not None and booking.site != site:
                continue
            digits = booking.personnummer.replace("-", "")
            if patient is not None and patient.replace("-", "").replace("+", "") != digits:
                continue
            resource = appointment(booking)
            if start != booking.start:
                resource["start"] = start.isoformat()
                resource["end"] = (start + timedelta(minutes=booking.minutes)).isoformat()
            out.append(resource)
        return out

    # -- HTTP (mounted by the bridge) ------------------------------------------------------------

    def routes(self, prefix: str) -> list[BaseRoute]:
        return [
            Route(prefix, self._summary, methods=["GET"]),
            Route(f"{prefix}/Appointment", self._appointments, methods=["GET"]),
            Route(f"{prefix}/extract/{{name}}.csv", self._extract, methods=["GET"]),
        ]

    async def _summary(self, request: Request) -> Response:
        base = str(request.url).rstrip("/")
        sites = sorted({b.site for b in self.bookings})
        return JSONResponse(
            {
                "first_day": self.first_day.isoformat() if self.first_day else None,
                "extract": {name: f"{base}/extract/{name}.csv" for name in EXTRACTS},
                "migrated": f"{base}/Appointment",
                "bookings": {s: sum(1 for b in self.bookings if b.site == s) for s in sites},
                "where": "migrated bookings are kept by the reference hospital's migration module, "
                "served here as FHIR Appointment (the new EHR has no Appointment type)",
            }
        )

    async def _appointments(self, request: Request) -> Response:
        q = request.query_params
        site = q.get("site")
        if site is not None and site not in {s.id for s in self.plan.sites}:
            return JSONResponse({"error": f"no site {site!r} in the plan"}, 404)
        found = self.migrated(site, q.get("patient"))
        return JSONResponse(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(found),
                "entry": [
                    {"fullUrl": f"{str(request.url).split('?')[0]}/{a['id']}", "resource": a} for a in found
                ],
            },
            media_type="application/fhir+json",
        )

    async def _extract(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self._extracts:
            return JSONResponse({"error": f"no extract {name!r} (extracts: {', '.join(EXTRACTS)})"}, 404)
        return PlainTextResponse(self._extracts[name], media_type="text/csv; charset=utf-8")


def components(hospital: Hospital) -> list[Component]:
    env = hospital.plan.environment
    return [Migration(hospital)] if (env.bridge_base or env.legacy_base) else []
