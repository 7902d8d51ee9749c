"""The go/no-go decision: plan criteria + merged results + run completeness → :class:`Decision`.

:func:`decide` is a pure function, so the same inputs always give the same verdict and the
verdict can be re-taken at any time (after a rerun, on another machine, in a test). Each
plan criterion becomes one scorecard line, or one line per site when ``per_site`` is set;
a line is ``pass``, ``fail`` or ``pending`` (no evidence yet), or ``not_applicable`` with the
reason when the plan says the criterion cannot apply there and nothing reported on it (a site
still on the legacy EHR, one without that kind of device: :mod:`rehearsal.applicability`).
The decision is GO only when every applicable line passes: a missing result is never taken as
a good one.

Which results feed a line is decided by the Allure labels every test carries (see
docs/design.md, Evidence conventions): ``criterion`` picks the line, ``site`` the site,
``device`` the device for readiness checks, ``aspect`` the scorecard column.

Failed items are grouped into findings (:mod:`rehearsal.findings`); a criterion of kind
``findings`` passes when no finding in its scope is open and critical and at most
``max_high`` are open and high. Waivers (:mod:`rehearsal.waivers`) valid on ``today`` turn
a line that would fail, or is still pending, into ``waived`` (never ``pass``); the decision
is then GO *with N waivers*, and its headline names who accepted each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from rehearsal import applicability
from rehearsal import findings as _findings
from rehearsal import waivers as _waivers
from rehearsal.findings import Finding
from rehearsal.plan import ASPECTS, Criterion, Plan, Waiver
from rehearsal.results import FAILED, MergedResult, TestResult

if TYPE_CHECKING:
    from rehearsal.runbook import RunbookState

Status = Literal["pass", "fail", "pending", "waived", "not_applicable"]
DONE: tuple[str, ...] = ("pass", "waived", "not_applicable")
"""Line statuses a GO allows: passed, waived, or not applicable there."""
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
        "findings": "öppna fynd: {critical} kritiska, {high} höga (högst {max_high}), {normal} normala",
        "findings_waived": "; {n} fynd undantagna",
        "waived_by": "undantag godkänt av {who}, gäller t.o.m. {expiry}",
        "go_with": "GO med {n} undantag (godkänt av {who})",
        "go_with_many": "GO med {n} undantag (godkända av {who})",
        "not_reported": "sonden {probe} rapporterade inte",
        "not_reported_at": "sonden {probe} rapporterade inte ({site})",
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
        "findings": "open findings: {critical} critical, {high} high (at most {max_high}), {normal} normal",
        "findings_waived": "; {n} finding(s) waived",
        "waived_by": "waiver accepted by {who}, valid through {expiry}",
        "go_with": "GO with {n} waiver (accepted by {who})",
        "go_with_many": "GO with {n} waivers (accepted by {who})",
        "not_reported": "probe {probe} did not report",
        "not_reported_at": "probe {probe} did not report ({site})",
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
    """The failing results behind a ``fail`` (or ``waived``) line (for links in the report; not in JSON)."""
    waivers: tuple[Waiver, ...] = ()
    """The waivers a ``waived`` line rests on."""
    checked_by: tuple[str, ...] = ()
    """Who checked what the line rests on, when the plan has site probes: probe ids, ``central``."""
    not_reported: tuple[str, ...] = ()
    """The plan's probes whose sites this line needs and that brought back nothing for it."""

    @property
    def key(self) -> str:
        """``criterion@site`` (``@region`` for region-wide lines): stable across runs."""
        return f"{self.id}@{self.site or 'region'}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "site": self.site,
            "aspect": self.aspect,
            "details": self.details,
            "evidence": list(self.evidence),
            "severity": self.severity,
            "waivers": [_waiver_json(w) for w in self.waivers],
            **({"checked_by": list(self.checked_by)} if self.checked_by else {}),
            **({"not_reported": list(self.not_reported)} if self.not_reported else {}),
        }


