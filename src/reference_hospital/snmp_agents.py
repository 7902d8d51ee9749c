"""Simulated printer SNMP agents: one real ``snmpsim`` process, one community per printer, one UDP port.

The SNMP probe is tested against snmpsim (PyPI ``snmpsim``, with ``pysmi>=2,<3``), the
agent simulator network-monitoring projects test against, serving Printer-MIB data we
write as ``.snmprec`` files: ``<data>/<community>.snmprec`` answers for that community, so
thousands of printers share one port (STACK.md). A state change rewrites the printer's
file; snmpsim notices a changed modification time (whole seconds) and re-indexes it, so
each rewrite gets a strictly newer mtime.

As root snmpsim insists on ``--process-user``/``--process-group``; we pass the current user,
so the data folder needs no special permissions.
"""

from __future__ import annotations

import grp
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reference_hospital.service import Service
from rehearsal.errors import TargetError, UsageError
from rehearsal.lifetime import die_with_parent, end_process

PROGRAM = "snmpsim-command-responder"
PRINTER_DEVICE_TYPE = "1.3.6.1.2.1.25.3.1.5"
# prtAlertCode values used below (RFC 3805 PrtAlertCodeTC)
ALERT_DOOR_OPEN, ALERT_JAM, ALERT_PAPER_LOW, ALERT_PAPER_EMPTY = 501, 8, 807, 808
ALERT_TONER_EMPTY, ALERT_TONER_LOW, ALERT_OFFLINE = 1101, 1104, 1


@dataclass(frozen=True)
class SnmpPrinter:
    """The state one simulated agent reports; change it with :meth:`SnmpAgents.set_state`."""

    model: str = "Rehearsal Simulated Document Printer"
    languages: tuple[int, ...] = (54, 3, 6)  # PDF, PCL, PostScript
    toner_percent: int = 80
    paper_out: bool = False
    paper_low: bool = False
    door_open: bool = False
    jammed: bool = False
    offline: bool = False
    printing: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # OID -> "tag|value", for odd agents in tests
    device_index: int = 1  # the printer's hrDeviceIndex (another device comes first on some agents)


def _bits(printer: SnmpPrinter) -> bytes:
    toner_low = 0 < printer.toner_percent < 20
    first = (
        printer.paper_low * 0x80
        | printer.paper_out * 0x40
        | toner_low * 0x20
        | (printer.toner_percent == 0) * 0x10
        | printer.door_open * 0x08
        | printer.jammed * 0x04
        | printer.offline * 0x02
    )
    return bytes([first, 0])


