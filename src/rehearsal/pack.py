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
"""

from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from rehearsal.findings import Finding
from rehearsal.gonogo import CENTRAL, Decision, Line, WaiverUse
from rehearsal.history import Change, Changes, Trend, rate
from rehearsal.plan import ASPECTS, Plan
from rehearsal.results import TestResult

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

    def to_json(self) -> dict[str, Any]:
        """gonogo.json: the decision's fields, then the wave's trend and the changes (and the scope)."""
        return {
            **self.decision.to_json(),
            "chain": list(self.runs),
            "wave": self.trend.wave,
            "trend": self.trend.to_json(),
            "changes": self.changes.to_json(),
            **({"scope": self.scope} if self.scope is not None else {}),
        }


def allure_result_id(result: TestResult) -> str:
    """The id Allure 3 gives a result (md5 of its uuid): ``index.html#/<id>`` opens it."""
    return hashlib.md5(result.uuid.encode("utf-8")).hexdigest()  # noqa: S324 - an id, not security


def allure_link(result: TestResult) -> str:
    return f"{ALLURE_INDEX}#/{allure_result_id(result)}"


def text_for(plan: Plan) -> dict[str, Any]:
    return TEXT.get(plan.language, TEXT["en"])


# --- gonogo.md ----------------------------------------------------------------------------------


def render_markdown(pack: EvidencePack, plan: Plan, run_dir: Path | None = None) -> str:
    """Plain Markdown that reads well pasted into an e-mail or a chat channel."""
    d, t = pack.decision, text_for(plan)
    names, sev = t["status_names"], t["severity_names"]
    out = [
        f"# {d.headline or d.decision} – {plan.title}",
        "",
        f"**{t['decision']}: {d.headline or d.decision}** · " + summary(d, t),
        "",
        f"- {t['rehearsal']}: `{d.rehearsal}` · {t['wave']}: `{pack.trend.wave}`",
        f"- {t['run']}: `{d.run}`" + (f" ({t['parent'].lower()} `{d.parent}`)" if d.parent else ""),
        f"- {t['complete']}: {t['yes'] if d.complete else t['no']}",
        "",
        f"## {t['heatmap']}",
        "",
        f"| {t['site']} | " + " | ".join(t["aspects"].get(a, a) for a in ASPECTS) + " |",
        "|---|" + "---|" * len(ASPECTS),
    ]
    for site, cells in _heat(d).items():
        row = []
        for aspect in ASPECTS:
            cell = cells.get(aspect)
            if cell is None or cell["rate"] is None:
                row.append(t["none"])
                continue
            text = f"{_pct(cell['rate'])} ({cell['passed']}/{cell['ran']})"
            if cell["open"]:
                text += " · " + t["open_short"].format(n=cell["open"])
            elif cell["waived"]:
                text += " · " + t["status_names"]["waived"].lower()
            row.append(text)
        out.append(f"| {_md(site_name(plan, site, t))} | " + " | ".join(row) + " |")
    out += ["", f"## {t['findings_heading']}", ""]
    blocking = [f for f in d.findings if f.blocking]
    if not blocking:
        out.append(t["no_blocking"])
    for f in blocking:
        out.append(
            f"- **{sev[f.severity]}** {f.title} – {site_name(plan, f.site, t)} (`{f.id}`) · "
            f"{t['owner']}: {_owner_text(f, plan, t)}"
        )
        if f.summary:
            out.append(f"  - {f.summary}")
        for r in f.items:
            where = f" ({r.device})" if r.device else ""
            out.append(f"  - {r.name}{where}: `{allure_link(r)}`")
    others = [f for f in d.findings if f.open and not f.blocking]
    if others:
        out += ["", f"### {t['other_findings']}", ""]
        out += [
            f"- {sev[f.severity]}: {f.title} – {site_name(plan, f.site, t)} · {t['owner']}: "
            f"{_owner_text(f, plan, t)}"
            for f in others
        ]
    out += ["", f"## {t['waivers_heading']}", ""]
    if not d.waivers:
        out.append(t["no_waivers"])
    for use in d.waivers:
        w = use.waiver
        out.append(
            f"- `{w.criterion}` ({site_name(plan, w.site, t) if w.site else t['region']}): {w.reason} – "
            f"{w.accepted_by}, "
            f"{w.date.isoformat()} – {w.expiry.isoformat()} · **{_waiver_state(use, t)}**"
        )
    out += ["", f"## {t['trend_heading'].format(wave=pack.trend.wave)}", ""]
    points = pack.trend.points
    out.append(" → ".join(f"{p.label}: {p.headline}" for p in points))
    numbers = " → ".join(str(i + 1) for i in range(len(points)))
    out += ["", f"| {t['site']} / {t['aspect']} | {numbers} |"]
    out.append("|---|---|")
    for site in pack.trend.places():
        for aspect in ASPECTS:
            rates = [p.rate(site, aspect) for p in points]
            if all(r is None for r in rates):
                continue
            opens = [p.open_in(site, aspect) for p in points]
            series = " → ".join(t["none"] if r is None else _pct(r) for r in rates)
            out.append(
                f"| {_md(site_name(plan, site, t))} / {t['aspects'].get(aspect, aspect)} | {series} "
                f"({t['open_short'].format(n=' → '.join(map(str, opens)))}) |"
            )
    out += ["", f"## {t['changes_heading']}", ""]
    out += _changes_md(pack.changes, plan, t)
    out += ["", f"## {t['criteria']}", ""]
    out.append(f"| {t['status']} | {t['criterion']} | {t['site']} | {t['details']} |")
    out.append("|---|---|---|---|")
    for line in d.criteria:
        out.append(
            f"| {names.get(line.status, line.status)} | {_md(line.title)} (`{line.id}`) "
            f"| {_md(site_name(plan, line.site, t))} | {_md(line.details)} |"
        )
    out += ["", f"{t['full_report']}: `{ALLURE_INDEX}` · `gonogo.html`", ""]
    return "\n".join(out)