@dataclass(frozen=True)
class WaiverUse:
    """One waiver of the plan as the decision saw it: valid or not today, and what it waived."""

    waiver: Waiver
    state: _waivers.State
    lines: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()

    @property
    def used(self) -> bool:
        return bool(self.lines)

    def to_json(self) -> dict[str, Any]:
        return {
            **_waiver_json(self.waiver),
            "state": self.state,
            "used": self.used,
            "lines": list(self.lines),
            "findings": list(self.findings),
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
    headline: str = ""
    """``GO``, ``NO-GO`` or ``GO with N waivers (accepted by …)`` in the plan's language."""
    waivers: tuple[WaiverUse, ...] = ()
    findings: tuple[Finding, ...] = ()
    today: date | None = None
    """The day waivers were judged on."""

    @property
    def go(self) -> bool:
        return self.decision == "GO"

    def failed(self) -> list[Line]:
        return [line for line in self.criteria if line.status == "fail"]

    def waived(self) -> list[Line]:
        return [line for line in self.criteria if line.status == "waived"]

    def not_applicable(self) -> list[Line]:
        return [line for line in self.criteria if line.status == "not_applicable"]

    def used_waivers(self) -> list[Waiver]:
        """The distinct waivers the decision rests on, in plan order."""
        return [use.waiver for use in self.waivers if use.used]

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "headline": self.headline or self.decision,
            "complete": self.complete,
            "rehearsal": self.rehearsal,
            "run": self.run,
            "parent": self.parent,
            "criteria": [line.to_json() for line in self.criteria],
            "sites": {site: {a: dict(c) for a, c in aspects.items()} for site, aspects in self.sites.items()},
            "waived": len(self.used_waivers()),
            "waivers": [use.to_json() for use in self.waivers],
            "findings": [f.to_json() for f in self.findings],
            "open_findings": _findings.count_open(self.findings),
            "today": self.today.isoformat() if self.today else None,
        }


def decide(
    plan: Plan,
    results: Sequence[MergedResult],
    *,
    complete: bool,
    rehearsal: str,
    run: str,
    parent: str | None,
    waivers: Sequence[Waiver] = (),
    today: date | None = None,
    runbook: RunbookState | None = None,
) -> Decision:
    """Take the go/no-go decision for one run chain; GO only if every line that applies passes
    or is waived.

    `waivers` are judged on `today` (default: the local date): expired ones no longer count.
    `runbook` is the chain's runbook as it stands (:func:`rehearsal.runbook.load_state`), which a
    criterion of kind ``runbook`` is judged on (the report always reads it); a decision taken on
    results alone judges that line like ``all_pass`` on results labelled with it (none: pending).
    """
    today = today or date.today()
    text = _TEXT.get(plan.language, _TEXT["en"])
    by_criterion: dict[str, list[MergedResult]] = {}
    for item in results:
        if item.latest.criterion:
            by_criterion.setdefault(item.latest.criterion, []).append(item)
    found = [_waive_finding(f, waivers, today) for f in _findings.group(plan, results)]
    lines: list[Line] = []
    for criterion in plan.criteria:
        mine = by_criterion.get(criterion.id, [])
        if criterion.kind == "findings":
            lines.extend(_findings_lines(plan, criterion, results, found, text))
        elif criterion.kind == "runbook" and runbook is not None:
            lines.append(_runbook_line(criterion, runbook, text))
        elif criterion.kind == "run_complete":
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
                na = None if items else _not_applicable(plan, criterion, site)
                lines.append(na or _judge(criterion, site, items, text))
        else:
            na = None if mine else _not_applicable(plan, criterion, None)
            lines.append(na or _judge(criterion, None, mine, text))
    if plan.probes:
        lines = [_probe_line(plan, line, by_criterion.get(line.id, []), text) for line in lines]
    lines = [_waive_line(line, waivers, today, text) for line in lines]
    found = _mark_blocking(plan, found, lines)
    go = all(line.status in DONE for line in lines)
    uses = tuple(_use(w, today, lines, found) for w in waivers)
    return Decision(
        decision="GO" if go else "NO-GO",
        complete=complete,
        rehearsal=rehearsal,
        run=run,
        parent=parent,
        criteria=tuple(lines),
        sites=_scorecard(plan, results),
        headline=_headline(go, [u.waiver for u in uses if u.used], text),
        waivers=uses,
        findings=tuple(found),
        today=today,
    )


# --- findings and waivers ----------------------------------------------------------------------


