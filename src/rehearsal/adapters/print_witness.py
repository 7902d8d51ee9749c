"""Print witness: did the printer itself get the job? Asked of the printer, not of the EHR that sent it.

The EHR saying "skrivaren tog emot armbandet" is the sender's view; labels that worked on one
ward and not on the next were a late blocker in real go-lives. So the clinical scenario also
asks the other end, through this interface::

    witness = plan.environment.adapter("print_witness")(plan)
    mark = witness.mark(printer)                     # what the printer shows before the job
    …print from the EHR…
    witness.confirm(printer, mark, expect, within_s) -> str   (what it said; AssertionError if not)
    witness.close()

Adapters: ``reference`` (the reference hospital's simulated printers keep every label, listed
by its own admin endpoint: :mod:`rehearsal.adapters.print_witness_reference`) and ``standards``
(below: only what a printer answers by public protocols).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from rehearsal.plan import Plan, Printer
from rehearsal.probes import ProbeError, ProtocolError, Unreachable, snmp, zpl
from rehearsal.probes.ipp_client import IppSession, Job

#: prtMarkerLifeCount (Printer-MIB, RFC 3805): impressions (or length) the marker made in its life.
MARKER_LIFE_COUNT = "1.3.6.1.2.1.43.10.2.1.4"
#: IPP job states that say the printer has the job in hand (RFC 8011 §5.3.7).
IN_HAND = ("processing", "completed")
POLL_S = 0.2


@runtime_checkable
class PrintWitness(Protocol):
    """What proves a print reached the printer. Built as ``adapter(plan)``; one per scenario."""

    def mark(self, printer: Printer) -> object:
        """What the witness sees before the job (handed back to :meth:`confirm`)."""
        ...

    def confirm(self, printer: Printer, mark: object, expect: str, within_s: float = 2.0) -> str:
        """One line of what the printer said; AssertionError (in Swedish, naming the printer) if not."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Mark:
    """What a printer showed before the job: by which protocol, the number it gave (or why none)."""

    via: str  # snmp | ipp | zpl
    value: int | None
    problem: str = ""


def snmp_access(printer: Printer) -> tuple[str, int, str] | None:
    """(host, port, community) when the plan gives the printer SNMP (``snmp:`` or an ``snmp://`` URI)."""
    parts = urlsplit(printer.uri)
    if printer.snmp is not None:
        return printer.snmp.host or parts.hostname or "127.0.0.1", printer.snmp.port, printer.snmp.community
    if parts.scheme == "snmp":
        return parts.hostname or "127.0.0.1", parts.port or 161, parts.username or "public"
    return None


