"""The run folder: where one execution of a plan keeps everything it recorded.

``reports/<rehearsal>/<run-id>/run.json`` is written when the run starts (complete:
false) and rewritten when it ends, so an interrupted run is still a run: its results stay,
and the report says it is incomplete. A rerun is a new run whose ``parent`` names the run
it repeats; the chain from the first run to the newest is what a report merges.

The folder keeps a copy of what the run was made with (``used/``: the plan, the attestation
files, the plan's waivers file), so a report of an old run decides on the plan that ran,
not on one edited since (:func:`plan_of` says when the plan on disk differs). Paths in
run.json are absolute; the copies are named relative to the run folder, which may move.

``reports/latest`` must be a symbolic link (or absent): a file or folder in its place, or
a link to a run that is gone, is refused with one line before anything is made.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from rehearsal.errors import UsageError
from rehearsal.plan import LoadedPlan, load_plan
from rehearsal.reports_folder import ReportsFolderError, folder_error, write_atomic

RUN_FILE = "run.json"
PLANNED_FILE = "planned.txt"  # the node ids a run meant to run, written once collection ends
LATEST = "latest"
USED_DIR = "used"  # copies of the plan, attestations and waivers file the run was made with


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
    #: ``rehearse run --criterion`` / ``--tag``: what it was narrowed to below site and aspect
    criteria: list[str] | None = None
    tags: list[str] | None = None
    #: what the run was made with: {role, source (absolute), copy (relative to the run folder), sha256}
    inputs: list[dict[str, str]] | None = None
    #: why a run found incomplete was later marked complete (every planned test had its result)
    completed_by: str | None = None

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

    def copies(self, role: str) -> list[Path]:
        """The run folder's copies of its inputs of one role (plan, attestations, waivers)."""
        return [self.dir / i["copy"] for i in self.inputs or [] if i["role"] == role]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write(run: Run) -> None:
    write_atomic(run.dir / RUN_FILE, json.dumps(run.to_json(), indent=2, ensure_ascii=False) + "\n")


def check_latest(reports_root: Path) -> None:
    """``reports/latest`` is a symbolic link or absent; anything else is the operator's to move."""
    link = reports_root / LATEST
    if link.is_symlink() or not os.path.lexists(link):
        return
    what = "a folder" if link.is_dir() else "a file"
    raise ReportsFolderError(
        f"{link}: is {what}, not the link to the newest run; move it away (rehearse keeps a "
        "symbolic link there)"
    )


def _copy_inputs(folder: Path, loaded: LoadedPlan, attestations: list[Path]) -> list[dict[str, str]]:
    """Copy the plan, the attestation files and the plan's waivers file into ``used/``."""
    used = folder / USED_DIR
    used.mkdir()
    plan_source = loaded.path.resolve()
    sources = [("plan", plan_source, "plan" + (plan_source.suffix or ".yaml"))]
    sources += [("attestations", Path(a).resolve(), f"attestations-{i + 1}-{Path(a).name}")
                for i, a in enumerate(attestations)]  # fmt: skip
    waivers_file = loaded.plan.waivers_file
    if waivers_file and (plan_source.parent / waivers_file).is_file():
        waivers = (plan_source.parent / waivers_file).resolve()
        sources.append(("waivers", waivers, f"waivers-{waivers.name}"))
    inputs = []
    for role, source, name in sources:
        try:
            shutil.copyfile(source, used / name)
        except OSError as exc:  # copyfile names the source; it is the copy the folder refused
            raise folder_error(OSError(exc.errno, exc.strerror), used / name) from None
        digest = hashlib.sha256((used / name).read_bytes()).hexdigest()
        inputs.append({"role": role, "source": str(source), "copy": f"{USED_DIR}/{name}", "sha256": digest})
    return inputs


