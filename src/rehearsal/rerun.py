"""What a rerun repeats: what failed, what waits for an attestation, and what never ran.

A run interrupted half-way has no result for some items; they are as much "not passed"
as a failure, so a rerun takes them too. What a run meant to run is in its
``planned.txt`` (written by the plugin after collection); a run killed before that
has no list, and its rerun repeats the whole plan.

A run recorded as incomplete whose processes are all gone and whose every planned test
has its own result is complete after all (its CLI was killed after the last test):
:func:`settle` marks it so, for ``rehearse report`` and ``rehearse rerun``. A run still
going (its lock held, :mod:`rehearsal.lifetime`) is never settled and never rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rehearsal import lifetime
from rehearsal.errors import UsageError
from rehearsal.results import MergedResult, failed_nodeids, merge
from rehearsal.run import PLANNED_FILE, Run, chain, discard_partial, mark_complete


@dataclass(frozen=True)
class Selection:
    failed: list[str]
    pending: list[str]
    missing: list[str]
    whole_plan: bool = False

    @property
    def nodeids(self) -> list[str] | None:
        """Node ids to run, or None for the whole plan."""
        return None if self.whole_plan else [*self.failed, *self.pending, *self.missing]

    def __bool__(self) -> bool:
        return self.whole_plan or bool(self.failed or self.pending or self.missing)

    def describe(self) -> str:
        if self.whole_plan:
            return "the whole plan (the run stopped before it knew what to run)"
        parts = [(len(self.failed), "failed"), (len(self.pending), "awaiting attestation"),
                 (len(self.missing), "never ran")]  # fmt: skip
        return ", ".join(f"{n} {what}" for n, what in parts if n)


def planned(runs: list[Run]) -> set[str] | None:
    """Every node id the runs of a chain meant to run; None if the first never said."""
    found: set[str] = set()
    for run in runs:
        path = run.dir / PLANNED_FILE
        if not path.exists():
            if run.selection is None:  # a full run that stopped before collection ended
                return None
            continue
        found |= set(path.read_text(encoding="utf-8").split()) - {""}
    return found


def select(parent: Run) -> tuple[Selection, list[MergedResult]]:
    runs = chain(parent)
    merged = merge([r.results_dir for r in runs])
    pending = [
        m.latest.nodeid for m in merged if m.latest.status == "skipped" and m.latest.labels.get("attestation")
    ]
    meant = planned(runs)
    if meant is None:
        return Selection([], [], [], whole_plan=True), merged
    incomplete = {r.results_dir.resolve() for r in runs if not r.complete}
    cut_short = {
        m.latest.nodeid
        for m in merged
        if _cut_short(m) and Path(m.latest.results_dir).resolve() in incomplete
    }
    have = {m.latest.nodeid for m in merged} - cut_short
    return Selection(failed_nodeids(merged), [n for n in pending if n], sorted(meant - have)), merged


def _cut_short(result: MergedResult) -> bool:
    """Skipped or unknown because an incomplete run stopped under it, not because it does not apply."""
    return result.latest.status in ("skipped", "unknown") and not result.latest.labels.get("attestation")


def unrecorded(run: Run) -> list[str] | None:
    """The node ids the run planned that have no result of its own; None if it never said what it planned."""
    path = run.dir / PLANNED_FILE
    if not path.exists():
        return None
    meant = set(path.read_text(encoding="utf-8").split()) - {""}
    have = {m.latest.nodeid for m in merge([run.results_dir]) if run.complete or not _cut_short(m)}
    return sorted(meant - have)


def refuse_if_running(run: Run, doing: str) -> None:
    """UsageError when a process of the run still holds its lock: its results are not final."""
    pids = lifetime.still_running(run.dir)
    if pids is not None:
        raise UsageError(
            f"run {run.id} is still running (pid {', '.join(map(str, pids))}); wait for it to end "
            f"or stop it, then {doing}"
        )


def settle(run: Run) -> tuple[Run, str | None]:
    """An incomplete run with no process left and every planned result recorded is marked complete.

    Returns the run (as recorded now) and a line saying what was done, or None. A run still
    running or missing results stays as it is.
    """
    if lifetime.still_running(run.dir) is not None:
        return run, None
    discard_partial(run)  # what its processes were writing when they died
    if run.complete:
        return run, None
    missing = unrecorded(run)
    if missing is None or missing:
        return run, None
    why = "every planned test has its result (its command ended before recording that)"
    return mark_complete(run, why), f"run {run.id}: {why}; marked complete"
