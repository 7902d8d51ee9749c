"""The reference hospital's document printers: one real ``ippeveprinter`` per plan printer.

A rehearsal must prove it notices a printer that is out of paper, so the printers it
probes are real IPP peers (CUPS' ``ippeveprinter``), not mocks: the probe reads the same
Get-Printer-Attributes answer it would read from a ward printer. Only printers whose URI
points at loopback with ``ipp``/``ipps`` are started (ZPL/SNMP devices have their own
simulators, and print-server queues ``/printers/QUEUE`` are print_server.py's); each gets its
URI's port, bound to loopback only.

What ippeveprinter 2.4.2 needs, learnt the hard way (see /work/shared/STACK.md):

- a D-Bus even with ``-r off``: we run one private ``dbus-daemon`` for the whole fleet and
  point ``DBUS_SYSTEM_BUS_ADDRESS`` at it (it never touches the machine's buses);
- ``-n localhost``: binds 127.0.0.1 and ::1 (``-n 127.0.0.1`` fails on its IPv6 listener),
  so it needs a loopback with IPv6, and it serves ``/ipp/print`` only;
- paper out is set through its test web form (``GET /media?…&level1=0``), which changes
  ``printer-state-reasons`` before the HTTP answer is sent; a ``-c`` script only reports
  state while a job prints.
"""

from __future__ import annotations

import asyncio
import errno
import html
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx

from reference_hospital.service import Service
from rehearsal.errors import TargetError, UsageError
from rehearsal.lifetime import die_with_parent
from rehearsal.plan import Printer
from rehearsal.probes import ProbeError
from rehearsal.probes.ipp_client import IppSession, Job, get_printer_attributes

MAKE = "Rehearsal"
SERVED_PATHS = ("/ipp/print", "/")
QUEUE_PREFIX = "/printers/"  # a print server's queue: print_server.py
BOUND_HOSTS = ("localhost", "127.0.0.1", "::1")
_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")
_SELECT = re.compile(r'<select name="(size|type|level)(\d+)">(.*?)</select>', re.S)
_OPTION = re.compile(r'<option( value="([^"]*)")?( selected)?>([^<]*)</option>')
T = TypeVar("T")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1): the hosts we simulate."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def simulated(printer: Printer) -> bool:
    """Whether the fleet runs this plan printer: an IPP URI on a loopback host, not a print-server
    queue (``/printers/QUEUE``: print_server.py serves those, many in one cupsd)."""
    parts = urlsplit(printer.uri)
    return (
        parts.scheme in ("ipp", "ipps")
        and is_loopback(parts.hostname or "")
        and not (parts.scheme == "ipp" and parts.path.startswith(QUEUE_PREFIX))
    )


def _find(program: str, given: str | None) -> str | None:
    if given:
        return given if os.access(given, os.X_OK) else None
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SEARCH_DIRS])
    return shutil.which(program, path=search)


def _short_dir(workdir: Path) -> tuple[Path, bool]:
    """A directory for the bus socket; unix socket paths are limited to ~107 bytes."""
    wanted = workdir / "dbus"
    if len(str(wanted / "bus")) < 100:
        wanted.mkdir(parents=True, exist_ok=True)
        return wanted, False
    return Path(tempfile.mkdtemp(prefix="rehearsal-dbus-")), True


class _Running:
    """One started ippeveprinter and where it writes its log."""

    def __init__(self, printer: Printer, proc: subprocess.Popen[bytes], log_path: Path, log: IO[bytes]):
        self.printer, self.proc, self.log_path, self.log = printer, proc, log_path, log
        parts = urlsplit(printer.uri)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 631
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.uri = f"ipp://{host}:{self.port}/ipp/print"  # what ippeveprinter serves

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        useful = [line for line in lines if "Avahi" not in line]
        return useful[-1] if useful else ""


