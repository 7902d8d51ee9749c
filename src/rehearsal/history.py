"""The history of a go-live wave: every reported run, for the trend and "what changed".

A region runs several rehearsals per wave (GR1, GR2, …, each a plan ``rehearsal`` slug
sharing the plan's ``wave``) and reruns between them. Every ``rehearse report`` records the
run's state in ``reports/<wave>/history/runs.jsonl``: its decision, per site × aspect the
result counts and open findings, and the status of every item by its key (stable id and
site, :mod:`rehearsal.ids`: a renamed title keeps its line; records from before ids are keyed
by Allure's ``historyId`` and still compare, through the ``history_id`` each item keeps).
A record is appended the first time a run is reported and replaced in place afterwards, so
reporting a run again never adds a second point for it. Runs are ordered by their start
time, then by when they were first reported.

The Allure report's own history (Allure 3 ``historyPath``) is kept beside it in
``allure-history.jsonl``, one point per run id. Allure appends a point on every
``generate``; we never hand it our file. Each report gets a temporary file holding the
points of the runs before it, and the point Allure appends there is stored for its run,
replacing any earlier one. That keeps the history free of duplicates however often a run
is reported, and independent of where Allure resolves a relative ``historyPath`` (the
allurerc.mjs history problems reported upstream, allure3 #691, #445).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rehearsal.findings import count_open
from rehearsal.gonogo import CENTRAL, Decision
from rehearsal.plan import ASPECTS, Plan
from rehearsal.reports_folder import write_atomic
from rehearsal.results import FAILED, MergedResult
from rehearsal.run import Run

HISTORY_DIR = "history"
RUNS_FILE = "runs.jsonl"
ALLURE_FILE = "allure-history.jsonl"
ALLURE_POINTS = 20
"""At most this many earlier runs are handed to Allure (it shows the newest few anyway)."""


def wave_of(plan: Plan) -> str:
    """The plan's wave; a plan without one is a wave of its own (its rehearsal slug)."""
    return plan.wave or plan.rehearsal


@dataclass(frozen=True)
class Change:
    """One item whose status moved between the compared run and this one."""

    history_id: str
    """Allure's historyId of the item now (title-based; the key is what is compared)."""
    name: str
    site: str | None
    criterion: str | None
    before: str | None
    after: str
    key: str = ""
    """The item's key (``id@site``; Allure's historyId for a result from before ids)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key or self.history_id,
            "history_id": self.history_id,
            "name": self.name,
            "site": self.site,
            "criterion": self.criterion,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class Changes:
    """What changed since the run this one is compared with (``against`` None: nothing to compare)."""

    against: str | None = None
    against_label: str = ""
    reason: str = ""
    """``parent`` (a rerun), ``previous`` (the wave's run before this one) or ``given`` (--compare)."""
    fixed: tuple[Change, ...] = ()
    regressed: tuple[Change, ...] = ()
    new_failures: tuple[Change, ...] = ()
    still_failing: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "against_label": self.against_label,
            "reason": self.reason,
            "fixed": [c.to_json() for c in self.fixed],
            "regressed": [c.to_json() for c in self.regressed],
            "new_failures": [c.to_json() for c in self.new_failures],
            "still_failing": self.still_failing,
        }


