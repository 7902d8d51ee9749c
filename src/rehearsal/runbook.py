"""The runbook on the real clock: the cutover's steps, planned against actual, and the forecast.

In cutover rehearsals the most common failure is not a missing step but the drift between
planned and actual time per phase. The plan's ``runbook:`` lists the steps of the day (each
with an owner, a planned start after T0 or after other steps, a duration and a kind); this
module reads what actually happened from the run folder and says where the day stands:

- **T0** is the start of the first run of the chain (``run.json`` ``started``): the day's clock.
  A rerun repairs results after the day, it does not retime it, so automated steps are timed
  by the first run's results; records and attestations are read along the whole chain.
- ``automated`` steps (and a ``rollback`` naming criteria or tags) are timed by the run's
  results that carry one of their ``criteria`` labels or ``tags``: from the first result's
  start to the last one's stop, done once the run has finished.
- ``manual`` steps (and a ``rollback`` without criteria or tags) are timed by people:
  ``runbook.jsonl`` in the run folder, one record per ``start``, ``done`` or ``fail`` with who
  and when (append-only, fsync'd, like ``attestations.jsonl``; :func:`record` is what the CLI
  and the console write). When nobody timed a step, an attestation ``runbook:STEP`` (``rehearse
  attest``, or the attestations file given up front, as the demo does) says it was done as
  planned (its planned times stand) or failed; a timed record wins over it.
- a ``gate`` is reached when every step before it is done; it holds when each of its criteria,
  judged like the go/no-go judges them on the results in at that moment, passes.

Times are minutes of plan time after T0; ``runbook.clock`` compresses them (``60``: a real
second is a plan minute). The **forecast** carries every step forward from what is known (a
running step takes at least its planned duration, a step not started cannot start before
now) and the end of the day is where the critical path ends. :func:`load_state` returns it all
with the verdict per rule, the ``runbook`` criterion of the go/no-go (:mod:`rehearsal.gonogo`):

- ``window``: the forecast end fits the window less the margin (else: the step that added the
  most drift, and its minutes);
- ``gates``: every gate held when it was reached (else: the gate and the failing criterion);
- ``rollback``: each drill finished within its duration plus the margin (else: how long it took,
  or that it is still not finished);
- ``steps``: no step was recorded as failed.

Any failing rule is a fail; otherwise the line is pending while steps are outstanding.

    record(run_dir, step_id, "start" | "done" | "fail", by, note="", at=None) -> Record
    load_state(run_dir, plan, now=None) -> RunbookState
    chart_svg(state) -> str          planned vs actual (and forecast), templates/runbook.svg
    table(state) -> str              the terminal's view (`rehearse runbook show`)
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, Literal

from rehearsal import attest, svg, templating
from rehearsal.errors import UsageError
from rehearsal.plan import Plan, Runbook, RunbookStep
from rehearsal.results import ResultWarning, TestResult, read_results
from rehearsal.run import RUN_FILE, Run, chain, load_run

__all__ = [
    "ACTIONS",
    "FILE",
    "Record",
    "Rule",
    "RunbookState",
    "StepState",
    "chart_svg",
    "chart_view",
    "load_state",
    "read_records",
    "record",
    "rows",
    "table",
]

FILE = "runbook.jsonl"
ACTIONS = ("start", "done", "fail")
ATTESTED = "runbook:"
"""Prefix of the attestation item that says a step nobody timed was done as planned."""
EPS = 1e-6

Action = Literal["start", "done", "fail"]
StepStatus = Literal["planned", "running", "done", "failed", "not_run"]
RuleStatus = Literal["pass", "fail", "pending"]

TEXT: dict[str, dict[str, str]] = {
    "sv": {
        "no_runbook": "planen har ingen körplan (runbook:)",
        "window_fail": "prognosen slutar vid {end} min, efter fönstret {window} min − marginal {margin} min",
        "most_drift": "mest eftersläpning: {step} +{added} min ({title})",
        "plan_too_long": "planens egna steg slutar vid {end} min",
        "window_ok": "prognos {end} min inom {limit} min (fönster {window} − marginal {margin})",
        "gate_fail": "beslutspunkt {gate} nådd vid {at} min med {criterion} underkänt: {details}",
        "gate_held": "beslutspunkt {gate} höll vid {at} min",
        "gate_waiting": "beslutspunkt {gate} inte nådd",
        "rollback_late": "återgångsövning {step} tog {took} min, tillåtet {allowed} min "
        "({duration} + {margin})",
        "rollback_open": "återgångsövning {step} inte klar efter {took} min, tillåtet {allowed} min "
        "({duration} + {margin})",
        "rollback_ok": "återgångsövning {step} klar på {took} min (tillåtet {allowed})",
        "rollback_waiting": "återgångsövning {step} inte klar",
        "step_failed": "steg {step} misslyckades ({by}{note})",
        "outstanding": "väntar på: {steps}",
        "no_rollback": "ingen återgångsövning i körplanen",
        "no_gates": "inga beslutspunkter i körplanen",
        "planned": "planerat",
        "actual": "utfall",
        "forecast": "prognos",
        "window": "fönster",
        "limit": "fönster − marginal",
        "now": "nu",
        "minutes": "minuter efter T0",
        "chart_title": "Körplan: planerat mot utfall",
        "status_planned": "planerat",
        "status_running": "pågår",
        "status_done": "klart",
        "status_failed": "misslyckat",
        "status_not_run": "kördes inte",
        "head": "steg, typ, ägare, planerat, utfall, avvikelse, läge",
        "critical": "kritisk linje",
    },
    "en": {
        "no_runbook": "the plan has no runbook (runbook:)",
        "window_fail": "the forecast ends at {end} min, past the window {window} min − margin {margin} min",
        "most_drift": "most drift: {step} +{added} min ({title})",
        "plan_too_long": "the plan's own steps end at {end} min",
        "window_ok": "forecast {end} min within {limit} min (window {window} − margin {margin})",
        "gate_fail": "gate {gate} reached at {at} min with {criterion} failing: {details}",
        "gate_held": "gate {gate} held at {at} min",
        "gate_waiting": "gate {gate} not reached",
        "rollback_late": "rollback drill {step} took {took} min, allowed {allowed} min "
        "({duration} + {margin})",
        "rollback_open": "rollback drill {step} not finished after {took} min, allowed {allowed} min "
        "({duration} + {margin})",
        "rollback_ok": "rollback drill {step} finished in {took} min (allowed {allowed})",
        "rollback_waiting": "rollback drill {step} not finished",
        "step_failed": "step {step} failed ({by}{note})",
        "outstanding": "waiting for: {steps}",
        "no_rollback": "no rollback drill in the runbook",
        "no_gates": "no gates in the runbook",
        "planned": "planned",
        "actual": "actual",
        "forecast": "forecast",
        "window": "window",
        "limit": "window − margin",
        "now": "now",
        "minutes": "minutes after T0",
        "chart_title": "Runbook: planned vs actual",
        "status_planned": "planned",
        "status_running": "running",
        "status_done": "done",
        "status_failed": "failed",
        "status_not_run": "did not run",
        "head": "step, kind, owner, planned, actual, drift, state",
        "critical": "critical path",
    },
}


# --- records: what people say about a step, with who and when ------------------------------------


@dataclass(frozen=True)
class Record:
    step: str
    action: Action
    by: str
    note: str = ""
    at: str = ""


def now() -> datetime:
    return datetime.now(UTC)


def record(
    run_dir: Path, step_id: str, action: str, by: str, note: str = "", *, at: datetime | None = None
) -> Record:
    """Append one record to the run's ``runbook.jsonl`` (fsync'd: a person's word is not lost).

    ``at`` is when it happened (default now): a step noted on paper is entered afterwards.
    The caller checks that the step exists and is timed by people (:func:`check_recordable`).
    """
    if action not in ACTIONS:
        raise UsageError(f"runbook action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if not by.strip():
        raise UsageError("a runbook record needs the name of who acted (--by NAME)")
    when = (at or now()).astimezone(UTC)
    stamp = when.isoformat(timespec="milliseconds")
    made = Record(step=step_id, action=action, by=by.strip(), note=note, at=stamp)  # type: ignore[arg-type]
    line = json.dumps(asdict(made), ensure_ascii=False) + "\n"
    with (Path(run_dir) / FILE).open("a", encoding="utf-8") as out:
        out.write(line)
        out.flush()
        os.fsync(out.fileno())
    return made


def parse_at(text: str) -> datetime:
    """``--at``: ``HH:MM[:SS]`` today (local time) or an ISO 8601 time (without a zone: local)."""
    value = text.strip()
    try:
        if len(value) <= 8 and ":" in value:
            clock = time.fromisoformat(value)
            when = datetime.combine(datetime.now().date(), clock)
        else:
            when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--at {text!r}: expected HH:MM[:SS] or an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.astimezone()


def check_recordable(runbook: Runbook, step_id: str) -> RunbookStep:
    """The step, if people time it (manual, or a rollback drill without criteria or tags)."""
    step = runbook.step(step_id)
    if not _timed_by_people(step):
        raise UsageError(
            f"runbook step {step.id} is {step.kind}: its times come from "
            + ("the run's results" if step.kind != "gate" else "the steps before it and its criteria")
        )
    return step


def read_records(paths: Iterable[Path]) -> list[Record]:
    """Every record in these files in order; a torn last line (a killed write) is skipped."""
    found: list[Record] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            try:
                data = json.loads(line)
                if data.get("action") in ACTIONS and data.get("step") and data.get("at"):
                    datetime.fromisoformat(str(data["at"]))
                    found.append(
                        Record(
                            step=str(data["step"]),
                            action=data["action"],
                            by=str(data.get("by") or ""),
                            note=str(data.get("note") or ""),
                            at=str(data["at"]),
                        )
                    )
            except (ValueError, AttributeError):
                continue
    return found


# --- the state of the day -------------------------------------------------------------------------


@dataclass(frozen=True)
class StepState:
    """One step: planned, actual (None while unknown), forecast, and what it added to the drift."""

    id: str
    title: str
    owner: str
    kind: str
    site: str | None
    duration: float
    planned_start: float
    planned_end: float
    forecast_start: float
    forecast_end: float
    status: StepStatus
    actual_start: float | None = None
    actual_end: float | None = None
    added: float = 0.0
    """Minutes this step itself added to the day (late start with its predecessors done, overrun)."""
    source: str = ""
    """Where its times came from: ``records``, ``results``, ``attested``, ``gate`` or ``""``."""
    by: str = ""
    note: str = ""
    critical: bool = False
    gate_failures: tuple[tuple[str, str], ...] = ()
    """A gate that did not hold: (criterion, details) of each criterion that failed."""

    @property
    def drift(self) -> float:
        """Forecast end against planned end (with what the steps before it added)."""
        return self.forecast_end - self.planned_end

    @property
    def outstanding(self) -> bool:
        return self.status in ("planned", "running", "not_run")

    @property
    def took(self) -> float | None:
        """Actual minutes, once the step has both ends."""
        if self.actual_start is None or self.actual_end is None:
            return None
        return self.actual_end - self.actual_start

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "owner": self.owner,
            "kind": self.kind,
            "site": self.site,
            "status": self.status,
            "duration": _r(self.duration),
            "planned_start": _r(self.planned_start),
            "planned_end": _r(self.planned_end),
            "actual_start": _r(self.actual_start),
            "actual_end": _r(self.actual_end),
            "forecast_start": _r(self.forecast_start),
            "forecast_end": _r(self.forecast_end),
            "took": _r(self.took),
            "drift": _r(self.drift),
            "added": _r(self.added),
            "source": self.source,
            "by": self.by,
            "note": self.note,
            "critical": self.critical,
            "gate_failures": [{"criterion": c, "details": d} for c, d in self.gate_failures],
        }


@dataclass(frozen=True)
class Rule:
    rule: Literal["window", "gates", "rollback", "steps"]
    status: RuleStatus
    details: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "status": self.status, "details": self.details}


@dataclass(frozen=True)
class RunbookState:
    """The runbook of one run chain as it stands at ``now`` (all times in plan minutes after T0)."""

    run: str
    t0: str
    language: str
    clock: float
    window: float
    margin: float
    now: float
    finished: bool
    steps: tuple[StepState, ...]
    rules: tuple[Rule, ...]
    critical_path: tuple[str, ...] = ()
    site: str | None = None

    @property
    def limit(self) -> float:
        return self.window - self.margin

    @property
    def forecast_end(self) -> float:
        return max((s.forecast_end for s in self.steps), default=0.0)

    @property
    def planned_end(self) -> float:
        return max((s.planned_end for s in self.steps), default=0.0)

    @property
    def outstanding(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps if s.outstanding)

    @property
    def status(self) -> RuleStatus:
        """``fail`` when a rule fails; ``pending`` while a rule waits or a step is outstanding."""
        if any(r.status == "fail" for r in self.rules):
            return "fail"
        if self.outstanding or any(r.status == "pending" for r in self.rules):
            return "pending"
        return "pass"

    @property
    def details(self) -> str:
        """One line for the scorecard: what fails, else what is awaited, else how it went."""
        text = TEXT.get(self.language, TEXT["en"])
        failing = [r.details for r in self.rules if r.status == "fail"]
        if failing:
            return "; ".join(failing)
        parts = [r.details for r in self.rules if r.rule == "window"]
        if self.outstanding:
            parts.append(text["outstanding"].format(steps=", ".join(self.outstanding)))
        else:
            parts += [r.details for r in self.rules if r.rule in ("gates", "rollback") and r.details]
        return "; ".join(parts)

    def step(self, step_id: str) -> StepState:
        return next(s for s in self.steps if s.id == step_id)

    def durations(self) -> dict[str, float | None]:
        """Each step's actual minutes (None: not both ends known): the trend keeps these per run."""
        return {s.id: _r(s.took) for s in self.steps}

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "t0": self.t0,
            "clock": self.clock,
            "window": _r(self.window),
            "margin": _r(self.margin),
            "limit": _r(self.limit),
            "now": _r(self.now),
            "finished": self.finished,
            "site": self.site,
            "planned_end": _r(self.planned_end),
            "forecast_end": _r(self.forecast_end),
            "critical_path": list(self.critical_path),
            "status": self.status,
            "details": self.details,
            "outstanding": list(self.outstanding),
            "rules": [r.to_json() for r in self.rules],
            "steps": [s.to_json() for s in self.steps],
        }