def create_run(
    reports_root: Path,
    loaded: LoadedPlan,
    parent: Run | None = None,
    selection: list[str] | None = None,
    sites: list[str] | None = None,
    aspects: list[str] | None = None,
    attestations: list[Path] | None = None,
    criteria: list[str] | None = None,
    tags: list[str] | None = None,
) -> Run:
    """Make the folder, the input copies and run.json of a new run and point ``reports/latest`` at it.

    All or nothing: when the reports folder refuses (full, read-only, ``latest`` not a link)
    the new folder is removed again and ReportsFolderError names the path.
    """
    check_latest(reports_root)
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)
    folder = reports_root / loaded.plan.rehearsal / run_id
    try:
        (folder / "allure-results").mkdir(parents=True)
    except OSError as exc:
        raise folder_error(exc, folder) from None
    try:
        run = Run(
            id=run_id,
            rehearsal=loaded.plan.rehearsal,
            plan_path=str(loaded.path.resolve()),
            plan_sha256=loaded.sha256,
            started=started.isoformat(timespec="seconds"),
            dir=folder,
            parent=parent.id if parent else None,
            selection=selection,
            sites=sorted(sites) if sites else None,
            aspects=sorted(aspects) if aspects else None,
            criteria=list(criteria) if criteria else None,
            tags=list(tags) if tags else None,
            inputs=_copy_inputs(folder, loaded, list(attestations or [])),
        )
        _write(run)
        _point_latest(reports_root, folder)
    except (OSError, ReportsFolderError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, ReportsFolderError):
            raise
        raise folder_error(exc, folder) from None
    return run


def finish_run(run: Run, complete: bool) -> Run:
    done = replace(run, finished=_now(), complete=complete)
    _write(done)
    return done


def discard_partial(run: Run) -> list[Path]:
    """Remove the temporary files a writer left in the run folder (killed mid-write, disk full).

    Every writer here and in allure-pytest writes ``NAME.tmp`` and renames it when whole, so
    once no process of the run is left a ``*.tmp`` is never a result, only a leftover.
    """
    gone = []
    for tmp in [*run.dir.glob("*.tmp"), *run.results_dir.glob("*.tmp")]:  # pathlib's * matches .names too
        try:
            tmp.unlink()
            gone.append(tmp)
        except OSError:
            pass
    return gone


def mark_complete(run: Run, why: str) -> Run:
    """A run recorded as incomplete whose every planned test turned out to have its result."""
    done = replace(run, finished=run.finished or _now(), complete=True, completed_by=why)
    _write(done)
    return done


def _point_latest(reports_root: Path, folder: Path) -> None:
    link = reports_root / LATEST
    tmp = reports_root / f".{LATEST}.{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(folder.relative_to(reports_root))
        os.replace(tmp, link)
    except OSError as exc:
        if tmp.is_symlink():
            tmp.unlink()
        raise folder_error(exc, link) from None


def load_run(reports_root: Path, ref: str | None = None) -> Run:
    """Find a run by folder path, run id, or (no ref) the newest via ``reports/latest``."""
    if ref is None:
        folder = reports_root / LATEST
        check_latest(reports_root)
        if folder.is_symlink() and not folder.exists():
            raise UsageError(
                f"{folder}: points to {os.readlink(folder)}, which is gone; name a run "
                "(rehearse report RUN) or remove the link"
            )
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


def plan_of(run: Run) -> tuple[LoadedPlan, str | None]:
    """The plan a run was made with (its copy in ``used/``), and a line when the one on disk differs.

    A run from before copies were kept is judged on the plan at its recorded path, and the
    line then says that plan has changed since (its hash is in run.json).
    """
    copy = next(iter(run.copies("plan")), None)
    source = Path(run.plan_path)
    if not source.is_absolute():  # run.json of an older version: relative to where it began
        source = Path.cwd() / source
    try:
        on_disk = hashlib.sha256(source.read_bytes()).hexdigest()
    except OSError:
        on_disk = None
    if copy is not None and copy.is_file():
        note = None
        if on_disk != run.plan_sha256:
            state = "is gone" if on_disk is None else "differs from the one this run used"
            note = f"the plan on disk ({source}) {state}; this report uses the run's copy ({copy})"
        return load_plan(copy), note
    if on_disk is None:
        raise UsageError(f"{source}: the plan of run {run.id} is gone and the run has no copy of it")
    loaded = load_plan(source)
    note = None
    if on_disk != run.plan_sha256:
        note = f"the plan on disk ({source}) has changed since run {run.id} (which kept no copy of it)"
    return loaded, note
