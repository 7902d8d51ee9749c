"""ZPL readiness probe for wristband and label printers: ``~HS``, ``~HQES`` and ``~HI`` on the raw port.

A Zebra printer on TCP 9100 answers ``~HS`` with three STX…ETX framed lines: line 1 field 2
is *paper out* and field 3 *paused*; line 2 field 3 is *head open* and field 4 *ribbon out*.
``~HQES`` gives the same as error/warning bit masks plus warnings such as paper near end;
``~HI`` gives the model and the resolution (dots per mm) that compatibility is judged on.
Some printers say nothing at all while in error, so silence within the timeout means not
ready. Replies can arrive split over several packets: we read until the frames we expect
are complete. One connection per printer, the commands one after another; a sweep asks
``~HS`` alone (and ``~HI`` when the plan judges model or resolution), see :func:`probe_zpl`.

    query(host, port, command, frames, timeout) -> list[str]      raises ProbeError
    probe_zpl(uri, timeout)                     -> ZplReadiness   never raises for the wire
    print_label(uri, zpl, timeout)              -> None           raises ProbeError
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from rehearsal.devtext import clean
from rehearsal.probes import ProbeError, ProbeTimeout, ProtocolError, Unreachable

DEFAULT_PORT = 9100
DPI = {6: 152, 8: 203, 12: 300, 24: 600}
STX, ETX = b"\x02", b"\x03"
MAX_REPLY = 64 * 1024
COUNT = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also takes '²', which int() refuses
# ~HQES bits (Zebra programming guide): errors and warnings that matter for readiness
ERROR_BITS = {
    0x1: "media out",
    0x2: "ribbon out",
    0x4: "head open",
    0x8: "cutter fault",
    0x10: "printhead over temperature",
    0x20: "motor over temperature",
    0x40: "bad printhead element",
    0x80: "printhead detection error",
    0x10000: "paused",
    0x400000: "paper feed error",
}
WARNING_BITS = {
    0x1: "media needs calibration",
    0x2: "clean printhead",
    0x4: "replace printhead",
    0x8: "paper near end",
}


@dataclass(frozen=True)
class ZplReadiness:
    """What one ZPL printer said (or why it said nothing); ``ready`` is the verdict a check asserts."""

    uri: str
    reachable: bool = False
    paper_out: bool | None = None
    paused: bool | None = None
    head_open: bool | None = None
    ribbon_out: bool | None = None
    formats_in_buffer: int | None = None
    error_mask: int | None = None  # ~HQES errors, None when the printer does not support ~HQES
    warning_mask: int | None = None
    model: str = ""
    firmware: str = ""
    dpmm: int | None = None
    notes: tuple[str, ...] = ()  # commands that went unanswered after ~HS did
    error: str | None = None
    elapsed_s: float = 0.0

    @property
    def make_and_model(self) -> str:
        return self.model

    @property
    def dpi(self) -> int | None:
        return DPI.get(self.dpmm, round(self.dpmm * 25.4)) if self.dpmm else None

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What compatibility rules are matched against: ``zpl`` and the resolution (``300dpi``)."""
        if not self.reachable or self.error:
            return ()
        return ("zpl", f"{self.dpi}dpi") if self.dpi else ("zpl",)

    @property
    def problems(self) -> list[str]:
        if self.error:
            return [self.error]
        found = []
        for flag, text in (
            (self.paper_out, "paper-out: out of labels/paper"),
            (self.head_open, "head-open: print head open"),
            (self.ribbon_out, "ribbon-out: ribbon out"),
            (self.paused, "paused: printer paused"),
        ):
            if flag:
                found.append(text)
        mask = self.error_mask or 0
        already = {0x1: self.paper_out, 0x2: self.ribbon_out, 0x4: self.head_open, 0x10000: self.paused}
        for bit, text in ERROR_BITS.items():
            if mask & bit and not already.get(bit):
                found.append(f"error: {text} (~HQES)")
        return found

    @property
    def warnings(self) -> list[str]:
        mask = self.warning_mask or 0
        return [f"{text} (~HQES)" for bit, text in WARNING_BITS.items() if mask & bit] + list(self.notes)

    @property
    def ready(self) -> bool:
        return self.reachable and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ready": self.ready,
            "problems": self.problems,
            "warnings": self.warnings,
            "capabilities": list(self.capabilities),
            "dpi": self.dpi,
        }