def load_state(run_dir: Path, plan: Plan, *, now: datetime | None = None) -> RunbookState:
    """The runbook of the run in ``run_dir`` (its whole chain) against ``plan``, as of ``now``.

    Reads only the run folders (run.json, allure-results, runbook.jsonl, attestations): it can
    be called while the run runs, as often as a console likes, and never writes.
    """
    runbook = plan.runbook
    if runbook is None:
        raise UsageError(TEXT.get(plan.language, TEXT["en"])["no_runbook"])
    run_dir = Path(run_dir).resolve()
    if not (run_dir / RUN_FILE).is_file():
        raise UsageError(f"{run_dir}: not a run folder (no {RUN_FILE})")
    runs = chain(load_run(run_dir.parent.parent, str(run_dir)))
    day = _Day(plan, runbook, runs, now or datetime.now(UTC))
    return day.state()


class _Day:
    """Works one state out; the steps in dependency order (the plan refuses circles)."""

    def __init__(self, plan: Plan, runbook: Runbook, runs: Sequence[Run], when: datetime):
        self.plan, self.runbook, self.root = plan, runbook, runs[0]
        self.text = TEXT.get(plan.language, TEXT["en"])
        self.t0 = datetime.fromisoformat(self.root.started)
        if self.t0.tzinfo is None:
            self.t0 = self.t0.replace(tzinfo=UTC)
        self.clock = runbook.clock
        self.now = self.minutes(when)
        self.finished = self.root.finished is not None
        with warnings.catch_warnings():  # the report warns about unreadable results already
            warnings.simplefilter("ignore", ResultWarning)
            self.results = [r for r in read_results(self.root.results_dir) if r.start is not None]
        self.records = read_records(r.dir / FILE for r in runs)
        files = [p for r in runs for p in r.copies("attestations")] + [r.dir / attest.FILE for r in runs]
        try:
            self.attested = attest.read(files)
        except UsageError:
            self.attested = {}
        self.states: dict[str, StepState] = {}

    # times ----------------------------------------------------------------------------------------

    def minutes(self, when: datetime) -> float:
        if when.tzinfo is None:
            when = when.astimezone(UTC)
        return (when - self.t0).total_seconds() * self.clock / 60

    def minutes_ms(self, epoch_ms: int) -> float:
        return (epoch_ms / 1000 - self.t0.timestamp()) * self.clock / 60

    def epoch_ms(self, minutes: float) -> float:
        return (self.t0.timestamp() + minutes * 60 / self.clock) * 1000

    # the steps ------------------------------------------------------------------------------------

    def state(self) -> RunbookState:
        steps = self.runbook.steps
        by_id = {s.id: s for s in steps}
        for step in _ordered(steps):
            self.states[step.id] = self.step(step, by_id)
        path = self.critical_path(by_id)
        ordered = tuple(
            _with(self.states[s.id], critical=s.id in path) for s in steps
        )  # plan order for every view
        state = RunbookState(
            run=self.root.id,
            t0=self.t0.isoformat(),
            language=self.plan.language,
            clock=self.clock,
            window=self.runbook.window,
            margin=self.runbook.margin_of(self.runbook.window),
            now=self.now,
            finished=self.finished,
            steps=ordered,
            rules=(),
            critical_path=tuple(path),
            site=self.runbook.site,
        )
        return _with_rules(state, self.rules(state))

    def step(self, step: RunbookStep, by_id: Mapping[str, RunbookStep]) -> StepState:
        before = [self.states[a] for a in step.after]
        offset = step.start or 0.0
        planned_start = max([offset, *(b.planned_end for b in before)])
        earliest = max([offset, *(b.forecast_end for b in before)])
        base: dict[str, Any] = {
            "id": step.id,
            "title": step.title,
            "owner": step.owner,
            "kind": step.kind,
            "site": step.site or self.runbook.site,
            "duration": step.duration,
            "planned_start": planned_start,
            "planned_end": planned_start + step.duration,
        }
        if step.kind == "gate":
            timed = self.gate(step, by_id, earliest)
        elif _timed_by_people(step):
            timed = self.by_people(step, earliest, planned_start)
        else:
            timed = self.by_results(step, earliest)
        added = timed["forecast_end"] - earliest - step.duration
        return StepState(**base, **timed, added=added)

    def by_people(self, step: RunbookStep, earliest: float, planned_start: float) -> dict[str, Any]:
        mine = [r for r in self.records if r.step == step.id]
        started = next((r for r in reversed(mine) if r.action == "start"), None)
        ended = next((r for r in reversed(mine) if r.action in ("done", "fail")), None)
        if started is None and ended is None:
            said = attest.lookup(self.attested, ATTESTED + step.id, step.site or self.runbook.site)
            if said is not None:  # done as planned, by someone's word
                end = planned_start + step.duration
                return {
                    "status": "done" if said.ok else "failed",
                    "actual_start": planned_start,
                    "actual_end": end,
                    "forecast_start": planned_start,
                    "forecast_end": end,
                    "source": "attested",
                    "by": said.by,
                    "note": said.note,
                }
            due = max(earliest, self.now)
            return {"status": "planned", "forecast_start": due, "forecast_end": due + step.duration}
        last = ended or started
        assert last is not None
        finish = self.minutes(datetime.fromisoformat(ended.at)) if ended else None
        began = self.minutes(datetime.fromisoformat(started.at)) if started else None
        if began is None or (finish is not None and began > finish):
            # done without a start (or before it): taken to have started when it could
            began = min(earliest, finish) if finish is not None else earliest
        start: float = began
        out: dict[str, Any] = {"actual_start": start, "source": "records", "by": last.by, "note": last.note}
        if finish is not None:
            status = "done" if ended and ended.action == "done" else "failed"
            return {
                **out,
                "status": status,
                "actual_end": finish,
                "forecast_start": start,
                "forecast_end": finish,
            }
        return {
            **out,
            "status": "running",
            "forecast_start": start,
            "forecast_end": max(start + step.duration, self.now),
        }

    def selected(self, step: RunbookStep) -> list[TestResult]:
        site = step.site or self.runbook.site
        return [
            r
            for r in self.results
            if (r.criterion in step.criteria or any(_tagged(r, t.lstrip("@")) for t in step.tags))
            and (site is None or r.site in (site, None))
        ]

    def by_results(self, step: RunbookStep, earliest: float) -> dict[str, Any]:
        mine = self.selected(step)
        if not mine:
            start = earliest if self.finished else max(earliest, self.now)
            status = "not_run" if self.finished else "planned"
            return {"status": status, "forecast_start": start, "forecast_end": start + step.duration}
        start = self.minutes_ms(min(r.start for r in mine if r.start is not None))
        last = self.minutes_ms(max(r.finished_at for r in mine))
        out: dict[str, Any] = {"actual_start": start, "source": "results"}
        if self.finished:
            return {
                **out,
                "status": "done",
                "actual_end": last,
                "forecast_start": start,
                "forecast_end": last,
            }
        return {
            **out,
            "status": "running",
            "forecast_start": start,
            "forecast_end": max(start + step.duration, last),
        }

    def gate(self, step: RunbookStep, by_id: Mapping[str, RunbookStep], earliest: float) -> dict[str, Any]:
        before = [self.states[a] for a in _ancestors(step, by_id)]
        reached = max([step.start or 0.0, *(b.forecast_end for b in before)])
        if any(b.outstanding for b in before) or reached > self.now + EPS:
            start = max(earliest, reached)
            return {"status": "planned", "forecast_start": start, "forecast_end": start + step.duration}
        failures = tuple(self.not_holding(step, reached))
        end = reached + step.duration
        return {
            "status": "failed" if failures else "done",
            "actual_start": reached,
            "actual_end": end,
            "forecast_start": reached,
            "forecast_end": end,
            "source": "gate",
            "gate_failures": failures,
        }

    def not_holding(self, step: RunbookStep, reached: float) -> Iterable[tuple[str, str]]:
        """Each criterion of the gate that did not pass on the results in when it was reached."""
        from rehearsal.gonogo import judge  # gonogo judges the runbook criterion from this state

        cutoff = self.epoch_ms(reached) + 1
        site = step.site or self.runbook.site
        for name in step.criteria:
            criterion = self.plan.criterion(name)
            if criterion is None:
                continue
            results = [r for r in self.results if r.criterion == name and r.finished_at <= cutoff]
            line = judge(self.plan, criterion, site if criterion.per_site else None, results)
            if line.status != "pass":
                yield name, line.details

    def critical_path(self, by_id: Mapping[str, RunbookStep]) -> list[str]:
        """From the step that ends last back through the predecessor that held each one up."""
        if not self.states:
            return []
        last = max(self.runbook.steps, key=lambda s: self.states[s.id].forecast_end)
        path = [last.id]
        while True:
            step = by_id[path[-1]]
            start = self.states[step.id].forecast_start
            binding = [a for a in step.after if self.states[a].forecast_end >= start - EPS]
            if not binding:
                return list(reversed(path))
            path.append(max(binding, key=lambda a: self.states[a].forecast_end))

    # the rules ------------------------------------------------------------------------------------

    def rules(self, state: RunbookState) -> list[Rule]:
        return [
            self.window_rule(state),
            self.gates_rule(state),
            self.rollback_rule(state),
            self.steps_rule(state),
        ]

    def window_rule(self, state: RunbookState) -> Rule:
        t = self.text
        end, limit = state.forecast_end, state.limit
        numbers = {"end": _m(end), "window": _m(state.window), "margin": _m(state.margin), "limit": _m(limit)}
        if end <= limit + EPS:
            return Rule("window", "pass", t["window_ok"].format(**numbers))
        details = t["window_fail"].format(**numbers)
        worst = max(state.steps, key=lambda s: s.added)
        if worst.added > EPS:
            details += "; " + t["most_drift"].format(step=worst.id, added=_m(worst.added), title=worst.title)
        else:
            details += "; " + t["plan_too_long"].format(end=_m(state.planned_end))
        return Rule("window", "fail", details)

    def gates_rule(self, state: RunbookState) -> Rule:
        t = self.text
        gates = [s for s in state.steps if s.kind == "gate"]
        failed = [
            t["gate_fail"].format(gate=g.id, at=_m(g.actual_start), criterion=criterion, details=details)
            for g in gates
            if g.status == "failed"
            for criterion, details in g.gate_failures
        ]
        if failed:
            return Rule("gates", "fail", "; ".join(failed))
        waiting = [t["gate_waiting"].format(gate=g.id) for g in gates if g.outstanding]
        if waiting:
            return Rule("gates", "pending", "; ".join(waiting))
        return Rule(
            "gates", "pass", "; ".join(t["gate_held"].format(gate=g.id, at=_m(g.actual_start)) for g in gates)
        )

    def rollback_rule(self, state: RunbookState) -> Rule:
        t = self.text
        failed: list[str] = []
        waiting: list[str] = []
        held: list[str] = []
        for d in (s for s in state.steps if s.kind == "rollback"):
            allowed = d.duration + self.runbook.margin_of(d.duration)
            numbers = {
                "step": d.id,
                "allowed": _m(allowed),
                "duration": _m(d.duration),
                "margin": _m(allowed - d.duration),
            }
            if d.status == "failed":
                failed.append(_failed(t, d))
            elif d.took is not None:
                late = d.took > allowed + EPS
                (failed if late else held).append(
                    t["rollback_late" if late else "rollback_ok"].format(took=_m(d.took), **numbers)
                )
            elif d.actual_start is not None and self.now - d.actual_start > allowed + EPS:
                failed.append(t["rollback_open"].format(took=_m(self.now - d.actual_start), **numbers))
            else:
                waiting.append(t["rollback_waiting"].format(step=d.id))
        if failed:
            return Rule("rollback", "fail", "; ".join(failed))
        if waiting:
            return Rule("rollback", "pending", "; ".join(waiting))
        return Rule("rollback", "pass", "; ".join(held))

    def steps_rule(self, state: RunbookState) -> Rule:
        failed = [_failed(self.text, s) for s in state.steps if s.status == "failed" and s.kind == "manual"]
        return Rule("steps", "fail" if failed else "pass", "; ".join(failed))