def _changes_md(changes: Changes, plan: Plan, t: dict[str, Any]) -> list[str]:
    if changes.against is None:
        return [t["no_compare"]]
    out = [
        t["changes_against"].format(
            label=changes.against_label, run=changes.against, reason=t["reasons"].get(changes.reason, "")
        )
    ]
    for key in ("fixed", "regressed", "new_failures"):
        items: Sequence[Change] = getattr(changes, key)
        if items:
            out += ["", f"**{t[key]}**", ""]
            out += [f"- {c.name} – {site_name(plan, c.site, t)} (`{c.criterion or '-'}`)" for c in items]
    if not (changes.fixed or changes.regressed or changes.new_failures):
        out.append(t["no_changes"])
    if changes.still_failing:
        out += ["", t["still_failing"].format(n=changes.still_failing)]
    return out


# --- gonogo.html --------------------------------------------------------------------------------


def render_html(pack: EvidencePack, plan: Plan, run_dir: Path) -> str:
    """The two-page evidence pack: inline CSS and SVG, no scripts, no outside requests."""
    d, t, e = pack.decision, text_for(plan), html.escape
    template = Template(_resource("gonogo.html"))
    extra = d.headline[len(d.decision) :].strip() if d.headline.startswith(d.decision) else ""
    meta_rows = [
        (t["rehearsal"], e(d.rehearsal)),
        (t["wave"], e(pack.trend.wave)),
        (t["run"], e(d.run)),
        (t["parent"], e(d.parent) if d.parent else t["none"]),
        (t["complete"], t["yes"] if d.complete else f"<strong>{e(t['no'])}</strong>"),
        (t["generated"], e(pack.generated)),
    ]
    if len(pack.runs) > 1:
        meta_rows.append((t["chain"], " → ".join(e(i) for i in pack.runs)))
    if d.waivers and d.today:
        meta_rows.append((t["waivers_judged"], e(d.today.isoformat())))
    meta_rows.append(("Allure", f'<a href="{ALLURE_INDEX}">{e(t["full_report"])}</a>'))
    meta = '<dl class="meta">' + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in meta_rows) + "</dl>"
    rendered = _rendered_findings(d)
    return template.substitute(
        lang=e(plan.language),
        title=e(plan.title),
        css=_resource("gonogo.css"),
        decision=e(d.decision),
        headline=e(d.headline or d.decision),
        headline_extra=f"<div class='with'>{e(extra)}</div>" if extra else "",
        decision_label=e(t["decision"]),
        verdict_class=("go waived" if extra else "go") if d.go else "nogo",
        summary=e(summary(d, t)),
        page1=e(t["page1"]),
        page2=e(t["page2"]),
        meta=meta,
        heatmap_heading=e(t["heatmap"]),
        heatmap=_heatmap_html(d, plan, t, rendered),
        criteria_heading=e(t["criteria"]),
        criteria=_criteria_html(d, plan, t),
        findings_heading=e(t["findings_heading"]),
        findings=_findings_html(d, plan, run_dir, t, rendered),
        waivers_heading=e(t["waivers_heading"]),
        waivers=_waivers_html(d, plan, t),
        trend_heading=e(t["trend_heading"].format(wave=pack.trend.wave)),
        trend=_trend_html(pack.trend, plan, t),
        changes_heading=e(t["changes_heading"]),
        changes=_changes_html(pack.changes, plan, t),
        footer=e(t["footer"]),
    )


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


