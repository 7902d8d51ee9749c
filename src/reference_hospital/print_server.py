"""The reference hospital's print servers: one private CUPS scheduler, one queue per plan printer.

Why: a region has hundreds of document printers, and one ``ippeveprinter`` per printer costs
a process each (~8 MB resident, and the start of every one of them). Hospitals mostly print
through print servers anyway, so a plan printer whose URI names a queue —
``ipp://127.0.0.1:PORT/printers/QUEUE`` — is served by a real CUPS scheduler (Debian
``cups-daemon``), one ``cupsd`` for every such printer of the plan however many ports they
use (a port per site's print server, say): one process, ~9 MB for 80 queues, up in well under
a second. Each queue keeps its own state and answers on its own URI (as on any CUPS server,
also on the server's other ports: harmless, nothing asks there); printers on their own port
at ``/ipp/print`` stay one ippeveprinter each (printers.py).

What CUPS 2.4.2 does here, learnt by trying:

- it runs from a folder of its own as root or not (``cupsd -f -c … -s …``, as CUPS' own
  test suite does), loads every queue from a ``printers.conf`` written before it starts (no
  ``lpadmin`` per queue), and each queue needs a PPD for its make and model: a raw queue
  reports "Local Raw Printer" whatever ``MakeModel`` says, and the plan's approved models
  would refuse it. The PPD passes PDF through untouched (``cupsFilter2 … -``);
- a queue's state is set with IPP, as an administrator would: CUPS-Add-Modify-Printer takes
  ``printer-state-reasons`` (paper out is ``media-empty-error``, toner low
  ``toner-low-report``), Pause-Printer stops the queue (``printer-state`` stopped, reason
  ``paused``): what an offline printer looks like through a print server.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from reference_hospital import cupsd
from reference_hospital.printers import QUEUE_PREFIX, _blocking, _find, ipp_jobs, is_loopback
from reference_hospital.service import Service
from reference_hospital.sockets import bind_socket
from rehearsal.errors import TargetError, UsageError
from rehearsal.lifetime import die_with_parent, end_process
from rehearsal.plan import Printer
from rehearsal.probes import ProbeError
from rehearsal.probes.ipp_client import (
    KEYWORD,
    OP_CUPS_ADD_MODIFY_PRINTER,
    OP_PAUSE_PRINTER,
    OP_RESUME_PRINTER,
    IppSession,
    Job,
)

DEFAULT_MODEL = "Rehearsal Simulated Document Printer"
_QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,127}")
HOW_TO_INSTALL = "install the Debian package cups-daemon (apt-get install cups-daemon)"


def served(printer: Printer) -> bool:
    """Whether the print server runs this plan printer: ``ipp://`` on loopback at ``/printers/QUEUE``."""
    parts = urlsplit(printer.uri)
    return parts.scheme == "ipp" and is_loopback(parts.hostname or "") and parts.path.startswith(QUEUE_PREFIX)


def queue_of(printer: Printer) -> str:
    return urlsplit(printer.uri).path[len(QUEUE_PREFIX) :].rstrip("/")


def _listen_hosts(host: str) -> list[str]:
    """What cupsd binds for a URI's host: ``localhost`` may resolve to either loopback."""
    host = host.lower()
    if host == "localhost":
        return ["127.0.0.1", "[::1]"]
    return [f"[{host}]" if ":" in host else host]


def _ppd(model: str) -> str:
    """A PPD that gives the queue its make and model and takes PDF as it is (no filters needed)."""
    return "\n".join(
        [
            '*PPD-Adobe: "4.3"',
            '*FormatVersion: "4.3"',
            '*FileVersion: "1.0"',
            "*LanguageVersion: English",
            "*LanguageEncoding: ISOLatin1",
            '*PCFileName: "REHEARSL.PPD"',
            f'*Manufacturer: "{model.split()[0]}"',
            f'*Product: "({model})"',
            f'*ModelName: "{model}"',
            f'*ShortNickName: "{model[:31]}"',
            f'*NickName: "{model}"',
            '*PSVersion: "(3010.000) 0"',
            '*LanguageLevel: "3"',
            "*ColorDevice: False",
            '*cupsFilter2: "application/pdf application/vnd.cups-pdf 0 -"',
            "*OpenUI *PageSize/Media Size: PickOne",
            "*OrderDependency: 10 AnySetup *PageSize",
            "*DefaultPageSize: A4",
            '*PageSize A4/A4: "<</PageSize[595 842]>>setpagedevice"',
            "*CloseUI: *PageSize",
            "*DefaultPageRegion: A4",
            '*PageRegion A4/A4: "<</PageSize[595 842]>>setpagedevice"',
            "*DefaultImageableArea: A4",
            '*ImageableArea A4/A4: "18 36 577 806"',
            "*DefaultPaperDimension: A4",
            '*PaperDimension A4/A4: "595 842"',
            "",
        ]
    )