def _failed(t: Mapping[str, str], step: StepState) -> str:
    return t["step_failed"].format(
        step=step.id, by=step.by or "?", note=f": {step.note}" if step.note else ""
    )


def _tagged(result: TestResult, tag: str) -> bool:
    """One of the result's Allure tags (``writes``), or ``name:value`` of one of its labels
    (``attestation:nedtidsrutin``, ``device:sas-akut-dok1``)."""
    if tag in result.tags:
        return True
    name, sep, value = tag.partition(":")
    return bool(sep) and result.labels.get(name) == value


def _timed_by_people(step: RunbookStep) -> bool:
    return step.kind == "manual" or (step.kind == "rollback" and not (step.criteria or step.tags))


def _ordered(steps: Sequence[RunbookStep]) -> list[RunbookStep]:
    """Steps so that each comes after those it waits for (plan order otherwise)."""
    done: set[str] = set()
    out: list[RunbookStep] = []
    left = list(steps)
    while left:
        ready = [s for s in left if all(a in done for a in s.after)]
        if not ready:  # a circle: the plan refuses these; never loop on one
            ready = left[:1]
        for s in ready:
            out.append(s)
            done.add(s.id)
            left.remove(s)
    return out


def _ancestors(step: RunbookStep, by_id: Mapping[str, RunbookStep]) -> list[str]:
    seen: dict[str, None] = {}
    todo = list(step.after)
    while todo:
        current = todo.pop()
        if current in seen or current not in by_id:
            continue
        seen[current] = None
        todo.extend(by_id[current].after)
    return list(seen)