def _heatmap_html(d: Decision, plan: Plan, t: dict[str, Any], rendered: set[str]) -> str:
    e = html.escape
    aspects = list(ASPECTS)
    head = "".join(f"<th scope='col'>{e(t['aspects'].get(a, a))}</th>" for a in aspects)
    rows = []
    for site, cells in _heat(d).items():
        tds = []
        for aspect in aspects:
            cell = cells.get(aspect)
            where = f"data-site='{e(site)}' data-aspect='{aspect}'"
            if not cell or not cell["total"] and not cell["open"]:
                tds.append(f"<td class='heat empty' {where}>{t['none']}</td>")
                continue
            klass = (
                "bad"
                if cell["open"]
                else "waived"
                if cell["waived"]
                else "skipped"
                if cell["rate"] is None
                else "ok"
            )
            style = ""
            if klass == "bad" and cell["rate"] is not None:
                style = f" style='background:hsl(4,75%,{70 + 20 * cell['rate']:.0f}%)'"
            big = _pct(cell["rate"]) if cell["rate"] is not None else t["none"]
            small = f"{cell['passed']}/{cell['ran']}"
            if cell["open"]:
                first: Finding | None = cell["first"]
                label = e(t["open_short"].format(n=cell["open"]))
                if first is not None and first.id in rendered:
                    label = f"<a href='#{_finding_anchor(first)}'>{label}</a>"
                small += f" · {label}"
            elif cell["waived"]:
                small += f" · {e(t['status_names']['waived'].lower())}"
            tds.append(
                f"<td class='heat {klass}'{style} {where} "
                f"data-rate='{'' if cell['rate'] is None else round(cell['rate'], 4)}' "
                f"data-open='{cell['open']}'>"
                f"<span class='rate'>{e(big)}</span><span class='n'>{small}</span></td>"
            )
        label = f"{e(site_name(plan, site, t))}"
        rows.append(f"<tr><th scope='row'>{label}</th>{''.join(tds)}</tr>")
    legend = "".join(f"<span class='key {k}'></span>{e(v)} " for k, v in t["legend"].items())
    return (
        f"<table class='heatmap'><thead><tr><th>{e(t['site'])}</th>{head}</tr></thead><tbody>"
        + "".join(rows)
        + f"</tbody></table><p class='legend muted'>{legend}· {e(t['heat_legend'])}</p>"
    )