@dataclass(frozen=True)
class TrendPoint:
    """One run of the wave as the trend shows it."""

    run: str
    rehearsal: str
    label: str
    decision: str
    headline: str
    cells: Mapping[str, Mapping[str, Mapping[str, int]]] = field(hash=False)
    open: Mapping[str, int] = field(hash=False)
    current: bool = False
    runbook: Mapping[str, float | None] = field(default_factory=dict, hash=False)
    """Each runbook step's actual minutes in this run (None: not both ends known)."""

    def rate(self, site: str, aspect: str) -> float | None:
        """passed / (passed + failed + broken) in one cell, None when nothing ran there."""
        return rate(self.cells.get(site, {}).get(aspect, {}))

    def open_in(self, site: str, aspect: str) -> int:
        return int(self.cells.get(site, {}).get(aspect, {}).get("open", 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "rehearsal": self.rehearsal,
            "label": self.label,
            "decision": self.decision,
            "headline": self.headline,
            "open": dict(self.open),
            "current": self.current,
            "runbook": dict(self.runbook),
            "cells": {
                site: {a: {"rate": self.rate(site, a), "open": self.open_in(site, a)} for a in aspects}
                for site, aspects in self.cells.items()
            },
        }


@dataclass(frozen=True)
class Trend:
    """The wave's runs up to and including this one, oldest first."""

    wave: str
    points: tuple[TrendPoint, ...] = ()
    earlier: int = 0
    """Runs of the wave before the first point shown (the chart keeps the newest few)."""

    def places(self) -> list[str]:
        """Sites (and ``central``) where anything ran in any point, in the newest point's order."""
        seen: dict[str, None] = {}
        for point in reversed(self.points):
            for site, aspects in point.cells.items():
                if any(rate(c) is not None or c.get("open") for c in aspects.values()):
                    seen.setdefault(site, None)
        order = list(self.points[-1].cells) if self.points else []
        return sorted(seen, key=lambda s: (order.index(s) if s in order else len(order), s))

    def to_json(self) -> dict[str, Any]:
        return {"wave": self.wave, "earlier": self.earlier, "points": [p.to_json() for p in self.points]}


def rate(counts: Mapping[str, int]) -> float | None:
    ran = counts.get("passed", 0) + counts.get("failed", 0) + counts.get("broken", 0)
    return counts.get("passed", 0) / ran if ran else None


def items_of(merged: Sequence[MergedResult]) -> dict[str, dict[str, Any]]:
    """Every item's latest status by its key (id@site, else historyId): what "what changed" compares."""
    items: dict[str, dict[str, Any]] = {}
    for m in merged:
        r = m.latest
        item: dict[str, Any] = {"status": r.status, "name": r.name, "site": r.site, "criterion": r.criterion}
        if r.rehearsal_id:
            item |= {"id": r.rehearsal_id, "history_id": r.history_id}
        items[r.key] = item
    return items


def snapshot(
    run: Run, plan: Plan, decision: Decision, merged: Sequence[MergedResult], runbook: Any = None
) -> dict[str, Any]:
    """The history record of one reported run (its whole chain merged); with the runbook's state
    (:class:`rehearsal.runbook.RunbookState`), each step's actual minutes for the trend."""
    cells: dict[str, dict[str, dict[str, int]]] = {}
    for site, aspects in decision.sites.items():
        cells[site] = {a: {**counts, "open": 0} for a, counts in aspects.items()}
    for finding in decision.findings:
        if finding.open:
            cell = cells.setdefault(finding.site, {a: {"open": 0} for a in ASPECTS})
            cell.setdefault(finding.aspect or "teknisk", {"open": 0})
            cell[finding.aspect or "teknisk"]["open"] = cell[finding.aspect or "teknisk"].get("open", 0) + 1
    return {
        "run": run.id,
        "rehearsal": run.rehearsal,
        "wave": wave_of(plan),
        "parent": run.parent,
        "started": run.started,
        "complete": run.complete,
        "reported": datetime.now(UTC).isoformat(timespec="seconds"),
        "decision": decision.decision,
        "headline": decision.headline or decision.decision,
        "waived": len(decision.used_waivers()),
        "open": count_open(decision.findings),
        "lines": {line.key: line.status for line in decision.criteria},
        "cells": cells,
        "items": items_of(merged),
        **({"runbook": runbook.durations()} if runbook is not None else {}),
    }


class WaveHistory:
    """``reports/<wave>/history``: one record per run, and Allure's history points per run."""

    def __init__(self, reports_root: Path, wave: str):
        self.wave = wave
        self.dir = Path(reports_root) / wave / HISTORY_DIR

    @classmethod
    def of(cls, run: Run, plan: Plan) -> WaveHistory:
        return cls(run.reports_root, wave_of(plan))

    # --- runs ---------------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """Every run's latest record, ordered by start time, then by when it was first reported."""
        return _ordered(_read(self.dir / RUNS_FILE))

    def put(self, record: dict[str, Any]) -> None:
        """Add the run's record, or replace it in place if the run was reported before."""
        with self._locked():
            _put(self.dir / RUNS_FILE, record)

    def trend(self, run_id: str, limit: int = 8) -> Trend:
        """The points of the wave up to and including `run_id` (the newest `limit` of them)."""
        records = self.records()
        upto = next((i for i, r in enumerate(records) if r["run"] == run_id), len(records) - 1)
        shown = records[: upto + 1]
        labels = _labels(records)
        points = tuple(
            TrendPoint(
                run=r["run"],
                rehearsal=r.get("rehearsal", ""),
                label=labels[r["run"]],
                decision=r.get("decision", ""),
                headline=r.get("headline", r.get("decision", "")),
                cells=r.get("cells", {}),
                open=r.get("open", {}),
                current=r["run"] == run_id,
                runbook=r.get("runbook", {}),
            )
            for r in shown[-limit:]
        )
        return Trend(wave=self.wave, points=points, earlier=max(0, len(shown) - limit))

    def previous(self, run_id: str) -> dict[str, Any] | None:
        """The record of the wave's run just before `run_id` (None for the first one)."""
        records = self.records()
        index = next((i for i, r in enumerate(records) if r["run"] == run_id), None)
        return records[index - 1] if index else None

    def record(self, run_id: str) -> dict[str, Any] | None:
        return next((r for r in self.records() if r["run"] == run_id), None)

    def label(self, run_id: str) -> str:
        return _labels(self.records()).get(run_id, run_id)

    # --- Allure's history ---------------------------------------------------------------------

    def allure_points_before(self, run_id: str, limit: int = ALLURE_POINTS) -> list[dict[str, Any]]:
        """Allure history points of the wave's runs before `run_id`, oldest first."""
        order = [r["run"] for r in self.records()]
        if run_id not in order:
            return []
        before = set(order[: order.index(run_id)])
        stored = _read(self.dir / ALLURE_FILE)
        points = {p["run"]: p["point"] for p in stored if isinstance(p.get("point"), dict)}
        return [points[r] for r in order if r in before and r in points][-limit:]

    def keep_allure_point(self, run_id: str, point: dict[str, Any]) -> None:
        """Store the point Allure made for this run, replacing the one from an earlier report."""
        with self._locked():
            _put(self.dir / ALLURE_FILE, {"run": run_id, "point": point})

    def allure_point(self, run_id: str) -> dict[str, Any] | None:
        """The stored Allure point of `run_id` (a reused report part takes its tests' entries from it)."""
        found = [p["point"] for p in _read(self.dir / ALLURE_FILE) if p.get("run") == run_id]
        return found[-1] if found and isinstance(found[-1], dict) else None

    def allure_runs(self) -> list[str]:
        return [p["run"] for p in _read(self.dir / ALLURE_FILE)]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def changes(
    current: Mapping[str, Mapping[str, Any]],
    before: Mapping[str, Mapping[str, Any]] | None,
    *,
    against: str | None = None,
    label: str = "",
    reason: str = "",
) -> Changes:
    """Items that went fail → pass (fixed), pass → fail (regressed), and failures that are new."""
    if before is None:
        return Changes()
    fixed, regressed, new, still = [], [], [], 0
    for item_key, now in current.items():
        history_id = str(now.get("history_id") or item_key)
        then = before.get(item_key)
        if then is None and "id" in now:  # the run compared with is from before ids: its historyId
            then = before.get(history_id)
        status = now.get("status", "unknown")
        change = Change(
            history_id=history_id,
            name=str(now.get("name", item_key)),
            site=now.get("site"),
            criterion=now.get("criterion"),
            before=then.get("status") if then else None,
            after=status,
            key=item_key,
        )
        if then is None:
            if status in FAILED:
                new.append(change)
        elif then.get("status") in FAILED and status == "passed":
            fixed.append(change)
        elif then.get("status") == "passed" and status in FAILED:
            regressed.append(change)
        elif then.get("status") in FAILED and status in FAILED:
            still += 1

    def key(c: Change) -> tuple[str, str, str]:
        return (c.criterion or "", c.site or CENTRAL, c.name)

    return Changes(
        against=against,
        against_label=label,
        reason=reason,
        fixed=tuple(sorted(fixed, key=key)),
        regressed=tuple(sorted(regressed, key=key)),
        new_failures=tuple(sorted(new, key=key)),
        still_failing=still,
    )


def _labels(records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``demo-gr1``, ``demo-gr1 ↻1`` (its rerun), ``demo-gr1 #2`` (a second full run), ``demo-gr2``."""
    labels: dict[str, str] = {}
    firsts: dict[str, int] = {}
    depth: dict[str, tuple[str, int]] = {}
    for r in records:
        run, rehearsal, parent = r["run"], r.get("rehearsal", ""), r.get("parent")
        if parent and parent in depth:
            base, n = depth[parent]
            depth[run] = (base, n + 1)
            labels[run] = f"{base} ↻{n + 1}"
        else:
            firsts[rehearsal] = firsts.get(rehearsal, 0) + 1
            base = rehearsal if firsts[rehearsal] == 1 else f"{rehearsal} #{firsts[rehearsal]}"
            depth[run] = (base, 0)
            labels[run] = base if not parent else f"{base} ↻"
    return labels


def _read(path: Path) -> list[dict[str, Any]]:
    """The file's records in file order; a line cut off by a crash is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("run"), str):
            out.append(data)
    return out


def _ordered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for seq, record in enumerate(records):
        first = latest[record["run"]][0] if record["run"] in latest else seq
        latest[record["run"]] = (first, record)
    return [r for _, r in sorted(latest.values(), key=lambda x: (str(x[1].get("started", "")), x[0]))]


def _put(path: Path, record: dict[str, Any]) -> None:
    """Append a new run id; rewrite the file (atomically) when the run id is already there."""
    line = json.dumps(record, ensure_ascii=False, sort_keys=False)
    existing = _read(path)
    if not any(r["run"] == record["run"] for r in existing):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as out:
            torn = False
            if out.seek(0, os.SEEK_END) > 0:
                out.seek(-1, os.SEEK_END)
                torn = out.read(1) != b"\n"  # a line cut off by a crash: start on a new one
            out.write((("\n" if torn else "") + line + "\n").encode("utf-8"))
        return
    kept = [json.dumps(r, ensure_ascii=False) if r["run"] != record["run"] else line for r in existing]
    seen: set[str] = set()
    unique = []
    for text, r in zip(kept, existing, strict=True):
        if r["run"] in seen:
            continue
        seen.add(r["run"])
        unique.append(text)
    write_atomic(path, "\n".join(unique) + "\n")  # no temporary left behind when the disk refuses
