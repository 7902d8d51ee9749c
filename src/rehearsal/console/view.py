"""What the console shows of a run chain now, as plain text and numbers in the plan's language.

Everything is read from the run folders (the results, attestations, incident log, runbook
records) and nothing is written: the decision is :func:`rehearsal.gonogo.decide` on the
results merged so far, with the plan's waivers, exactly as ``rehearse report`` takes it, and
the grid and scorecard lines are the go/no-go page's own (:mod:`rehearsal.pack`). Text that
came from the target (a failure message, a test name) is masked (:mod:`rehearsal.redact`:
secrets, patient numbers) and cleaned to one line; the templates escape it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from rehearsal import attest, devtext, incidents, redact
from rehearsal.errors import RehearsalError
from rehearsal.gonogo import CENTRAL, Decision, decide
from rehearsal.lifetime import LOCK_FILE
from rehearsal.pack import _heatmap, _line, site_name, summary, text_for
from rehearsal.plan import ASPECTS, Plan
from rehearsal.report import _waivers
from rehearsal.results import MergedResult, ResultWarning, merge
from rehearsal.run import Run, chain

MAX_FAILURES = 50

TEXT: dict[str, dict[str, str]] = {
    "sv": {
        "console": "Kommandocentral",
        "waiting": "Väntar på en körning av {plan} …",
        "run": "Körning",
        "chain": "Körningskedja",
        "running": "pågår",
        "finished": "klar",
        "interrupted": "avbruten eller pågår utan process",
        "results": "{n} resultat",
        "as_now": "Beslutet som det står nu",
        "grid": "Resultat per plats och aspekt",
        "criteria": "Kriterier",
        "failures": "Underkänt",
        "no_failures": "Inget underkänt hittills.",
        "evidence": "evidens",
        "manual": "Manuella moment",
        "no_manual": "Inga moment väntar på intygande.",
        "attested_ok": "intygat godkänt av {by} {at}",
        "attested_fail": "intygat underkänt av {by} {at}",
        "take_in": "räknas in vid rehearse rerun",
        "pending": "väntar",
        "attest_heading": "Intyga ett moment",
        "item": "Moment",
        "site": "Plats",
        "region": "hela regionen",
        "ok": "Godkänt",
        "fail": "Underkänt",
        "note": "Anteckning",
        "attest": "Intyga",
        "name": "Ditt namn",
        "name_hint": "står i protokollet vid allt du gör här",
        "incidents": "Incidentlogg",
        "no_incidents": "Inga incidenter.",
        "raise_heading": "Lyft en incident",
        "title": "Vad har hänt",
        "raise": "Lyft",
        "acknowledge": "Kvittera",
        "escalate": "Eskalera",
        "resolve": "Lös",
        "raised": "lyft",
        "acknowledged": "kvitterad",
        "escalated": "eskalerad",
        "resolved": "löst",
        "by_at": "{by} {at}",
        "minutes": "{m} min",
        "limits": "Planens tider: kvittering inom {ack} min, eskalering inom {esc} min",
        "late": "sent",
        "runbook": "Körschema",
        "step": "Steg",
        "owner": "Ägare",
        "planned": "Planerat (min)",
        "actual": "Faktiskt (min)",
        "drift": "Avvikelse",
        "start": "Starta",
        "done": "Klart",
        "step_fail": "Misslyckat",
        "recorded": "Registrerat.",
        "offline": "Ingen kontakt med konsolen – försöker igen …",
    },
    "en": {
        "console": "Command centre",
        "waiting": "Waiting for a run of {plan} …",
        "run": "Run",
        "chain": "Run chain",
        "running": "running",
        "finished": "finished",
        "interrupted": "interrupted, or running without a process",
        "results": "{n} results",
        "as_now": "The decision as it stands now",
        "grid": "Results per site and aspect",
        "criteria": "Criteria",
        "failures": "Failed",
        "no_failures": "Nothing failed so far.",
        "evidence": "evidence",
        "manual": "Manual steps",
        "no_manual": "No step is waiting for an attestation.",
        "attested_ok": "attested ok by {by} {at}",
        "attested_fail": "attested failed by {by} {at}",
        "take_in": "counted at rehearse rerun",
        "pending": "pending",
        "attest_heading": "Attest a step",
        "item": "Step",
        "site": "Site",
        "region": "whole region",
        "ok": "Ok",
        "fail": "Failed",
        "note": "Note",
        "attest": "Attest",
        "name": "Your name",
        "name_hint": "recorded with everything you do here",
        "incidents": "Incident log",
        "no_incidents": "No incidents.",
        "raise_heading": "Raise an incident",
        "title": "What happened",
        "raise": "Raise",
        "acknowledge": "Acknowledge",
        "escalate": "Escalate",
        "resolve": "Resolve",
        "raised": "raised",
        "acknowledged": "acknowledged",
        "escalated": "escalated",
        "resolved": "resolved",
        "by_at": "{by} {at}",
        "minutes": "{m} min",
        "limits": "The plan's times: acknowledge within {ack} min, escalate within {esc} min",
        "late": "late",
        "runbook": "Runbook",
        "step": "Step",
        "owner": "Owner",
        "planned": "Planned (min)",
        "actual": "Actual (min)",
        "drift": "Drift",
        "start": "Start",
        "done": "Done",
        "step_fail": "Failed",
        "recorded": "Recorded.",
        "offline": "No contact with the console – retrying …",
    },
}


def texts(plan: Plan | None) -> dict[str, Any]:
    """The console's texts and the go/no-go page's (``t.pack``), in the plan's language."""
    lang = plan.language if plan is not None else "sv"
    mine: dict[str, Any] = dict(TEXT.get(lang, TEXT["en"]))
    if plan is not None:
        mine["pack"] = text_for(plan)
    return mine


