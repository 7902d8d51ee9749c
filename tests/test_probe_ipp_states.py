"""Every IPP readiness condition read from a real peer that is put into that condition.

Why a second file next to test_probe_ipp.py: there the peer is ippeveprinter as the
reference hospital starts it, which can show paper out and low supplies but never
``stopped``, ``not accepting jobs`` or ``processing``. Here:

- a private CUPS scheduler (tests/cups_peer.py) is paused/resumed and rejects/accepts with
  CUPS' own administration programs, and carries printer-state-reasons with each severity
  suffix (``-error``, ``-warning``, ``-report``) set through CUPS-Add-Modify-Printer;
- ippeveprinter runs a job command (``-c``) that holds the job, so the printer really is
  ``processing``, and sets printer-state-reasons itself from the command's ``STATE:`` lines
  (cover-open, media-jam, toner-empty, …), exactly as a printer's firmware would; its supply
  levels (set through its /supplies form) become toner-low/-empty and waste-toner reasons.

Each test asserts the exact reading, then puts the peer back and asserts the reading
changes back, so a probe that ignored the condition (or never cleared it) fails.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cups_peer import CupsPeer

from rehearsal.plan import Printer
from rehearsal.probes.ipp import PrinterReadiness, get_printer_attributes, probe_printer
from rehearsal.reference.printers import PrinterFleet, _http_get
from rehearsal.reference.printing import send_ipp, simple_pdf

TIMEOUT = 2.0


def probe(uri: str) -> PrinterReadiness:
    return asyncio.run(probe_printer(uri, TIMEOUT))


def raw_reasons(uri: str) -> list[Any]:
    """printer-state-reasons exactly as the peer sent them (suffixes included)."""
    attrs = asyncio.run(get_printer_attributes(uri, TIMEOUT, ["printer-state-reasons"]))
    return attrs["printer-state-reasons"]


def probe_until(
    uri: str, wanted: Callable[[PrinterReadiness], bool], within: float = 5.0
) -> PrinterReadiness:
    """Probe until ``wanted`` holds (the peer applies some changes asynchronously).

    Returns the last reading either way, so the caller's exact assertions show what the
    probe read when the peer never got there.
    """
    deadline = time.monotonic() + within
    while True:
        reading = probe(uri)
        if wanted(reading) or time.monotonic() > deadline:
            return reading
        time.sleep(0.02)


def free_port() -> int:
    """A port free on 127.0.0.1 and ::1 (ippeveprinter binds both)."""
    while True:
        with socket.socket() as v4:
            v4.bind(("127.0.0.1", 0))
            port = int(v4.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET6) as v6:
                    v6.bind(("::1", port))
            except OSError:
                continue
            return port


# --- CUPS: stopped, not accepting, and reasons with each severity suffix ---------------------


@pytest.fixture(scope="module")
def cups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CupsPeer]:
    with CupsPeer(tmp_path_factory.mktemp("cups")) as peer:
        peer.add_queue("ward1")
        yield peer
    assert not peer.running


@pytest.fixture
def ward1(cups: CupsPeer) -> Iterator[str]:
    """The queue's URI; whatever a test did to it is undone afterwards."""
    uri = cups.uri("ward1")
    yield uri
    cups.resume("ward1")
    cups.accept("ward1")
    cups.set_reasons("ward1", [])


def assert_ready_idle(reading: PrinterReadiness) -> None:
    assert reading.error is None, reading.error
    assert reading.state == "idle"
    assert reading.accepting_jobs is True
    assert reading.reasons == ()
    assert reading.problems == [] and reading.warnings == []
    assert reading.ready


def test_fresh_cups_queue_is_idle_accepting_and_ready(ward1: str) -> None:
    reading = probe(ward1)
    assert_ready_idle(reading)
    assert reading.name == "ward1"
    assert reading.make_and_model == "Local Raw Printer"
    assert "application/pdf" in reading.formats


