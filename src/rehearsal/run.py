"""The run folder: where one execution of a plan keeps everything it recorded.

``reports/<rehearsal>/<run-id>/run.json`` is written when the run starts (complete:
false) and rewritten when it ends, so an interrupted run is still a run: its results stay,
and the report says it is incomplete. A rerun is a new run whose ``parent`` names the run
it repeats; the chain from the first run to the newest is what a report merges.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from rehearsal.errors import UsageError
from rehearsal.plan import LoadedPlan

RUN_FILE = "run.json"
PLANNED_FILE = "planned.txt"  # the node ids a run meant to run, written once collection ends
LATEST = "latest"


@dataclass(frozen=True)
class Run:
    id: str
    rehearsal: str
    plan_path: str
    plan_sha256: str
    started: str
    dir: Path = field(compare=False)
    parent: str | None = None
    finished: str | None = None
    complete: bool = False
    selection: list[str] | None = None
    sites: list[str] | None = None
    aspects: list[str] | None = None

    @property
    def results_dir(self) -> Path:
        return self.dir / "allure-results"

    @property
    def reports_root(self) -> Path:
        return self.dir.parent.parent

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("dir")
        return data


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write(run: Run) -> None:
    tmp = run.dir / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps(run.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, run.dir / RUN_FILE)


def create_run(
    reports_root: Path,
    loaded: LoadedPlan,
    parent: Run | None = None,
    selection: list[str] | None = None,
    sites: list[str] | None = None,
    aspects: list[str] | None = None,
) -> Run:
    """Make the folder and run.json of a new run and point ``reports/latest`` at it."""
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)
    folder = reports_root / loaded.plan.rehearsal / run_id
    (folder / "allure-results").mkdir(parents=True)
    run = Run(
        id=run_id,
        rehearsal=loaded.plan.rehearsal,
        plan_path=str(loaded.path),
        plan_sha256=loaded.sha256,
        started=started.isoformat(timespec="seconds"),
        dir=folder,
        parent=parent.id if parent else None,
        selection=selection,
        sites=sorted(sites) if sites else None,
        aspects=sorted(aspects) if aspects else None,
    )
    _write(run)
    _point_latest(reports_root, folder)
    return run


def finish_run(run: Run, complete: bool) -> Run:
    done = replace(run, finished=_now(), complete=complete)
    _write(done)
    return done


def _point_latest(reports_root: Path, folder: Path) -> None:
    link = reports_root / LATEST
    tmp = reports_root / f".{LATEST}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(folder.relative_to(reports_root))
    os.replace(tmp, link)


def load_run(reports_root: Path, ref: str | None = None) -> Run:
    """Find a run by folder path, run id, or (no ref) the newest via ``reports/latest``."""
    if ref is None:
        folder = reports_root / LATEST
        if not folder.exists():
            raise UsageError(f"{reports_root}: no run yet (run `rehearse run --plan PLAN` first)")
    else:
        folder = Path(ref)
        if not (folder / RUN_FILE).exists():
            matches = sorted(reports_root.glob(f"*/{ref}"))
            if not matches:
                raise UsageError(f"{ref}: no such run under {reports_root}")
            folder = matches[0]
    folder = folder.resolve()
    try:
        data = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        return Run(dir=folder, **data)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{folder / RUN_FILE}: not a readable run record ({exc})") from None


def chain(run: Run) -> list[Run]:
    """The run and its ancestors, oldest first (the order in which results are merged)."""
    runs = [run]
    seen = {run.id}
    while runs[0].parent:
        parent = load_run(runs[0].reports_root, str(runs[0].dir.parent / runs[0].parent))
        if parent.id in seen:
            raise UsageError(f"{parent.dir}: run chain loops back on itself")
        seen.add(parent.id)
        runs.insert(0, parent)
    return runs
