"""The process-lifetime mechanism on its own, with real processes and no hospital (fast).

A stand-in CLI starts a pytest session the way `rehearsal.runner` does (parent-death signal,
``-p rehearsal.lifetime``, the run lock passed on); the session's test starts grandchildren
in process groups of their own, as Locust and Playwright's browser do. ``kill -9`` of the
stand-in: within 5 s no process of the tree is left, and the run lock is free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from rehearsal import lifetime
from tests.sockets import descendants

CLI = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    from pathlib import Path
    from rehearsal import lifetime

    run_dir = Path(sys.argv[1])
    lock = lifetime.RunLock(run_dir).acquire()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "rehearsal.lifetime",
           "--rehearsal-parent-pid", str(os.getpid()), str(run_dir / "test_sleeps.py")]
    proc = subprocess.Popen(cmd, cwd=run_dir, pass_fds=(lock.fd,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, preexec_fn=lifetime.die_with_parent(signal.SIGTERM))
    lock.note_child(proc.pid)
    proc.wait()
    """
)

SESSION = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path

    def test_sleeps():
        here = Path(__file__).parent
        for i in range(2):  # like Locust and Chromium: own process groups, no parent-death signal
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], process_group=0)
        (here / "started").write_text("yes")
        time.sleep(300)
        (here / "finished").write_text("the session outlived its CLI")
    """
)


def alive(pids: set[int]) -> list[int]:
    left = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.append(pid)
    return left


def start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    (tmp_path / "test_sleeps.py").write_text(SESSION, encoding="utf-8")
    cli = subprocess.Popen([sys.executable, "-c", CLI, str(tmp_path)])
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert cli.poll() is None and time.monotonic() < deadline, "the session did not start"
        time.sleep(0.05)
    tree = descendants(cli.pid)
    assert len(tree) >= 4, tree  # stand-in CLI, pytest, two grandchildren
    return cli, tree


def test_kill_9_of_the_cli_leaves_no_process_of_the_session(tmp_path):
    cli, tree = start(tmp_path)
    assert lifetime.holders(tmp_path) is not None  # the run is alive: its lock is held
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    time.sleep(5)
    assert alive(tree) == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in alive(tree)]
    assert not (tmp_path / "finished").exists()
    assert lifetime.holders(tmp_path) is None  # nobody holds the run any more
    assert lifetime.still_running(tmp_path, grace_s=0) is None


def test_sigterm_to_a_live_cli_session_stops_it_like_ctrl_c(tmp_path):
    """A SIGTERM to the session while its CLI lives is an interruption, not a tree kill: the CLI
    is still there to record it."""
    cli, tree = start(tmp_path)
    session = next(p for p in tree if p != cli.pid and b"pytest" in Path(f"/proc/{p}/cmdline").read_bytes())
    os.kill(session, signal.SIGTERM)
    assert cli.wait(timeout=60) == 0
    assert session not in alive(tree)
    for pid in alive(tree):  # the grandchildren are the session's to stop on a normal end; not ours here
        os.kill(pid, signal.SIGKILL)


def test_die_with_parent_kills_a_child_whose_parent_is_already_gone(tmp_path):
    """The race the parent-death signal alone loses: the parent dies before the child sets it."""
    script = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        from rehearsal import lifetime
        pre = lifetime.die_with_parent()
        pid = os.fork()
        if pid == 0:  # the grandchild: its parent is gone before it asks for the signal
            time.sleep(0.5)
            pre()
            open({str(tmp_path / "survived")!r}, "w").write("yes")
            os._exit(0)
        open({str(tmp_path / "pid")!r}, "w").write(str(pid))
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    grandchild = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 30
    while alive({grandchild}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive({grandchild})
    assert not (tmp_path / "survived").exists()


def test_end_process_asks_first_kills_a_child_that_ignores_it_and_takes_an_ended_one():
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
    ended = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    ended.wait()

    assert lifetime.end_process(polite, 5.0) == -signal.SIGTERM
    assert lifetime.end_process(stubborn, 0.5) == -signal.SIGKILL  # SIGTERM ignored: killed after the grace
    assert lifetime.end_process(ended, 5.0) == 3
    assert lifetime.end_process(polite, 5.0) == -signal.SIGTERM  # twice is harmless
    stubborn.stdout.close()
