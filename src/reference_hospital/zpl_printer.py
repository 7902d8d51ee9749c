"""Simulated Zebra ZPL printers: many in one asyncio loop, one loopback TCP port each (like port 9100).

No usable ZPL printer simulator exists on PyPI or npm, so this is the peer the ZPL probe is
tested against. It answers what a wristband or label printer answers on its raw port:

- ``~HS``: three STX…ETX framed lines (line 1 field 2 paper out, field 3 paused; line 2
  field 3 head open, field 4 ribbon out), as in Zebra's programming guide;
- ``~HQES``: the error and warning bit masks (0x1 media out, 0x2 ribbon out, 0x4 head
  open, 0x10000 paused; warning 0x8 paper near end);
- ``~HI``: model, firmware, dots per millimetre, memory;
- ``^XA … ^XZ``: a label; kept in :meth:`ZplSimulator.printed` (queued while in error).

States: paper out, paused, head open, ribbon out, paper low (a warning), *silent in error*
(some printers answer nothing while in error: the probe must call that not ready) and
offline (the port stops listening: connection refused). Everything runs in one thread with
its own event loop, so thousands of printers cost one process (the hardware benchmark).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from reference_hospital.service import Service

STX, ETX = "\x02", "\x03"
DPI = {6: 152, 8: 203, 12: 300, 24: 600}
_STATUS_COMMANDS = (b"~HQES", b"~HS", b"~HI")


@dataclass
class ZplState:
    """One simulated printer: what it reports, and every label it printed."""

    port: int = 0
    model: str = "ZD510-300dpi"
    firmware: str = "V84.20.18Z"
    dpmm: int = 12
    paper_out: bool = False
    paused: bool = False
    head_open: bool = False
    ribbon_out: bool = False
    paper_low: bool = False
    silent_in_error: bool = False
    offline: bool = False
    delay_s: float = 0.0  # answer this much later, as a busy printer on a LAN would (benchmarks)
    printed: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    connections: int = 0  # connections accepted (a sweep opens one per printer)
    asked: list[str] = field(default_factory=list)  # status commands received, in order

    @property
    def in_error(self) -> bool:
        return self.paper_out or self.paused or self.head_open or self.ribbon_out

    def host_status(self) -> bytes:
        b = int
        lines = (
            f"030,{b(self.paper_out)},{b(self.paused)},1245,{len(self.queued):03d},0,0,0,000,0,0,0",
            f"001,0,{b(self.head_open)},{b(self.ribbon_out)},1,2,6,0,{len(self.queued):08d},1,000",
            "1234,0",
        )
        return "".join(f"{STX}{line}{ETX}\r\n" for line in lines).encode("ascii")

    def extended_status(self) -> bytes:
        errors = self.paper_out * 0x1 | self.ribbon_out * 0x2 | self.head_open * 0x4 | self.paused * 0x10000
        warnings = self.paper_low * 0x8
        return (
            f"{STX}\r\n  PRINTER STATUS\r\n"
            f"   ERRORS:         {int(bool(errors))} 00000000 {errors:08X}\r\n"
            f"   WARNINGS:       {int(bool(warnings))} 00000000 {warnings:08X}\r\n{ETX}\r\n"
        ).encode("ascii")

    def host_identification(self) -> bytes:
        return f"{STX}{self.model},{self.firmware},{self.dpmm},8176KB{ETX}\r\n".encode("ascii")


class ZplSimulator(Service):
    """Simulated ZPL printers on loopback; ``with ZplSimulator() as sim: sim.add("armband1", 0)``.

    ``add`` takes port 0 for a free port (see :meth:`port`); ``set_state(id, paper_out=True)``
    changes what the printer reports from its next answer on.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.printers: dict[str, ZplState] = {}
        self._servers: dict[str, asyncio.Server] = {}
        self._clients: dict[str, set[asyncio.StreamWriter]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.open_now = self.most_open = 0  # connections open at once, over every printer

    def add(self, printer_id: str, port: int = 0, **state: object) -> ZplState:
        printer = ZplState(port=port, **state)  # type: ignore[arg-type]
        self.printers[printer_id] = printer
        if self._loop is not None:
            self._call(self._listen(printer_id))
        return printer

    def port(self, printer_id: str) -> int:
        return self.printers[printer_id].port

    def printed(self, printer_id: str) -> list[str]:
        return list(self.printers[printer_id].printed)

    def set_state(self, printer_id: str, **flags: bool) -> None:
        """Change paper_out, paused, head_open, ribbon_out, paper_low, silent_in_error or offline."""
        printer = self.printers[printer_id]
        for name, value in flags.items():
            if name not in ZplState.__dataclass_fields__ or name in (
                "port",
                "printed",
                "queued",
                "connections",
                "asked",
            ):
                raise ValueError(f"unknown ZPL printer state {name!r}")
            setattr(printer, name, bool(value))
        if not printer.in_error and printer.queued:
            printer.printed.extend(printer.queued)
            printer.queued.clear()
        if self._loop is not None:
            self._call(self._listen(printer_id) if not printer.offline else self._close(printer_id))

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="zpl-simulator", daemon=True)
        self._thread.start()
        ready.wait(5)
        try:
            for printer_id in self.printers:
                self._call(self._listen(printer_id))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        for printer_id in list(self._servers):
            self._call(self._close(printer_id))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._loop = self._thread = None

    def _call(self, coro: object) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)  # type: ignore[arg-type]

    async def _listen(self, printer_id: str) -> None:
        printer = self.printers[printer_id]
        if printer_id in self._servers or printer.offline:
            return

        clients = self._clients.setdefault(printer_id, set())

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            clients.add(writer)
            printer.connections += 1
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
            try:
                await self._session(printer, reader, writer)
            finally:
                clients.discard(writer)
                self.open_now -= 1

        server = await asyncio.start_server(serve, self.host, printer.port, reuse_address=True, backlog=512)
        printer.port = server.sockets[0].getsockname()[1]
        self._servers[printer_id] = server

    async def _close(self, printer_id: str) -> None:
        server = self._servers.pop(printer_id, None)
        if server is not None:
            server.close()
            for writer in self._clients.pop(printer_id, set()):
                writer.transport.abort()  # offline: open connections drop too
            await server.wait_closed()

    async def _session(
        self, printer: ZplState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        buffer = b""
        try:
            while chunk := await reader.read(65536):
                buffer += chunk
                if printer.delay_s:
                    await asyncio.sleep(printer.delay_s)
                buffer = self._handle(printer, buffer, writer)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _handle(printer: ZplState, buffer: bytes, writer: asyncio.StreamWriter) -> bytes:
        """Answer every complete command in ``buffer``; return what is left (a partial command)."""
        while buffer:
            start = min((i for i in (buffer.find(b"~"), buffer.find(b"^XA")) if i >= 0), default=-1)
            if start < 0:
                return b""
            buffer = buffer[start:]
            if buffer.startswith(b"^XA"):
                end = buffer.find(b"^XZ")
                if end < 0:
                    return buffer
                label = buffer[: end + 3].decode("utf-8", errors="replace")
                (printer.queued if printer.in_error else printer.printed).append(label)
                buffer = buffer[end + 3 :]
                continue
            command = next((c for c in _STATUS_COMMANDS if buffer.startswith(c)), None)
            if command is None:
                if any(c.startswith(buffer) for c in _STATUS_COMMANDS):
                    return buffer  # the rest of the command is still on its way
                buffer = buffer[1:]
                continue
            buffer = buffer[len(command) :]
            printer.asked.append(command.decode())
            if printer.silent_in_error and printer.in_error:
                continue
            if command == b"~HS":
                writer.write(printer.host_status())
            elif command == b"~HQES":
                writer.write(printer.extended_status())
            else:
                writer.write(printer.host_identification())
        return buffer


__all__ = ["DPI", "ZplSimulator", "ZplState"]
