"""Following the run folder: which run, what changed, and the server-sent events that carry it.

Results are files (one ``*-result.json`` per test, written whole and renamed), and so are
attestations, the incident log and the runbook records. The console looks at the folders
about twice a second — names, sizes and modification times only, two directory listings per
run — and reads and renders again only when something changed (or every ``REFRESH_S``, so
"minutes since raised" moves on). Nothing here opens a file for writing, takes a lock or
signals a process of the run: a console left open never slows or stops a rehearsal.

One :class:`Follower` serves every open page: the work of a change is done once, and each
event stream (:func:`stream`) only sends what it has not sent yet.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from rehearsal import devtext, redact
from rehearsal.errors import UsageError
from rehearsal.plan import LoadedPlan
from rehearsal.run import LATEST, RUN_FILE, Run, chain, load_run, plan_of

from .view import Chain

INTERVAL_S = 0.5
REFRESH_S = 10.0
KEEPALIVE_S = 15.0


@dataclass
class Target:
    """Which run the console shows: one named run, the newest of a plan's rehearsal, or the newest of all.

    ``run_dir`` fixed (``--run``); else ``plan`` given (``--plan``): the newest run of its
    rehearsal, switching to each new one (a rerun, the next rehearsal) as it starts, and
    waiting for the first when there is none; else the newest run (``reports/latest``).
    """

    reports: Path
    run_dir: Path | None = None
    plan: LoadedPlan | None = None

    def describe(self) -> str:
        if self.run_dir is not None:
            return f"run {self.run_dir.name}"
        if self.plan is not None:
            return f"the runs of {self.plan.path}"
        return f"the newest run under {self.reports}"

    def current(self) -> Path | None:
        """The folder of the run to show now, or None while there is none."""
        if self.run_dir is not None:
            return self.run_dir
        if self.plan is not None:
            folder = self.reports / self.plan.plan.rehearsal
            try:
                names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and e.name[:1] != ".")
            except OSError:
                return None
            newest = next((n for n in reversed(names) if (folder / n / RUN_FILE).is_file()), None)
            return folder / newest if newest else None
        link = self.reports / LATEST
        return link.resolve() if link.exists() else None


def _listing(folder: Path, suffix: str = "") -> tuple[tuple[str, int, int], ...]:
    try:
        with os.scandir(folder) as entries:
            found = []
            for e in entries:
                if e.name.endswith(suffix) and e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    found.append((e.name, st.st_size, st.st_mtime_ns))
            return tuple(sorted(found))
    except OSError:
        return ()


def fingerprint(runs: list[Path]) -> int:
    """What a look at the folders sees: each run folder's files and its results, by name, size and mtime."""
    return hash(tuple((str(d), _listing(d), _listing(d / "allure-results", "-result.json")) for d in runs))


@dataclass
class Snapshot:
    """What every page shows now; ``version`` grows with each change."""

    version: int
    run: Run | None
    loaded: LoadedPlan | None
    regions: dict[str, str] = field(default_factory=dict)


class Follower:
    """Looks at the folders when asked (at most every ``INTERVAL_S``) and renders on a change."""

    def __init__(self, target: Target, render: Callable[[LoadedPlan | None, Chain | None], dict[str, str]]):
        self.target = target
        self._render = render
        self._lock = threading.Lock()
        self._plans: dict[str, LoadedPlan] = {}
        self._seen: tuple[object, ...] | None = None
        self._looked = 0.0
        self._rendered = 0.0
        self._snapshot = Snapshot(0, None, target.plan)

    def poke(self) -> None:
        """Something was just recorded here: look again at the next ask."""
        with self._lock:
            self._looked = 0.0
            self._seen = None

    def _plan(self, run: Run) -> LoadedPlan:
        """The plan the run was made with (its copy), loaded once per run."""
        if run.id not in self._plans:
            self._plans[run.id] = plan_of(run)[0]
        return self._plans[run.id]

    def look(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            if now - self._looked < INTERVAL_S and self._snapshot.version:
                return self._snapshot
            self._looked = now
            folder = self.target.current()
            run: Run | None = None
            seen: tuple[object, ...] = (folder,)
            if folder is not None:
                try:
                    run = load_run(self.target.reports, str(folder))
                    seen = (folder, fingerprint([r.dir for r in chain(run)]))
                except UsageError:  # a run folder being made, or gone: as if there were none yet
                    run = None
            if seen == self._seen and now - self._rendered < REFRESH_S:
                return self._snapshot
            self._seen, self._rendered = seen, now
            try:
                found = Chain.of(run) if run is not None else None
                loaded = self._plan(run) if run is not None else self.target.plan
                regions = self._render(loaded, found)
            except Exception as exc:  # a broken record or plan copy: said on the page, the stream lives on
                loaded, regions = self.target.plan, {"live-head": _broken(exc)}
            self._snapshot = Snapshot(self._snapshot.version + 1, run, loaded, regions)
            return self._snapshot


def _broken(exc: Exception) -> str:
    first = (str(exc).splitlines() or [""])[0]
    return f"<p class='error'>{escape(devtext.clean(redact.text(f'{exc.__class__.__name__}: {first}')))}</p>"


def event(name: str, data: object) -> str:
    """One server-sent event; the JSON is one line, so it is one ``data:`` field."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream(follower: Follower, disconnected: Callable[[], object]) -> AsyncIterator[str]:
    """The page's event stream: the regions whenever they change, a comment now and then to keep it open."""
    sent = -1
    quiet_since = time.monotonic()
    yield "retry: 1000\n\n"
    while True:
        if await disconnected():  # type: ignore[misc]
            return
        snap = await asyncio.to_thread(follower.look)
        if snap.version != sent:
            sent = snap.version
            quiet_since = time.monotonic()
            yield event("live", {"version": snap.version, "regions": snap.regions})
        elif time.monotonic() - quiet_since > KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": still here\n\n"
        await asyncio.sleep(INTERVAL_S / 2)
