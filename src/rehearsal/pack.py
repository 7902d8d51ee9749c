"""The go/no-go panel's evidence pack: ``gonogo.html`` (two printed A4 pages) and ``gonogo.md``.

The panel asks three questions the raw test report does not answer: what is still
blocking and who owns it, what did we accept as a known risk and who accepted it, and is
this rehearsal better than the last one. The pack answers them on two pages:

1. the decision (GO, NO-GO or GO with N waivers), a sites × aspects heatmap and every
   scorecard line;
2. the blocking findings with their owners and links to the evidence in the Allure report,
   the waivers, the wave's trend (inline SVG) and what changed since the compared run.

The page is one self-contained file: inline CSS and SVG, no scripts, a CSP that allows no
network source. ``@page`` A4 rules and a page break put each part on its own sheet when it
is printed (or saved as PDF) from the browser. ``gonogo.md`` carries the same content as
text for e-mail and chat. Both are written in the plan's language.

Both are laid out by templates (``templates/gonogo.html``, ``templates/gonogo.md``) from one
:func:`view` of plain text and numbers; the templates escape (HTML autoescaped, Markdown one
line per value, ``|`` escaped in table cells), this module never builds markup.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rehearsal import svg, templating
from rehearsal.attest import Seen
from rehearsal.findings import Finding
from rehearsal.gonogo import CENTRAL, Decision, Line, WaiverUse
from rehearsal.history import Changes, Trend, rate
from rehearsal.plan import ASPECTS, Plan
from rehearsal.report_parts import central_part, part_of
from rehearsal.results import TestResult
from rehearsal.runbook import RunbookState, chart_view
from rehearsal.runbook import rows as runbook_rows

ALLURE_DIR = "allure-report"
ALLURE_INDEX = f"{ALLURE_DIR}/index.html"
MAX_BLOCKING = 5
MAX_OTHER = 6
MAX_ITEMS = 3
MAX_CHANGES = 5

TEXT: dict[str, dict[str, Any]] = {
    "sv": {
        "decision": "Go/no-go-beslut",
        "summary": "{passed} av {total} kriterier godkända · {waived} undantagna · {failed} underkända · "
        "{pending} väntar",
        "rehearsal": "Repetition",
        "wave": "Våg",
        "run": "Körning",
        "parent": "Omkörning av",
        "chain": "Sammanslagna körningar",
        "complete": "Komplett",
        "yes": "ja",
        "no": "nej – körningen avbröts eller pågår",
        "generated": "Skapad",
        "waivers_judged": "Undantag bedömda",
        "page1": "Sida 1 av 2 · beslut och resultat",
        "page2": "Sida 2 av 2 · fynd, undantag, trend och ändringar",
        "heatmap": "Resultat per plats och aspekt",
        "heat_legend": "Andel godkända av det som kördes; fynd = öppna fynd i cellen.",
        "legend": {
            "ok": "allt godkänt",
            "bad": "öppna fynd",
            "waived": "bara undantagna fynd",
            "skipped": "inget kördes klart",
            "empty": "inga tester",
        },
        "site": "Plats",
        "checked_by": "kontrollerat av",
        "criteria": "Kriterier",
        "criterion": "Kriterium",
        "aspect": "Aspekt",
        "status": "Status",
        "details": "Detaljer",
        "findings_heading": "Blockerande fynd",
        "no_blocking": "Inga blockerande fynd.",
        "other_findings": "Övriga öppna fynd (blockerar inte)",
        "owner": "Ägare",
        "no_owner": "ingen ägare i bemanningen",
        "open_allure": "Allure",
        "attachments": "bilagor",
        "more": "+{n} till",
        "more_findings": "+{n} fynd till – se gonogo.md och Allure-rapporten",
        "full_report": "Fullständig Allure-rapport",
        "central": "Regionen (central)",
        "region": "hela regionen",
        "none": "–",
        "open_short": "{n} fynd",
        "status_names": {
            "pass": "Godkänd",
            "fail": "Underkänd",
            "pending": "Väntar",
            "waived": "Undantagen",
            "not_applicable": "Ej tillämplig",
        },
        "not_applicable": " · {n} ej tillämpliga",
        "severity_names": {"critical": "Kritisk", "high": "Hög", "normal": "Normal"},
        "aspects": {"organisatorisk": "Organisatorisk", "klinisk": "Klinisk", "teknisk": "Teknisk"},
        "waivers_heading": "Undantag",
        "no_waivers": "Inga undantag.",
        "waiver_cols": ("Kriterium", "Motivering", "Godkänt av", "Giltigt", "Läge"),
        "waiver_states": {
            "used": "beslutet vilar på det",
            "unused": "behövs inte",
            "expired": "utgånget – räknas inte",
            "not_yet_valid": "gäller inte än",
        },
        "trend_heading": "Trend i vågen {wave}",
        "trend_note": "Linje: andel godkända (0–100 %). Staplar: öppna fynd. En punkt per körning.",
        "earlier": "{n} tidigare körningar visas inte.",
        "changes_heading": "Vad har ändrats",
        "changes_against": "Jämfört med {label} ({run}, {reason}).",
        "reasons": {"parent": "föräldrakörningen", "previous": "vågens förra körning", "given": "vald"},
        "fixed": "Rättade (underkänd → godkänd)",
        "regressed": "Försämrade (godkänd → underkänd)",
        "new_failures": "Nya underkända",
        "still_failing": "{n} fortfarande underkända.",
        "no_compare": "Första körningen i vågen – inget att jämföra med.",
        "no_changes": "Inga ändrade utfall.",
        "this_run": "denna",
        "attested_heading": "Intygat efter att steget kördes",
        "attested_note": "Räknas när steget körs om: rehearse rerun.",
        "attested_ok": "utfört",
        "attested_fail": "underkänt",
        "footer": "golive-rehearsal · GO bara när varje rad är godkänd eller undantagen; saknade resultat "
        "räknas aldrig som godkända och ett undantag aldrig som godkänt.",
    },
    "en": {
        "decision": "Go/no-go decision",
        "summary": "{passed} of {total} criteria passed · {waived} waived · {failed} failed · "
        "{pending} pending",
        "rehearsal": "Rehearsal",
        "wave": "Wave",
        "run": "Run",
        "parent": "Rerun of",
        "chain": "Merged runs",
        "complete": "Complete",
        "yes": "yes",
        "no": "no – the run was interrupted or is still running",
        "generated": "Generated",
        "waivers_judged": "Waivers judged on",
        "page1": "Page 1 of 2 · decision and results",
        "page2": "Page 2 of 2 · findings, waivers, trend and changes",
        "heatmap": "Results by site and aspect",
        "heat_legend": "Share passed of what ran; findings = open findings in the cell.",
        "legend": {
            "ok": "all passed",
            "bad": "open findings",
            "waived": "waived findings only",
            "skipped": "nothing finished",
            "empty": "no tests",
        },
        "site": "Site",
        "checked_by": "checked by",
        "criteria": "Criteria",
        "criterion": "Criterion",
        "aspect": "Aspect",
        "status": "Status",
        "details": "Details",
        "findings_heading": "Blocking findings",
        "no_blocking": "No blocking findings.",
        "other_findings": "Other open findings (not blocking)",
        "owner": "Owner",
        "no_owner": "no owner in the roster",
        "open_allure": "Allure",
        "attachments": "attachments",
        "more": "+{n} more",
        "more_findings": "+{n} more findings – see gonogo.md and the Allure report",
        "full_report": "Full Allure report",
        "central": "Region-wide (central)",
        "region": "whole region",
        "none": "–",
        "open_short": "{n} finding(s)",
        "status_names": {
            "pass": "Pass",
            "fail": "Fail",
            "pending": "Pending",
            "waived": "Waived",
            "not_applicable": "Not applicable",
        },
        "not_applicable": " · {n} not applicable",
        "severity_names": {"critical": "Critical", "high": "High", "normal": "Normal"},
        "aspects": {"organisatorisk": "Organisational", "klinisk": "Clinical", "teknisk": "Technical"},
        "waivers_heading": "Waivers",
        "no_waivers": "No waivers.",
        "waiver_cols": ("Criterion", "Reason", "Accepted by", "Valid", "State"),
        "waiver_states": {
            "used": "the decision rests on it",
            "unused": "not needed",
            "expired": "expired – no longer counts",
            "not_yet_valid": "not valid yet",
        },
        "trend_heading": "Trend in wave {wave}",
        "trend_note": "Line: share passed (0–100 %). Bars: open findings. One point per run.",
        "earlier": "{n} earlier runs not shown.",
        "changes_heading": "What changed",
        "changes_against": "Compared with {label} ({run}, {reason}).",
        "reasons": {"parent": "the parent run", "previous": "the wave's previous run", "given": "chosen"},
        "fixed": "Fixed (fail → pass)",
        "regressed": "Regressed (pass → fail)",
        "new_failures": "New failures",
        "still_failing": "{n} still failing.",
        "no_compare": "First run of the wave – nothing to compare with.",
        "no_changes": "No outcome changed.",
        "this_run": "this",
        "attested_heading": "Attested after the step ran",
        "attested_note": "Counted when the step is run again: rehearse rerun.",
        "attested_ok": "done",
        "attested_fail": "failed",
        "footer": "golive-rehearsal · GO only when every line passes or is waived; a missing result never "
        "counts as a pass, and a waiver never as a pass.",
    },
}


@dataclass(frozen=True)
class EvidencePack:
    """Everything the panel's two pages show, for one run chain."""

    decision: Decision
    trend: Trend
    changes: Changes
    runs: tuple[str, ...] = ()
    """The merged chain, oldest first."""
    generated: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    scope: dict[str, Any] | None = None
    """Which plan sites and aspects the chain ran, and which it did not (rehearsal.report.run_scope)."""
    runbook: RunbookState | None = None
    """The runbook on the real clock as it stood when the report was made (plans with a runbook)."""
    attestations: tuple[Seen, ...] = ()
    """Every attestation of the chain, with who and when, and whether a result has counted it yet."""

    def to_json(self) -> dict[str, Any]:
        """gonogo.json: the decision's fields, then the wave's trend and the changes (and the scope)."""
        return {
            **self.decision.to_json(),
            "chain": list(self.runs),
            "wave": self.trend.wave,
            "trend": self.trend.to_json(),
            "changes": self.changes.to_json(),
            **({"scope": self.scope} if self.scope is not None else {}),
            **({"runbook": self.runbook.to_json()} if self.runbook is not None else {}),
            "attestations": [seen.to_json() for seen in self.attestations],
        }


