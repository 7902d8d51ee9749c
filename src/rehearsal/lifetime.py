"""Every process of a run dies with the run, and a run folder says whether its run is alive.

``kill -9`` of ``rehearse run`` must not leave a pytest session writing results into a run
that is already recorded as stopped (and racing the next rerun against the hospital). Three
pieces, each for one link of the chain CLI → pytest → Locust / Playwright → Chromium:

- :func:`die_with_parent` is a ``preexec_fn`` for every process the harness starts that must
  not outlive its parent: the kernel sends it a signal (``PR_SET_PDEATHSIG``) when the
  thread that started it ends, however it ends (Linux; elsewhere a no-op).
- :func:`pytest_configure` (loaded into the pytest child by ``-p rehearsal.lifetime`` with
  ``--rehearsal-parent-pid``): the pytest process gets SIGTERM from the kernel when the CLI
  dies, and a watchdog thread checks the parent pid as well (in case the main thread sits in C
  code). Either way the session kills its whole process tree — Chromium, the Playwright driver,
  Locust master and workers, whatever they started in their own process groups — with SIGKILL,
  then exits at once: no test can record a failure caused by its browser being killed.
- :class:`RunLock` is an ``flock`` on ``<run>/running.lock``, taken by the CLI and inherited by
  the pytest child: while any of them lives the lock is held, so ``rehearse report`` and
  ``rehearse rerun`` can tell a run still going from one whose processes are gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any

LOCK_FILE = "running.lock"
PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_S = 0.25
#: How long `wait_unlocked` gives a run whose CLI is gone to let go (it takes well under 1 s).
ORPHAN_GRACE_S = 10.0

try:
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: no parent-death signal; the watchdog still works
    _prctl = None


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets `sig` when the thread that starts it ends.

    Resolved before the fork (nothing is looked up in the child). If the parent is already
    gone by the time the child sets it, the child kills itself: the signal would never come.
    """
    parent = os.getpid()
    prctl = _prctl

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def end_process(proc: subprocess.Popen[Any], grace_s: float = 5.0, sig: int = signal.SIGTERM) -> int:
    """Ask a child to stop (``sig``), SIGKILL it after ``grace_s``; its exit code. Safe on one that ended.

    Why: every server and simulator we start must be gone when its ``stop()`` returns, and a
    stuck one must not make that ``stop()`` hang.
    """
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=grace_s)


def descendants(root: int) -> list[int]:
    """Every live process below `root` (not `root` itself), read from /proc; [] without /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def kill_tree_and_exit(code: int = 128 + signal.SIGTERM) -> None:
    """SIGKILL every descendant of this process, then leave at once (no cleanup, no more results).

    The tree is read first (file I/O lets other threads run, but nothing has died yet); the
    kills and the exit follow without any call that would hand the interpreter to another
    thread, so the session's main thread cannot see its browser die and record a failure.
    """
    pids = descendants(os.getpid())
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGSTOP)  # none of them can start another process now
    for pid in [*pids, *descendants(os.getpid())]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    os._exit(code)


class _Watch:
    """The pytest child's side: notice that the CLI is gone, whichever way comes first."""

    def __init__(self, parent: int) -> None:
        self.parent = parent

    def orphaned(self) -> bool:
        return os.getppid() != self.parent

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.orphaned():  # the parent-death signal (or a SIGTERM after the CLI died)
            kill_tree_and_exit()
        raise KeyboardInterrupt  # a SIGTERM while the CLI lives: stop like Ctrl-C, results kept

    def watch(self) -> None:
        while True:
            if self.orphaned():
                kill_tree_and_exit()
            time.sleep(WATCH_INTERVAL_S)


def pytest_addoption(parser: Any) -> None:
    parser.getgroup("rehearsal", "go-live rehearsal").addoption(
        "--rehearsal-parent-pid",
        metavar="PID",
        type=int,
        help="the rehearse CLI's pid: when it is gone, stop this session and everything it started",
    )


def pytest_configure(config: Any) -> None:
    parent = config.getoption("--rehearsal-parent-pid", None)
    if not parent:
        return
    watch = _Watch(int(parent))
    if watch.orphaned():
        kill_tree_and_exit()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, watch.on_sigterm)
    threading.Thread(target=watch.watch, name="rehearsal-parent-watch", daemon=True).start()


class RunLock:
    """``<run>/running.lock``, held (``flock``) while the run's CLI or its pytest child lives.

    The CLI takes it before starting pytest and passes the descriptor on (``fd``, for
    ``pass_fds``); the kernel releases it when the last holder dies, however it dies. The file
    says which pids held it, for messages.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> RunLock:
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the run's life)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    @property
    def fd(self) -> int:
        assert self._file is not None
        return self._file.fileno()

    def note_child(self, pid: int) -> None:
        """Add the pytest child's pid to the file, so a message can name it."""
        if self._file is not None:
            self._file.write(f"{pid}\n")
            self._file.flush()

    def release(self) -> None:
        """Let go and remove the file (only the CLI calls this, after its child has ended)."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._file.close()
        self._file = None


def holders(run_dir: Path) -> list[int] | None:
    """The pids recorded in a held run lock, or None when no live process holds it."""
    path = Path(run_dir) / LOCK_FILE
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read()
            return [int(p) for p in text.split() if p.isdigit()]
        except OSError:
            return None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def still_running(run_dir: Path, grace_s: float = ORPHAN_GRACE_S) -> list[int] | None:
    """The live holders of the run's lock, or None once the run has no process left.

    A run whose CLI is gone is ending (its session kills itself within a second): that is
    waited for up to `grace_s`, so a report or rerun right after a ``kill -9`` sees the end.
    """
    deadline = time.monotonic() + grace_s
    while True:
        pids = holders(run_dir)
        if pids is None:
            return None
        cli_alive = bool(pids) and _alive(pids[0])
        if cli_alive or time.monotonic() > deadline:
            return [p for p in pids if _alive(p)] or pids
        time.sleep(0.05)