def _criteria_html(d: Decision, plan: Plan, t: dict[str, Any]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(t[k])}</th>" for k in ("status", "criterion", "site", "details"))
    rows = []
    for line in d.criteria:
        status = t["status_names"].get(line.status, line.status)
        badge = f"<span class='badge {e(line.status)}'>{e(status)}</span>"
        title = f"{e(line.title)} <span class='id muted'>{e(line.id)}</span>"
        anchor = f" id='{_line_anchor(line)}'" if line.status in ("fail", "waived") else ""
        rows.append(
            f"<tr class='{e(line.status)}'{anchor}><td>{badge}</td><td>{title}</td>"
            f"<td>{e(site_name(plan, line.site, t))}</td>"
            f"<td><div class='details'>{e(line.details)}</div></td></tr>"
        )
    return f"<table class='criteria'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _rendered_findings(d: Decision) -> set[str]:
    blocking = [f for f in d.findings if f.blocking][:MAX_BLOCKING]
    others = [f for f in d.findings if f.open and not f.blocking][:MAX_OTHER]
    return {f.id for f in blocking + others}


def _findings_html(d: Decision, plan: Plan, run_dir: Path, t: dict[str, Any], rendered: set[str]) -> str:
    e = html.escape
    blocking = [f for f in d.findings if f.blocking]
    others = [f for f in d.findings if f.open and not f.blocking]
    parts = []
    if not blocking:
        parts.append(f"<p class='none'>{e(t['no_blocking'])}</p>")
    for f in blocking[:MAX_BLOCKING]:
        items = [_item_html(r, run_dir, t) for r in f.items[:MAX_ITEMS]]
        if len(f.items) > MAX_ITEMS:
            items.append(f"<span class='muted'>{e(t['more'].format(n=len(f.items) - MAX_ITEMS))}</span>")
        summary_html = f"<code class='message'>{e(f.summary)}</code> " if f.summary else ""
        parts.append(
            f"<article class='finding {f.severity}' id='{_finding_anchor(f)}' data-finding='{e(f.id)}'>"
            f"<header><span class='sev {f.severity}'>{e(t['severity_names'][f.severity])}</span> "
            f"<strong>{e(f.title)}</strong> – {e(site_name(plan, f.site, t))} "
            f"<span class='id muted'>{e(f.id)}</span></header>"
            f"<div class='owner'><span class='muted'>{e(t['owner'])}:</span> {_owner_html(f, plan, t)}</div>"
            f"<div class='evidence'>{summary_html}<span class='items'>{' · '.join(items)}</span></div>"
            "</article>"
        )
    left = len(blocking) - MAX_BLOCKING
    if others:
        rows = []
        for f in others[:MAX_OTHER]:
            first = f.items[0] if f.items else None
            link = f" · <a href='{e(allure_link(first))}'>{e(t['open_allure'])}</a>" if first else ""
            rows.append(
                f"<li id='{_finding_anchor(f)}' data-finding='{e(f.id)}'>"
                f"<span class='sev {f.severity}'>{e(t['severity_names'][f.severity])}</span> "
                f"{e(f.title)} – {e(site_name(plan, f.site, t))} · {_owner_html(f, plan, t)}{link}</li>"
            )
        parts.append(f"<h3>{e(t['other_findings'])}</h3><ul class='others'>{''.join(rows)}</ul>")
        left += max(0, len(others) - MAX_OTHER)
    if left > 0:
        parts.append(f"<p class='muted'>{e(t['more_findings'].format(n=left))}</p>")
    return "\n".join(parts)


def _item_html(result: TestResult, run_dir: Path, t: dict[str, Any]) -> str:
    e = html.escape
    link = allure_link(result)
    where = f" <span class='muted'>({e(result.device)})</span>" if result.device else ""
    parts = [f"<a href='{e(link)}'>{e(result.name)}</a>{where}"]
    if result.attachments:
        links = []
        for name, source in result.attachments[:3]:
            rel = Path(os.path.relpath(result.results_dir / source, run_dir)).as_posix()
            links.append(f"<a href='{e(rel)}'>{e(name)}</a>")
        parts.append(f" · <span class='muted'>{e(t['attachments'])}:</span> {', '.join(links)}")
    return f"<span class='item'>{''.join(parts)}</span>"


def _owner_html(f: Finding, plan: Plan, t: dict[str, Any]) -> str:
    e = html.escape
    if f.owner is None:
        return f"<em>{e(t['no_owner'])}</em>"
    o = f.owner
    bits = [f"<strong>{e(o.name)}</strong>"]
    if o.role:
        bits.append(e(f"{o.role}, {site_name(plan, o.site, t) if o.site else t['central']}"))
    if o.phone:
        bits.append(f"<span class='phone'>{e(o.phone)}</span>")
    return " · ".join(bits)