def allure_result_id(result: TestResult) -> str:
    """The id Allure 3 gives a result (md5 of its uuid): ``index.html#/<id>`` opens it."""
    return hashlib.md5(result.uuid.encode("utf-8")).hexdigest()  # noqa: S324 - an id, not security


def allure_link(result: TestResult, plan: Plan) -> str:
    """The result in its part of the report (:mod:`rehearsal.report_parts`): its site's page, else central."""
    part = part_of(result.site, (s.id for s in plan.sites), central_part(plan))
    return f"{ALLURE_DIR}/{part}/index.html#/{allure_result_id(result)}"


def text_for(plan: Plan) -> dict[str, Any]:
    return TEXT.get(plan.language, TEXT["en"])


# --- the view both pages are laid out from ---------------------------------------------------------


def render_markdown(pack: EvidencePack, plan: Plan, run_dir: Path | None = None) -> str:
    """gonogo.md: plain Markdown that reads well pasted into an e-mail or a chat channel."""
    return templating.render("gonogo.md", **view(pack, plan, run_dir or Path.cwd()))


def render_html(pack: EvidencePack, plan: Plan, run_dir: Path) -> str:
    """gonogo.html: the two-page evidence pack; inline CSS and SVG, no scripts, no outside requests."""
    return templating.render("gonogo.html", **view(pack, plan, run_dir))