def test_paused_queue_is_stopped_and_not_ready_until_resumed(cups: CupsPeer, ward1: str) -> None:
    cups.pause("ward1", "toner change")
    stopped = probe(ward1)
    assert stopped.state == "stopped"
    assert stopped.reasons == ("paused",)
    assert stopped.state_message == "toner change"
    assert stopped.accepting_jobs is True  # paused is not rejecting
    assert not stopped.ready
    assert stopped.problems == ["stopped: printer-state is stopped (toner change)", "paused: printer paused"]

    cups.resume("ward1")
    assert_ready_idle(probe(ward1))


def test_rejecting_queue_is_not_ready_until_it_accepts(cups: CupsPeer, ward1: str) -> None:
    cups.reject("ward1", "moving to ward 2")
    rejecting = probe(ward1)
    assert rejecting.accepting_jobs is False
    assert rejecting.state == "idle" and rejecting.reasons == ()
    assert not rejecting.ready
    assert rejecting.problems == ["not accepting jobs"]

    cups.accept("ward1")
    assert_ready_idle(probe(ward1))


def test_paused_and_rejecting_reports_both(cups: CupsPeer, ward1: str) -> None:
    cups.pause("ward1", "service visit")
    cups.reject("ward1", "ward closed")  # CUPS shows the latest message
    both = probe(ward1)
    assert both.state == "stopped" and both.accepting_jobs is False
    assert both.problems == [
        "stopped: printer-state is stopped (ward closed)",
        "not accepting jobs",
        "paused: printer paused",
    ]

    cups.resume("ward1")
    assert probe(ward1).problems == ["not accepting jobs"]
    cups.accept("ward1")
    assert_ready_idle(probe(ward1))


@pytest.mark.parametrize(
    ("sent", "reason", "problems", "warnings"),
    [
        # a known blocking reason blocks whatever its severity
        ("cover-open-error", "cover-open", ["cover-open: cover open"], []),
        ("media-jam-warning", "media-jam", ["media-jam: paper jam"], []),
        ("media-empty-report", "media-empty", ["media-empty: paper out"], []),
        ("toner-empty", "toner-empty", ["toner-empty: toner empty"], []),
        ("offline-report", "offline", ["offline: printer offline"], []),
        # a known warning is a warning, unless the printer calls it an error
        ("toner-low-warning", "toner-low", [], ["toner-low: toner low"]),
        ("marker-supply-low-report", "marker-supply-low", [], ["marker-supply-low: ink or toner low"]),
        ("toner-low-error", "toner-low", ["toner-low: reported as an error by the printer"], []),
        # an unknown reason: its suffix decides
        (
            "com.vendor-fuser-fault-error",
            "com.vendor-fuser-fault",
            ["com.vendor-fuser-fault: reported as an error by the printer"],
            [],
        ),
        ("developer-low-report", "developer-low", [], ["developer-low: reported by the printer"]),
        ("com.vendor-note-warning", "com.vendor-note", [], ["com.vendor-note: reported by the printer"]),
    ],
)
def test_reason_suffix_is_stripped_and_its_severity_read(
    cups: CupsPeer, ward1: str, sent: str, reason: str, problems: list[str], warnings: list[str]
) -> None:
    cups.set_reasons("ward1", [sent])
    assert raw_reasons(ward1) == [sent]  # the peer really sent the suffix
    reading = probe(ward1)
    assert reading.reasons == (reason,)
    assert reading.error_reasons == ((reason,) if sent.endswith("-error") else ())
    assert reading.problems == problems
    assert reading.warnings == warnings
    assert reading.ready is (not problems)

    cups.set_reasons("ward1", [])
    assert_ready_idle(probe(ward1))


def test_same_reason_with_two_suffixes_is_read_once(cups: CupsPeer, ward1: str) -> None:
    cups.set_reasons("ward1", ["media-low-report", "media-low-warning", "cover-open-error"])
    reading = probe(ward1)
    assert reading.reasons == ("media-low", "cover-open")
    assert reading.problems == ["cover-open: cover open"]
    assert reading.warnings == ["media-low: paper low"]