def snmprec(printer: SnmpPrinter, name: str) -> str:
    """The agent's MIB as snmpsim ``.snmprec`` text (``OID|tag|value``, sorted by OID)."""
    blocking = (
        printer.paper_out
        or printer.door_open
        or printer.jammed
        or printer.offline
        or not printer.toner_percent
    )
    warning = printer.paper_low or 0 < printer.toner_percent < 20
    device_status = 5 if blocking else (3 if warning else 2)
    printer_status = 1 if printer.offline else (4 if printer.printing else 3)
    alerts: list[tuple[int, int, int, str]] = []  # severity, group, code, description
    for on, severity, group, code, text in (
        (printer.offline, 3, 5, ALERT_OFFLINE, "Printer offline"),
        (printer.paper_out, 3, 8, ALERT_PAPER_EMPTY, "Tray 2 empty"),
        (printer.paper_low, 4, 8, ALERT_PAPER_LOW, "Tray 2 low"),
        (printer.door_open, 3, 6, ALERT_DOOR_OPEN, "Front door open"),
        (printer.jammed, 3, 13, ALERT_JAM, "Paper jam in tray 2"),
        (printer.toner_percent == 0, 3, 11, ALERT_TONER_EMPTY, "Black cartridge empty"),
        (0 < printer.toner_percent < 20, 4, 11, ALERT_TONER_LOW, "Black cartridge low"),
    ):
        if on:
            alerts.append((severity, group, code, text))
    d = printer.device_index
    rows: dict[str, str] = {
        "1.3.6.1.2.1.1.1.0": f"4|{printer.model}",
        "1.3.6.1.2.1.1.2.0": "6|1.3.6.1.4.1.99999.1",
        "1.3.6.1.2.1.1.3.0": "67|123456",
        "1.3.6.1.2.1.1.5.0": f"4|{name}",
        f"1.3.6.1.2.1.25.3.2.1.2.{d}": f"6|{PRINTER_DEVICE_TYPE}",
        f"1.3.6.1.2.1.25.3.2.1.3.{d}": f"4|{printer.model}",
        f"1.3.6.1.2.1.25.3.2.1.5.{d}": f"2|{device_status}",
        f"1.3.6.1.2.1.25.3.5.1.1.{d}": f"2|{printer_status}",
        f"1.3.6.1.2.1.25.3.5.1.2.{d}": f"4x|{_bits(printer).hex()}",
        f"1.3.6.1.2.1.43.11.1.1.4.{d}.1": "2|3",
        f"1.3.6.1.2.1.43.11.1.1.5.{d}.1": "2|3",
        f"1.3.6.1.2.1.43.11.1.1.6.{d}.1": "4|Black Toner Cartridge",
        f"1.3.6.1.2.1.43.11.1.1.8.{d}.1": "2|100",
        f"1.3.6.1.2.1.43.11.1.1.9.{d}.1": f"2|{printer.toner_percent}",
    }
    for i, family in enumerate(printer.languages, start=1):
        rows[f"1.3.6.1.2.1.43.15.1.1.2.{d}.{i}"] = f"2|{family}"
    for i, (severity, group, code, text) in enumerate(alerts, start=1):
        rows[f"1.3.6.1.2.1.43.18.1.1.2.{d}.{i}"] = f"2|{severity}"
        rows[f"1.3.6.1.2.1.43.18.1.1.4.{d}.{i}"] = f"2|{group}"
        rows[f"1.3.6.1.2.1.43.18.1.1.7.{d}.{i}"] = f"2|{code}"
        rows[f"1.3.6.1.2.1.43.18.1.1.8.{d}.{i}"] = f"4|{text}"
    rows.update(printer.extra)
    ordered = sorted(rows.items(), key=lambda item: tuple(int(n) for n in item[0].split(".")))
    return "".join(f"{oid}|{value}\n" for oid, value in ordered)


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# snmpsim keeps at most 31 data files open and reopens (re-indexes) the others on every
# request: with a community per printer that costs ~12 ms a request. Raised here, with the
# file limit it needs, before snmpsim's own main() runs.
LAUNCH = (
    "import resource, sys\n"
    "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n"
    "from snmpsim.datafile import DataFile\n"
    "DataFile.max_queue_entries = max(31, (hard - 64) // 3)\n"
    "from snmpsim.commands.responder import main\n"
    "sys.argv[0] = 'snmpsim-command-responder'\n"
    "sys.exit(main())\n"
)


def _program() -> list[str] | None:
    if importlib.util.find_spec("snmpsim") is not None:
        return [sys.executable, "-c", LAUNCH]
    found = shutil.which(PROGRAM)
    return [found] if found else None