def _conf_text(value: str) -> str:
    """One line of printers.conf: no line breaks, nothing outside printable ASCII/Latin-1."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()


class PrintServer(Service):
    """A private ``cupsd`` serving the plan's queue printers; ``start()``/``stop()``, state per queue.

    ``with PrintServer(printers, workdir) as server:`` starts it and returns once every queue
    answers Get-Printer-Attributes on its own URI with its own name; printers it does not
    serve (see :func:`served`) are skipped. Everything it writes is under ``workdir/cups``.
    """

    def __init__(
        self,
        printers: list[Printer],
        workdir: Path,
        *,
        model: str = DEFAULT_MODEL,
        start_timeout: float = 10.0,
    ) -> None:
        self.workdir = (Path(workdir) / "cups").resolve()  # cupsd refuses relative paths
        self.printers = [p for p in printers if served(p)]
        self.model = re.sub(r'[^ -~]|"', "", model).strip() or DEFAULT_MODEL
        self.start_timeout = start_timeout
        self.queue = {p.id: queue_of(p) for p in self.printers}
        self._state: dict[str, dict[str, bool]] = {p.id: {} for p in self.printers}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.RLock()
        seen: dict[str, str] = {}
        for printer in self.printers:
            name = self.queue[printer.id]
            if not _QUEUE.fullmatch(name):
                raise UsageError(
                    f"printer {printer.id}: queue {name!r} in {printer.uri} is not a print-server queue name "
                    "(letters, digits, '.', '_' and '-', at most 127)"
                )
            if name.lower() in seen:  # CUPS queue names are case-insensitive
                raise UsageError(f"printers {seen[name.lower()]} and {printer.id} both use queue {name!r}")
            seen[name.lower()] = printer.id
            if not urlsplit(printer.uri).port:
                raise UsageError(f"printer {printer.id}: {printer.uri} needs an explicit port")

    def addresses(self) -> list[tuple[str, int]]:
        """Every (host, port) the server listens on, once each."""
        found: dict[tuple[str, int], None] = {}
        for printer in self.printers:
            parts = urlsplit(printer.uri)
            for host in _listen_hosts(parts.hostname or ""):
                found[(host, parts.port or 631)] = None
        return list(found)

    def ports(self) -> list[int]:
        return sorted({port for _, port in self.addresses()})

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Write the configuration and every queue, start cupsd, return once each queue answers."""
        with self._lock:
            if self._proc is not None or not self.printers:
                return
            cupsd = _find("cupsd", None)
            if cupsd is None:
                raise TargetError(
                    f"cupsd not found: {HOW_TO_INSTALL} to serve the plan's print-server queues"
                )

            for host, port in self.addresses():  # one line naming the port, before anything runs
                bind_socket(host.strip("[]"), port, f"the print server (ipp://{host}:{port})").close()
            conf, files = self._write()
            self._log = open(self.workdir / "cupsd.out", "wb")  # closed in stop()
            try:
                self._proc = subprocess.Popen(
                    [cupsd, "-f", "-c", str(conf), "-s", str(files)],
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent(),  # kill -9 of the hospital takes cupsd along
                )
                _blocking(self._wait_until_answering())
            except BaseException:
                self.stop()
                raise

    def _write(self) -> tuple[Path, Path]:
        root = self.workdir
        listen = [f"{host}:{port}" for host, port in self.addresses()]
        conf, files = cupsd.write_config(root, listen, log_level="warn")
        (root / "printers.conf").unlink(missing_ok=True)
        ppd = _ppd(self.model)
        lines = ["# Printer configuration file for CUPS v2.4.2 (written by the reference hospital)"]
        for number, printer in enumerate(self.printers, 1):
            name = self.queue[printer.id]
            (root / "ppd" / f"{name}.ppd").write_text(ppd, encoding="latin-1")
            lines += [
                f"<Printer {name}>",
                f"PrinterId {number}",
                f"Info {_conf_text(printer.id)}",
                f"Location {_conf_text(printer.location or '')}",
                f"MakeModel {self.model}",
                "DeviceURI file:///dev/null",
                "State Idle",
                "StateTime 0",
                "Type 4",
                "Accepting Yes",
                "Shared No",
                "JobSheets none none",
                "OpPolicy default",
                "ErrorPolicy retry-job",
                "</Printer>",
            ]
        (root / "printers.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return conf, files

    async def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        waiting = list(self.printers)
        while waiting:
            waiting = await self._still_waiting(waiting, deadline)
            if waiting:
                await asyncio.sleep(0.05)

    async def _still_waiting(self, waiting: list[Printer], deadline: float) -> list[Printer]:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise TargetError(
                f"the print server (cupsd) stopped at start (exit {self._proc.returncode}): "
                f"{self.last_error()}"
            )
        answers = await asyncio.gather(*(self._answers_as(p) for p in waiting))
        waiting = [p for p, ok in zip(waiting, answers, strict=True) if not ok]
        if waiting and time.monotonic() > deadline:
            slow = ", ".join(p.id for p in waiting[:5]) + (" …" if len(waiting) > 5 else "")
            raise TargetError(
                f"print-server queues not answering after {self.start_timeout:g} s: {slow} "
                f"({self.last_error()})"
            )
        return waiting

    async def _answers_as(self, printer: Printer) -> bool:
        """True once *this* queue answers on its URI (another server on the port would not know it)."""
        try:
            async with IppSession(printer.uri, 1.0) as session:
                attrs = await session.get_printer_attributes(["printer-name"])
        except ProbeError:
            return False
        return attrs.get("printer-name") == [self.queue[printer.id]]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s; safe to call twice or after a failed start."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                end_process(proc, 3.0)
            if self._log is not None:
                self._log.close()
                self._log = None
            for state in self._state.values():
                state.clear()

    @property
    def running(self) -> list[str]:
        """Ids of the printers served (in plan order), while cupsd runs."""
        alive = self._proc is not None and self._proc.poll() is None
        return [p.id for p in self.printers] if alive else []

    def last_error(self) -> str:
        return cupsd.last_error(self.workdir)

    # -- state ----------------------------------------------------------------------------

    def _printer(self, printer_id: str) -> Printer:
        for printer in self.printers:
            if printer.id == printer_id and printer.id in self.running:
                return printer
        raise UsageError(
            f"no print-server queue for printer {printer_id!r} (running: {', '.join(self.running)})"
        )

    def set_state(
        self,
        printer_id: str,
        *,
        paper_out: bool | None = None,
        offline: bool | None = None,
        toner_low: bool | None = None,
    ) -> None:
        """Change one queue's state (None leaves that part as it is); IPP shows it on return."""
        with self._lock:
            printer = self._printer(printer_id)
            state = self._state[printer_id]
            changes = {"paper_out": paper_out, "offline": offline, "toner_low": toner_low}
            state.update({k: v for k, v in changes.items() if v is not None})
            reasons = [
                reason
                for key, reason in (("paper_out", "media-empty-error"), ("toner_low", "toner-low-report"))
                if state.get(key)
            ] or ["none"]

            async def change() -> None:
                async with IppSession(printer.uri, 3.0) as session:
                    await session.request(
                        OP_CUPS_ADD_MODIFY_PRINTER,
                        printer_attributes=[(KEYWORD, "printer-state-reasons", reasons)],
                    )
                    if offline is not None:
                        await session.request(OP_PAUSE_PRINTER if offline else OP_RESUME_PRINTER)

            try:
                _blocking(change())
            except ProbeError as exc:
                raise TargetError(
                    f"print-server queue {printer_id} ({printer.uri}): cannot change its state: {exc}"
                ) from None

    def jobs(self, printer_id: str, which: str = "all", timeout: float = 3.0) -> list[Job]:
        """The jobs one queue took (IPP Get-Jobs)."""
        printer = self._printer(printer_id)
        return ipp_jobs(printer.uri, f"print-server queue {printer_id} ({printer.uri})", which, timeout)

    def health(self) -> dict[str, Any]:
        return {"ok": bool(self.running) or not self.printers, "queues": len(self.running)}


__all__ = ["PrintServer", "queue_of", "served"]