def _findings_lines(
    plan: Plan,
    criterion: Criterion,
    results: Sequence[MergedResult],
    found: Sequence[Finding],
    text: dict[str, str],
) -> list[Line]:
    """No open critical finding and at most `max_high` open high ones, in the criterion's aspect.

    Judged once with the waivers and once as if there were none: a line that passes only
    thanks to waived findings is ``waived``, resting on their waivers.
    """
    max_high = criterion.max_high or 0

    def in_aspect(aspect: str | None) -> bool:
        return criterion.aspect is None or aspect == criterion.aspect

    scoped = [f for f in found if in_aspect(f.aspect) and f.criterion != criterion.id]
    ran = [
        m.latest
        for m in results
        if m.latest.status in ("passed", *FAILED) and in_aspect(m.latest.aspect or _aspect_of(plan, m.latest))
    ]
    places: list[str | None] = [None]
    if criterion.per_site:
        places = [s.id for s in plan.sites]
        places += sorted({f.site for f in scoped} - set(places))
    lines = []
    for place in places:
        mine = [f for f in scoped if place is None or f.site == place]
        ran_here = [r for r in ran if place is None or (r.site or CENTRAL) == place]
        if not ran_here:
            na = _not_applicable(plan, criterion, place)
            lines.append(na or _line(criterion, place, "pending", text["no_results"], ()))
            continue
        with_waivers = _findings.count_open(mine)
        without = _findings.count_open([replace(f, status="open") for f in mine])
        waived = [f for f in mine if not f.open]

        def ok(counts: dict[str, int]) -> bool:
            return counts["critical"] == 0 and counts["high"] <= max_high

        details = text["findings"].format(max_high=max_high, **with_waivers)
        if waived:
            details += text["findings_waived"].format(n=len(waived))
        evidence = [f.id for f in mine if f.open and f.severity != "normal"]
        failures = [r for f in mine if f.open and f.severity != "normal" for r in f.items]
        if not ok(with_waivers):
            lines.append(_line(criterion, place, "fail", details, evidence, failures))
        elif not ok(without):
            rest = _dedupe_waivers(f.waiver for f in waived if f.waiver and f.severity != "normal")
            line = _line(criterion, place, "waived", details, [f.id for f in waived], ())
            lines.append(replace(line, waivers=tuple(rest)))
        else:
            lines.append(_line(criterion, place, "pass", details, evidence, failures))
    return lines


def _probe_line(plan: Plan, line: Line, mine: Sequence[MergedResult], text: dict[str, str]) -> Line:
    """Name who checked the line (each result's ``probe`` label, else ``central``); a device line
    needing a probe's site that has nothing from there is never passed: "probe NAME did not report"."""
    if line.kind in ("findings", "runbook", "run_complete"):
        return line
    here = [m.latest for m in mine if line.site is None or (m.latest.site or CENTRAL) == line.site]
    checked_by = tuple(sorted({r.labels.get("probe") or CENTRAL for r in here}))
    criterion = plan.criterion(line.id)
    missing: list[tuple[str, str]] = []
    if criterion is not None and line.kind == "device_readiness" and line.status != "not_applicable":
        kinds = plan.kinds_of(criterion)
        reported = {r.site or CENTRAL for r in here}
        for site in plan.sites:
            probe = plan.probe_of(site.id)
            if probe is None or (line.site is not None and site.id != line.site) or site.id in reported:
                continue
            has = {p.kind for p in site.printers} | ({"workstation"} if site.workstations else set())
            if has & kinds and applicability.reason(plan, criterion, site) is None:
                missing.append((probe.id, site.id))
    if not missing:
        return replace(line, checked_by=checked_by)
    if line.site is not None:
        details = text["not_reported"].format(probe=missing[0][0])
    else:
        said = "; ".join(text["not_reported_at"].format(probe=p, site=s) for p, s in missing)
        details = f"{line.details}; {said}" if here else said
    status: Status = "fail" if line.status == "fail" else "pending"
    not_reported = tuple(dict.fromkeys(p for p, _ in missing))
    return replace(line, status=status, details=details, checked_by=checked_by, not_reported=not_reported)


def _not_applicable(plan: Plan, criterion: Criterion, place: str | None) -> Line | None:
    """The ``not_applicable`` line, with the reason, where the plan says the criterion cannot
    apply (a plan site, or region-wide when no site qualifies); None where it can."""
    site = next((s for s in plan.sites if s.id == place), None)
    if place is None:
        why = applicability.region_reason(plan, criterion)
    else:
        why = applicability.reason(plan, criterion, site) if site else None
    return _line(criterion, place, "not_applicable", why, ()) if why else None


def _aspect_of(plan: Plan, result: TestResult) -> str | None:
    criterion = plan.criterion(result.criterion) if result.criterion else None
    return criterion.aspect if criterion else None


def _waive_finding(finding: Finding, waivers: Sequence[Waiver], today: date) -> Finding:
    if not finding.criterion:
        return finding
    waiver = _waivers.covering(waivers, finding.criterion, finding.site, today)
    return replace(finding, status="waived", waiver=waiver) if waiver else finding


