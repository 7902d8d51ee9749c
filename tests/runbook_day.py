"""A rehearsal day for the runbook tests: a plan with a runbook, a real run folder whose T0 lies
in the past, and results written where and when a run would write them.

The run folder is made by ``rehearsal.run.create_run`` (run.json, used/ copies, latest) and its
``started`` moved back, so that every time of the day (results, records made with ``--at``) is
in the past and a test never waits for the clock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rehearsal.plan import LoadedPlan, load_plan
from rehearsal.run import Run, create_run, finish_run

CRITERIA = [
    {"id": "tech-fhir", "title": "FHIR svarar", "kind": "all_pass", "aspect": "teknisk"},
    {"id": "tech-migration", "title": "Migreringen stämmer", "kind": "all_pass", "aspect": "teknisk"},
    {"id": "org-runbook", "title": "Körplanen håller tiden", "kind": "runbook", "aspect": "organisatorisk"},
]


def runbook_plan(
    make_plan: Callable[..., Path],
    steps: Sequence[dict[str, Any]],
    *,
    window: float = 120,
    margin: float | str = 10,
    clock: float = 1,
    site: str | None = None,
    criteria: Sequence[dict[str, Any]] = CRITERIA,
    name: str = "plan.yaml",
) -> Path:
    """The demo plan (free ports) with only ``criteria`` and this runbook."""

    def edit(data: dict[str, Any]) -> None:
        data.pop("load", None)
        data["criteria"] = [dict(c) for c in criteria]
        data["runbook"] = {
            "window": window,
            "margin": margin,
            "clock": clock,
            "steps": [dict(s) for s in steps],
        }
        if site:
            data["runbook"]["site"] = site

    return make_plan(edit, name=name)


def day(reports: Path, plan: Path | LoadedPlan, *, t0: datetime | None = None, finished: bool = True) -> Run:
    """A run of ``plan`` whose T0 is ``t0`` (default three hours ago, on a whole second)."""
    loaded = plan if isinstance(plan, LoadedPlan) else load_plan(plan)
    run = create_run(reports, loaded)
    start = (t0 or datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    run = replace(run, started=start.isoformat())
    if finished:
        return finish_run(run, complete=True)
    (run.dir / "run.json").write_text(json.dumps(run.to_json(), indent=2), encoding="utf-8")
    return run


def t0(run: Run) -> datetime:
    return datetime.fromisoformat(run.started)


def at(run: Run, minutes: float, clock: float = 1) -> datetime:
    """The real moment of ``minutes`` of plan time after T0."""
    return t0(run) + timedelta(seconds=minutes * 60 / clock)


def result(
    run: Run,
    criterion: str,
    start: float,
    stop: float,
    status: str = "passed",
    *,
    site: str | None = None,
    clock: float = 1,
    tags: Sequence[str] = (),
    message: str = "",
    **labels: str,
) -> None:
    """One allure-pytest style result from ``start`` to ``stop`` minutes of plan time after T0."""
    uid = str(uuid.uuid4())

    def ms(minutes: float) -> int:
        return int(at(run, minutes, clock).timestamp() * 1000)

    names = {"criterion": criterion, "aspect": "teknisk", **labels, **({"site": site} if site else {})}
    data = {
        "uuid": uid,
        "name": f"{criterion} {uid[:6]}",
        "fullName": f"scenarios.t#{criterion}-{uid[:6]}",
        "historyId": uid,
        "status": status,
        "statusDetails": {"message": message} if message else {},
        "start": ms(start),
        "stop": ms(stop),
        "labels": [{"name": k, "value": v} for k, v in names.items()]
        + [{"name": "tag", "value": t} for t in tags],
    }
    (run.results_dir / f"{uid}-result.json").write_text(json.dumps(data), encoding="utf-8")
