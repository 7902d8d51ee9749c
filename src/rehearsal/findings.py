"""Findings: failed items grouped the way the go/no-go panel talks about them.

The panel does not ask "which 14 tests failed" but "what is still open, how bad is it and
who owns it". A finding is every failed item of one criterion at one site (region-wide
items at ``central``); items without a plan criterion form a finding per test and site, so
nothing that failed is hidden. Its severity is the worse of the criterion's and the
items' own Allure severity, mapped to the panel's three levels:

==================  =========
Allure severity      finding
==================  =========
blocker, critical    critical
normal               high
minor, trivial       normal
==================  =========

Its owner comes from the plan's roster: the criterion's ``owner``, else the plan's
``owners`` by ``site/aspect``, site, aspect or ``default``, else the holder of the first
command-centre role. A role resolves to that site's holder, then the region's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rehearsal.plan import Criterion, Plan, Waiver
from rehearsal.results import MergedResult, TestResult

Level = Literal["critical", "high", "normal"]
LEVELS: tuple[Level, ...] = ("critical", "high", "normal")
CENTRAL = "central"
_FROM_ALLURE: dict[str, Level] = {
    "blocker": "critical",
    "critical": "critical",
    "normal": "high",
    "minor": "normal",
    "trivial": "normal",
}


@dataclass(frozen=True)
class Owner:
    """A person from the plan's roster, with the role and place they hold it (None: region)."""

    name: str
    role: str | None = None
    site: str | None = None
    phone: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "site": self.site, "phone": self.phone}


@dataclass(frozen=True)
class Finding:
    """The failed items of one criterion at one site: open, or waived by the panel."""

    id: str
    criterion: str | None
    title: str
    site: str
    aspect: str | None
    severity: Level
    owner: Owner | None
    items: tuple[TestResult, ...] = field(compare=False)
    status: Literal["open", "waived"] = "open"
    waiver: Waiver | None = None
    blocking: bool = False
    """Open and behind a failing scorecard line: what stands between the rehearsal and GO."""

    @property
    def open(self) -> bool:
        return self.status == "open"

    @property
    def summary(self) -> str:
        """The first line of the first failure message: what the panel reads first."""
        for item in self.items:
            text = item.message.strip()
            if text:
                return text.splitlines()[0][:200]
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "criterion": self.criterion,
            "title": self.title,
            "site": self.site,
            "aspect": self.aspect,
            "severity": self.severity,
            "status": self.status,
            "blocking": self.blocking,
            "owner": self.owner.to_json() if self.owner else None,
            "summary": self.summary,
            "items": [
                {"name": r.name, "status": r.status, "device": r.device, "uuid": r.uuid, "nodeid": r.nodeid}
                for r in self.items
            ],
            "waiver": {"accepted_by": self.waiver.accepted_by, "expiry": self.waiver.expiry.isoformat()}
            if self.waiver
            else None,
        }


def level(allure_severity: str | None) -> Level | None:
    """The panel's level for an Allure severity (None when the result has none)."""
    return _FROM_ALLURE.get((allure_severity or "").lower())


def group(plan: Plan, results: Iterable[MergedResult]) -> list[Finding]:
    """Every failed (or broken) latest result, grouped into open findings, worst first."""
    groups: dict[tuple[str | None, str, str], list[TestResult]] = {}
    for item in results:
        r = item.latest
        if not r.failed:
            continue
        known = plan.criterion(r.criterion) if r.criterion else None
        key = (r.criterion, r.site or CENTRAL, "" if known else r.name)
        groups.setdefault(key, []).append(r)
    findings = []
    for (criterion_id, site, name), items in groups.items():
        criterion = plan.criterion(criterion_id) if criterion_id else None
        aspect = (criterion.aspect if criterion else None) or items[0].aspect
        levels = [level(r.labels.get("severity")) for r in items]
        if criterion:
            levels.append(level(criterion.severity))
        stated = [x for x in levels if x] or ["high"]
        severity = min(stated, key=LEVELS.index)
        findings.append(
            Finding(
                id=f"{criterion_id or _slug(name)}@{site}",
                criterion=criterion_id,
                title=criterion.title if criterion else name,
                site=site,
                aspect=aspect,
                severity=severity,
                owner=owner_for(plan, criterion, site, aspect),
                items=tuple(items),
            )
        )
    findings.sort(key=lambda f: (LEVELS.index(f.severity), f.site, f.id))
    return findings


def owner_for(plan: Plan, criterion: Criterion | None, site: str | None, aspect: str | None) -> Owner | None:
    """Who owns a finding: criterion owner, then plan owners (site/aspect, site, aspect, default),
    then the first command-centre role; each role resolved at the site, then centrally."""
    place = site or CENTRAL
    refs = [
        criterion.owner if criterion else None,
        plan.owners.get(f"{place}/{aspect}") if aspect else None,
        plan.owners.get(place),
        plan.owners.get(aspect) if aspect else None,
        plan.owners.get("default"),
        plan.command_centre.roles[0],
    ]
    for ref in refs:
        if ref:
            found = _resolve(plan, ref, place)
            if found:
                return found
    return None


def _resolve(plan: Plan, ref: str, place: str) -> Owner | None:
    if ref in plan.command_centre.roles:
        site = next((s for s in plan.sites if s.id == place), None)
        person = site.command_centre.get(ref) if site else None
        if person:
            return Owner(person.name, ref, site.id if site else None, person.phone)
        person = plan.command_centre.central.get(ref)
        return Owner(person.name, ref, None, person.phone) if person else None
    for site in plan.sites:
        for role, person in site.command_centre.items():
            if person and person.name == ref:
                return Owner(person.name, role, site.id, person.phone)
    for role, person in plan.command_centre.central.items():
        if person and person.name == ref:
            return Owner(person.name, role, None, person.phone)
    return Owner(ref)


def count_open(findings: Sequence[Finding]) -> dict[str, int]:
    """Open findings by level, every level present (0 when none)."""
    counts: dict[str, int] = dict.fromkeys(LEVELS, 0)
    for f in findings:
        if f.open:
            counts[f.severity] += 1
    return counts


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "test"