def _with(step: StepState, **changes: Any) -> StepState:
    return StepState(**{**step.__dict__, **changes})


def _with_rules(state: RunbookState, rules: Sequence[Rule]) -> RunbookState:
    return RunbookState(**{**state.__dict__, "rules": tuple(rules)})


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _m(value: float | None) -> str:
    """Minutes as the operator reads them: ``12``, ``12.5`` (one decimal at most)."""
    return "–" if value is None else svg.num(round(value, 1) + 0.0)


# --- views: the chart and the terminal table -----------------------------------------------------


def chart_view(state: RunbookState) -> dict[str, Any]:
    """The numbers of the planned-vs-actual chart (``templates/runbook.svg`` draws them)."""
    t = TEXT.get(state.language, TEXT["en"])
    row_h, left, right, top = 26, 190, 44, 34
    width = 760
    height = top + row_h * len(state.steps) + 34
    ends = [state.window, state.forecast_end, state.planned_end]
    if not state.finished:
        ends.append(state.now)
    top_minutes = max(ends + [1.0])
    step = svg.nice_step(top_minutes)
    top_minutes = step * -(-top_minutes // step)
    x = svg.Scale(0, top_minutes, left, width - right)
    rows = []
    for i, s in enumerate(state.steps):
        y = top + i * row_h
        actual_end = (
            s.actual_end if s.actual_end is not None else (state.now if s.status == "running" else None)
        )
        rows.append(
            {
                "id": s.id,
                "label": s.title,
                "kind": s.kind,
                "status": s.status,
                "status_name": t.get(f"status_{s.status}", s.status),
                "critical": s.critical,
                "y": y,
                "mid": y + row_h / 2,
                "planned": (x(s.planned_start), max(x(s.planned_end) - x(s.planned_start), 1.5)),
                "actual": None
                if s.actual_start is None or actual_end is None
                else (x(s.actual_start), max(x(max(actual_end, s.actual_start)) - x(s.actual_start), 1.5)),
                "forecast": None
                if s.status in ("done", "failed")
                else (x(s.forecast_start), max(x(s.forecast_end) - x(s.forecast_start), 1.5)),
                "bad": s.status == "failed" or s.added > EPS,
                "drift": ("+" if s.drift > 0.05 else "") + _m(s.drift) if s.status != "planned" else "",
                "data": {
                    "planned-start": _m(s.planned_start),
                    "planned-end": _m(s.planned_end),
                    "actual-start": _m(s.actual_start),
                    "actual-end": _m(s.actual_end),
                    "forecast-end": _m(s.forecast_end),
                    "drift": _m(s.drift),
                    "added": _m(s.added),
                },
            }
        )
    bottom = top + row_h * len(state.steps)
    marks = [
        {"x": x(state.limit), "label": t["limit"], "klass": "limit", "value": _m(state.limit)},
        {"x": x(state.window), "label": t["window"], "klass": "window", "value": _m(state.window)},
    ]
    if not state.finished and 0 <= state.now <= top_minutes:
        marks.append({"x": x(state.now), "label": t["now"], "klass": "now", "value": _m(state.now)})
    return {
        "title": t["chart_title"],
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": bottom,
        "rows": rows,
        "marks": marks,
        "ticks": [(x(v), svg.num(v)) for v in svg.ticks(top_minutes, step)],
        "unit": t["minutes"],
        "legend": [
            {"klass": "planned", "text": t["planned"]},
            {"klass": "actual", "text": t["actual"]},
            {"klass": "forecast", "text": t["forecast"]},
        ],
        "forecast_end": _m(state.forecast_end),
        "status": state.status,
    }


def chart_svg(state: RunbookState) -> str:
    """The planned-vs-actual chart as one self-contained SVG (no font, script or link)."""
    return templating.render("runbook.svg", c=chart_view(state))


def rows(state: RunbookState) -> list[dict[str, Any]]:
    """One row of text per step (minutes as read: ``0–5``, ``12.5–…``, ``+3``), for tables."""
    t = TEXT.get(state.language, TEXT["en"])
    out = []
    for s in state.steps:
        actual = "–"
        if s.actual_start is not None:
            actual = f"{_m(s.actual_start)}–{_m(s.actual_end) if s.actual_end is not None else '…'}"
        out.append(
            {
                "id": s.id,
                "title": s.title,
                "kind": s.kind,
                "owner": s.owner,
                "planned": f"{_m(s.planned_start)}–{_m(s.planned_end)}",
                "actual": actual,
                "drift": "" if s.status == "planned" else ("+" if s.drift > 0.05 else "") + _m(s.drift),
                "status": s.status,
                "status_name": t.get(f"status_{s.status}", s.status),
                "critical": s.critical,
                "by": s.by,
                "note": s.note,
            }
        )
    return out


def table(state: RunbookState) -> str:
    """`rehearse runbook show`: one line per step, then the forecast and the verdict per rule."""
    t = TEXT.get(state.language, TEXT["en"])
    lines = [f"# {t['head']}"]
    width = max([len(s.id) for s in state.steps] + [4])
    for r in rows(state):
        who = f" ({r['by']}{': ' + r['note'] if r['note'] else ''})" if r["by"] else ""
        lines.append(
            f"{'*' if r['critical'] else ' '}{r['id']:<{width}}  {r['kind']:<9} {r['owner']:<14} "
            f"{r['planned']:>11}  {r['actual']:<13} {r['drift']:>6}  {r['status_name']}{who}"
        )
    lines.append(f"* {t['critical']}: {' → '.join(state.critical_path)}")
    for rule in state.rules:
        if rule.details:
            lines.append(f"{rule.status.upper():7} {rule.rule}: {rule.details}")
    lines.append(f"{state.status.upper()}: {state.details}")
    return "\n".join(lines)


def records_json(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records]