def view(pack: EvidencePack, plan: Plan, run_dir: Path) -> dict[str, Any]:
    """Everything both pages show, as plain text and numbers in the plan's language.

    The templates lay it out and escape it; the page shows at most ``limits`` of each list
    (a printed page has room for so much), the Markdown all of it.
    """
    d, t = pack.decision, text_for(plan)
    extra = d.headline[len(d.decision) :].strip() if d.headline.startswith(d.decision) else ""
    blocking = [f for f in d.findings if f.blocking]
    others = [f for f in d.findings if f.open and not f.blocking]
    on_page = {f.id for f in blocking[:MAX_BLOCKING] + others[:MAX_OTHER]}
    return {
        "t": t,
        "lang": plan.language,
        "title": plan.title,
        "decision": d.decision,
        "headline": d.headline or d.decision,
        "extra": extra,
        "verdict_class": ("go waived" if extra else "go") if d.go else "nogo",
        "summary": summary(d, t),
        "run": {
            "rehearsal": d.rehearsal,
            "wave": pack.trend.wave,
            "id": d.run,
            "parent": d.parent,
            "complete": d.complete,
            "generated": pack.generated,
            "chain": list(pack.runs),
            "waivers_judged": d.today.isoformat() if d.waivers and d.today else None,
        },
        "allure_index": ALLURE_INDEX,
        "aspects": [{"id": a, "name": t["aspects"].get(a, a)} for a in ASPECTS],
        "heatmap": _heatmap(d, plan, t, on_page),
        "criteria": [_line(line, plan, t) for line in d.criteria],
        "blocking": [_finding(f, plan, run_dir, t) for f in blocking],
        "others": [_finding(f, plan, run_dir, t) for f in others],
        "waivers": [_waiver(use, plan, t) for use in d.waivers],
        "trend": _trend(pack.trend, plan, t),
        "runbook": _runbook(pack.runbook, plan, t),
        "attested_since": [
            {**seen.to_json(), "verdict": t["attested_ok"] if seen.attestation.ok else t["attested_fail"]}
            for seen in pack.attestations
            if not seen.counted
        ],
        "changes": _changes(pack.changes, plan, t),
        "limits": {"blocking": MAX_BLOCKING, "others": MAX_OTHER, "items": MAX_ITEMS, "changes": MAX_CHANGES},
    }