def _waive_line(line: Line, waivers: Sequence[Waiver], today: date, text: dict[str, str]) -> Line:
    """A failing or pending line covered by valid waivers becomes ``waived``; a region-wide
    line needs a waiver without a site, or one for every site its failures come from."""
    if line.status not in ("fail", "pending"):
        return line
    chosen: list[Waiver] = []
    whole = _waivers.covering(waivers, line.id, line.site, today)
    if whole:
        chosen = [whole]
    elif line.site is None and line.failures:
        per_site = [_waivers.covering(waivers, line.id, r.site, today) for r in line.failures]
        if all(per_site):
            chosen = _dedupe_waivers(w for w in per_site if w)
    if not chosen:
        return line
    note = "; ".join(text["waived_by"].format(who=w.accepted_by, expiry=w.expiry.isoformat()) for w in chosen)
    return replace(line, status="waived", details=f"{line.details}; {note}", waivers=tuple(chosen))


def _mark_blocking(plan: Plan, found: list[Finding], lines: Sequence[Line]) -> list[Finding]:
    """Open findings behind a failing line block the GO: the panel's list of what to fix."""
    status = {(line.id, line.site): line.status for line in lines}
    failing_findings_lines = [
        (plan.criterion(line.id), line.site)
        for line in lines
        if line.status == "fail" and line.kind == "findings"
    ]
    out = []
    for f in found:
        criterion = plan.criterion(f.criterion) if f.criterion else None
        blocking = False
        if f.open and criterion is not None and criterion.kind != "findings":
            blocking = status.get((criterion.id, f.site if criterion.per_site else None)) == "fail"
        for c, site in failing_findings_lines:
            if (
                f.open
                and c is not None
                and f.severity in ("critical", "high")
                and (c.aspect is None or c.aspect == f.aspect)
                and (site is None or site == f.site)
            ):
                blocking = True
        out.append(replace(f, blocking=blocking))
    return out


def _use(waiver: Waiver, today: date, lines: Sequence[Line], found: Sequence[Finding]) -> WaiverUse:
    return WaiverUse(
        waiver=waiver,
        state=_waivers.state(waiver, today),
        lines=tuple(line.key for line in lines if any(w is waiver for w in line.waivers)),
        findings=tuple(f.id for f in found if f.waiver is waiver),
    )


def _headline(go: bool, used: list[Waiver], text: dict[str, str]) -> str:
    if not go:
        return "NO-GO"
    if not used:
        return "GO"
    who = ", ".join(dict.fromkeys(w.accepted_by for w in used))
    return text["go_with" if len(used) == 1 else "go_with_many"].format(n=len(used), who=who)


def _dedupe_waivers(waivers: Iterable[Waiver]) -> list[Waiver]:
    out: list[Waiver] = []
    for w in waivers:
        if not any(w is x for x in out):
            out.append(w)
    return out


def _waiver_json(w: Waiver) -> dict[str, Any]:
    return {
        "criterion": w.criterion,
        "site": w.site,
        "reason": w.reason,
        "accepted_by": w.accepted_by,
        "date": w.date.isoformat(),
        "expiry": w.expiry.isoformat(),
    }


def _by_site(plan: Plan, items: Iterable[MergedResult]) -> dict[str, list[MergedResult]]:
    """Every plan site (pending if empty), then region-wide and unknown sites that did report."""
    groups: dict[str, list[MergedResult]] = {site.id: [] for site in plan.sites}
    for item in items:
        groups.setdefault(item.latest.site or CENTRAL, []).append(item)
    return groups


def _runbook_line(criterion: Criterion, state: RunbookState, text: dict[str, str]) -> Line:
    """The runbook on the real clock: forecast in the window, every gate held, the drill in time."""
    evidence = [f"runbook:{s.id}" for s in state.steps if s.status == "failed" or s.critical]
    return _line(criterion, None, state.status, state.details, evidence)


def judge(plan: Plan, criterion: Criterion, site: str | None, results: Iterable[TestResult]) -> Line:
    """One line of a result-judged criterion on these results only (a runbook gate, when it is
    reached, judges its criteria on the results in by then); pending without any."""
    items = [MergedResult(latest=r) for r in results if site is None or (r.site or CENTRAL) == site]
    return _judge(criterion, site, items, _TEXT.get(plan.language, _TEXT["en"]))


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
