"""Runs one rehearsal as a pytest session in a subprocess and records it as a run.

A subprocess keeps Locust's gevent patching and Playwright's browser out of the CLI,
and lets an interrupted session still write what it found: run.json is updated in a
``finally`` so a Ctrl-C or SIGTERM leaves a run marked incomplete, never a lost one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from rehearsal import attest, content, lifetime, parts, progress, redact
from rehearsal.plan import LoadedPlan
from rehearsal.run import Run, chain, create_run, discard_partial, finish_run
from rehearsal.selection import EVERYTHING, Selection

CONTENT = ("scenarios", "hardware_checks", "load")
RERUN_FILE = "selection.txt"
# pytest exit codes: 0 all passed, 1 some failed, 5 nothing collected (an empty rerun)
FINISHED = {0, 1, 5}


@dataclass(frozen=True)
class Outcome:
    run: Run
    interrupted: bool
    pytest_exit: int | None

    @property
    def broken(self) -> bool:
        """pytest itself failed (internal or usage error), as opposed to tests failing."""
        return not self.interrupted and self.pytest_exit not in FINISHED


class Interrupted(Exception):
    """The run was stopped from outside (Ctrl-C, SIGTERM); what it recorded is kept."""


content_root = content.root  # where features/, scenarios/, load/ and hardware_checks/ are


def pytest_command(
    run: Run,
    loaded: LoadedPlan,
    sites: list[str],
    aspects: list[str],
    root: Path,
    attestations: Sequence[Path] = (),
    interactive: bool = False,
    paths: Sequence[str] | None = None,
    chosen: Selection = EVERYTHING,
    probe: str | None = None,
) -> list[str]:
    cmd = [
        sys.executable, "-m", "pytest",
        *[str(root / c) for c in (paths or CONTENT) if (root / c).exists()],
        "--rootdir", str(root),
        "-o", "addopts=",  # the project's own test options (xdist workers, durations) are not the run's
        "-p", "no:cacheprovider",
        "-p", "no:locust",
        "-p", "rehearsal.lifetime", "--rehearsal-parent-pid", str(os.getpid()),
        "-p", "rehearsal.selection",
        "-o", f"bdd_features_base_dir={root / 'features'}",
        "--rehearsal-plan", str(loaded.path.resolve()),
        "--rehearsal-run-dir", str(run.dir),
        "--rehearsal-run-id", run.id,
        "--alluredir", str(run.results_dir),
        "--browser", "chromium",
        "--output", str(run.dir / "playwright"),
        "--tracing", "retain-on-failure",
        "-q", "-rfE",
    ]  # fmt: skip
    for site in sites:
        cmd += ["--rehearsal-site", site]
    for aspect in aspects:
        cmd += ["--rehearsal-aspect", aspect]
    for criterion in chosen.criteria:
        cmd += ["--rehearsal-criterion", criterion]
    for tag in chosen.tags:
        cmd += ["--rehearsal-tag", tag]
    for path in attestations:
        cmd += ["--rehearsal-attestations", str(path)]
    if probe:
        cmd += ["--rehearsal-probe", probe]
    if interactive:
        cmd += ["--rehearsal-interactive", "-s"]
    if run.selection is not None:
        selection = run.dir / RERUN_FILE
        selection.write_text("\n".join(run.selection) + "\n", encoding="utf-8")
        cmd += ["--rehearsal-only", str(selection)]
    return cmd


class _RedactedLog:
    """pytest.log as the child writes it, every line through the redactor before it reaches disk.

    Stands in for the log file in ``Popen(stdout=…)``: ``fileno()`` is the write end of a pipe,
    and a thread copies what arrives line by line (a secret never spans two lines), flushed
    as it goes, so the log is as current as a plain file would be. ``close()`` lets go of the
    write end once the child is done; the copy ends when the last writer has gone.
    """

    JOIN_S = 10.0  # a straggler still holding the pipe (a browser being killed) is not waited for

    def __init__(self, path: Path, redactor: redact.Redactor) -> None:
        self._read, self._write = os.pipe()
        self._out = path.open("wb")
        self._redactor = redactor
        self._thread = threading.Thread(target=self._copy, name="pytest.log", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self._write

    def _copy(self) -> None:
        refused = False  # the disk refused a write (full): keep draining, or the child blocks on the pipe
        try:
            with os.fdopen(self._read, "rb") as source:
                for line in source:
                    if refused:
                        continue
                    try:
                        self._out.write(self._redactor.data(line))
                        self._out.flush()
                    except OSError:
                        refused = True
        finally:
            with contextlib.suppress(OSError):
                self._out.close()

    def close(self) -> None:
        if self._write >= 0:
            os.close(self._write)
            self._write = -1
        self._thread.join(timeout=self.JOIN_S)


@contextmanager
def _terminate_raises() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise Interrupted(f"stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _parallel(args: tuple[Any, ...], jobs: int) -> list[list[list[str]]]:
    """The stages of a run in parallel sessions: first a collection alone, which writes what the
    whole run plans (an interrupted run then knows what it did not run, as with one session);
    then ``jobs`` sessions side by side, then the last one (:mod:`rehearsal.parts`)."""
    run, loaded, sites, *rest = args
    cmd = pytest_command(run, loaded, sites, *rest)
    *side, last = parts.split(sites or [s.id for s in loaded.plan.sites], jobs)
    return [
        [[*cmd, "--collect-only"]],
        [[*cmd, "--rehearsal-part", str(part)] for part in side],
        [[*cmd, "--rehearsal-part", str(last)]],
    ]


def _start(
    stage: list[list[str]], root: Path, env: dict[str, str] | None, log: _RedactedLog | None, lock: Any
) -> list[subprocess.Popen[bytes]]:
    """The stage's sessions, started. Each gets SIGTERM when this thread ends, kill -9 included, and
    then takes its own children (Chromium, Locust) down with it (rehearsal.lifetime)."""
    children: list[subprocess.Popen[bytes]] = []
    try:
        for cmd in stage:
            proc = subprocess.Popen(
                cmd,
                cwd=root,
                env={**os.environ, **(env or {})},
                stdout=cast("IO[Any] | None", log),  # it has the fileno() Popen uses; shared, line by line
                stderr=subprocess.STDOUT if log else None,
                pass_fds=(lock.fd,),
                preexec_fn=lifetime.die_with_parent(signal.SIGTERM),
            )
            lock.note_child(proc.pid)
            children.append(proc)
    except BaseException:
        _stop(children)
        raise
    return children


def _wait(children: list[subprocess.Popen[bytes]]) -> tuple[bool, list[int]]:
    """Every session's exit code, and whether the run was stopped from outside meanwhile (each
    session then gets SIGINT: it writes what it found and ends, or is killed after 30 s)."""
    try:
        with _terminate_raises():
            return False, [proc.wait() for proc in children]
    except (KeyboardInterrupt, Interrupted):
        return True, _stop(children)


def _stop(children: list[subprocess.Popen[bytes]]) -> list[int]:
    for proc in children:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    codes = []
    for proc in children:
        try:
            codes.append(proc.wait(timeout=30))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def _exit_code(codes: list[int]) -> int | None:
    """One pytest exit code for the run's sessions: the first that is not a finished session's,
    else 1 when any test failed, 0 when any ran, 5 when none collected anything."""
    if not codes:
        return None
    broken = [c for c in codes if c not in FINISHED]
    if broken:
        return broken[0]
    return 1 if 1 in codes else 0 if 0 in codes else 5


def execute(
    reports_root: Path,
    loaded: LoadedPlan,
    *,
    parent: Run | None = None,
    selection: list[str] | None = None,
    sites: list[str] | None = None,
    aspects: list[str] | None = None,
    env: dict[str, str] | None = None,
    attestations: list[Path] | None = None,
    interactive: bool = False,
    paths: list[str] | None = None,
    chosen: Selection = EVERYTHING,
    probe: str | None = None,
    jobs: int = 1,
) -> Outcome:
    """Run the plan's content into a new run folder, finished even when interrupted.

    ``chosen`` narrows it below site and aspect (:mod:`rehearsal.selection`), recorded in run.json.
    ``jobs`` above 1 runs the sites' tests in that many sessions side by side (:func:`_parallel`);
    :data:`rehearsal.parts.AUTO` chooses from the sites and the cores.
    """
    for site in sites or []:
        loaded.plan.site(site)
    root = content_root()
    run = create_run(
        reports_root, loaded, parent=parent, selection=selection, sites=sites, aspects=aspects,
        attestations=attestations, criteria=list(chosen.criteria), tags=list(chosen.tags),
    )  # fmt: skip
    inherited = [r.dir / attest.FILE for r in (chain(parent) if parent else [])]
    given = run.copies("attestations")  # the copies kept in the run folder: what it used is what it shows
    files = [*given, *inherited]
    args = (run, loaded, sites or [], aspects or [], root, files, interactive, paths, chosen, probe)
    if jobs == parts.AUTO:
        jobs = parts.auto_jobs(len(sites or loaded.plan.sites), len(os.sched_getaffinity(0)))
    stages = [[pytest_command(*args)]] if jobs <= 1 or interactive or probe else _parallel(args, jobs)
    secrets = redact.for_plan(loaded.plan, {**os.environ, **(env or {})})
    log = None if interactive else _RedactedLog(run.dir / "pytest.log", secrets)
    interrupted = False
    codes: list[int] = []
    lock = lifetime.RunLock(run.dir).acquire()  # held by the children too: "still running" until all are gone
    # The run folder is shown before the child starts; progress is read from it, never from the child.
    watch = contextlib.ExitStack()
    if not interactive:  # an interactive run has the terminal: its questions are not interleaved
        watch.enter_context(progress.watching(run, secrets.text))
    try:
        for stage in stages:
            children = _start(stage, root, env, log, lock)
            interrupted, done = _wait(children)
            codes += done
            if interrupted or any(c not in FINISHED for c in done):
                break  # what is left of the run is not started: its tests stay planned, not run
    finally:
        if log:
            log.close()
        watch.close()  # one last look: what landed just before the end is shown before the verdict
        try:
            discard_partial(run)  # a write the child never finished (killed, disk full) is no result
            rc = _exit_code(codes)
            run = finish_run(run, complete=not interrupted and rc in FINISHED)
        finally:
            lock.release()
    return Outcome(run, interrupted, rc)