def _owner_text(f: Finding, plan: Plan, t: dict[str, Any]) -> str:
    if f.owner is None:
        return t["no_owner"]
    o = f.owner
    bits = [o.name]
    if o.role:
        bits.append(f"{o.role}, {site_name(plan, o.site, t) if o.site else t['central']}")
    if o.phone:
        bits.append(o.phone)
    return " · ".join(bits)


def _waiver_state(use: WaiverUse, t: dict[str, Any]) -> str:
    states = t["waiver_states"]
    if use.state != "valid":
        return states[use.state]
    return states["used" if use.used else "unused"]


def _waivers_html(d: Decision, plan: Plan, t: dict[str, Any]) -> str:
    e = html.escape
    if not d.waivers:
        return f"<p class='none'>{e(t['no_waivers'])}</p>"
    head = "".join(f"<th>{e(c)}</th>" for c in t["waiver_cols"])
    rows = []
    for use in d.waivers:
        w = use.waiver
        criterion = plan.criterion(w.criterion)
        what = e(criterion.title if criterion else w.criterion)
        where = e(site_name(plan, w.site, t)) if w.site else e(t["region"])
        state = use.state if use.state != "valid" else "used" if use.used else "unused"
        rows.append(
            f"<tr class='waiver {state}'><td>{what} <span class='id muted'>{e(w.criterion)}</span><br>"
            f"<span class='muted'>{where}</span></td><td>{e(w.reason)}</td>"
            f"<td><strong>{e(w.accepted_by)}</strong><br>"
            f"<span class='muted'>{e(w.date.isoformat())}</span></td>"
            f"<td>{e(w.date.isoformat())} – {e(w.expiry.isoformat())}</td>"
            f"<td><span class='wstate {state}'>{e(_waiver_state(use, t))}</span></td></tr>"
        )
    return f"<table class='waivers'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _trend_html(trend: Trend, plan: Plan, t: dict[str, Any]) -> str:
    e = html.escape
    points = trend.points
    if not points:
        return ""
    max_open = max([p.open_in(s, a) for p in points for s in p.cells for a in ASPECTS] + [1])
    head = "".join(f"<th scope='col'>{e(t['aspects'].get(a, a))}</th>" for a in ASPECTS)
    rows = []
    for site in trend.places():
        tds = []
        for aspect in ASPECTS:
            rates = [p.rate(site, aspect) for p in points]
            opens = [p.open_in(site, aspect) for p in points]
            if all(r is None for r in rates) and not any(opens):
                tds.append(f"<td class='empty'>{t['none']}</td>")
                continue
            tds.append(f"<td>{_spark(site, aspect, rates, opens, max_open)}</td>")
        rows.append(f"<tr><th scope='row'>{e(site_name(plan, site, t))}</th>{''.join(tds)}</tr>")
    legend = []
    for i, p in enumerate(points, 1):
        klass = "go" if p.decision == "GO" else "nogo"
        current = f" <em>({e(t['this_run'])})</em>" if p.current else ""
        legend.append(
            f"<li data-run='{e(p.run)}'><span class='num'>{i}</span> {e(p.label)}{current} "
            f"<span class='dec {klass}'>{e(p.headline or p.decision)}</span></li>"
        )
    earlier = f"<p class='muted note'>{e(t['earlier'].format(n=trend.earlier))}</p>" if trend.earlier else ""
    return (
        f"<table class='trend'><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<ol class='points'>{''.join(legend)}</ol><p class='muted note'>{e(t['trend_note'])}</p>{earlier}"
    )


