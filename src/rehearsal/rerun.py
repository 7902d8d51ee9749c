"""What a rerun repeats: what failed, what waits for an attestation, and what never ran.

A run interrupted half-way has no result for some items; they are as much "not passed"
as a failure, so a rerun takes them too. What a run meant to run is in its
``planned.txt`` (written by the plugin after collection); a run killed before that
has no list, and its rerun repeats the whole plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rehearsal.results import MergedResult, failed_nodeids, merge
from rehearsal.run import PLANNED_FILE, Run, chain


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
    cut_short = {  # skipped or unknown because the run stopped under it, not because it does not apply
        m.latest.nodeid
        for m in merged
        if m.latest.status in ("skipped", "unknown")
        and not m.latest.labels.get("attestation")
        and Path(m.latest.results_dir).resolve() in incomplete
    }
    have = {m.latest.nodeid for m in merged} - cut_short
    return Selection(failed_nodeids(merged), [n for n in pending if n], sorted(meant - have)), merged
