"""The go/no-go decision: plan criteria + merged results + run completeness → :class:`Decision`.

:func:`decide` is a pure function, so the same inputs always give the same verdict and the
verdict can be re-taken at any time (after a rerun, on another machine, in a test). Each
plan criterion becomes one scorecard line, or one line per site when ``per_site`` is set;
a line is ``pass``, ``fail`` or ``pending`` (no evidence yet). The decision is GO only when
every line passes: a missing result is never taken as a good one.

Which results feed a line is decided by the Allure labels every test carries (see
docs/design.md, Evidence conventions): ``criterion`` picks the line, ``site`` the site,
``device`` the device for readiness checks, ``aspect`` the scorecard column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rehearsal.plan import ASPECTS, Criterion, Plan
from rehearsal.results import FAILED, MergedResult, TestResult

Status = Literal["pass", "fail", "pending", "waived"]
CENTRAL = "central"
COUNTED = ("passed", "failed", "broken", "skipped")

_TEXT = {
    "sv": {
        "no_results": "inga resultat ännu",
        "passed": "{passed} av {total} godkända",
        "after_rerun": " ({n} efter omkörning)",
        "failed": "{n} underkända: {names}",
        "not_run": "{n} inte körda (överhoppade/okända)",
        "rate": "{passed}/{total} godkända ({rate}); krav ≥ {threshold}",
        "devices": "{site}: {ready}/{total} enheter redo ({rate}); krav ≥ {threshold}",
        "not_ready": "ej redo: {devices}",
        "complete": "körningen gick klart",
        "incomplete": "körningen avbröts eller pågår fortfarande",
    },
    "en": {
        "no_results": "no results yet",
        "passed": "{passed} of {total} passed",
        "after_rerun": " ({n} after rerun)",
        "failed": "{n} failed: {names}",
        "not_run": "{n} not run (skipped/unknown)",
        "rate": "{passed}/{total} passed ({rate}); required ≥ {threshold}",
        "devices": "{site}: {ready}/{total} devices ready ({rate}); required ≥ {threshold}",
        "not_ready": "not ready: {devices}",
        "complete": "the run finished",
        "incomplete": "the run was interrupted or is still running",
    },
}


@dataclass(frozen=True)
class Line:
    """One scorecard line: a criterion, for one site or region-wide."""

    id: str
    title: str
    status: Status
    site: str | None
    aspect: str | None
    details: str
    evidence: tuple[str, ...] = ()
    kind: str = ""
    severity: str = ""
    failures: tuple[TestResult, ...] = field(default=(), compare=False, repr=False)
    """The failing results behind a ``fail`` line (for links in the report; not in JSON)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "site": self.site,
            "aspect": self.aspect,
            "details": self.details,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Decision:
    decision: Literal["GO", "NO-GO"]
    complete: bool
    rehearsal: str
    run: str
    parent: str | None
    criteria: tuple[Line, ...]
    sites: dict[str, dict[str, dict[str, int]]] = field(hash=False)

    @property
    def go(self) -> bool:
        return self.decision == "GO"

    def failed(self) -> list[Line]:
        return [line for line in self.criteria if line.status == "fail"]

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "complete": self.complete,
            "rehearsal": self.rehearsal,
            "run": self.run,
            "parent": self.parent,
            "criteria": [line.to_json() for line in self.criteria],
            "sites": {site: {a: dict(c) for a, c in aspects.items()} for site, aspects in self.sites.items()},
        }


def decide(
    plan: Plan,
    results: Sequence[MergedResult],
    *,
    complete: bool,
    rehearsal: str,
    run: str,
    parent: str | None,
) -> Decision:
    """Take the go/no-go decision for one run chain; GO only if every scorecard line passes."""
    text = _TEXT.get(plan.language, _TEXT["en"])
    by_criterion: dict[str, list[MergedResult]] = {}
    for item in results:
        if item.latest.criterion:
            by_criterion.setdefault(item.latest.criterion, []).append(item)
    lines: list[Line] = []
    for criterion in plan.criteria:
        mine = by_criterion.get(criterion.id, [])
        if criterion.kind == "run_complete":
            lines.append(
                _line(
                    criterion,
                    None,
                    "pass" if complete else "fail",
                    text["complete" if complete else "incomplete"],
                    (),
                )
            )
        elif criterion.per_site:
            for site, items in _by_site(plan, mine).items():
                lines.append(_judge(criterion, site, items, text))
        else:
            lines.append(_judge(criterion, None, mine, text))
    go = all(line.status == "pass" for line in lines)
    return Decision(
        decision="GO" if go else "NO-GO",
        complete=complete,
        rehearsal=rehearsal,
        run=run,
        parent=parent,
        criteria=tuple(lines),
        sites=_scorecard(plan, results),
    )


def _by_site(plan: Plan, items: Iterable[MergedResult]) -> dict[str, list[MergedResult]]:
    """Every plan site (pending if empty), then region-wide and unknown sites that did report."""
    groups: dict[str, list[MergedResult]] = {site.id: [] for site in plan.sites}
    for item in items:
        groups.setdefault(item.latest.site or CENTRAL, []).append(item)
    return groups


def _judge(criterion: Criterion, site: str | None, items: list[MergedResult], text: dict[str, str]) -> Line:
    if not items:
        return _line(criterion, site, "pending", text["no_results"], ())
    if criterion.kind == "success_rate":
        return _success_rate(criterion, site, items, text)
    if criterion.kind == "device_readiness":
        return _device_readiness(criterion, site, items, text)
    return _all_pass(criterion, site, items, text)  # all_pass, load_slo