def _spark(site: str, aspect: str, rates: Sequence[float | None], opens: Sequence[int], max_open: int) -> str:
    """A small inline SVG: pass rate as a line with dots, open findings as bars behind it."""
    width, height, left, right, top, bottom = 160, 48, 6, 34, 4, 12
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(rates)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y(value: float) -> float:
        return top + (1 - value) * plot_h

    parts = [f"<line x1='{left}' y1='{y(1):.1f}' x2='{left + plot_w}' y2='{y(1):.1f}' class='grid'/>"]
    parts.append(f"<line x1='{left}' y1='{y(0):.1f}' x2='{left + plot_w}' y2='{y(0):.1f}' class='grid'/>")
    bar = max(3.0, min(10.0, plot_w / max(n, 1) / 2))
    for i, count in enumerate(opens):
        if count:
            h = max(2.0, plot_h * 0.6 * count / max_open)
            parts.append(
                f"<rect x='{x(i) - bar / 2:.1f}' y='{top + plot_h - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' class='open'><title>{count}</title></rect>"
            )
    segment: list[str] = []
    segments = []
    for i, value in enumerate(rates):
        if value is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        segment.append(f"{x(i):.1f},{y(value):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        if len(seg) > 1:
            parts.append(f"<polyline points='{' '.join(seg)}' class='rate'/>")
    for i in range(n):
        parts.append(f"<text x='{x(i):.1f}' y='{height - 2}' text-anchor='middle' class='x'>{i + 1}</text>")
    for i, value in enumerate(rates):
        if value is not None:
            klass = "ok" if value >= 1 else "bad"
            parts.append(
                f"<circle cx='{x(i):.1f}' cy='{y(value):.1f}' r='2.6' class='{klass}'><title>{i + 1}: "
                f"{_pct(value)}</title></circle>"
            )
    last = next((v for v in reversed(rates) if v is not None), None)
    if last is not None:
        parts.append(
            f"<text x='{width - 2}' y='{height / 2 + 4:.0f}' text-anchor='end' class='last'>"
            f"{_pct(last)}</text>"
        )
    data_rates = ",".join("" if r is None else str(round(r, 4)) for r in rates)
    data_open = ",".join(str(o) for o in opens)
    return (
        f"<svg class='spark' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' role='img' aria-label='{html.escape(site)} {aspect}' "
        f"data-site='{html.escape(site)}' data-aspect='{aspect}' data-rates='{data_rates}' "
        f"data-open='{data_open}'>{''.join(parts)}</svg>"
    )


def _changes_html(changes: Changes, plan: Plan, t: dict[str, Any]) -> str:
    e = html.escape
    if changes.against is None:
        return f"<p class='none'>{e(t['no_compare'])}</p>"
    reason = t["reasons"].get(changes.reason, "")
    parts = [
        f"<p class='against' data-against='{e(changes.against)}'>"
        + e(t["changes_against"].format(label=changes.against_label, run=changes.against, reason=reason))
        + "</p>"
    ]
    columns = []
    for key in ("fixed", "regressed", "new_failures"):
        items: Sequence[Change] = getattr(changes, key)
        if not items:
            continue
        lis = [
            f"<li data-history-id='{e(c.history_id)}'>{e(c.name)} – {e(site_name(plan, c.site, t))} "
            f"<span class='id muted'>{e(c.criterion or '')}</span></li>"
            for c in items[:MAX_CHANGES]
        ]
        if len(items) > MAX_CHANGES:
            lis.append(f"<li class='muted'>{e(t['more'].format(n=len(items) - MAX_CHANGES))}</li>")
        columns.append(f"<div class='change {key}'><h3>{e(t[key])}</h3><ul>{''.join(lis)}</ul></div>")
    if columns:
        parts.append(f"<div class='changes'>{''.join(columns)}</div>")
    if not (changes.fixed or changes.regressed or changes.new_failures):
        parts.append(f"<p class='none'>{e(t['no_changes'])}</p>")
    if changes.still_failing:
        parts.append(f"<p class='muted'>{e(t['still_failing'].format(n=changes.still_failing))}</p>")
    return "".join(parts)


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
    return html.escape("finding-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in f.id))


def _line_anchor(line: Line) -> str:
    return html.escape("line-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in line.key))


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _resource(name: str) -> str:
    return resources.files("rehearsal").joinpath("templates", name).read_text(encoding="utf-8")
