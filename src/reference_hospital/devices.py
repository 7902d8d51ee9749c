"""Every simulated device of the reference hospital, started together, faulted by site.

:class:`DeviceFleet` starts, for the loopback devices of a plan:

- IPP document printers: the existing :class:`~reference_hospital.printers.PrinterFleet`
  (one real ``ippeveprinter`` each), or, for printers whose URI names a print-server queue
  (``ipp://…/printers/QUEUE``), one private CUPS scheduler for all of them
  (:class:`~reference_hospital.print_server.PrintServer`: a region's hundreds of printers
  in one process);
- ZPL wristband and label printers (``tcp://`` URIs): one :class:`ZplSimulator`, all ports;
- SNMP agents of printers with ``snmp:``: one ``snmpsim`` per UDP port, a community each;
- workstation facts files, where the hardware check reads them.

Simulated models follow the plan's ``device_models`` (the first approved pattern, the
resolution the capabilities ask for), so the reference hospital is compatible by
construction and a fault is the only reason for NO-GO. Device faults (:data:`FAULTS`) are
applied with :meth:`DeviceFleet.set_fault` and undone with :meth:`clear_fault`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from reference_hospital.print_server import PrintServer
from reference_hospital.printers import PrinterFleet, is_loopback
from reference_hospital.service import Service
from reference_hospital.snmp_agents import SnmpAgents
from reference_hospital.workstations import WorkstationFacts
from reference_hospital.zpl_printer import ZplSimulator
from rehearsal.errors import TargetError, UsageError
from rehearsal.plan import Plan, Printer

log = logging.getLogger("reference_hospital.devices")

#: Device faults this fleet applies: name -> what it does (all are per site: NAME@SITE).
FAULTS = {
    "printer-paper-out": "every document printer of the site reports paper out (IPP media-empty, noPaper)",
    "printer-offline": "every document printer of the site stops answering IPP (a print-server queue: "
    "stopped) and reports offline over SNMP",
    "wristband-head-open": "every wristband printer of the site reports its print head open (ZPL ~HS)",
    "label-printer-offline": "every label printer of the site stops listening (connection refused)",
    "workstation-outdated": "the site's workstations report OS, browser and Citrix below the baseline",
    "toner-low": "every document printer of the site reports its black toner at 5 % (a warning)",
}
TONER_LOW_PERCENT, TONER_OK_PERCENT = 5, 75
DPMM = {"152dpi": 6, "203dpi": 8, "300dpi": 12, "600dpi": 24}


def _model_for(plan: Plan, kind: str, default: str) -> str:
    models = plan.device_models.get(kind)  # type: ignore[call-overload]
    if models and models.approved:
        return models.approved[0].replace("*", "").replace("?", "").strip() or default
    return default


def _dpmm_for(plan: Plan, kind: str) -> int:
    models = plan.device_models.get(kind)  # type: ignore[call-overload]
    for need in models.capabilities if models else []:
        for option in need.split("|"):
            if option.strip().lower() in DPMM:
                return DPMM[option.strip().lower()]
    return 12


class DeviceFleet(Service):
    """The reference hospital's devices for one plan: ``start()``, ``stop()``, ``health``, faults.

    ``plan_dir`` is the plan file's folder, against which ``workstation_facts`` is resolved
    (as the hardware check resolves it); without it facts files go to ``workdir/workstations``.
    ``ipp=False`` leaves the IPP printers to someone else (e.g. a hospital that runs its own
    PrinterFleet).
    """

    def __init__(self, plan: Plan, workdir: Path | str, *, plan_dir: Path | None = None, ipp: bool = True):
        self.plan = plan
        self.workdir = Path(workdir)
        printers = [(s.id, p) for s in plan.sites for p in s.printers]
        self.site_of = {p.id: site for site, p in printers}
        self.printers = {p.id: p for _, p in printers}
        self.ipp = PrinterFleet([p for _, p in printers], self.workdir) if ipp else None
        model = _model_for(plan, "document", "Rehearsal Simulated Document Printer")
        self.queues = PrintServer([p for _, p in printers], self.workdir, model=model) if ipp else None
        self.zpl = ZplSimulator()
        self.zpl_ids: list[str] = []
        ports: dict[int, str] = {}
        for _, p in printers:
            parts = urlsplit(p.uri)
            if parts.scheme == "tcp" and is_loopback(parts.hostname or ""):
                if parts.port in ports:
                    raise UsageError(f"printers {ports[parts.port]} and {p.id} share ZPL port {parts.port}")
                ports[parts.port or 9100] = p.id
                self.zpl_ids.append(p.id)
        by_port: dict[int, list[Printer]] = defaultdict(list)
        for _, p in printers:
            host = (p.snmp.host if p.snmp else None) or urlsplit(p.uri).hostname or ""
            if p.snmp is not None and is_loopback(host):
                by_port[p.snmp.port].append(p)
        self.snmp = {port: SnmpAgents(self.workdir / f"snmp-{port}", port) for port in by_port}
        self.snmp_of: dict[str, tuple[SnmpAgents, str]] = {}
        for port, ps in by_port.items():
            for p in ps:
                community = p.snmp.community if p.snmp else p.id
                if any(c == community for a, c in self.snmp_of.values() if a is self.snmp[port]):
                    raise UsageError(
                        f"printer {p.id}: SNMP community {community!r} is used twice on port {port}"
                    )
                self.snmp_of[p.id] = (self.snmp[port], community)
        self.workstations = WorkstationFacts(plan, plan_dir, self.workdir / "workstations")
        self.faults: set[tuple[str, str]] = set()
        self._halted: set[str] = set()
        self._lock = threading.RLock()
        self._started = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every simulator; on failure stop what started and raise (TargetError/UsageError)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            try:
                for printer_id in self.zpl_ids:
                    p = self.printers[printer_id]
                    self.zpl.add(
                        printer_id,
                        urlsplit(p.uri).port or 9100,
                        model=_model_for(self.plan, p.kind, "ZD510-300dpi"),
                        dpmm=_dpmm_for(self.plan, p.kind),
                    )
                if self.zpl_ids:
                    try:
                        self.zpl.start()
                    except OSError as exc:
                        raise TargetError(
                            f"simulated ZPL printers cannot listen: {exc.strerror or exc}"
                        ) from None
                model = _model_for(self.plan, "document", "Rehearsal Simulated Document Printer")
                for agents, community in self.snmp_of.values():
                    agents.add(community, model=model)
                for agents in self.snmp.values():  # snmpsim indexes while the IPP printers start
                    agents.workdir.mkdir(parents=True, exist_ok=True)
                    agents.start(wait=False)
                if self.queues is not None:
                    self.queues.start()
                if self.ipp is not None:
                    self.ipp.start()
                for agents in self.snmp.values():
                    agents.wait()
                self.workstations.write_all()
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop everything (safe twice, or after a failed start); halted printers are resumed first."""
        with self._lock:
            for printer_id in list(self._halted):
                self._signal_ipp(printer_id, signal.SIGCONT)
            self._halted.clear()
            if self.ipp is not None:
                self.ipp.stop()
            if self.queues is not None:
                self.queues.stop()
            self.zpl.stop()
            for agents in self.snmp.values():
                agents.stop()
            self.workstations.remove_all()
            self._started = False

    @property
    def health(self) -> dict[str, Any]:
        """What is running, for the hospital's /_reference/health."""
        return {
            "ipp": self.ipp.running if self.ipp is not None else [],
            "queues": self.queues.running if self.queues is not None else [],
            "zpl": {pid: self.zpl.port(pid) for pid in self.zpl_ids} if self._started else {},
            "snmp": {port: a.running for port, a in self.snmp.items()},
            "workstations": [str(p) for p in self.workstations.written],
            "faults": sorted(f"{name}@{site}" for name, site in self.faults),
        }

    # -- faults ------------------------------------------------------------------------------

    def set_fault(self, name: str, site: str) -> None:
        """Apply a device fault (:data:`FAULTS`) to one site's devices."""
        self._apply(name, site, True)

    def clear_fault(self, name: str, site: str) -> None:
        self._apply(name, site, False)

    def _of_kind(self, site: str, *kinds: str) -> list[Printer]:
        self.plan.site(site)  # UsageError naming the sites if unknown
        return [p for p in self.printers.values() if self.site_of[p.id] == site and p.kind in kinds]

    def _apply(self, name: str, site: str, on: bool) -> None:
        if name not in FAULTS:
            raise UsageError(f"unknown device fault {name!r} (known: {', '.join(FAULTS)})")
        with self._lock:
            documents = self._of_kind(site, "document")
            if name == "printer-paper-out":
                for p in documents:
                    if self.ipp is not None and p.id in self.ipp.running:
                        self._while_awake(p.id, lambda pid=p.id: self.ipp.set_paper_out(pid, on))  # type: ignore[union-attr]
                    self._queue_state(p.id, paper_out=on)
                    self._snmp_state(p.id, paper_out=on)
            elif name == "printer-offline":
                for p in documents:
                    self._halt_ipp(p.id, on)
                    self._queue_state(p.id, offline=on)
                    self._snmp_state(p.id, offline=on)
            elif name == "toner-low":
                for p in documents:
                    level = TONER_LOW_PERCENT if on else TONER_OK_PERCENT
                    self._while_awake(p.id, lambda pid=p.id, level=level: self._ipp_toner(pid, level))
                    self._queue_state(p.id, toner_low=on)
                    self._snmp_state(p.id, toner_percent=TONER_LOW_PERCENT if on else TONER_OK_PERCENT)
            elif name == "wristband-head-open":
                for p in self._of_kind(site, "wristband"):
                    if p.id in self.zpl_ids:
                        self.zpl.set_state(p.id, head_open=on)
            elif name == "label-printer-offline":
                for p in self._of_kind(site, "label"):
                    if p.id in self.zpl_ids:
                        self.zpl.set_state(p.id, offline=on)
            elif name == "workstation-outdated":
                self.workstations.set_outdated(site, on)
            (self.faults.add if on else self.faults.discard)((name, site))
            log.info("device fault %s@%s %s", name, site, "set" if on else "cleared")

    def _queue_state(self, printer_id: str, **state: bool) -> None:
        """A print-server queue shows the fault as a print server would: reasons, or stopped."""
        if self.queues is not None and printer_id in self.queues.running:
            self.queues.set_state(printer_id, **state)

    def _snmp_state(self, printer_id: str, **state: Any) -> None:
        if printer_id in self.snmp_of:
            agents, community = self.snmp_of[printer_id]
            agents.set_state(community, **state)

    def _running_ipp(self, printer_id: str) -> Any:
        # PrinterFleet keeps its processes private; the fault needs the process itself.
        return self.ipp._running.get(printer_id) if self.ipp is not None else None

    def _signal_ipp(self, printer_id: str, sig: signal.Signals) -> None:
        running = self._running_ipp(printer_id)
        if running is not None and running.proc.poll() is None:
            running.proc.send_signal(sig)

    def _while_awake(self, printer_id: str, change: Any) -> None:
        """Change a printer's state even while printer-offline has it halted (it stays halted)."""
        halted = printer_id in self._halted
        if halted:
            self._signal_ipp(printer_id, signal.SIGCONT)
        try:
            change()
        finally:
            if halted:
                self._signal_ipp(printer_id, signal.SIGSTOP)

    def _halt_ipp(self, printer_id: str, halt: bool) -> None:
        """Offline for IPP: the process is stopped (SIGSTOP), so connections get no answer at all."""
        if self._running_ipp(printer_id) is None:
            return
        self._signal_ipp(printer_id, signal.SIGSTOP if halt else signal.SIGCONT)
        (self._halted.add if halt else self._halted.discard)(printer_id)

    def _ipp_toner(self, printer_id: str, percent: int) -> None:
        from reference_hospital.printers import _http_get

        running = self._running_ipp(printer_id)
        if running is None:
            return
        try:  # ippeveprinter's supplies form: supply0 waste toner, supply1 black toner
            _http_get(running, "/supplies?" + urlencode({"supply0": 25, "supply1": percent}))
        except OSError as exc:
            raise TargetError(
                f"simulated printer {printer_id}: cannot set toner to {percent} %: {exc}"
            ) from None


__all__ = ["FAULTS", "DeviceFleet"]