def _all_pass(
    criterion: Criterion, site: str | None, items: list[MergedResult], text: dict[str, str]
) -> Line:
    failed = [m.latest for m in items if m.latest.failed]
    not_run = [m for m in items if m.latest.status not in ("passed", *FAILED)]
    passed = sum(1 for m in items if m.latest.status == "passed")
    parts = [text["passed"].format(passed=passed, total=len(items)) + _reruns(items, text)]
    if failed:
        parts.append(text["failed"].format(n=len(failed), names=_names(failed)))
    if not_run:
        parts.append(text["not_run"].format(n=len(not_run)))
    status: Status = "fail" if failed else ("pending" if not_run else "pass")
    evidence = _names_list(failed) if failed else _names_list(m.latest for m in items)
    return _line(criterion, site, status, "; ".join(parts), evidence, failed)


def _success_rate(
    criterion: Criterion, site: str | None, items: list[MergedResult], text: dict[str, str]
) -> Line:
    ran = [m.latest for m in items if m.latest.status in ("passed", *FAILED)]
    if not ran:
        return _line(criterion, site, "pending", text["not_run"].format(n=len(items)), ())
    passed = sum(1 for r in ran if r.status == "passed")
    threshold = criterion.threshold or 0.0
    ok = passed / len(ran) >= threshold
    failed = [r for r in ran if r.failed]
    details = text["rate"].format(
        passed=passed, total=len(ran), rate=_pct(passed / len(ran)), threshold=_pct(threshold)
    ) + _reruns(items, text)
    if failed:
        details += "; " + text["failed"].format(n=len(failed), names=_names(failed))
    evidence = _names_list(failed) if failed else _names_list(ran)
    return _line(criterion, site, "pass" if ok else "fail", details, evidence, failed if not ok else ())


def _device_readiness(
    criterion: Criterion, site: str | None, items: list[MergedResult], text: dict[str, str]
) -> Line:
    """Per site: a device is ready when every result about it passed; ready/devices ≥ threshold."""
    threshold = criterion.threshold or 0.0
    per_site: dict[str, dict[str, list[TestResult]]] = {}
    for m in items:
        device = m.latest.device or m.latest.name
        per_site.setdefault(m.latest.site or CENTRAL, {}).setdefault(device, []).append(m.latest)
    parts: list[str] = []
    evidence: list[str] = []
    failures: list[TestResult] = []
    status: Status = "pass"
    for site_id, devices in per_site.items():
        ran = {d: rs for d, rs in devices.items() if any(r.status in ("passed", *FAILED) for r in rs)}
        if not ran:
            if status == "pass":
                status = "pending"
            parts.append(f"{site_id}: " + text["not_run"].format(n=len(devices)))
            continue
        not_ready = {d: [r for r in rs if r.failed] for d, rs in ran.items() if any(r.failed for r in rs)}
        ready = [d for d in ran if d not in not_ready]
        rate = len(ready) / len(ran)
        part = text["devices"].format(
            site=site_id, ready=len(ready), total=len(ran), rate=_pct(rate), threshold=_pct(threshold)
        )
        if not_ready:
            part += "; " + text["not_ready"].format(
                devices=", ".join(f"{d} ({_reason(rs)})" if _reason(rs) else d for d, rs in not_ready.items())
            )
        parts.append(part)
        if rate < threshold:
            status = "fail"
            for device, rs in not_ready.items():
                evidence.append(device)
                evidence.extend(r.name for r in rs)
                failures.extend(rs)
    if status != "fail":
        evidence = sorted({d for devices in per_site.values() for d in devices})
    return _line(criterion, site, status, "; ".join(parts), _dedupe(evidence), failures)


def _scorecard(plan: Plan, results: Iterable[MergedResult]) -> dict[str, dict[str, dict[str, int]]]:
    """Counts of latest statuses per site × aspect; region-wide results under ``central``."""
    aspect_of = {c.id: c.aspect for c in plan.criteria}
    sites: dict[str, dict[str, dict[str, int]]] = {}
    for site_id in [s.id for s in plan.sites] + [CENTRAL]:
        sites[site_id] = {aspect: dict.fromkeys(COUNTED, 0) for aspect in ASPECTS}
    for item in results:
        r = item.latest
        aspect = r.aspect or aspect_of.get(r.criterion or "") or "teknisk"
        cell = sites.setdefault(r.site or CENTRAL, {a: dict.fromkeys(COUNTED, 0) for a in ASPECTS})
        counts = cell.setdefault(aspect, dict.fromkeys(COUNTED, 0))
        counts["broken" if r.status == "unknown" else r.status] += 1
    return sites


def _line(
    criterion: Criterion,
    site: str | None,
    status: Status,
    details: str,
    evidence: Iterable[str],
    failures: Iterable[TestResult] = (),
) -> Line:
    return Line(
        id=criterion.id,
        title=criterion.title,
        status=status,
        site=site,
        aspect=criterion.aspect,
        details=details,
        evidence=tuple(evidence),
        kind=criterion.kind,
        severity=criterion.severity,
        failures=tuple(failures),
    )


def _reruns(items: Iterable[MergedResult], text: dict[str, str]) -> str:
    n = sum(1 for m in items if m.rerun_fixed)
    return text["after_rerun"].format(n=n) if n else ""


def _reason(results: list[TestResult]) -> str:
    for r in results:
        if r.message:
            first = r.message.strip().splitlines()[0] if r.message.strip() else ""
            return first[:120]
    return ""


def _names(results: list[TestResult], limit: int = 5) -> str:
    names = _names_list(results)
    shown = ", ".join(names[:limit])
    return shown + (f" … (+{len(names) - limit})" if len(names) > limit else "")


def _names_list(results: Iterable[TestResult]) -> list[str]:
    return _dedupe(r.name for r in results)


def _dedupe(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %" if abs(value * 100 - round(value * 100)) < 1e-9 else f"{value * 100:.1f} %"