def _shown(text: str, limit: int = 300) -> str:
    """Target text as one masked line (secrets, patient numbers)."""
    return devtext.clean(redact.text(text), limit=limit)


def _clock(stamp: str | None) -> str:
    """A stamp as local wall time, to the second (what a person on the floor reads)."""
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return stamp


def running(run: Run) -> bool:
    """Does a process of the run live? Read from the lock's pids, never by taking the lock
    (a console must not be the reason a run cannot take its own lock)."""
    if run.finished is not None:
        return False
    try:
        pids = [int(p) for p in (run.dir / LOCK_FILE).read_text(encoding="utf-8").split() if p.isdigit()]
    except OSError:
        return False
    for pid in pids:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            continue
        except PermissionError:
            return True
    return False


@dataclass(frozen=True)
class Chain:
    """A run and its parents, with what they recorded (the latest run is where the console writes)."""

    runs: tuple[Run, ...]
    merged: tuple[MergedResult, ...]

    @property
    def run(self) -> Run:
        return self.runs[-1]

    @staticmethod
    def runs_of(run: Run) -> tuple[Run, ...]:
        return tuple(chain(run))

    @classmethod
    def of(cls, run: Run) -> Chain:
        runs = tuple(chain(run))
        with warnings.catch_warnings():  # a result half-written right now: read on the next look
            warnings.simplefilter("ignore", ResultWarning)
            merged = tuple(merge([r.results_dir for r in runs]))
        return cls(runs, merged)

    def attestation_files(self) -> list[Path]:
        """What the run's scenarios read: the files it was given (copies), then every run's own record."""
        given = [c for r in self.runs for c in r.copies("attestations")]
        return [*given, *(r.dir / attest.FILE for r in self.runs)]

    def incident_files(self) -> list[Path]:
        return [r.dir / incidents.FILE for r in self.runs]


def decision_now(plan: Plan, found: Chain) -> Decision:
    """The decision ``rehearse report`` would take on these results now (nothing is written)."""
    run = found.run
    return decide(
        plan,
        found.merged,
        complete=run.complete,
        rehearsal=run.rehearsal,
        run=run.id,
        parent=run.parent,
        waivers=_waivers(run, plan, None),
    )


def _failures(plan: Plan, found: Chain, t: dict[str, Any]) -> list[dict[str, Any]]:
    failed = [m.latest for m in found.merged if m.latest.failed]
    failed.sort(key=lambda r: (r.finished_at, r.uuid), reverse=True)  # as they land: newest on top
    shown = []
    for r in failed[:MAX_FAILURES]:
        run_id = r.results_dir.parent.name
        shown.append(
            {
                "site": site_name(plan, r.site, t["pack"]) if r.site != CENTRAL else t["pack"]["central"],
                "criterion": r.criterion or "",
                "name": _shown(r.name, 200),
                "reason": _shown(
                    r.message.strip().splitlines()[0] if r.message.strip() else "", 300
                ).removeprefix("AssertionError: "),  # pytest's wording; the reason is what follows
                "at": _clock(datetime.fromtimestamp(r.finished_at / 1000, UTC).isoformat())
                if r.finished_at
                else "",
                "evidence": [
                    {"name": _shown(name, 80), "href": f"files/{run_id}/{r.results_dir.name}/{source}"}
                    for name, source in r.attachments
                    if "/" not in source and source not in ("", ".", "..")
                ][:6],
            }
        )
    return shown


