"""SNMP v2c Printer-MIB readiness probe for document printers: stdlib UDP, our own small BER codec.

Two depths. A sweep asks what decides readiness, in one GET (:data:`READINESS_OIDS`:
model, ``hrDeviceStatus``, ``hrPrinterStatus``, ``hrPrinterDetectedErrorState``, row 1 of
the printer's hrDevice entry): the error bits already say paper out, toner empty, door
open, jam, offline; measured on snmpsim that costs the agent ~1.5 ms of CPU against ~7 ms
for the GETBULK below, so the agent, not the sweep, stops setting the pace. An agent
without that row (another hrDeviceIndex) is read in full instead.

In full (``detail=True``, the default; also when a plan needs supply levels or the languages
a printer speaks), what a print server's monitoring reads, in one GETBULK per printer when
the tables are short: ``sysDescr``, ``hrDeviceDescr`` and ``hrDeviceStatus``
(HOST-RESOURCES-MIB), ``hrPrinterStatus`` and ``hrPrinterDetectedErrorState`` (a bit string,
MSB first: 0x40 of the first byte is noPaper), the supplies table (``prtMarkerSupplies*``:
description, type, level, maximum), the alert table (``prtAlert*``: severity, code,
description) and the interpreter languages (``prtInterpreterLangFamily``: PDF, PCL,
PostScript …) that compatibility is judged on. A column longer than one GETBULK is followed
up (only that column); an agent that answers *tooBig* is asked again with fewer rows.

Why not pysnmp: measured on this machine, pysnmp 7 (v1arch, raw OIDs) spends ~14 ms of CPU
decoding one GETBULK answer of 80 bindings, which caps a sweep at ~70 printers/s. The BER
subset SNMPv2c needs is ~100 lines; one UDP socket (per source address) serves a whole
sweep; an answer counts only from the address and port asked, with the request's id and
community (anything else is ignored, not believed); silence is resent within the timeout
(UDP loses datagrams).

    probe_snmp(host, port, community, timeout, detail=True)  -> SnmpReadiness   never raises for the wire
    probe_all(targets, timeout, concurrency)     -> list[SnmpReadiness]
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from rehearsal.devtext import clean
from rehearsal.probes import ProbeError, ProbeTimeout, ProtocolError, Unreachable

SYS_DESCR = "1.3.6.1.2.1.1.1"
HR_DEVICE_DESCR = "1.3.6.1.2.1.25.3.2.1.3"
HR_DEVICE_STATUS = "1.3.6.1.2.1.25.3.2.1.5"
HR_PRINTER_STATUS = "1.3.6.1.2.1.25.3.5.1.1"
HR_PRINTER_ERRORS = "1.3.6.1.2.1.25.3.5.1.2"
SUPPLY = "1.3.6.1.2.1.43.11.1.1"  # .4 class .5 type .6 description .8 max capacity .9 level
INTERPRETER_LANG = "1.3.6.1.2.1.43.15.1.1.2"
ALERT = "1.3.6.1.2.1.43.18.1.1"  # .2 severity .4 group .7 code .8 description
SCALARS = (SYS_DESCR,)
FIRST_ROW = (HR_DEVICE_DESCR, HR_DEVICE_STATUS, HR_PRINTER_STATUS, HR_PRINTER_ERRORS)  # the printer's row
COLUMNS = (
    f"{SUPPLY}.5",
    f"{SUPPLY}.6",
    f"{SUPPLY}.8",
    f"{SUPPLY}.9",
    INTERPRETER_LANG,
    f"{ALERT}.2",
    f"{ALERT}.7",
    f"{ALERT}.8",
)
#: What decides a printer's readiness, asked in one GET (the printer's hrDeviceIndex is 1 on a printer):
#: model, hrDeviceStatus, hrPrinterStatus, hrPrinterDetectedErrorState.
READINESS_OIDS = (
    f"{SYS_DESCR}.0",
    f"{HR_DEVICE_DESCR}.1",
    f"{HR_DEVICE_STATUS}.1",
    f"{HR_PRINTER_STATUS}.1",
    f"{HR_PRINTER_ERRORS}.1",
)
_COLUMN_OF = (*SCALARS, *FIRST_ROW)  # the column (or scalar) of each of READINESS_OIDS, in order
MAX_REPETITIONS = 4
SNMP_V2C = 1  # the message version field of SNMPv2c (v1 is 0)
MAX_ROUNDS = 8
TRIES = 2  # sends per request within the timeout (UDP: a lost datagram is resent once)

DEVICE_STATUS = {1: "unknown", 2: "running", 3: "warning", 4: "testing", 5: "down"}
PRINTER_STATUS = {1: "other", 2: "unknown", 3: "idle", 4: "printing", 5: "warmup"}
# hrPrinterDetectedErrorState bits, MSB first (RFC 2790 + RFC 3805), and whether each blocks printing
ERROR_BITS: tuple[tuple[str, str, bool], ...] = (
    ("lowPaper", "paper low", False),
    ("noPaper", "paper out", True),
    ("lowToner", "toner low", False),
    ("noToner", "toner empty", True),
    ("doorOpen", "door open", True),
    ("jammed", "paper jam", True),
    ("offline", "printer offline", True),
    ("serviceRequested", "service requested", True),
    ("inputTrayMissing", "input tray missing", True),
    ("outputTrayMissing", "output tray missing", True),
    ("markerSupplyMissing", "toner/ink cartridge missing", True),
    ("outputNearFull", "output tray nearly full", False),
    ("outputFull", "output tray full", True),
    ("inputTrayEmpty", "an input tray is empty", False),
    ("overduePreventMaint", "preventive maintenance overdue", False),
)
ALERT_SEVERITY = {1: "other", 3: "critical", 4: "warning", 5: "warning"}
SUPPLY_TYPE = {3: "toner", 4: "waste toner", 5: "ink", 6: "ink cartridge", 9: "opc", 21: "ribbon wax"}
LANGUAGES = {3: "pcl", 6: "ps", 47: "pcl", 54: "pdf"}  # prtInterpreterLangFamily → capability


@dataclass(frozen=True)
class Supply:
    description: str
    kind: str
    level: int
    max_capacity: int

    @property
    def percent(self) -> float | None:
        """Level in percent; None when the printer reports only 'some remaining' or unknown."""
        if self.max_capacity > 0 and self.level >= 0:
            return round(100.0 * self.level / self.max_capacity, 1)
        return None


@dataclass(frozen=True)
class Alert:
    severity: str
    code: int
    description: str


@dataclass(frozen=True)
class SnmpReadiness:
    """What one printer's SNMP agent said; ``ready`` is the verdict (supplies judged by the thresholds)."""

    address: str
    reachable: bool = False
    sys_descr: str = ""
    device_descr: str = ""
    device_status: str = "unknown"
    printer_status: str = "unknown"
    error_bits: tuple[str, ...] = ()
    supplies: tuple[Supply, ...] = ()
    alerts: tuple[Alert, ...] = ()
    languages: tuple[int, ...] = ()
    error: str | None = None
    elapsed_s: float = 0.0
    warn_below: float = 20.0
    fail_below: float | None = None
    round_trips: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def make_and_model(self) -> str:
        return self.device_descr or self.sys_descr

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(LANGUAGES[f] for f in self.languages if f in LANGUAGES))

    @property
    def problems(self) -> list[str]:
        if self.error:
            return [self.error]
        found: list[str] = []
        if self.device_status in ("down", "testing"):
            found.append(f"hrDeviceStatus {self.device_status}")
        blocking = {name: text for name, text, blocks in ERROR_BITS if blocks}
        found += [f"{bit}: {blocking[bit]}" for bit in self.error_bits if bit in blocking]
        for alert in self.alerts:
            if alert.severity == "critical":
                found.append(f"alert: {alert.description or f'code {alert.code}'} (critical)")
        for supply in self.supplies:
            pct = supply.percent
            if supply.level == 0:
                found.append(f"supply: {supply.description} empty")
            elif pct is not None and self.fail_below is not None and pct < self.fail_below:
                need = f"plan requires at least {self.fail_below:g} %"
                found.append(f"supply: {supply.description} at {pct:g} % ({need})")
        return list(dict.fromkeys(found))

    @property
    def warnings(self) -> list[str]:
        notes: list[str] = []
        if self.device_status == "warning":
            notes.append("hrDeviceStatus warning")
        soft = {name: text for name, text, blocks in ERROR_BITS if not blocks}
        notes += [f"{bit}: {soft[bit]}" for bit in self.error_bits if bit in soft]
        notes += [
            f"alert: {a.description or f'code {a.code}'}" for a in self.alerts if a.severity == "warning"
        ]
        for supply in self.supplies:
            pct = supply.percent
            failing = self.fail_below is not None and pct is not None and pct < self.fail_below
            if pct is not None and 0 < pct < self.warn_below and not failing:
                notes.append(f"supply: {supply.description} at {pct:g} %")
        return notes + list(self.notes)

    @property
    def ready(self) -> bool:
        return self.reachable and not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["supplies"] = [{**asdict(s), "percent": s.percent} for s in self.supplies]
        return {
            **data,
            "ready": self.ready,
            "problems": self.problems,
            "warnings": self.warnings,
            "capabilities": list(self.capabilities),
        }


