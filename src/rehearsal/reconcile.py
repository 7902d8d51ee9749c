"""Reconciliation: does the new EHR agree with the directory, and the migration with its source?

Two go-live checks that compare one system's list with another's and list every
difference per site (pure functions; the fetching is the callers'):

**Directory** (HSA/KiV vs the EHR's organisation). Every Organization in the new EHR
must carry an HSA-id the directory has, and every care unit in the directory must exist
as an Organization; every HSA-id must be well formed. Both sides are split per plan site:
an Organization belongs to a site by its HSA-id, its plan id or name, or its ``partOf``
chain; a directory entry by the site-level unit above it. What belongs to no site is listed
as ``central``.

**Migration** (the legacy extract vs the migrated bookings). Every booking of the extract
(``bokning;personnummer;plats;enhet_hsa_id;enhet;start;slut;…``) must exist among the
migrated Appointments (identifier = the booking id) with the same patient, unit, start and
end (compared as instants), and nothing may be migrated that the extract does not have.
NHS trusts went live with appointments moved to 00:05 and 17 % "out of slot".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rehearsal.clients.directory import DirectorySnapshot
from rehearsal.clients.fhir import hsa_id_of, reference_id
from rehearsal.identities import IdentityError, check_hsa_id
from rehearsal.plan import Plan, Site

CENTRAL = "central"


#: Kinds of difference, so each check (and each scenario step) can name the ones it is about.
ONLY_IN_EHR, ONLY_IN_DIRECTORY, INVALID = "bara i journalen", "bara i katalogen", "ogiltigt HSA-id"
COUNT, MISSING, EXTRA, CHANGED = "antal", "saknas", "extra", "ändrad"


@dataclass
class Differences:
    """What one reconciliation found for one site (or ``central``): counts and every difference by kind."""

    site: str
    counts: dict[str, int] = field(default_factory=dict)
    found: list[tuple[str, str]] = field(default_factory=list)

    def add(self, kind: str, text: str) -> None:
        self.found.append((kind, text))

    def of(self, *kinds: str) -> list[str]:
        return [text for kind, text in self.found if kind in kinds]

    @property
    def problems(self) -> list[str]:
        return [text for _, text in self.found]

    @property
    def ok(self) -> bool:
        return not self.found

    def to_json(self) -> dict[str, Any]:
        return {"plats": self.site, "antal": self.counts, "skillnader": [f"{k}: {t}" for k, t in self.found]}


def _hsa_problem(value: str) -> str | None:
    try:
        check_hsa_id(value)
    except IdentityError as exc:
        return str(exc)
    return None


# -- directory -------------------------------------------------------------------------------------


def site_of_organization(
    plan: Plan, org: dict[str, Any], orgs_by_id: dict[str, dict[str, Any]]
) -> Site | None:
    """The plan site an Organization belongs to: by HSA-id, plan id or name, else its ``partOf`` chain."""
    seen: set[str] = set()
    current: dict[str, Any] | None = org
    while current is not None and current.get("id") not in seen:
        seen.add(str(current.get("id")))
        hsa, oid, name = hsa_id_of(current), current.get("id"), current.get("name")
        for site in plan.sites:
            keys = {(site.hsa_id, site.id, site.name)} | {(u.hsa_id, u.id, u.name) for u in site.units}
            if any(hsa == h or oid == i or name == n for h, i, n in keys):
                return site
        parent = reference_id(current.get("partOf"), "Organization")
        current = orgs_by_id.get(parent) if parent else None
    return None


def reconcile_directory(
    plan: Plan, organizations: Iterable[dict[str, Any]], directory: DirectorySnapshot
) -> dict[str, Differences]:
    """Per site (``central``: what belongs to none): the EHR's Organizations vs the directory's units."""
    orgs = list(organizations)
    by_id = {str(o.get("id")): o for o in orgs}
    result = {s.id: Differences(s.id) for s in plan.sites}
    result[CENTRAL] = Differences(CENTRAL)
    ehr_side: dict[str, dict[str, str]] = {key: {} for key in result}  # site → HSA-id → name
    for org in orgs:
        site = site_of_organization(plan, org, by_id)
        key = site.id if site else CENTRAL
        hsa = hsa_id_of(org)
        label = f"{org.get('name', '?')} (Organization/{org.get('id')})"
        if hsa is None:
            result[key].add(INVALID, f"{label} har inget HSA-id i journalen")
            continue
        if problem := _hsa_problem(hsa):
            result[key].add(INVALID, f"{label}: ogiltigt HSA-id i journalen: {problem}")
        ehr_side[key][hsa] = label
    site_by_hsa = {s.hsa_id: s.id for s in plan.sites}
    dir_side: dict[str, dict[str, str]] = {key: {} for key in result}
    for entry in directory.units():
        key = site_by_hsa.get(entry.site_hsa_id or "", CENTRAL)
        if key == CENTRAL:  # a site-level unit under another name than the plan's? match it by name
            key = next((s.id for s in plan.sites if s.name == entry.name), CENTRAL)
        label = f"{entry.name} ({entry.dn})"
        if problem := _hsa_problem(entry.hsa_id):
            result[key].add(INVALID, f"{label}: ogiltigt HSA-id i katalogen: {problem}")
        dir_side[key][entry.hsa_id] = label
    all_dir = {h for side in dir_side.values() for h in side}
    all_ehr = {h for side in ehr_side.values() for h in side}
    for key, diff in result.items():
        diff.counts = {"journalen": len(ehr_side[key]), "katalogen": len(dir_side[key])}
        for hsa, label in sorted(ehr_side[key].items()):
            if hsa not in all_dir:
                diff.add(ONLY_IN_EHR, f"i journalen men inte i HSA/KiV: {hsa} – {label}")
        for hsa, label in sorted(dir_side[key].items()):
            if hsa not in all_ehr:
                diff.add(ONLY_IN_DIRECTORY, f"i HSA/KiV men inte i journalen: {hsa} – {label}")
    return result


# -- migration -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Booking:
    """One booking as the reconciliation compares it (from the extract or from a migrated Appointment)."""

    key: str
    patient: str
    unit: str
    start: datetime | None
    end: datetime | None
    raw_start: str = ""


def _instant(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _digits(personnummer: str) -> str:
    return personnummer.replace("-", "").replace("+", "").strip()


def parse_extract(text: str) -> list[dict[str, str]]:
    """The rows of a ``;``-separated extract with a header row (UTF-8, as legacy exports are)."""
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))


def extract_bookings(rows: Iterable[dict[str, str]]) -> list[Booking]:
    return [
        Booking(
            key=row.get("bokning", "").strip(),
            patient=_digits(row.get("personnummer", "")),
            unit=row.get("enhet_hsa_id", "").strip(),
            start=_instant(row.get("start", "")),
            end=_instant(row.get("slut", "")),
            raw_start=row.get("start", "").strip(),
        )
        for row in rows
    ]


def migrated_bookings(appointments: Iterable[dict[str, Any]], keys: set[str]) -> list[Booking]:
    """Appointments as bookings; the key is the identifier value that names a booking of the extract
    (else the first identifier, else the resource id)."""
    out = []
    for a in appointments:
        values = [str(i.get("value")) for i in a.get("identifier") or [] if i.get("value")]
        key = next((v for v in values if v in keys), values[0] if values else f"Appointment/{a.get('id')}")
        patient = unit = ""
        for participant in a.get("participant") or []:
            actor = participant.get("actor") or {}
            value = str((actor.get("identifier") or {}).get("value", ""))
            if actor.get("type") == "Patient" or reference_id(actor, "Patient"):
                patient = _digits(value)
            elif actor.get("type") in ("Organization", "HealthcareService", "Location") or value.startswith(
                "SE"
            ):
                unit = value
        out.append(
            Booking(
                key,
                patient,
                unit,
                _instant(str(a.get("start", ""))),
                _instant(str(a.get("end", ""))),
                str(a.get("start", "")),
            )  # fmt: skip
        )
    return out


def site_of_unit(plan: Plan, hsa_id: str, fallback: str = "") -> str:
    for site in plan.sites:
        if hsa_id == site.hsa_id or any(u.hsa_id == hsa_id for u in site.units):
            return site.id
    return fallback if fallback in {s.id for s in plan.sites} else CENTRAL


def reconcile_migration(
    plan: Plan, extract_rows: list[dict[str, str]], appointments: Iterable[dict[str, Any]]
) -> dict[str, Differences]:
    """Per site (by the booking's unit): counts, keys and times of the extract vs the migrated bookings."""
    source = extract_bookings(extract_rows)
    keys = {b.key for b in source}
    migrated = migrated_bookings(appointments, keys)
    result = {s.id: Differences(s.id) for s in plan.sites}
    result[CENTRAL] = Differences(CENTRAL)
    site_of_source = {
        b.key: site_of_unit(plan, b.unit, row.get("plats", ""))
        for b, row in zip(source, extract_rows, strict=True)
    }
    by_key = {b.key: b for b in migrated}
    for key, diff in result.items():
        mine = [b for b in source if site_of_source[b.key] == key]
        theirs = [b for b in migrated if site_of_unit(plan, b.unit, site_of_source.get(b.key, "")) == key]
        diff.counts = {"utdraget": len(mine), "migrerade": len(theirs)}
        if len(mine) != len(theirs):
            diff.add(COUNT, f"antal: {len(mine)} bokningar i utdraget, {len(theirs)} migrerade")
        for b in mine:
            if b.start is None or b.end is None:
                diff.add(CHANGED, f"{b.key}: utdraget har ingen giltig tid (start {b.raw_start!r})")
            got = by_key.get(b.key)
            if got is None:
                diff.add(MISSING, f"{b.key} ({b.patient}, {b.raw_start}): saknas bland de migrerade")
                continue
            if got.patient != b.patient:
                diff.add(CHANGED, f"{b.key}: patient {got.patient} efter migrering, {b.patient} i utdraget")
            if got.unit != b.unit:
                diff.add(CHANGED, f"{b.key}: enhet {got.unit} efter migrering, {b.unit} i utdraget")
            if got.start != b.start or got.end != b.end:
                diff.add(CHANGED, f"{b.key}: tid {got.raw_start} efter migrering, {b.raw_start} i utdraget")
        for b in theirs:
            if b.key not in keys:
                diff.add(EXTRA, f"{b.key} ({b.patient}, {b.raw_start}): migrerad men finns inte i utdraget")
    return result