def _manual(plan: Plan, found: Chain, t: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps waiting for a person (skipped with an attestation label), and whether one attested since."""
    attested = attest.read(found.attestation_files())
    lines = []
    for m in found.merged:
        r = m.latest
        item = r.labels.get("attestation")
        if r.status != "skipped" or not item:
            continue
        made = attest.lookup(attested, item, r.site) if item != incidents.PENDING_ITEM else None
        question = r.message.strip().splitlines()[0] if r.message.strip() else r.name
        question = question.removeprefix("Skipped: ").removeprefix(f"{attest.PENDING}: ")
        question = question.split(" (rehearse attest ")[0]
        state = "pending"
        said = t["pending"]
        if made is not None:
            state = "ok" if made.ok else "fail"
            said = t["attested_ok" if made.ok else "attested_fail"].format(by=made.by, at=_clock(made.at))
        lines.append(
            {
                "item": item,
                "site": r.site or "",
                "site_name": site_name(plan, r.site, t["pack"]),
                "question": _shown(question, 300),
                "state": state,
                "said": said,
                "note": made.note if made is not None else "",
            }
        )
    lines.sort(key=lambda x: (x["state"] != "pending", x["site"], x["item"]))
    return lines


def _incidents(plan: Plan, found: Chain, t: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    times = plan.command_centre.escalation
    shown = []
    for i in reversed(incidents.incidents(incidents.read(found.incident_files()))):
        late = None
        if times is not None and i.site is not None:
            late = incidents.judge([i], times, now).status == "fail"
        steps = []
        for name, event in (
            ("raised", i.raised),
            ("acknowledged", i.acknowledged),
            ("escalated", i.escalated),
            ("resolved", i.resolved),
        ):
            if event is not None:
                minutes = incidents.minutes(i.minutes_to(event, now)) if name != "raised" else None
                steps.append(
                    {
                        "name": t[name],
                        "by": event.by,
                        "at": _clock(event.at),
                        "after": t["minutes"].format(m=minutes) if minutes is not None else "",
                        "note": event.note,
                    }
                )
        shown.append(
            {
                "id": i.id,
                "site": site_name(plan, i.site, t["pack"]),
                "title": i.title,
                "state": i.state,
                "state_name": t[i.state],
                "late": bool(late),
                "steps": steps,
                "open": i.open_actions,
            }
        )
    return shown


def _runbook(plan: Plan, found: Chain) -> dict[str, Any] | None:
    """The runbook panel through :mod:`rehearsal.runbook`: its chart, its rows, and for each step
    people time (manual, a drill without criteria) the buttons that record start, done, fail."""
    book = getattr(plan, "runbook", None)
    if book is None:
        return None
    from rehearsal import runbook

    try:
        state = runbook.load_state(found.run.dir, plan)
        chart, rows = runbook.chart_svg(state), runbook.rows(state)
    except Exception as exc:  # a runbook record the module refuses: say so, keep the rest of the page
        return {"error": _shown(f"{exc.__class__.__name__}: {exc}"), "chart": "", "steps": [], "verdict": ""}
    steps = []
    for row in rows:
        try:
            runbook.check_recordable(book, row["id"])
            by_people = True
        except RehearsalError:
            by_people = False
        steps.append({**row, "by_people": by_people})
    return {
        "error": "",
        "chart": Markup(chart),  # drawn by an autoescaped SVG template
        "steps": steps,
        "status": state.status,
        "verdict": state.details,
    }


def view(plan: Plan, found: Chain | None, now: datetime | None = None) -> dict[str, Any]:
    """Everything the live parts of the page show."""
    t = texts(plan)
    now = now or datetime.now(UTC)
    sites = [{"id": s.id, "name": s.name} for s in plan.sites]
    times = plan.command_centre.escalation
    base: dict[str, Any] = {
        "t": t,
        "lang": plan.language,
        "title": plan.title,
        "sites": sites,
        "limits": t["limits"].format(
            ack=incidents.minutes(times.acknowledge_within_min),
            esc=incidents.minutes(times.escalate_within_min),
        )
        if times is not None
        else "",
        "run": None,
    }
    if found is None:
        return base
    d = decision_now(plan, found)
    run = found.run
    live = running(run)
    manual = _manual(plan, found, t)
    return {
        **base,
        "run": {
            "id": run.id,
            "chain": [r.id for r in found.runs],
            "state": "running" if live else ("finished" if run.complete else "interrupted"),
            "state_name": t["running"] if live else (t["finished"] if run.complete else t["interrupted"]),
            "started": _clock(run.started),
            "results": t["results"].format(n=len(found.merged)),
            "count": len(found.merged),
        },
        "decision": d.decision,
        "headline": d.headline or d.decision,
        "verdict_class": "go" if d.go else "nogo",
        "summary": summary(d, t["pack"]),
        "aspects": [{"id": a, "name": t["pack"]["aspects"].get(a, a)} for a in ASPECTS],
        "heatmap": _heatmap(d, plan, t["pack"], set()),
        "criteria": [_line(line, plan, t["pack"]) for line in d.criteria],
        "failures": _failures(plan, found, t),
        "manual": manual,
        "items": sorted({m["item"] for m in manual if m["item"] != incidents.PENDING_ITEM}),
        "incidents": _incidents(plan, found, t, now),
        "runbook": _runbook(plan, found),
    }