def error_bits(raw: bytes) -> tuple[str, ...]:
    """Names of the set bits of hrPrinterDetectedErrorState (MSB of the first byte first)."""
    names = []
    for i, (name, _, _) in enumerate(ERROR_BITS):
        byte, bit = divmod(i, 8)
        if byte < len(raw) and raw[byte] & (0x80 >> bit):
            names.append(name)
    return tuple(names)


class MalformedReply(ValueError):
    """The bytes are not a well-formed SNMP message (raised by :func:`decode_response`)."""


# --- BER (X.690) for SNMPv2c, just what GET/GETBULK and their responses need -------------------

_END_OF_TABLE = {0x80: "noSuchObject", 0x81: "noSuchInstance", 0x82: "endOfMibView"}


def _tlv(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _oid(oid: str) -> bytes:
    parts = [int(n) for n in oid.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for n in parts[2:]:
        chunk = [n & 0x7F]
        while n > 0x7F:
            n >>= 7
            chunk.insert(0, 0x80 | (n & 0x7F))
        body += bytes(chunk)
    return _tlv(0x06, bytes(body))


def encode_request(
    community: str, request_id: int, oids: Sequence[str], *, bulk: tuple[int, int] | None = None
) -> bytes:
    """An SNMPv2c GetRequest, or a GetBulkRequest when ``bulk=(non_repeaters, max_repetitions)``."""
    binds = _tlv(0x30, b"".join(_tlv(0x30, _oid(o) + b"\x05\x00") for o in oids))
    head = _int(request_id) + (_int(bulk[0]) + _int(bulk[1]) if bulk else _int(0) + _int(0))
    pdu = _tlv(0xA5 if bulk else 0xA0, head + binds)
    return _tlv(0x30, _int(SNMP_V2C) + _tlv(0x04, community.encode()) + pdu)


def _read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One TLV at ``pos``: (tag, body, next position)."""
    if pos + 2 > len(data):
        raise MalformedReply(f"truncated at byte {pos}")
    tag, size = data[pos], data[pos + 1]
    pos += 2
    if size & 0x80:
        n = size & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise MalformedReply(f"bad length at byte {pos}")
        size, pos = int.from_bytes(data[pos : pos + n], "big"), pos + n
    if pos + size > len(data):
        raise MalformedReply(f"value at byte {pos} runs past the end ({size} bytes)")
    return tag, data[pos : pos + size], pos + size


MAX_SUBIDENTIFIER = 2**64 - 1  # SMI allows 32 bits; beyond 64 it is garbage (and str() of it can fail)
MAX_HEADER_INT = 8  # bytes of request id, error status, error index (SMI: 32-bit integers)


def _decode_oid(body: bytes) -> str:
    if not body:
        raise MalformedReply("empty OID")
    parts = [*divmod(body[0], 40)] if body[0] < 80 else [2, body[0] - 80]
    n = 0
    for byte in body[1:]:
        n = n << 7 | (byte & 0x7F)
        if n > MAX_SUBIDENTIFIER:
            raise MalformedReply("OID sub-identifier larger than 64 bits")
        if not byte & 0x80:
            parts.append(n)
            n = 0
    return ".".join(str(p) for p in parts)


def _decode_value(tag: int, body: bytes) -> Any:
    if tag == 0x02 or tag in (0x41, 0x42, 0x43, 0x46):  # Integer, Counter32, Gauge32, TimeTicks, Counter64
        return int.from_bytes(body, "big", signed=tag == 0x02) if body else 0
    if tag in (0x04, 0x40, 0x44):  # OCTET STRING, IpAddress, Opaque
        return bytes(body)
    if tag == 0x06:
        return _decode_oid(body)
    return None  # NULL, noSuchObject, noSuchInstance, endOfMibView


class Reply(NamedTuple):
    """One decoded Response-PDU and the envelope it came in (version, community)."""

    version: int
    community: bytes
    request_id: int
    status: int
    error_index: int  # not `index`: that would shadow tuple.index
    binds: list[tuple[str, Any]]


def decode_message(data: bytes) -> Reply:
    """A Response-PDU with its envelope; end-of-table markers are None. Raises MalformedReply."""
    tag, message, _ = _read(data, 0)
    if tag != 0x30:
        raise MalformedReply(f"not an SNMP message (starts with tag 0x{tag:02x})")
    tag, version, pos = _read(message, 0)
    if tag != 0x02 or len(version) > MAX_HEADER_INT:
        raise MalformedReply("the SNMP version is not a small INTEGER")
    tag, community, pos = _read(message, pos)
    if tag != 0x04:
        raise MalformedReply(f"the community is not an OCTET STRING (tag 0x{tag:02x})")
    tag, pdu, _ = _read(message, pos)
    if tag != 0xA2:
        raise MalformedReply(f"not a Response-PDU (tag 0x{tag:02x})")
    fields = []
    pos = 0
    for _ in range(3):
        tag, body, pos = _read(pdu, pos)
        if tag != 0x02:
            raise MalformedReply(f"expected an INTEGER in the PDU header, got tag 0x{tag:02x}")
        if len(body) > MAX_HEADER_INT:
            raise MalformedReply(f"PDU header INTEGER of {len(body)} bytes")
        fields.append(int.from_bytes(body, "big", signed=True) if body else 0)
    tag, binds, _ = _read(pdu, pos)
    if tag != 0x30:
        raise MalformedReply("variable bindings are not a SEQUENCE")
    found: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(binds):
        tag, bind, pos = _read(binds, pos)
        otag, oid, vpos = _read(bind, 0)
        vtag, value, _ = _read(bind, vpos)
        if otag != 0x06:
            raise MalformedReply("variable binding without an OID")
        found.append((_decode_oid(oid), _decode_value(vtag, value)))
    number = int.from_bytes(version, "big", signed=True) if version else 0
    return Reply(number, bytes(community), fields[0], fields[1], fields[2], found)


def decode_response(data: bytes) -> tuple[int, int, int, list[tuple[str, Any]]]:
    """(request id, error status, error index, [(oid, value)]) of :func:`decode_message`."""
    reply = decode_message(data)
    return reply.request_id, reply.status, reply.error_index, reply.binds


OVERTAKEN = 2  # later answers from one agent after which an unanswered request counts as dropped


class _Agent:
    """Per agent address: the places for printers being asked, who waits for what, answer times."""

    def __init__(self, limit: int, cap: int) -> None:
        self.slots = asyncio.Semaphore(limit)  # printers being asked (given back early by a dead one)
        self.cap = asyncio.Semaphore(cap)  # printers waiting for this agent at all (given back at the end)
        self.sent = 0
        self.waiting: dict[int, Callable[[bool], None]] = {}  # send number -> that printer's release
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.answers = 0

    def release_if_silent(self, answers_then: int, release: Callable[[bool], None]) -> None:
        """After the hold time: an agent that answered nobody since is silent (or dead): let the next
        printer go. One that did answer others is busy, not dead: overtaking decides then."""
        if self.answers == answers_then:
            release(self.answers == 0)  # never answered anybody: nothing queued there, surely

    @property
    def hold(self) -> float:
        """How long a request keeps its place without an answer: srtt + 4·rttvar (RFC 6298)."""
        if self.srtt is None:
            return 0.1
        return min(1.0, max(0.05, self.srtt + 4 * self.rttvar))

    def sample(self, seconds: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, seconds / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - seconds)
            self.srtt = 0.875 * self.srtt + 0.125 * seconds

    def sending(self, release: Callable[[bool], None] | None) -> int:
        self.sent += 1
        if release is not None:
            self.waiting[self.sent] = release
        return self.sent

    def answered(self, number: int) -> None:
        self.answers += 1
        self.waiting.pop(number, None)
        for older in [n for n in self.waiting if n < number - OVERTAKEN]:
            self.waiting.pop(older)(True)


ERROR_STATUS = {1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr"}


@dataclass
class _Pending:
    """A request waiting for its answer, and what an answer must match to be taken as one."""

    future: asyncio.Future[Reply]
    address: tuple[str, int]
    community: bytes


def source_address(ip: str) -> str:
    """The local address the kernel's route to ``ip`` leaves from (loopback for loopback targets):
    a UDP connect() sends nothing, it only picks the route. Raises OSError without a route."""
    if ip.startswith("127."):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((ip, 161))
        return str(probe.getsockname()[0])


class Session:
    """UDP sockets for a whole sweep: one per local source address, shared by every printer behind it.

    An answer is taken only when it comes from the address and port the request went to and
    carries the request's id, the SNMP version and the community we sent (RFC 3416 §4.1 and
    the v1/v2c community): on a shared socket anything else (a neighbour's id, a forged
    source port, another community) is someone else's datagram, ignored while the request
    waits on until its own deadline. Request ids are random, so they cannot be guessed from
    a neighbour's. Each socket is bound to the route's own source address for its agents
    (127.0.0.1 for loopback), never to every interface.

    Our own BER codec instead of pysnmp: measured here, pysnmp spends ~14 ms of CPU on one
    GETBULK answer of 80 bindings (pyasn1), which alone would cap a sweep at ~70 printers/s.
    """

    def __init__(self, per_agent: int = 16, per_agent_cap: int = 48) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sockets: dict[str, socket.socket] = {}  # local source address -> its socket
        self._sources: dict[str, str] = {}  # agent address -> our source address for it
        self._waiting: dict[int, _Pending] = {}
        self.ignored = 0  # datagrams that answered nothing we asked (counted for tests and reviewers)
        # UDP has no back-pressure: an agent asked more than it can answer drops datagrams and
        # every drop costs a resend (a simulator serving thousands of communities on one port is
        # such an agent). So at most `per_agent` printers are asked at once per agent address.
        # A request overtaken by OVERTAKEN later answers from the same agent was dropped (an
        # unknown community, a dead printer behind a proxy): its place goes to the next printer
        # at once, while it waits on until its own timeout.
        # Released places still count against `per_agent_cap`, so an agent that only stalls (a
        # simulator starved of CPU looks silent too) never gets more than that many at once.
        self.per_agent, self.per_agent_cap = per_agent, per_agent_cap
        self._agents: dict[tuple[str, int], _Agent] = {}

    def agent(self, address: tuple[str, int]) -> _Agent:
        if address not in self._agents:
            self._agents[address] = _Agent(self.per_agent, self.per_agent_cap)
        return self._agents[address]

    async def admit(self, address: tuple[str, int]) -> tuple[Callable[[bool], None], Callable[[], None]]:
        """Wait for a place at this agent; returns (give the place back early, done with the agent)."""
        agent = self.agent(address)
        await agent.cap.acquire()
        await agent.slots.acquire()
        released = finished = False

        def release(dropped: bool = False) -> None:
            """Give the place back; ``dropped``: the agent surely does not have the request either."""
            nonlocal released, finished
            if not released:
                released = True
                agent.slots.release()
            if dropped and not finished:
                finished = True
                agent.cap.release()

        def finish() -> None:
            release(dropped=True)

        return release, finish

    async def open(self) -> Session:
        """Ready for requests on the running loop (sockets are made as agents are first asked)."""
        self._loop = asyncio.get_running_loop()
        return self

    def _socket_for(self, ip: str) -> socket.socket:
        """The socket requests to ``ip`` leave from: bound to the route's source address, shared."""
        source = self._sources.get(ip)
        if source is None:
            try:
                source = self._sources[ip] = source_address(ip)
            except OSError as exc:
                raise Unreachable(f"no route to {ip}: {exc.strerror or exc}") from None
        sock = self._sockets.get(source)
        if sock is None:
            assert self._loop is not None, "open() the session first"
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:  # many answers at once: a larger receive buffer drops fewer of them
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            except OSError:
                pass
            try:
                sock.bind((source, 0))
            except OSError as exc:
                sock.close()
                raise Unreachable(f"cannot send to {ip} from {source}: {exc.strerror or exc}") from None
            sock.setblocking(False)
            self._loop.add_reader(sock.fileno(), self._drain, sock)
            self._sockets[source] = sock
        return sock

    def local_address(self, ip: str) -> tuple[str, int]:
        """Where requests to ``ip`` leave from (address, port): never 0.0.0.0."""
        return self._socket_for(ip).getsockname()

    def _drain(self, sock: socket.socket) -> None:
        while True:
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error queued on the socket: nothing to take
                return
            self.datagram_received(data, addr)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            reply = decode_message(data)
        except MalformedReply:
            self.ignored += 1
            return  # not ours to judge here: a garbled answer is a lost answer
        pending = self._waiting.get(reply.request_id)
        if (
            pending is None
            or (addr[0], addr[1]) != pending.address
            or reply.community != pending.community
            or reply.version != SNMP_V2C
        ):
            self.ignored += 1  # a neighbour's id, another port or community: not an answer to us
            return
        del self._waiting[reply.request_id]
        if not pending.future.done():
            pending.future.set_result(reply)

    def close(self) -> None:
        for sock in self._sockets.values():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()
        for pending in self._waiting.values():
            pending.future.cancel()

    async def __aenter__(self) -> Session:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def request(
        self,
        address: tuple[str, int],
        community: str,
        oids: Sequence[str],
        timeout: float,
        tries: int,
        bulk: tuple[int, int] | None = None,
        release: Callable[[bool], None] | None = None,
    ) -> list[tuple[str, Any]]:
        """Send, resend on silence (``tries`` in all within ``timeout``), decode the answer."""
        sock = self._socket_for(address[0])
        request_id = random.randrange(1, 1 << 31)
        while request_id in self._waiting:
            request_id = random.randrange(1, 1 << 31)
        message = encode_request(community, request_id, oids, bulk=bulk)
        where = f"{address[0]}:{address[1]}"
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = _Pending(future, (address[0], address[1]), community.encode())
        agent = self.agent(address)
        number = 0
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        try:
            deadline = loop.time() + timeout
            number = agent.sending(release)
            sent, answers_then, resends = time.monotonic(), agent.answers, 0
            _send(sock, message, address)
            if release is not None:
                timer = loop.call_later(agent.hold, agent.release_if_silent, answers_then, release)
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise ProbeTimeout(
                        f"no SNMP answer from {where} (community {community!r}) within {timeout:g} s"
                    )
                try:
                    reply = await asyncio.wait_for(asyncio.shield(future), min(left, timeout / tries))
                except TimeoutError:
                    # resend when the agent answered others meanwhile (ours was lost) or we are its only
                    # question; a busy agent that answered nobody is stalled, a resend would queue twice
                    lost = agent.answers > answers_then or len(agent.waiting) <= 1
                    if lost and resends < tries - 1:
                        resends += 1
                        agent.waiting.pop(number, None)
                        number = agent.sending(release)
                        answers_then = agent.answers
                        _send(sock, message, address)
                    continue
                agent.answered(number)
                if not resends:
                    agent.sample(time.monotonic() - sent)
                break
        finally:
            if timer is not None:
                timer.cancel()
            self._waiting.pop(request_id, None)
            agent.waiting.pop(number, None)
        if reply.status:
            status = ERROR_STATUS.get(reply.status, reply.status)
            raise ProtocolError(f"SNMP error {status} from {where} (binding {reply.error_index})")
        return reply.binds


def _send(sock: socket.socket, message: bytes, address: tuple[str, int]) -> None:
    """One datagram; a full send buffer is a lost datagram (resent like one), no route is unreachable."""
    try:
        sock.sendto(message, address)
    except (BlockingIOError, InterruptedError):
        pass
    except OSError as exc:
        raise Unreachable(f"cannot send to {address[0]}:{address[1]}: {exc.strerror or exc}") from None


def _within(oid: str, column: str) -> bool:
    return oid.startswith(column + ".")


async def read_printer_mib(
    session: Session,
    host: str,
    port: int,
    community: str,
    timeout: float,
    release: Callable[[bool], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Every column of interest as {column: {row index: value}}, and the number of round trips.

    One GETBULK: the scalars and the first row of the hr* columns as non-repeaters (GETNEXT
    on the column), the Printer-MIB tables as repeaters; columns that did not end within
    the answer are followed up (only those). ``tooBig`` → fewer rows per answer.
    """
    address = _address(host, port)
    found: dict[str, dict[str, Any]] = {c: {} for c in (*SCALARS, *FIRST_ROW, *COLUMNS)}
    pending = {c: c for c in COLUMNS}  # column -> OID to continue from
    first: Sequence[str] = (*SCALARS, *FIRST_ROW)
    repetitions, rounds = MAX_REPETITIONS, 0
    deadline = time.monotonic() + timeout
    while (pending or first) and rounds < MAX_ROUNDS:
        rounds += 1
        columns = list(pending)
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProbeTimeout(f"{host}:{port} did not finish answering within {timeout:g} s")
        try:
            answer = await session.request(
                address,
                community,
                [*first, *(pending[c] for c in columns)],
                left,
                TRIES,
                bulk=(len(first), repetitions),
                release=release,
            )
        except ProtocolError as exc:
            if "tooBig" in str(exc) and repetitions > 1:
                repetitions //= 2
                continue
            raise
        for (oid, value), column in zip(answer[: len(first)], first, strict=False):
            if value is not None and _within(oid, column):
                found[column][oid[len(column) + 1 :]] = value
        answer, first = answer[len(first) :], ()
        if not columns:
            break
        for i, (oid, value) in enumerate(answer):
            column = columns[i % len(columns)]
            if value is not None and _within(oid, column):
                found[column][oid[len(column) + 1 :]] = value
        last = answer[-len(columns) :] if len(answer) >= len(columns) else []
        pending = {  # a column whose last row is still in the column may have more rows
            c: oid
            for c, (oid, value) in zip(columns, last, strict=True)
            if value is not None and _within(oid, c)
        }
    return found, rounds


async def read_readiness(
    session: Session,
    host: str,
    port: int,
    community: str,
    timeout: float,
    release: Callable[[bool], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], int] | None:
    """:data:`READINESS_OIDS` in one GET, shaped as :func:`read_printer_mib`'s answer (the tables
    empty); None when the agent has no printer at hrDeviceIndex 1 (then read it in full)."""
    address = _address(host, port)
    answer = await session.request(address, community, READINESS_OIDS, timeout, TRIES, release=release)
    found: dict[str, dict[str, Any]] = {c: {} for c in (*SCALARS, *FIRST_ROW, *COLUMNS)}
    for (oid, value), (column, asked) in zip(
        answer, zip(_COLUMN_OF, READINESS_OIDS, strict=True), strict=False
    ):
        if value is not None and oid == asked:
            found[column][oid[len(column) + 1 :]] = value
    if not found[HR_PRINTER_STATUS]:
        return None
    return found, 1


def _address(host: str, port: int) -> tuple[str, int]:
    try:
        return (socket.gethostbyname(host), port) if not _is_ip(host) else (host, port)
    except OSError as exc:
        raise Unreachable(f"cannot resolve {host}: {exc.strerror or exc}") from None


def _is_ip(host: str) -> bool:
    try:
        socket.inet_aton(host)
        return host.count(".") == 3
    except OSError:
        return False


def _text(value: Any) -> str:
    """A DisplayString as one line of plain text (:func:`rehearsal.devtext.clean`: the agent chose
    these bytes, and they end up in a terminal and a Markdown table). Another type is no text."""
    if isinstance(value, bytes):
        return clean(value.decode("utf-8", errors="replace"))
    number = _number(value)
    return "" if number is None else str(number)


def _number(value: Any) -> int | None:
    """An INTEGER/Gauge/Counter value that fits 64 bits; None for another type or a garbled giant."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 64:
        return value
    return None


def readiness_from_mib(address: str, mib: dict[str, dict[str, Any]], **extra: Any) -> SnmpReadiness:
    """Build the record from what :func:`read_printer_mib` found (pure)."""
    printers = mib[HR_PRINTER_STATUS]
    index = next(iter(printers), "1")
    raw_errors = mib[HR_PRINTER_ERRORS].get(index, b"")
    supply_max, supply_type = mib[f"{SUPPLY}.8"], mib[f"{SUPPLY}.5"]
    supplies = tuple(
        Supply(
            description=_text(mib[f"{SUPPLY}.6"].get(row)) or f"supply {row}",
            kind=SUPPLY_TYPE.get(_number(supply_type.get(row)) or 0, "other"),
            level=level,
            max_capacity=max_capacity if (max_capacity := _number(supply_max.get(row))) is not None else -2,
        )
        for row, value in mib[f"{SUPPLY}.9"].items()
        if (level := _number(value)) is not None
    )
    alerts = tuple(
        Alert(
            severity=ALERT_SEVERITY.get(_number(severity) or 0, "other"),
            code=_number(mib[f"{ALERT}.7"].get(row)) or 0,
            description=_text(mib[f"{ALERT}.8"].get(row)),
        )
        for row, severity in mib[f"{ALERT}.2"].items()
    )
    device_status = mib[HR_DEVICE_STATUS].get(index)
    printer_status = printers.get(index)
    return SnmpReadiness(
        address=address,
        reachable=True,
        sys_descr=_text(mib[SYS_DESCR].get("0")),
        device_descr=_text(mib[HR_DEVICE_DESCR].get(index)),
        device_status=DEVICE_STATUS.get(device_status, "unknown")
        if isinstance(device_status, int)
        else "unknown",
        printer_status=PRINTER_STATUS.get(printer_status, "unknown")
        if isinstance(printer_status, int)
        else "unknown",
        error_bits=error_bits(raw_errors if isinstance(raw_errors, bytes) else b""),
        supplies=supplies,
        alerts=alerts,
        languages=tuple(n for v in mib[INTERPRETER_LANG].values() if (n := _number(v)) is not None),
        **extra,
    )


async def probe_snmp(
    host: str,
    port: int,
    community: str,
    timeout: float,
    *,
    session: Session | None = None,
    warn_below: float = 20.0,
    fail_below: float | None = None,
    detail: bool = True,
) -> SnmpReadiness:
    """Readiness of one printer over SNMP within ``timeout`` seconds; never raises for the wire.

    ``detail=False`` asks only :data:`READINESS_OIDS` (one GET; no supply levels, alerts or
    languages), falling back to the full read for an agent without hrDeviceIndex 1."""
    started = time.monotonic()
    address = f"snmp://{host}:{port} (community {community})"
    thresholds: dict[str, Any] = {"warn_below": warn_below, "fail_below": fail_below}
    error: str | None = None
    finish: Callable[[], None] | None = None
    try:
        if session is None:
            async with Session() as own, asyncio.timeout(timeout):
                started = time.monotonic()
                mib, rounds = await _ask(own, host, port, community, timeout, None, detail)
        else:
            release, finish = await session.admit((host, port))  # waiting for a place is not its time
            started = time.monotonic()
            async with asyncio.timeout(timeout):
                mib, rounds = await _ask(session, host, port, community, timeout, release, detail)
    except TimeoutError:
        error = f"timeout: no SNMP answer from {host}:{port} (community {community!r}) within {timeout:g} s"
    except ProbeError as exc:
        error = f"{exc.kind}: {exc}"
    except Exception as exc:  # one odd agent must not end a sweep
        error = f"probe failed: {type(exc).__name__}: {exc}"
    finally:
        if finish is not None:
            finish()
    elapsed = round(time.monotonic() - started, 4)
    if error is not None:
        if error.startswith("timeout:"):  # UDP: no answer looks the same as nobody there
            error = (
                error.replace("timeout:", "unreachable:", 1) + " (agent down, wrong community or filtered)"
            )
        return SnmpReadiness(address=address, error=error, elapsed_s=elapsed, **thresholds)
    if not mib[HR_PRINTER_STATUS]:
        return SnmpReadiness(
            address=address,
            reachable=True,
            error=f"bad reply: {host}:{port} has no Printer-MIB (no hrPrinterStatus)",
            elapsed_s=elapsed,
            **thresholds,
        )
    return readiness_from_mib(address, mib, elapsed_s=elapsed, round_trips=rounds, **thresholds)


async def _ask(
    session: Session,
    host: str,
    port: int,
    community: str,
    timeout: float,
    release: Callable[[bool], None] | None,
    detail: bool,
) -> tuple[dict[str, dict[str, Any]], int]:
    """The readiness GET, or the full read when ``detail`` or when the GET found no printer row."""
    started = time.monotonic()
    if not detail:
        got = await read_readiness(session, host, port, community, timeout, release)
        if got is not None:
            return got
    mib, rounds = await read_printer_mib(
        session, host, port, community, max(0.0, timeout - (time.monotonic() - started)), release
    )
    return mib, rounds + (not detail)


async def probe_all(
    targets: Iterable[tuple[str, int, str]], timeout: float, concurrency: int = 100, **thresholds: Any
) -> list[SnmpReadiness]:
    """Probe many (host, port, community) targets over one UDP socket, at most ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    async with Session() as session:

        async def one(target: tuple[str, int, str]) -> SnmpReadiness:
            async with gate:
                return await probe_snmp(*target, timeout, session=session, **thresholds)

        return list(await asyncio.gather(*(one(t) for t in targets)))


__all__ = [
    "Alert",
    "Session",
    "SnmpReadiness",
    "Supply",
    "error_bits",
    "probe_all",
    "probe_snmp",
    "READINESS_OIDS",
    "read_printer_mib",
    "read_readiness",
    "readiness_from_mib",
]
