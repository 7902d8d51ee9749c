"""Progress in the terminal while a run runs, read from the run folder alone.

The run writes one ``*-result.json`` per test into ``allure-results/`` (whole or not at all,
see :mod:`rehearsal.run`), so the operator's view needs nothing from the pytest child: a
thread in the CLI lists that folder about twice a second, reads only files it has not read,
and prints

* first, the run folder (before the first test starts);
* a line whenever the count of one site × aspect changes, with the whole run's n/N once
  ``planned.txt`` says N, and the time left estimated from the previous complete run of the
  same plan and scope (its run.json ``started``/``finished``);
* each failure as one line: site, criterion, the first line of its message (redacted, and
  cleaned of control characters as device text is).

Nothing here may slow or stop the run: a file that does not parse yet is tried again on the
next look, and any other error ends the watcher quietly (it prints nothing more). Plain lines,
no escape sequences, so a log file or a CI console shows the same as a terminal.

The CLI switches it on once (:func:`enable`); :func:`watching` is a no-op otherwise, so the
runner calls it unconditionally and the commands that must stay quiet (``-q``) never see it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from rehearsal import devtext, redact
from rehearsal.run import PLANNED_FILE, RUN_FILE, Run

__all__ = ["Watcher", "disable", "enable", "estimate_s", "watching"]

INTERVAL_S = 0.5
FAILED = {"failed", "broken"}
#: how a status is counted, singular and plural (the run's own language: the plan's)
WORDS = {
    "passed": ("klar", "klara"),
    "failed": ("underkänd", "underkända"),
    "skipped": ("överhoppad", "överhoppade"),
    "unknown": ("okänd", "okända"),
}


@dataclass
class _Settings:
    out: TextIO


_enabled: _Settings | None = None


def enable(out: TextIO) -> None:
    """Show progress on ``out`` for every run this process starts."""
    global _enabled
    _enabled = _Settings(out)


def disable() -> None:
    global _enabled
    _enabled = None


def _seconds(stamp: str | None) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None


def estimate_s(run: Run) -> float | None:
    """How long the previous complete run of the same plan and scope took, if there is one.

    Same plan file, sites, aspects and selection: a rerun of three tests says nothing about
    a whole rehearsal. Runs are compared by their run.json only.
    """
    best: tuple[str, float] | None = None
    for path in run.dir.parent.glob(f"*/{RUN_FILE}"):
        if path.parent == run.dir:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("complete") is not True:
            continue
        same = (data.get("plan_path"), data.get("sites"), data.get("aspects"), data.get("selection"))
        if same != (run.plan_path, run.sites, run.aspects, run.selection):
            continue
        began, ended = _seconds(data.get("started")), _seconds(data.get("finished"))
        if began is None or ended is None or ended < began:
            continue
        key = str(data.get("started"))
        if best is None or key > best[0]:
            best = (key, ended - began)
    return best[1] if best else None


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


def _count(status: str, n: int) -> str:
    one, many = WORDS.get(status, (status, status))
    return f"{n} {one if n == 1 else many}"


class Watcher:
    """Reads a run folder's results as they land and prints what changed.

    :meth:`poll` does one look and is all the logic (the unit tests call it directly);
    :meth:`start` runs it on a daemon thread every :data:`INTERVAL_S`, :meth:`stop` ends the
    thread and takes one last look, so results written just before the end are shown too.
    """

    def __init__(
        self,
        run: Run,
        out: TextIO,
        mask: Callable[[str], str] = redact.text,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.run = run
        self._out = out
        self._mask = mask
        self._now = now or (lambda: datetime.now().timestamp())
        self._seen: set[str] = set()
        self._counts: dict[tuple[str, str], dict[str, int]] = {}
        self._planned: int | None = None
        self._order: list[str] = []  # planned node ids in the order pytest runs them
        self._ran: set[str] = set()  # node ids that have their result
        self._done = 0
        self._estimate = estimate_s(run)
        self._began = _seconds(run.started) or self._now()
        self._broken = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- printing -----------------------------------------------------------------------------

    def _say(self, lines: list[str]) -> None:
        if lines:
            self._out.write("".join(f"{line}\n" for line in lines))
            self._out.flush()

    def header(self) -> list[str]:
        lines = [f"rehearse: run {self.run.id}: {self.run.dir}"]
        if self._estimate is not None:
            lines.append(f"  the previous run of this plan took {_duration(self._estimate)}")
        return lines

    def _whole(self) -> str:
        parts = []
        if self._planned is not None:
            parts.append(f"{self._done}/{self._planned}")
        finished = self._planned is not None and self._done >= self._planned
        if self._estimate is not None and not finished:
            left = self._estimate - (self._now() - self._began)
            parts.append(f"~{_duration(left)} kvar" if left >= 1 else "snart klar")
        running = self._running()
        if running:
            parts.append(f"nu: {running}")
        return f"  [{', '.join(parts)}]" if parts else ""

    def _group_line(self, key: tuple[str, str]) -> str:
        counts = self._counts[key]
        total = sum(counts.values())
        shown = [f"{counts.get('passed', 0)}/{total} klara"]
        shown += [_count(s, n) for s, n in sorted(counts.items()) if s != "passed" and n]
        return f"  {key[0]} · {key[1]}: {', '.join(shown)}"

    def _failure_line(self, site: str, criterion: str, result: dict[str, object]) -> str:
        details = result.get("statusDetails")
        message = details.get("message") if isinstance(details, dict) else None
        first = str(message or result.get("name") or "").strip().splitlines()
        reason = devtext.clean(self._mask(first[0] if first else ""), limit=200)
        reason = reason.removeprefix("AssertionError: ")  # pytest's wording; the reason is what follows
        status = "underkänd" if result.get("status") == "failed" else "trasig"
        return f"  {status}: {site} · {criterion}: {reason}"

    # -- reading --------------------------------------------------------------------------------

    def _read_planned(self) -> None:
        if self._planned is not None:
            return
        try:
            text = (self.run.dir / PLANNED_FILE).read_text(encoding="utf-8")
        except (OSError, ValueError):
            return
        self._order = [line.strip() for line in text.splitlines() if line.strip()]
        self._planned = len(self._order)

    def _running(self) -> str | None:
        """The test running now: the first planned one without a result (pytest runs them in order)."""
        for nodeid in self._order:
            if nodeid not in self._ran:
                return self._mask(devtext.clean(nodeid.rpartition("::")[2], limit=80))
        return None

    def _landed(self) -> list[str]:
        """Result files not read yet, in the order they were written (names are random uuids)."""
        fresh = []
        for path in self.run.results_dir.glob("*-result.json"):
            if path.name not in self._seen:
                try:
                    fresh.append((path.stat().st_mtime_ns, path.name))
                except OSError:
                    continue  # renamed away or gone
        return [name for _, name in sorted(fresh)]

    def poll(self) -> list[str]:
        """Read the results not read before and return the lines they make (also printed)."""
        self._read_planned()
        try:
            names = self._landed()
        except OSError:
            return []
        changed: list[tuple[str, str]] = []
        failures: list[str] = []
        for name in names:
            if name in self._seen:
                continue
            try:
                result = json.loads((self.run.results_dir / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not whole yet (or gone): looked at again next time
            self._seen.add(name)
            if not isinstance(result, dict):
                continue
            raw = result.get("labels")
            labels = {
                str(lab.get("name")): str(lab.get("value"))
                for lab in (raw if isinstance(raw, list) else [])
                if isinstance(lab, dict)
            }
            site = self._mask(devtext.clean(labels.get("site") or "central", limit=60))
            aspect = self._mask(devtext.clean(labels.get("aspect") or "-", limit=60))
            status = str(result.get("status") or "unknown")
            status = "failed" if status in FAILED else status if status in WORDS else "unknown"
            group = self._counts.setdefault((site, aspect), {})
            group[status] = group.get(status, 0) + 1
            self._done += 1
            self._ran.add(labels.get("nodeid", ""))
            if (site, aspect) not in changed:
                changed.append((site, aspect))
            if status == "failed":
                criterion = self._mask(devtext.clean(labels.get("criterion") or "-", limit=80))
                failures.append(self._failure_line(site, criterion, result))
        lines = failures + [self._group_line(key) for key in changed]
        if changed:
            lines[-1] += self._whole()
        self._say(lines)
        return lines

    # -- the thread ------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._stop.wait(INTERVAL_S):
                self.poll()
        except Exception:  # never into the run: a broken watcher goes silent
            self._broken = True

    def start(self) -> Watcher:
        try:
            self._say(self.header())
        except Exception:
            self._broken = True
            return self
        self._thread = threading.Thread(target=self._loop, name="rehearse-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self._broken and (self._thread is None or not self._thread.is_alive()):
            try:
                self.poll()
            except Exception:
                self._broken = True


@contextmanager
def watching(run: Run, mask: Callable[[str], str] = redact.text) -> Iterator[Watcher | None]:
    """Progress of ``run`` while the block runs, when the CLI switched it on; else nothing."""
    settings = _enabled
    if settings is None:
        yield None
        return
    watcher: Watcher | None = None
    try:
        watcher = Watcher(run, settings.out, mask).start()
    except Exception:
        watcher = None
    try:
        yield watcher
    finally:
        if watcher is not None:
            watcher.stop()