def _heat(d: Decision) -> dict[str, dict[str, dict[str, Any]]]:
    """Per site (plan order, then central) and aspect: counts, pass rate and findings."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for site, aspects in d.sites.items():
        row = {}
        for aspect, counts in aspects.items():
            ran = counts.get("passed", 0) + counts.get("failed", 0) + counts.get("broken", 0)
            row[aspect] = {
                "passed": counts.get("passed", 0),
                "ran": ran,
                "total": sum(counts.values()),
                "rate": rate(counts),
                "open": 0,
                "waived": 0,
                "first": None,
            }
        out[site] = row
    for f in d.findings:
        cell = out.setdefault(f.site, {}).setdefault(
            f.aspect or "teknisk",
            {"passed": 0, "ran": 0, "total": 0, "rate": None, "open": 0, "waived": 0, "first": None},
        )
        if f.open:
            cell["open"] += 1
            cell["first"] = cell["first"] or f
        else:
            cell["waived"] += 1
    return {
        site: row
        for site, row in out.items()
        if site != CENTRAL or any(c["total"] or c["open"] or c["waived"] for c in row.values())
    }


def _heatmap(d: Decision, plan: Plan, t: dict[str, Any], on_page: set[str]) -> list[dict[str, Any]]:
    """One row per site: per aspect a cell (None: nothing there) with its counts and colour."""
    rows = []
    for site, cells in _heat(d).items():
        row = []
        for aspect in ASPECTS:
            cell = cells.get(aspect)
            if cell is None:
                row.append({"site": site, "aspect": aspect, "shown": False, "rate": None})
                continue
            value = cell["rate"]
            first: Finding | None = cell["first"]
            klass = (
                "bad"
                if cell["open"]
                else "waived"
                if cell["waived"]
                else "skipped"
                if value is None
                else "ok"
            )
            row.append(
                {
                    **{k: cell[k] for k in ("passed", "ran", "open", "waived")},
                    "site": site,
                    "aspect": aspect,
                    "shown": bool(cell["total"] or cell["open"]),
                    "rate": value,
                    "pct": None if value is None else _pct(value),
                    "data_rate": "" if value is None else str(round(value, 4)),
                    "klass": klass,
                    "lightness": f"{70 + 20 * value:.0f}" if klass == "bad" and value is not None else None,
                    "first": _finding_anchor(first) if first is not None and first.id in on_page else None,
                }
            )
        rows.append({"name": site_name(plan, site, t), "cells": row})
    return rows


def _line(line: Line, plan: Plan, t: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": line.id,
        "title": line.title,
        "status": line.status,
        "status_name": t["status_names"].get(line.status, line.status),
        "site": site_name(plan, line.site, t),
        "details": line.details,
        "checked_by": ", ".join(line.checked_by),  # only where the plan has site probes
        "anchor": _line_anchor(line) if line.status in ("fail", "waived") else None,
    }


def _finding(f: Finding, plan: Plan, run_dir: Path, t: dict[str, Any]) -> dict[str, Any]:
    owner = None
    if f.owner is not None:
        o = f.owner
        where = f"{o.role}, {site_name(plan, o.site, t) if o.site else t['central']}" if o.role else None
        owner = {"name": o.name, "role": where, "phone": o.phone}
    return {
        "id": f.id,
        "anchor": _finding_anchor(f),
        "severity": f.severity,
        "severity_name": t["severity_names"][f.severity],
        "title": f.title,
        "site": site_name(plan, f.site, t),
        "summary": f.summary,
        "owner": owner,
        "items": [_item(r, run_dir, plan) for r in f.items],
    }


def _item(result: TestResult, run_dir: Path, plan: Plan) -> dict[str, Any]:
    """A failed result: its link into the Allure report and its first attachments beside the run."""
    return {
        "name": result.name,
        "device": result.device,
        "link": allure_link(result, plan),
        "attachments": [
            {"name": name, "href": Path(os.path.relpath(result.results_dir / source, run_dir)).as_posix()}
            for name, source in result.attachments[:3]
        ],
    }


def _waiver(use: WaiverUse, plan: Plan, t: dict[str, Any]) -> dict[str, Any]:
    w = use.waiver
    criterion = plan.criterion(w.criterion)
    state = use.state if use.state != "valid" else "used" if use.used else "unused"
    return {
        "criterion": w.criterion,
        "title": criterion.title if criterion else w.criterion,
        "where": site_name(plan, w.site, t) if w.site else t["region"],
        "reason": w.reason,
        "accepted_by": w.accepted_by,
        "date": w.date.isoformat(),
        "expiry": w.expiry.isoformat(),
        "state": state,
        "state_name": t["waiver_states"][state],
    }


def _trend(trend: Trend, plan: Plan, t: dict[str, Any]) -> dict[str, Any]:
    """The wave's runs, and per site and aspect the pass rate and open findings run by run."""
    points = trend.points
    max_open = max([p.open_in(s, a) for p in points for s in p.cells for a in ASPECTS] + [1])
    rows = []
    for site in trend.places():
        cells = []
        for aspect in ASPECTS:
            rates = [p.rate(site, aspect) for p in points]
            opens = [p.open_in(site, aspect) for p in points]
            ran = any(r is not None for r in rates)
            cells.append(
                {
                    "aspect": aspect,
                    "aspect_name": t["aspects"].get(aspect, aspect),
                    "ran": ran,
                    "rates": [None if r is None else _pct(r) for r in rates],
                    "opens": opens,
                    "spark": _spark(site, aspect, rates, opens, max_open) if ran or any(opens) else None,
                }
            )
        rows.append({"name": site_name(plan, site, t), "cells": cells})
    return {
        "heading": t["trend_heading"].format(wave=trend.wave),
        "points": [
            {
                "run": p.run,
                "label": p.label,
                "headline": p.headline,
                "decision": p.decision,
                "go": p.decision == "GO",
                "current": p.current,
            }
            for p in points
        ],
        "rows": rows,
        "earlier": t["earlier"].format(n=trend.earlier) if trend.earlier else None,
        "runbook": _runbook_trend(trend, plan),
    }


