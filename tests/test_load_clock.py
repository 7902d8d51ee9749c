"""Locust's --run-time counts from the start of the load, not from before the locustfile's imports.

gevent's loop keeps a cached time from when its hub was made; Locust schedules the end of a
headless run with ``spawn_later`` on it. A locustfile that takes longer to import than the
run lasts (ours imports the plan, pydantic and the harness; seconds on a busy machine) got a
run that ended ~50 ms after its users spawned. Here a real Locust run whose locustfile
spends 3 s importing must still last its 2 s, and without the listener it does not.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

SLOW_IMPORT = """
import time
from locust import User, constant, events, task
from rehearsal.load import restart_run_clock

started = time.monotonic()
while time.monotonic() - started < 3:  # busy, as an import is: gevent's loop does not run
    pass
if {listen}:
    events.init.add_listener(restart_run_clock)


class Idle(User):
    wait_time = constant(0.2)

    @task
    def nothing(self):
        pass
"""
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*?(Ramping to|--run-time limit reached)")


def _run_length(tmp_path: Path, listen: bool) -> float:
    locustfile = tmp_path / f"slow_import_{listen}.py"
    locustfile.write_text(SLOW_IMPORT.format(listen=listen), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "1", "-r", "1",
         "-t", "2s", "--only-summary", "--loglevel", "INFO"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    stamps = {}
    for line in done.stderr.splitlines():
        match = STAMP.match(line)
        if match:
            stamps[match.group(2)] = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
    assert set(stamps) == {"Ramping to", "--run-time limit reached"}, done.stderr[-2000:]
    return (stamps["--run-time limit reached"] - stamps["Ramping to"]).total_seconds()


@pytest.mark.parametrize("listen", [True, False], ids=["restarted-clock", "without-it"])
def test_run_time_counts_from_the_start_of_the_load(tmp_path: Path, listen: bool) -> None:
    length = _run_length(tmp_path, listen)
    if listen:
        assert length >= 1.9
    else:
        # the defect this guards against, on the pinned Locust/gevent; should a release fix it,
        # this control fails and the listener can go
        assert length < 1.0
