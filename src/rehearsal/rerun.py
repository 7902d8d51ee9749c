"""What a rerun repeats: what failed, what waits for an attestation, and what never ran.

A run interrupted half-way has no result for some items; they are as much "not passed"
as a failure, so a rerun takes them too. What a run meant to run is in its
``planned-keys.txt`` (older runs: ``planned.txt``, node ids; both written by the plugin after
collection); a run killed before that has no list, and its rerun repeats the whole plan.

Tests are named by key (stable id and site, :mod:`rehearsal.ids`), so a scenario whose title
was fixed since the run is still the one rerun; a result from before ids is named by node id.

A run recorded as incomplete whose processes are all gone and whose every planned test
has its own result is complete after all (its CLI was killed after the last test):
:func:`settle` marks it so, for ``rehearse report`` and ``rehearse rerun``. A run still
going (its lock held, :mod:`rehearsal.lifetime`) is never settled and never rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rehearsal import ids, lifetime
from rehearsal.errors import UsageError
from rehearsal.results import MergedResult, failed_selectors, merge
from rehearsal.run import PLANNED_FILE, Run, chain, discard_partial, mark_complete


@dataclass(frozen=True)
class Selection:
    failed: list[str]
    pending: list[str]
    missing: list[str]
    whole_plan: bool = False

    @property
    def nodeids(self) -> list[str] | None:
        """Keys (or node ids, for results from before ids) to run, or None for the whole plan."""
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
    """Every test (key; node id for runs from before ids) the runs of a chain meant to run;
    None if the first never said."""
    found: set[str] = set()
    for run in runs:
        meant = _planned_by(run)
        if meant is None:
            if run.selection is None:  # a full run that stopped before collection ended
                return None
            continue
        found |= meant
    return found


def _planned_by(run: Run) -> set[str] | None:
    keys, nodeids = run.dir / ids.PLANNED_KEYS_FILE, run.dir / PLANNED_FILE
    if keys.exists():
        return set(keys.read_text(encoding="utf-8").splitlines()) - {""}
    if nodeids.exists():
        return set(nodeids.read_text(encoding="utf-8").split()) - {""}
    return None


def _names(merged: list[MergedResult]) -> set[str]:
    """How the planned lists may name these results: by key, or by node id (lists from before ids)."""
    return {n for m in merged for n in (m.latest.selector, m.latest.nodeid) if n}


def _unmet(meant: set[str], have: set[str]) -> list[str]:
    """Planned tests without a result; a result that named no site still counts for its id."""
    return sorted(k for k in meant if k not in have and ids.id_of_key(k) not in have)


def select(parent: Run) -> tuple[Selection, list[MergedResult]]:
    runs = chain(parent)
    merged = merge([r.results_dir for r in runs])
    pending = [
        m.latest.selector
        for m in merged
        if m.latest.status == "skipped" and m.latest.labels.get("attestation")
    ]
    meant = planned(runs)
    if meant is None:
        return Selection([], [], [], whole_plan=True), merged
    incomplete = {r.results_dir.resolve() for r in runs if not r.complete}
    have = _names(
        [m for m in merged if not (_cut_short(m) and Path(m.latest.results_dir).resolve() in incomplete)]
    )
    return Selection(failed_selectors(merged), [n for n in pending if n], _unmet(meant, have)), merged


def _cut_short(result: MergedResult) -> bool:
    """Skipped or unknown because an incomplete run stopped under it, not because it does not apply."""
    return result.latest.status in ("skipped", "unknown") and not result.latest.labels.get("attestation")


def unrecorded(run: Run) -> list[str] | None:
    """The tests the run planned that have no result of its own; None if it never said what it planned."""
    meant = _planned_by(run)
    if meant is None:
        return None
    return _unmet(meant, _names([m for m in merge([run.results_dir]) if run.complete or not _cut_short(m)]))


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