def _spark(
    site: str, aspect: str, rates: Sequence[float | None], opens: Sequence[int], max_open: int
) -> dict[str, Any]:
    """A small chart of one trend cell: pass rate as a line with dots, open findings as bars behind it."""
    width, height, left, right, top, bottom = 160, 48, 6, 34, 4, 12
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(rates)
    x, y = svg.Scale(0, n - 1, left, left + plot_w), svg.Scale(0, 1, top + plot_h, top)
    bar = max(3.0, min(10.0, plot_w / max(n, 1) / 2))
    dots = [(x(i), y(v)) if v is not None else None for i, v in enumerate(rates)]
    last = next((v for v in reversed(rates) if v is not None), None)
    return {
        "site": site,
        "aspect": aspect,
        "width": width,
        "height": height,
        "grid": [(left, y(value), left + plot_w, y(value)) for value in (1, 0)],
        "bars": [
            {"x": x(i) - bar / 2, "width": bar, "height": h, "y": top + plot_h - h, "count": count}
            for i, count in enumerate(opens)
            if count
            for h in [max(2.0, plot_h * 0.6 * count / max_open)]
        ],
        "lines": [run for run in svg.polylines(dots) if len(run) > 1],
        "ticks": [(x(i), height - 2, str(i + 1)) for i in range(n)],
        "dots": [
            {"x": p[0], "y": p[1], "ok": v >= 1, "title": f"{i + 1}: {_pct(v)}"}
            for i, (p, v) in enumerate(zip(dots, rates, strict=True))
            if p is not None and v is not None
        ],
        "last": None if last is None else (width - 2, height / 2 + 4, _pct(last)),
        "data_rates": ",".join("" if r is None else str(round(r, 4)) for r in rates),
        "data_open": ",".join(str(o) for o in opens),
    }