# --- ippeveprinter with a job command: processing, and reasons set by the printer itself --------

JOB_COMMAND = """#!{python}
# Started by ippeveprinter for each job (-c). Copies the lines the test writes into the FIFO to
# stderr, where ippeveprinter reads STATE: lines; the job is processing until the test sends END.
import os, signal, sys
signal.alarm(60)  # never outlive a broken test run by more than a minute
with open({pid_file!r}, "w") as f:
    f.write(str(os.getpid()))
while True:
    with open({fifo!r}) as control:
        for line in control:
            if line.strip() == "END":
                sys.exit(0)
            sys.stderr.write(line)
            sys.stderr.flush()
"""


class HeldJob:
    """The job a job command is holding; :meth:`say` hands the command lines for its stderr."""

    def __init__(self, fifo: Path, pid_file: Path) -> None:
        self.fifo, self.pid_file = fifo, pid_file

    def say(self, line: str, within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:  # ENXIO: the command has not opened its end (yet)
                if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def command_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None


@pytest.fixture(scope="module")
def command_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrinterFleet, HeldJob]]:
    """One ippeveprinter whose jobs run our job command (through a wrapper passing ``-c``)."""
    home = tmp_path_factory.mktemp("ippeve-command")
    ippeve = shutil.which("ippeveprinter", path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert ippeve, "ippeveprinter not found: install cups-ipp-utils"
    fifo, pid_file = home / "control", home / "command.pid"
    os.mkfifo(fifo)
    command = home / "job-command"
    command.write_text(JOB_COMMAND.format(python=sys.executable, fifo=str(fifo), pid_file=str(pid_file)))
    wrapper = home / "ippeveprinter-with-command"
    wrapper.write_text(f'#!/bin/sh\nexec {ippeve} -c {command} "$@"\n')
    for script in (command, wrapper):
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    printer = Printer(id="ward-held", kind="document", uri=f"ipp://127.0.0.1:{free_port()}/ipp/print")
    with PrinterFleet([printer], home / "fleet", ippeveprinter=str(wrapper)) as fleet:
        yield fleet, HeldJob(fifo, pid_file)


def _start_job(uri: str, job: HeldJob, within: float = 5.0) -> None:
    """Print a job and return once its command runs (so the teardown always knows its pid)."""
    job.pid_file.unlink(missing_ok=True)
    sent = asyncio.run(send_ipp(uri, simple_pdf("Avdelning 12", ["held job"]), TIMEOUT))
    assert sent.accepted, sent.detail
    deadline = time.monotonic() + within
    while job.command_pid() is None:
        assert time.monotonic() < deadline, f"ippeveprinter did not start the job command within {within:g} s"
        time.sleep(0.01)


def _end_job(uri: str, job: HeldJob) -> None:
    """Clear the reasons and end the job, if its command still runs; wait until idle."""
    pid = job.command_pid()
    try:
        if _alive(pid):
            job.say("STATE: none")
            job.say("END")
    finally:
        _wait_gone(pid)
    probe_until(uri, lambda r: r.state == "idle")


@pytest.fixture
def held(command_fleet: tuple[PrinterFleet, HeldJob]) -> Iterator[tuple[str, HeldJob]]:
    """A job the printer is processing; afterwards reasons are cleared and the job ended.

    ippeveprinter keeps the reasons a command set after the job ends, and only a job
    command can clear them: a test that ended its job with a reason set gets one more job.
    """
    fleet, job = command_fleet
    uri = fleet.printers[0].uri
    _start_job(uri, job)
    try:
        yield uri, job
    finally:
        _end_job(uri, job)
        if probe(uri).reasons:
            _start_job(uri, job)
            _end_job(uri, job)
        after = probe(uri)
        assert after.state == "idle" and after.reasons == (), after


def _alive(pid: int | None) -> bool:
    """True while the job command runs (ended but not yet reaped by ippeveprinter counts as gone)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat_file:
            return stat_file.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int | None, within: float = 5.0) -> None:
    """The job command ends on END; kill it by its pid if it did not (never leave it behind)."""
    if pid is None:
        return
    deadline = time.monotonic() + within
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)


def test_printer_is_processing_while_the_job_prints_and_idle_after(held: tuple[str, HeldJob]) -> None:
    uri, job = held
    printing = probe_until(uri, lambda r: r.state == "processing")
    assert printing.state == "processing"
    assert printing.reasons == ()
    assert printing.problems == [] and printing.ready  # a busy printer is a working printer

    job.say("END")
    done = probe_until(uri, lambda r: r.state != "processing")
    assert done.state == "idle" and done.ready


BLOCKING_FROM_PRINTER = [
    ("cover-open", "cover-open: cover open"),
    ("media-jam", "media-jam: paper jam"),
    ("toner-empty", "toner-empty: toner empty"),
    ("marker-supply-empty", "marker-supply-empty: ink or toner empty"),
    ("media-empty", "media-empty: paper out"),
    ("media-needed", "media-needed: paper needed for a waiting job"),
    ("input-tray-missing", "input-tray-missing: input tray missing"),
    ("marker-waste-full", "marker-waste-full: waste toner container full"),
    ("spool-area-full", "spool-area-full: spool area full"),
    ("paused", "paused: printer paused"),
    ("moving-to-paused", "moving-to-paused: printer is pausing"),
]


@pytest.mark.parametrize(
    ("reason", "problem"), BLOCKING_FROM_PRINTER, ids=[r for r, _ in BLOCKING_FROM_PRINTER]
)
def test_blocking_reason_set_by_the_printer_while_processing(
    held: tuple[str, HeldJob], reason: str, problem: str
) -> None:
    uri, job = held
    assert probe_until(uri, lambda r: r.state == "processing").ready

    job.say(f"STATE: +{reason}")
    blocked = probe_until(uri, lambda r: r.reasons != ())
    assert raw_reasons(uri) == [f"{reason}-warning"]  # ippeveprinter's suffix while processing
    assert blocked.state == "processing"
    assert blocked.reasons == (reason,) and blocked.error_reasons == ()
    assert blocked.problems == [problem]
    assert not blocked.ready

    job.say(f"STATE: -{reason}")
    cleared = probe_until(uri, lambda r: r.reasons == ())
    assert cleared.reasons == () and cleared.problems == [] and cleared.ready


WARNING_FROM_PRINTER = [
    ("marker-supply-low", "marker-supply-low: ink or toner low"),
    ("toner-low", "toner-low: toner low"),
    ("media-low", "media-low: paper low"),
    ("other", "other: reported by the printer"),
]


@pytest.mark.parametrize(
    ("reason", "warning"), WARNING_FROM_PRINTER, ids=[r for r, _ in WARNING_FROM_PRINTER]
)
def test_warning_reason_set_by_the_printer_keeps_it_ready(
    held: tuple[str, HeldJob], reason: str, warning: str
) -> None:
    uri, job = held
    job.say(f"STATE: +{reason}")
    warned = probe_until(uri, lambda r: r.reasons != ())
    assert warned.state == "processing"
    assert warned.reasons == (reason,)
    assert warned.warnings == [warning]
    assert warned.problems == [] and warned.ready

    job.say(f"STATE: -{reason}")
    cleared = probe_until(uri, lambda r: r.reasons == ())
    assert cleared.warnings == [] and cleared.ready


def test_several_reasons_come_and_go_one_by_one(held: tuple[str, HeldJob]) -> None:
    uri, job = held
    job.say("STATE: media-jam,toner-empty,toner-low")  # replaces the whole set
    several = probe_until(uri, lambda r: len(r.reasons) == 3)
    assert set(several.reasons) == {"media-jam", "toner-empty", "toner-low"}
    assert sorted(several.problems) == ["media-jam: paper jam", "toner-empty: toner empty"]
    assert several.warnings == ["toner-low: toner low"]

    job.say("STATE: -media-jam")
    one_left = probe_until(uri, lambda r: "media-jam" not in r.reasons)
    assert one_left.problems == ["toner-empty: toner empty"] and not one_left.ready

    job.say("STATE: -toner-empty")
    warning_only = probe_until(uri, lambda r: "toner-empty" not in r.reasons)
    assert warning_only.problems == [] and warning_only.ready
    assert warning_only.warnings == ["toner-low: toner low"]


def test_reason_left_after_the_job_still_blocks_the_idle_printer(held: tuple[str, HeldJob]) -> None:
    uri, job = held
    job.say("STATE: +cover-open")
    probe_until(uri, lambda r: r.reasons != ())
    job.say("END")
    idle = probe_until(uri, lambda r: r.state == "idle")
    assert raw_reasons(uri) == ["cover-open-report"]  # ippeveprinter's suffix when idle
    assert idle.state == "idle" and idle.reasons == ("cover-open",)
    assert idle.problems == ["cover-open: cover open"] and not idle.ready


def test_long_warning_reason_from_the_printer_keeps_it_ready(held: tuple[str, HeldJob]) -> None:
    """ippeveprinter 2.4.2 builds ``<reason>-<suffix>`` in 32 bytes: while processing it sends
    ``marker-waste-almost-full-warnin``. The verdict must still be ready with one warning; once
    idle it sends the full ``-report`` keyword and the warning reads as usual."""
    uri, job = held
    job.say("STATE: +marker-waste-almost-full")
    warned = probe_until(uri, lambda r: r.reasons != ())
    assert warned.state == "processing"
    assert len(warned.reasons) == 1 and warned.reasons[0].startswith("marker-waste-almost-full")
    assert warned.problems == [] and warned.ready
    assert len(warned.warnings) == 1 and warned.warnings[0].startswith("marker-waste-almost-full")

    job.say("END")
    idle = probe_until(uri, lambda r: r.state == "idle")
    assert raw_reasons(uri) == ["marker-waste-almost-full-report"]
    assert idle.reasons == ("marker-waste-almost-full",)
    assert idle.warnings == ["marker-waste-almost-full: waste toner container almost full"]
    assert idle.problems == [] and idle.ready


# --- supplies on ippeveprinter: its supply levels become printer-state-reasons -------------------

SUPPLY_LEVELS = [
    # (waste toner %, black toner %) -> what the printer reports, and the verdict text
    ((25, 0), "toner-empty", ["toner-empty: toner empty"], []),
    ((25, 3), "toner-low", [], ["toner-low: toner low"]),
    (
        (95, 75),
        "marker-waste-almost-full",
        [],
        ["marker-waste-almost-full: waste toner container almost full"],
    ),
    ((100, 75), "marker-waste-full", ["marker-waste-full: waste toner container full"], []),
]


@pytest.mark.parametrize(
    ("levels", "reason", "problems", "warnings"), SUPPLY_LEVELS, ids=[r for _, r, _, _ in SUPPLY_LEVELS]
)
def test_supply_level_set_on_the_printer_is_read_as_its_reason(
    command_fleet: tuple[PrinterFleet, HeldJob],
    levels: tuple[int, int],
    reason: str,
    problems: list[str],
    warnings: list[str],
) -> None:
    fleet, _ = command_fleet
    printer = fleet.printers[0]
    running = fleet._running[printer.id]
    _http_get(running, "/supplies?" + urlencode({"supply0": levels[0], "supply1": levels[1]}))
    try:
        reading = probe(printer.uri)
        assert raw_reasons(printer.uri) == [f"{reason}-report"]
        assert reading.state == "idle" and reading.reasons == (reason,)
        assert reading.problems == problems and reading.warnings == warnings
        assert reading.ready is (not problems)
    finally:
        _http_get(running, "/supplies?" + urlencode({"supply0": 25, "supply1": 75}))
    assert_ready_idle(probe(printer.uri))