class PrinterFleet(Service):
    """Simulated IPP printers for the loopback printers of a plan, started and stopped together.

    ``with PrinterFleet(printers, workdir) as fleet:`` starts them and waits until each one
    answers Get-Printer-Attributes; ``fleet.set_paper_out(id, True)`` makes one report
    ``media-empty``. Printers on other hosts (real devices) and non-IPP URIs are skipped
    (see :attr:`skipped`). Spool folders and logs go under ``workdir/printers/<id>/``.
    """

    def __init__(
        self,
        printers: list[Printer],
        workdir: Path,
        *,
        start_timeout: float = 10.0,
        ippeveprinter: str | None = None,
        dbus_daemon: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.printers = [p for p in printers if simulated(p)]
        self.skipped = [p for p in printers if not simulated(p)]
        self.start_timeout = start_timeout
        self._programs = {"ippeveprinter": ippeveprinter, "dbus-daemon": dbus_daemon}
        self._running: dict[str, _Running] = {}
        self._dbus: subprocess.Popen[bytes] | None = None
        self._dbus_dir: tuple[Path, bool] | None = None
        self._dbus_log: IO[bytes] | None = None
        self._lock = threading.RLock()
        ports: dict[int, str] = {}
        for printer in self.printers:
            parts = urlsplit(printer.uri)
            if (parts.hostname or "").lower() not in BOUND_HOSTS:
                raise UsageError(
                    f"printer {printer.id}: simulated printers listen on 127.0.0.1 and ::1 only, "
                    f"not {parts.hostname} (uri {printer.uri})"
                )
            if parts.path not in SERVED_PATHS and parts.path != "":
                raise UsageError(
                    f"printer {printer.id}: the simulated printer answers at /ipp/print only, "
                    f"not {parts.path} (uri {printer.uri})"
                )
            port = parts.port or 631
            if port in ports:
                raise UsageError(
                    f"printers {ports[port]} and {printer.id} share port {port}; "
                    "the reference hospital runs one simulated printer per port"
                )
            ports[port] = printer.id

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the private bus and every printer; return once each answers (or raise TargetError)."""
        with self._lock:
            if self._running or not self.printers:
                return
            ippeve = _find("ippeveprinter", self._programs["ippeveprinter"])
            if ippeve is None:
                raise TargetError(
                    "ippeveprinter not found: install the Debian package cups-ipp-utils "
                    "(apt-get install cups-ipp-utils) to simulate the plan's printers"
                )
            dbus = _find("dbus-daemon", self._programs["dbus-daemon"])
            if dbus is None:
                raise TargetError(
                    "dbus-daemon not found: install the Debian package dbus (ippeveprinter needs it)"
                )
            for printer in self.printers:
                _check_port_free(printer)
            try:
                address = self._start_dbus(dbus)
                for printer in self.printers:
                    self._running[printer.id] = self._start_printer(ippeve, printer, address)
                self._wait_until_answering()
            except BaseException:
                self.stop()
                raise

    def _start_dbus(self, program: str) -> str:
        self._dbus_dir = _short_dir(self.workdir)
        socket_path = self._dbus_dir[0] / "bus"
        socket_path.unlink(missing_ok=True)
        address = f"unix:path={socket_path}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._dbus_log = open(self.workdir / "dbus-daemon.log", "wb")  # closed in stop()
        self._dbus = subprocess.Popen(
            [program, "--session", f"--address={address}", "--nofork", "--nopidfile"],
            stdin=subprocess.DEVNULL,
            stdout=self._dbus_log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),  # kill -9 of the hospital takes the bus along
        )
        deadline = time.monotonic() + min(self.start_timeout, 5.0)
        while not socket_path.exists():
            if self._dbus.poll() is not None or time.monotonic() > deadline:
                raise TargetError(
                    f"private dbus-daemon for the simulated printers did not start "
                    f"(see {self.workdir / 'dbus-daemon.log'})"
                )
            time.sleep(0.02)
        return address

    def _start_printer(self, program: str, printer: Printer, bus: str) -> _Running:
        home = self.workdir / "printers" / printer.id
        for sub in ("spool", "tls"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        port = urlsplit(printer.uri).port or 631
        model = f"Simulated {printer.kind.capitalize()} Printer"
        command = [program, "-n", "localhost", "-p", str(port), "-r", "off"]
        command += ["-d", str(home / "spool"), "-K", str(home / "tls"), "-M", MAKE, "-m", model]
        command += ["-f", "application/pdf,image/pwg-raster,image/urf"]
        if printer.location:
            command += ["-l", printer.location]
        command.append(printer.id)
        log_path = home / "ippeveprinter.log"
        log = open(log_path, "wb")  # closed in stop()
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus, "DBUS_SESSION_BUS_ADDRESS": bus}
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent(),  # kill -9 of the hospital takes its printers along
        )
        return _Running(printer, proc, log_path, log)

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        waiting = dict(self._running)
        while waiting:
            for printer_id, running in list(waiting.items()):
                if running.proc.poll() is not None:
                    why = running.last_log_line() or f"exit status {running.proc.returncode}"
                    raise TargetError(
                        f"simulated printer {printer_id} could not start on port {running.port}: {why}"
                    )
                if self._answers_as(running):
                    del waiting[printer_id]
            if not waiting:
                return
            if time.monotonic() > deadline:
                slow = ", ".join(f"{pid} (port {r.port})" for pid, r in waiting.items())
                raise TargetError(f"simulated printers not answering after {self.start_timeout:g} s: {slow}")
            time.sleep(0.05)

    def _answers_as(self, running: _Running) -> bool:
        """True once *our* process answers (another server on the port would give another name)."""
        try:
            attrs = _get_attributes(running, ["printer-name"], timeout=0.5)
        except ProbeError:
            return False
        return attrs.get("printer-name") == [running.printer.id] and running.proc.poll() is None

    def stop(self) -> None:
        """Stop every printer and the bus; safe to call twice, or after a failed start."""
        with self._lock:
            procs = [r.proc for r in self._running.values()]
            if self._dbus is not None:
                procs.append(self._dbus)
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 3.0
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.05, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=3.0)
            for running in self._running.values():
                running.log.close()
            if self._dbus_log is not None:
                self._dbus_log.close()
            if self._dbus_dir is not None and self._dbus_dir[1]:
                shutil.rmtree(self._dbus_dir[0], ignore_errors=True)
            self._running.clear()
            self._dbus = self._dbus_log = self._dbus_dir = None

    # -- state --------------------------------------------------------------------------

    @property
    def running(self) -> list[str]:
        """Ids of the printers that are started (in plan order)."""
        return [p.id for p in self.printers if p.id in self._running]

    def _started(self, printer_id: str) -> _Running:
        running = self._running.get(printer_id)
        if running is None:
            known = ", ".join(self.running) or "none started"
            raise UsageError(f"no simulated printer {printer_id!r} (running: {known})")
        return running

    def set_paper_out(self, printer_id: str, out: bool) -> None:
        """Empty (``out=True``) or refill every tray; IPP shows ``media-empty`` on return.

        Uses ippeveprinter's media form: every tray keeps its size and type, its level
        becomes 0 sheets (paper out) or the largest level the form offers.
        """
        with self._lock:
            running = self._started(printer_id)
            where = f"simulated printer {printer_id} on port {running.port}"
            try:
                form = _http_get(running, "/media")
                query = urlencode(_media_form(form, out))
                if not query:
                    raise TargetError(f"{where}: its media form has no trays to set")
                _http_get(running, f"/media?{query}")
                reasons = _get_attributes(running, ["printer-state-reasons"], timeout=3.0)
            except (ProbeError, httpx.HTTPError) as exc:
                raise TargetError(f"{where}: cannot set paper {'out' if out else 'in'}: {exc}") from None
            empty = any(str(r).startswith("media-empty") for r in reasons.get("printer-state-reasons", []))
            if empty != out:
                raise TargetError(f"{where}: asked for paper {'out' if out else 'in'}, it reports {reasons}")

    def jobs(self, printer_id: str, which: str = "all", timeout: float = 3.0) -> list[Job]:
        """The jobs one simulated printer took (IPP Get-Jobs): what a test checks after printing."""
        running = self._started(printer_id)
        return ipp_jobs(running.uri, f"simulated printer {printer_id} on port {running.port}", which, timeout)


def _check_port_free(printer: Printer) -> None:
    """Fail fast and clearly, before any process starts, when a printer's port is taken."""
    port = urlsplit(printer.uri).port or 631
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ippeveprinter does
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise TargetError(
                        f"simulated printer {printer.id} cannot start: "
                        f"port {port} on {host} is already in use"
                    ) from None
                raise TargetError(
                    f"simulated printer {printer.id} cannot bind {host} port {port} ({exc.strerror}); "
                    "ippeveprinter listens on 127.0.0.1 and ::1, so loopback needs IPv6"
                ) from None


def _media_form(page: str, out: bool) -> dict[str, str]:
    """Form fields for ippeveprinter's /media page: sizes and types as selected, levels changed."""
    fields: dict[str, str] = {}
    for kind, index, options_html in _SELECT.findall(page):
        options = [
            (html.unescape(value if has_value else text), bool(selected))
            for has_value, value, selected, text in _OPTION.findall(options_html)
        ]
        if kind == "level":
            levels = [int(v) for v, _ in options if v.lstrip("-").isdigit()]
            fields[f"level{index}"] = "0" if out or not levels else str(max(levels))
        else:
            fields[f"{kind}{index}"] = next((v for v, selected in options if selected), "")
    return fields


def _blocking(operation: Coroutine[Any, Any, T]) -> T:
    """Run an IPP operation to its end from synchronous code: on a loop of its own in a thread of
    its own, since start() may be called from inside a running event loop."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="printer-fleet") as pool:
        return pool.submit(asyncio.run, operation).result()


def _http_get(running: _Running, path: str, timeout: float = 3.0) -> str:
    """A page of ippeveprinter's web interface (its media and supplies forms)."""
    host = f"[{running.host}]" if ":" in running.host else running.host
    with httpx.Client(timeout=timeout, trust_env=False, verify=False) as client:
        response = client.get(f"http://{host}:{running.port}{path}")
    if response.status_code != 200:
        raise httpx.HTTPStatusError(
            f"GET {path} answered HTTP {response.status_code}", request=response.request, response=response
        )
    return response.text


def ipp_jobs(uri: str, where: str, which: str = "all", timeout: float = 3.0) -> list[Job]:
    """A blocking Get-Jobs on a printer's or queue's URI; an IPP failure is one line naming ``where``."""

    async def ask() -> list[Job]:
        async with IppSession(uri, timeout) as printer:
            return await printer.get_jobs(which)

    try:
        return _blocking(ask())
    except ProbeError as exc:
        raise TargetError(f"{where}: {exc}") from None


def _get_attributes(running: _Running, requested: list[str], timeout: float) -> dict[str, list[Any]]:
    """A blocking Get-Printer-Attributes (start() may run inside an event loop)."""
    return _blocking(get_printer_attributes(running.uri, timeout, requested))


__all__ = ["PrinterFleet", "ipp_jobs", "is_loopback", "simulated"]