def _runbook(state: RunbookState | None, plan: Plan, t: dict[str, Any]) -> dict[str, Any] | None:
    """The runbook panel: the planned-vs-actual chart, the verdict and a line per step."""
    if state is None:
        return None
    words = RUNBOOK_TEXT.get(plan.language, RUNBOOK_TEXT["en"])
    return {
        "t": words,
        "chart": chart_view(state),
        "status": state.status,
        "status_name": t["status_names"].get(state.status, state.status),
        "details": state.details,
        "critical_path": " → ".join(state.critical_path),
        "steps": runbook_rows(state),
    }


def _runbook_trend(trend: Trend, plan: Plan) -> dict[str, Any] | None:
    """Each runbook step's actual minutes run by run (the plan's steps, in its order)."""
    if plan.runbook is None or not any(p.runbook for p in trend.points):
        return None
    return {
        "heading": RUNBOOK_TEXT.get(plan.language, RUNBOOK_TEXT["en"])["trend"],
        "planned": RUNBOOK_TEXT.get(plan.language, RUNBOOK_TEXT["en"])["planned"],
        "rows": [
            {
                "id": step.id,
                "title": step.title,
                "planned": svg.num(step.duration),
                "took": [
                    None if (v := p.runbook.get(step.id)) is None else svg.num(round(v, 1) + 0.0)
                    for p in trend.points
                ],
            }
            for step in plan.runbook.steps
        ],
    }


RUNBOOK_TEXT: dict[str, dict[str, str]] = {
    "sv": {
        "heading": "Körplanen mot klockan",
        "critical": "Kritisk linje",
        "trend": "Körplanens steg: faktisk tid per körning (minuter)",
        "planned": "planerat",
        "cols": "Steg|Typ|Ägare|Planerat|Utfall|Avvikelse|Läge",
    },
    "en": {
        "heading": "The runbook on the clock",
        "critical": "Critical path",
        "trend": "Runbook steps: actual minutes per run",
        "planned": "planned",
        "cols": "Step|Kind|Owner|Planned|Actual|Drift|State",
    },
}


def _changes(changes: Changes, plan: Plan, t: dict[str, Any]) -> dict[str, Any] | None:
    if changes.against is None:
        return None
    reason = t["reasons"].get(changes.reason, "")
    groups = [
        {
            "key": key,
            "heading": t[key],
            "items": [
                {
                    "history_id": c.history_id,
                    "name": c.name,
                    "site": site_name(plan, c.site, t),
                    "criterion": c.criterion,
                }
                for c in items
            ],
        }
        for key in ("fixed", "regressed", "new_failures")
        if (items := getattr(changes, key))
    ]
    return {
        "against": changes.against,
        "text": t["changes_against"].format(label=changes.against_label, run=changes.against, reason=reason),
        "groups": groups,
        "still_failing": t["still_failing"].format(n=changes.still_failing)
        if changes.still_failing
        else None,
    }


# --- helpers -----------------------------------------------------------------------------------


def summary(d: Decision, t: dict[str, Any]) -> str:
    """Counts of the lines by status; lines not applicable are not among the total."""
    statuses = [line.status for line in d.criteria]
    na = statuses.count("not_applicable")
    return t["summary"].format(
        passed=statuses.count("pass"),
        waived=statuses.count("waived"),
        total=len(statuses) - na,
        failed=statuses.count("fail"),
        pending=statuses.count("pending"),
    ) + (t["not_applicable"].format(n=na) if na else "")


def site_name(plan: Plan, site_id: str | None, t: dict[str, Any]) -> str:
    if site_id is None:
        return t["region"]
    if site_id == CENTRAL and all(s.id != CENTRAL for s in plan.sites):
        return t["central"]
    return next((s.name for s in plan.sites if s.id == site_id), site_id)


def _finding_anchor(f: Finding) -> str:
    return "finding-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in f.id)


def _line_anchor(line: Line) -> str:
    return "line-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in line.key)


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"