class StandardsPrintWitness:
    """The printer's own word, by public protocols; per printer the strongest proof it can give.

    - **SNMP page counter** (the plan gives the printer ``snmp:``, or an ``snmp://`` URI):
      ``prtMarkerLifeCount`` must have grown after the job. The only one of the three that proves
      something was *printed* (the marker moved), whatever the printer speaks for jobs; it cannot
      say *what* was printed, so a concurrent job elsewhere could stand in for ours.
    - **IPP Get-Jobs** (``ipp://``/``ipps://``): a job newer than any before must exist and reach
      ``processing`` or ``completed`` in time; ``pending`` to the end (a stopped printer),
      ``pending-held``, ``canceled`` or ``aborted`` fail with the printer's reasons. Proves the
      printer accepted and worked on a job, not what was on it (job names are the sender's).
    - **ZPL host status** (``tcp://``, no SNMP): raw port 9100 has no receipt and no job list,
      so ``~HS`` after the job must say ready (no paper out, head open, ribbon out, pause) with
      nothing held: 0 formats in the receive buffer (line 1 field 5), 0 labels remaining in the
      batch (line 2 field 9). Proves the label is not stuck in the printer, not that it arrived:
      the EHR's own receipt is the other half of that check.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.timeout = plan.environment.timeouts.device

    def close(self) -> None:
        pass

    def mark(self, printer: Printer) -> Mark:
        via = self._via(printer)
        try:
            if via == "snmp":
                return Mark(via, self._life_count(printer))
            if via == "ipp":
                jobs = self._jobs(printer)
                return Mark(via, max((j.id for j in jobs if j.id is not None), default=0))
            return Mark(via, None)
        except (ProbeError, OSError, TimeoutError) as exc:
            return Mark(via, None, _one_line(exc))

    def confirm(self, printer: Printer, mark: object, expect: str, within_s: float = 2.0) -> str:
        if not isinstance(mark, Mark):
            raise AssertionError(f"skrivaren {printer.id}: inget utgångsläge från skrivaren före jobbet")
        where = f"skrivaren {printer.id} ({printer.uri})"
        if mark.problem:
            raise AssertionError(f"{where} gick inte att fråga före jobbet ({mark.via}): {mark.problem}")
        deadline = time.monotonic() + max(within_s, self.timeout)
        if mark.via == "snmp":
            return self._counted(printer, where, mark.value or 0, deadline)
        if mark.via == "ipp":
            return self._job_in_hand(printer, where, mark.value or 0, deadline)
        return self._nothing_held(printer, where)

    # -- per protocol -----------------------------------------------------------------------

    @staticmethod
    def _via(printer: Printer) -> str:
        if snmp_access(printer) is not None:
            return "snmp"
        return "ipp" if urlsplit(printer.uri).scheme in ("ipp", "ipps") else "zpl"

    def _life_count(self, printer: Printer) -> int:
        access = snmp_access(printer)
        assert access is not None
        return asyncio.run(_read_counter(*access, self.timeout))

    def _counted(self, printer: Printer, where: str, before: int, deadline: float) -> str:
        after = before
        while True:
            try:
                after = self._life_count(printer)
            except (ProbeError, OSError, TimeoutError) as exc:
                raise AssertionError(
                    f"{where}: räkneverket svarar inte efter jobbet: {_one_line(exc)}"
                ) from None
            if after > before:
                counted = f"prtMarkerLifeCount {before} → {after}"
                return f"{printer.id} räknade {after - before} ny(a) utskrift(er) ({counted})"
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{where} har inte skrivit ut något: prtMarkerLifeCount {before} → {after} "
                    f"inom {self.timeout:g} s efter jobbet"
                )
            time.sleep(POLL_S)

    def _jobs(self, printer: Printer) -> list[Job]:
        async def ask() -> list[Job]:
            async with IppSession(printer.uri, self.timeout) as session:
                return await session.get_jobs("all")

        return asyncio.run(ask())

    def _job_in_hand(self, printer: Printer, where: str, newest: int, deadline: float) -> str:
        while True:
            try:
                new = [j for j in self._jobs(printer) if j.id is not None and j.id > newest]
            except (ProbeError, OSError, TimeoutError) as exc:
                raise AssertionError(f"{where}: Get-Jobs efter jobbet: {_one_line(exc)}") from None
            done = [j for j in new if j.state in IN_HAND]
            if done:
                job = done[-1]
                return f"{printer.id} har jobb {job.id} ({job.state}) enligt IPP Get-Jobs"
            lost = [
                j for j in new if j.state in ("canceled", "aborted", "pending-held", "processing-stopped")
            ]
            if lost or time.monotonic() > deadline:
                shown = "; ".join(f"jobb {j.id}: {j.state} {' '.join(j.reasons)}".strip() for j in new)
                raise AssertionError(
                    f"{where} har inte tagit jobbet: " + (shown or f"inget nytt jobb efter jobb {newest}")
                )
            time.sleep(POLL_S)

    def _nothing_held(self, printer: Printer, where: str) -> str:
        try:
            host, port = zpl.address(printer.uri)
            frames = asyncio.run(zpl.query(host, port, "~HS", 3, self.timeout))
            status = zpl.parse_host_status(frames, f"{host}:{port}")
        except (ProbeError, OSError, TimeoutError, ValueError) as exc:
            raise AssertionError(f"{where} svarar inte på ~HS efter jobbet: {_one_line(exc)}") from None
        problems = [name.replace("_", " ") for name in ("paper_out", "head_open", "ribbon_out", "paused")
                    if status[name]]  # fmt: skip
        held = status["formats_in_buffer"] or 0
        fields = frames[1].split(",")
        remaining = int(fields[8]) if len(fields) > 8 and zpl.COUNT.fullmatch(fields[8].strip()) else 0
        if problems or held or remaining:
            said = ", ".join(problems + [f"{held} format i bufferten", f"{remaining} etiketter kvar"])
            raise AssertionError(f"{where} är inte redo efter jobbet: {said}")
        return (
            f"{printer.id} svarar ~HS: redo, inget kvar i skrivaren (0 format i bufferten, 0 etiketter kvar)"
        )


async def _read_counter(host: str, port: int, community: str, timeout: float) -> int:
    """The first marker's prtMarkerLifeCount (GETNEXT on the column, as GETBULK with one non-repeater)."""
    try:
        ip = socket.gethostbyname(host)
    except OSError as exc:
        raise Unreachable(f"cannot resolve {host}: {exc.strerror or exc}") from None
    async with snmp.Session() as session:
        binds = await session.request(
            (ip, port), community, [MARKER_LIFE_COUNT], timeout, snmp.TRIES, bulk=(1, 0)
        )
    oid, value = binds[0] if binds else ("", None)
    if not oid.startswith(MARKER_LIFE_COUNT + ".") or not isinstance(value, int):
        raise ProtocolError(f"{host}:{port} has no prtMarkerLifeCount (Printer-MIB marker table)")
    return value


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