def address(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    if parts.scheme not in ("tcp", "zpl") or not parts.hostname:
        raise ProbeError(f"not a ZPL printer URI: {uri!r} (expected tcp://host:9100)")
    try:
        return parts.hostname, parts.port or DEFAULT_PORT
    except ValueError:
        raise ProbeError(f"bad port in {uri!r}") from None


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        raise Unreachable(f"connection refused at {host}:{port}") from None
    except OSError as exc:
        raise Unreachable(
            f"{(exc.strerror or str(exc) or type(exc).__name__).lower()} at {host}:{port}"
        ) from None


async def _frames(reader: asyncio.StreamReader, count: int, where: str, command: str) -> list[str]:
    """Read until ``count`` STX…ETX frames arrived (they may come split over many packets)."""
    data = b""
    while data.count(ETX) < count:
        try:
            chunk = await reader.read(4096)
        except ConnectionError as exc:  # a reset (RST) while we read: the printer dropped us
            reason = exc.strerror or exc
            raise ProtocolError(
                f"{where} dropped the connection while answering {command} ({reason})"
            ) from None
        if not chunk:
            raise ProtocolError(f"{where} closed the connection before answering {command}")
        data += chunk
        if len(data) > MAX_REPLY:
            raise ProtocolError(f"{where} sent more than {MAX_REPLY} bytes for {command}")
    frames = []
    for raw in data.split(ETX)[:count]:
        start = raw.find(STX)
        if start < 0:
            raise ProtocolError(f"{where} answered {command} without STX framing: {raw[:40]!r}")
        frames.append(raw[start + 1 :].decode("latin-1"))
    return frames


async def query(host: str, port: int, command: str, frames: int, timeout: float) -> list[str]:
    """Send one command on a fresh connection and read its framed answer."""
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _connect(host, port)
    except TimeoutError:
        raise Unreachable(f"no connection to {where} within {timeout:g} s") from None
    try:
        async with asyncio.timeout(timeout):
            await _send(writer, command, where)
            return await _frames(reader, frames, where, command)
    except TimeoutError:
        raise ProbeTimeout(f"no answer to {command} from {where} within {timeout:g} s") from None
    finally:
        writer.close()


async def _send(writer: asyncio.StreamWriter, command: str, where: str) -> None:
    """Write one command; a printer that reset the connection meanwhile is a bad reply, not a crash."""
    try:
        writer.write(command.encode("utf-8"))
        await writer.drain()
    except ConnectionError as exc:
        what = command if len(command) <= 8 else "the label"
        raise ProtocolError(f"{where} dropped the connection before {what} ({exc.strerror or exc})") from None


def _flags(line: str, where: str, positions: Iterable[int]) -> list[bool]:
    fields = [f.strip() for f in line.split(",")]
    flags = []
    for i in positions:
        if i >= len(fields):
            raise ProtocolError(f"{where} answered ~HS with a short line: {line!r}")
        if fields[i] not in ("0", "1"):
            raise ProtocolError(f"{where} answered ~HS with an unexpected flag {fields[i]!r} in {line!r}")
        flags.append(fields[i] == "1")
    return flags


def parse_host_status(frames: list[str], where: str = "printer") -> dict[str, Any]:
    """The ~HS answer as flags; field positions from Zebra's programming guide."""
    paper_out, paused = _flags(frames[0], where, (1, 2))
    head_open, ribbon_out = _flags(frames[1], where, (2, 3))
    fields = frames[0].split(",")
    buffered = int(fields[4]) if len(fields) > 4 and COUNT.fullmatch(fields[4].strip()) else None
    return {
        "paper_out": paper_out,
        "paused": paused,
        "head_open": head_open,
        "ribbon_out": ribbon_out,
        "formats_in_buffer": buffered,
    }


def parse_extended_status(frame: str) -> tuple[int | None, int | None]:
    """The ~HQES answer as (error mask, warning mask); None where a line is missing."""
    masks: dict[str, int] = {}
    for line in frame.splitlines():
        name, _, rest = line.strip().partition(":")
        parts = rest.split()
        if name in ("ERRORS", "WARNINGS") and len(parts) == 3:
            try:
                masks[name] = int(parts[1], 16) << 32 | int(parts[2], 16)
            except ValueError:
                continue
    return masks.get("ERRORS"), masks.get("WARNINGS")


def parse_identification(frame: str) -> tuple[str, str, int | None]:
    """The ~HI answer: model, firmware (each one clean line: the printer chose them), dots per mm."""
    fields = [f.strip() for f in frame.split(",")]
    dpmm = int(fields[2]) if len(fields) > 2 and COUNT.fullmatch(fields[2]) else None
    return clean(fields[0]), clean(fields[1]) if len(fields) > 1 else "", dpmm


async def probe_zpl(
    uri: str, timeout: float, *, identify: bool = True, extended: bool = True
) -> ZplReadiness:
    """Readiness of one ZPL printer within ``timeout`` seconds; never raises for the wire.

    ``~HS`` always; ``extended`` adds ``~HQES`` (more error bits, paper near end), ``identify``
    ``~HI`` (model, resolution). A sweep asks ``~HS`` alone unless the plan judges the model."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        host, port = address(uri)
        where = f"{host}:{port}"
        reader, writer = await _connect_within(host, port, timeout)
    except ProbeError as exc:
        return ZplReadiness(
            uri=uri, error=f"{exc.kind}: {exc}", elapsed_s=round(time.monotonic() - started, 4)
        )
    found: dict[str, Any] = {}
    notes: list[str] = []
    try:
        try:
            found = parse_host_status(await _ask(reader, writer, "~HS", 3, deadline, where), where)
        except TimeoutError:
            silent = f"connected, but no answer to ~HS from {where} within {timeout:g} s"
            raise ProbeTimeout(f"{silent} (a printer in error can stay silent)") from None
        extras: tuple[tuple[str, str], ...] = (("~HQES", "masks"),) if extended else ()
        extras += (("~HI", "identity"),) if identify else ()
        for command, key in extras:
            try:
                frames = await _ask(reader, writer, command, 1, deadline, where)
            except (TimeoutError, ProtocolError):
                notes.append(f"no answer to {command}")
                break
            if key == "masks":
                found["error_mask"], found["warning_mask"] = parse_extended_status(frames[0])
            else:
                found["model"], found["firmware"], found["dpmm"] = parse_identification(frames[0])
    except ProbeError as exc:
        return ZplReadiness(
            uri=uri,
            reachable=True,
            error=f"{exc.kind}: {exc}",
            elapsed_s=round(time.monotonic() - started, 4),
        )
    finally:
        writer.close()
    return ZplReadiness(
        uri=uri, reachable=True, notes=tuple(notes), elapsed_s=round(time.monotonic() - started, 4), **found
    )


async def _connect_within(
    host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        async with asyncio.timeout(timeout):
            return await _connect(host, port)
    except TimeoutError:
        raise Unreachable(f"no connection to {host}:{port} within {timeout:g} s") from None


async def _ask(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    command: str,
    frames: int,
    deadline: float,
    where: str,
) -> list[str]:
    async with asyncio.timeout_at(asyncio.get_running_loop().time() + max(0.0, deadline - time.monotonic())):
        await _send(writer, command, where)
        return await _frames(reader, frames, where, command)


async def print_label(uri: str, zpl: str, timeout: float) -> None:
    """Send one ``^XA…^XZ`` label and confirm the printer still answers ~HS afterwards."""
    host, port = address(uri)
    reader, writer = await _connect_within(host, port, timeout)
    try:
        await _ask(reader, writer, zpl + "~HS", 3, time.monotonic() + timeout, f"{host}:{port}")
    except TimeoutError:
        raise ProbeTimeout(
            f"{host}:{port} took the test label but did not answer ~HS within {timeout:g} s"
        ) from None
    finally:
        writer.close()


def rehearsal_label(device: str, site: str, rehearsal: str, when: str) -> str:
    """A small labelled test label (UTF-8, ^CI28) saying which rehearsal printed it and when."""
    return (
        "^XA^CI28^FO30,30^A0N,32,32^FDTESTUTSKRIFT - generalrepetition^FS"
        f"^FO30,80^A0N,28,28^FD{rehearsal} {site}/{device}^FS^FO30,120^A0N,24,24^FD{when}^FS^XZ"
    )


async def probe_all(uris: Iterable[str], timeout: float, concurrency: int = 200) -> list[ZplReadiness]:
    """Probe many ZPL printers, at most ``concurrency`` at a time; results in the order given."""
    gate = asyncio.Semaphore(concurrency)

    async def one(uri: str) -> ZplReadiness:
        async with gate:
            return await probe_zpl(uri, timeout)

    return list(await asyncio.gather(*(one(u) for u in uris)))


__all__ = [
    "ZplReadiness",
    "parse_extended_status",
    "parse_host_status",
    "parse_identification",
    "print_label",
    "probe_all",
    "probe_zpl",
    "query",
    "rehearsal_label",
]
