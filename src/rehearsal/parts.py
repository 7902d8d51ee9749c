"""How a run with ``--jobs N`` splits into pytest sessions, and which tests each one keeps.

One session per job, side by side, then one after them, all writing into the run's one results
folder (one decision, as from one session):

- ``first:A,B`` and ``sites:C,D``: the per-site tests of those sites (scenarios and device
  checks), so a site's stateful steps, its web session and its test traffic stay in one
  session; the ``first`` one also runs the region-wide tests, at the start as with one
  session (a runbook gate reads their results at its moment);
- ``last``: what runs after everything else: the ``@last`` scenarios (the test-identity guard
  must see every session's writes) and the load, whose SLOs are not measured beside browsers.

Every session still sees all sites in scope, so a region-wide test or a per-site one is
parametrised exactly as in a run of one session, and a result's id is the same. The sites are
dealt round-robin; the runner writes what the whole run plans (:mod:`rehearsal.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rehearsal import ids
from rehearsal.errors import UsageError


@dataclass(frozen=True)
class Part:
    kind: str  # "first", "sites" or "last"
    sites: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> Part:
        kind, _, sites = text.partition(":")
        if kind not in ("first", "sites", "last") or (kind == "last" and sites):
            raise UsageError(f"--rehearsal-part {text!r}: first:SITE,…, sites:SITE,… or last")
        return cls(kind, frozenset(s for s in sites.split(",") if s))

    def __str__(self) -> str:
        return self.kind if self.kind == "last" else f"{self.kind}:{','.join(sorted(self.sites))}"

    def keeps(self, item: Any) -> bool:
        """A load SLO names its site too, but is measured region-wide: it goes with the last part.
        A region-wide test, or a placeholder saying nothing applies, names none: the first part."""
        if is_last(item):
            return self.kind == "last"
        site = ids.item_site(item)
        return self.kind == "first" if site is None else site in self.sites


def is_last(item: Any) -> bool:
    params = item.callspec.params if hasattr(item, "callspec") else {}
    return item.get_closest_marker("last") is not None or "load_path" in params


AUTO = 0
"""``--jobs auto``: the number of sessions is chosen from the run's sites (:func:`auto_jobs`)."""
SITES_PER_SESSION = 3
"""A session of its own pays from this many sites on: benchmarks/region.py on 2 cores (medians of
3) had ``--jobs 2`` at 0.97 of ``--jobs 1``'s wall time with 2 sites, 0.76 with 6, 0.75 with 20
(a session's start, collection and browser launch are paid once per session; ~0.7 GB more)."""


def auto_jobs(sites: int, cores: int) -> int:
    """Sessions for ``--jobs auto``: one per :data:`SITES_PER_SESSION` sites, at most one per core."""
    return max(1, min(cores, sites // SITES_PER_SESSION))


def split(sites: list[str], jobs: int) -> list[Part]:
    """The parts of a run of these sites in ``jobs`` sessions side by side, then the last one."""
    n = max(1, min(jobs, len(sites)))
    side = [Part("first" if k == 0 else "sites", frozenset(sites[k::n])) for k in range(n)]
    return [*side, Part("last")]