class SnmpAgents(Service):
    """Many simulated printer agents on one UDP port: ``with SnmpAgents(dir, port) as agents: …``."""

    def __init__(self, workdir: Path, port: int = 0, host: str = "127.0.0.1", start_timeout: float = 60.0):
        self.workdir = Path(workdir)
        self.host, self.port = host, port or free_udp_port(host)
        self.data_dir = self.workdir / "snmp-data"
        self.start_timeout = start_timeout
        self.printers: dict[str, SnmpPrinter] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._mtimes: dict[str, int] = {}

    def add(self, community: str, **state: Any) -> None:
        """Declare an agent (before start: snmpsim reads its communities once, when it starts)."""
        if self._proc is not None:
            raise UsageError(f"SNMP agent {community}: add agents before start (snmpsim reads them once)")
        self.printers[community] = SnmpPrinter(**state)

    def set_state(self, community: str, **changes: Any) -> SnmpPrinter:
        if community not in self.printers:
            raise UsageError(f"no simulated SNMP agent {community!r} (agents: {', '.join(self.printers)})")
        self.printers[community] = replace(self.printers[community], **changes)
        if self.data_dir.exists():
            self._write(community)
        return self.printers[community]

    def _write(self, community: str) -> None:
        path = self.data_dir / f"{community}.snmprec"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(snmprec(self.printers[community], community), encoding="utf-8")
        # snmpsim compares whole-second mtimes: every version gets a newer one than the last
        mtime = max(int(time.time()) + 1, self._mtimes.get(community, 0) + 1)
        os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
        self._mtimes[community] = mtime

    def start(self, *, wait: bool = True) -> None:
        """Write every community's data and start snmpsim; ``wait=False`` returns once it runs,
        and :meth:`wait` later (snmpsim indexes for seconds: the hospital starts cupsd meanwhile)."""
        if not self.printers:
            raise UsageError("no SNMP agents to simulate: add() at least one community before start()")
        program = _program()
        if program is None:
            raise TargetError(
                "snmpsim not found: pip install snmpsim 'pysmi>=2,<3' to simulate SNMP printers"
            )
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)  # also creates workdir
        for community in self.printers:
            self._write(community)
        log_path = self.workdir / "snmpsim.log"
        command = [
            *program,
            f"--data-dir={self.data_dir}",
            f"--cache-dir={self.workdir / 'snmp-cache'}",
            f"--agent-udpv4-endpoint={self.host}:{self.port}",
            f"--logging-method=file:{log_path}",
            "--log-level=error",
            "--max-var-binds=256",
        ]
        if os.geteuid() == 0:
            command += [
                f"--process-user={pwd.getpwuid(os.geteuid()).pw_name}",
                f"--process-group={grp.getgrgid(os.getegid()).gr_name}",
            ]
        self._log = open(self.workdir / "snmpsim.out", "wb")  # closed in stop()
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),  # kill -9 of the hospital takes the agents along
        )
        if wait:
            self.wait()

    def wait(self) -> None:
        """Return once the started agent answers; on failure stop it and raise TargetError."""
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def _wait_until_answering(self) -> None:
        """Ask for sysName over UDP until the agent answers (it indexes every file first)."""
        community = next(iter(self.printers), "public")
        request = _get_request(community, "1.3.6.1.2.1.1.5.0")
        deadline = time.monotonic() + self.start_timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise TargetError(
                        f"snmpsim could not start on UDP {self.host}:{self.port} "
                        f"(exit {self._proc.returncode}; see {self.workdir / 'snmpsim.out'})"
                    )
                s.sendto(request, (self.host, self.port))
                try:
                    s.recvfrom(65536)
                    return
                except OSError:
                    continue
        raise TargetError(
            f"snmpsim on UDP {self.host}:{self.port} not answering after {self.start_timeout:g} s"
        )

    def stop(self) -> None:
        if self._proc is not None:
            end_process(self._proc, 5.0)
            self._log.close()
            self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


def _ber(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _get_request(community: str, oid: str) -> bytes:
    """A minimal SNMPv2c GET (BER by hand: the start-up check needs no SNMP library)."""
    parts = [int(n) for n in oid.split(".")]
    encoded = bytes([40 * parts[0] + parts[1]])
    for n in parts[2:]:
        chunk = [n & 0x7F]
        while n > 0x7F:
            n >>= 7
            chunk.insert(0, 0x80 | (n & 0x7F))
        encoded += bytes(chunk)
    varbind = _ber(0x30, _ber(0x06, encoded) + b"\x05\x00")
    pdu = _ber(0xA0, _ber(0x02, b"\x01") + _ber(0x02, b"\x00") + _ber(0x02, b"\x00") + _ber(0x30, varbind))
    return _ber(0x30, _ber(0x02, b"\x01") + _ber(0x04, community.encode()) + pdu)


__all__ = ["SnmpAgents", "SnmpPrinter", "free_udp_port", "snmprec"]
