"""IPP, the one client of the project: the wire format (RFC 8010) and three operations over HTTP/1.1 (h11).

Every IPP exchange goes through here: the readiness probe and the sweep
(Get-Printer-Attributes), the sweep's test print (Print-Job), the reference hospital's
document printing (Print-Job) and its simulated printers (Get-Printer-Attributes, Get-Jobs)::

    async with IppSession("ipp://127.0.0.1:8631/ipp/print", timeout=2.0) as printer:
        attrs = await printer.get_printer_attributes(["printer-state"])   # {name: [values]}
        jobs = await printer.get_jobs("completed")                         # [Job]
        job = await printer.print_job(pdf, job_name="Testsida")            # Job (its id)

    await get_printer_attributes(uri, timeout, requested)                  # one session, one call

Why our own encoder rather than pyipp: pyipp stops at the first odd attribute a vendor
firmware sends; a sweep of hundreds of printers must come back with one record per
printer whatever each one answers. The decoder is strict about framing and tolerant
about values: a value it cannot convert is kept as bytes, never an exception.

**Time.** Each operation gets ``timeout`` seconds *in all*: connection, TLS, request, every
byte of the answer, and the IPP/1.1 retry when a printer refuses 2.0 (a per-read timeout
would let a printer dripping a byte a second hold a sweep).

**Trust.** An answer counts only when it carries our request-id (a new one per request)
and a version 1.x or 2.x no higher than asked (:func:`check_reply`). ``ipps://`` printers
present self-signed certificates: ``insecure_tls=True`` (the default) encrypts without
checking the certificate, since a readiness probe asks about paper, not identity;
``insecure_tls=False`` checks it against the system's trust store; an ``ssl_context``
replaces both. Proxies and ``.netrc`` from the environment are never used.

**HTTP.** One request per connection (``Connection: close``): printers' embedded servers
are the least reliable part of keep-alive, and a sweep asks each printer once. The framing
is h11's (the HTTP/1.1 state machine under httpx) on asyncio's streams, without httpx's
client, pool and models: measured here, those cost more CPU per printer than the rest of
the probe.

Errors, the :mod:`rehearsal.probes` family (one line, naming the printer's host and port)::

    ProbeError              not an IPP URI
     ├── Unreachable        no connection (refused, no route, name not found)
     │    └── Refused       nothing listens on the port
     ├── ProbeTimeout       no complete answer within the timeout
     └── ProtocolError      an answer we cannot use: not HTTP, not application/ipp, malformed
          │                 IPP, another request-id or version, a TLS failure
          ├── HttpStatusError  an HTTP status other than 200 (``status``)
          └── IppStatusError   an IPP error status (``status``)
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import ssl
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import h11

from rehearsal.devtext import clean
from rehearsal.probes import ProbeError, ProbeTimeout, ProtocolError, Unreachable

# --- protocol numbers (RFC 8010 §3.5, RFC 8011 §5.4) ------------------------------------------

OP_PRINT_JOB = 0x0002
OP_GET_JOBS = 0x000A
OP_GET_PRINTER_ATTRIBUTES = 0x000B
OP_PAUSE_PRINTER, OP_RESUME_PRINTER = 0x0010, 0x0011
OP_CUPS_ADD_MODIFY_PRINTER = 0x4003  # CUPS' administration: how a print server's queue state is set
OPERATION_GROUP, JOB_GROUP, END_OF_ATTRIBUTES, PRINTER_GROUP = 0x01, 0x02, 0x03, 0x04
INTEGER, BOOLEAN, ENUM = 0x21, 0x22, 0x23
NAME, KEYWORD, URI, CHARSET, LANGUAGE, MIME_TYPE = 0x42, 0x44, 0x45, 0x47, 0x48, 0x49
IPP_STATUS = {
    0x0400: "client-error-bad-request",
    0x0401: "client-error-forbidden",
    0x0402: "client-error-not-authenticated",
    0x0403: "client-error-not-authorized",
    0x0404: "client-error-not-possible",
    0x0405: "client-error-timeout",
    0x0406: "client-error-not-found",
    0x040A: "client-error-document-format-not-supported",
    0x040B: "client-error-attributes-or-values-not-supported",
    0x0500: "server-error-internal-error",
    0x0501: "server-error-operation-not-supported",
    0x0502: "server-error-service-unavailable",
    0x0503: "server-error-version-not-supported",
    0x0506: "server-error-not-accepting-jobs",
    0x0507: "server-error-busy",
}
VERSION_NOT_SUPPORTED = 0x0503
VERSIONS = ((2, 0), (1, 1))  # asked in this order: 1.1 only when a printer refuses 2.0
JOB_STATES = {
    3: "pending",
    4: "pending-held",
    5: "processing",
    6: "processing-stopped",
    7: "canceled",
    8: "aborted",
    9: "completed",
}
JOB_ATTRIBUTES = ("job-id", "job-name", "job-state", "job-state-reasons", "job-originating-user-name")
MAX_REPLY_BYTES = 4 * 1024 * 1024
HEARD = 64  # first bytes of an answer kept, to name a port that answers but not in HTTP
_HEADERS = {
    "Content-Type": "application/ipp",
    "Accept": "application/ipp",
    "Accept-Encoding": "identity",
    "Connection": "close",
    "User-Agent": "rehearsal",
}


class IppStatusError(ProtocolError):
    """The printer answered with an IPP error status (e.g. client-error-not-found)."""

    kind = "ipp error"

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class HttpStatusError(ProtocolError):
    """The printer's web server answered, with an HTTP status other than 200 OK (``status``)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class Refused(Unreachable):
    """The printer's host refused the connection: nothing listens on that port."""


class MalformedReply(ValueError):
    """The bytes are not a well-formed IPP message (raised by :func:`decode_response`)."""


def status_name(status: int) -> str:
    """The RFC 8011 keyword of a status code, or its hex when we do not know it."""
    return IPP_STATUS.get(status, f"0x{status:04x}")


# --- encoding -----------------------------------------------------------------------------------

Value = str | int | bool
Attribute = tuple[int, str, Sequence[Value]]  # value tag, name, values (an empty list is left out)


def _attribute(tag: int, name: str, values: Sequence[Value]) -> bytes:
    out = bytearray()
    for i, value in enumerate(values):
        n = name.encode() if i == 0 else b""  # additional values carry no name (RFC 8010 §3.1.5)
        if isinstance(value, bool):
            v = b"\x01" if value else b"\x00"
        elif isinstance(value, int):
            v = struct.pack(">i", value)
        else:
            v = value.encode("utf-8")
        out += bytes([tag]) + struct.pack(">H", len(n)) + n + struct.pack(">H", len(v)) + v
    return bytes(out)


def encode_request(
    operation: int,
    uri: str,
    request_id: int,
    attributes: Sequence[Attribute] = (),
    *,
    version: tuple[int, int] = (2, 0),
    user: str = "rehearsal",
    language: str = "en",
    printer_attributes: Sequence[Attribute] = (),
) -> bytes:
    """The IPP message of one request, up to the end tag (a Print-Job's document follows it).

    The operation group starts with what every request carries (RFC 8011 §4.1.4-4.1.5):
    charset, natural language, printer-uri and requesting-user-name; ``attributes`` follow.
    ``printer_attributes`` (the values a CUPS-Add-Modify-Printer sets) go in a printer group.
    """
    head = bytes(version) + struct.pack(">HI", operation, request_id) + bytes([OPERATION_GROUP])
    head += _attribute(CHARSET, "attributes-charset", ["utf-8"])
    head += _attribute(LANGUAGE, "attributes-natural-language", [language])
    head += _attribute(URI, "printer-uri", [uri])
    head += _attribute(NAME, "requesting-user-name", [user])
    for tag, name, values in attributes:
        head += _attribute(tag, name, values)
    if printer_attributes:
        head += bytes([PRINTER_GROUP])
        for tag, name, values in printer_attributes:
            head += _attribute(tag, name, values)
    return head + bytes([END_OF_ATTRIBUTES])


# --- decoding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IppReply:
    """One decoded answer; ``groups`` in the order sent (a Get-Jobs answer has one job group a job)."""

    version: tuple[int, int]
    status: int
    request_id: int
    groups: tuple[tuple[int, dict[str, list[Any]]], ...]

    def group(self, tag: int) -> dict[str, list[Any]]:
        """The first group with this delimiter tag (empty when there is none)."""
        return next((attrs for t, attrs in self.groups if t == tag), {})

    @property
    def operation(self) -> dict[str, list[Any]]:
        return self.group(OPERATION_GROUP)

    @property
    def printer(self) -> dict[str, list[Any]]:
        return self.group(PRINTER_GROUP)

    @property
    def jobs(self) -> list[dict[str, list[Any]]]:
        return [attrs for t, attrs in self.groups if t == JOB_GROUP]

    @property
    def status_message(self) -> str:
        """The printer's status-message, cleaned (device text), or empty."""
        message = next(iter(self.operation.get("status-message", [])), "")
        return clean(message) if isinstance(message, str) else ""


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedReply(f"truncated at byte {self.pos} of {len(self.data)} (needed {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _convert(tag: int, raw: bytes) -> Any:
    """One value by its tag; a value of an unexpected size is kept as bytes (odd firmware)."""
    if 0x10 <= tag <= 0x1F:  # out-of-band: unsupported, unknown, no-value, …
        return None
    if tag in (INTEGER, ENUM) and len(raw) == 4:
        return struct.unpack(">i", raw)[0]
    if tag == BOOLEAN and len(raw) == 1:
        return raw != b"\x00"
    if tag == 0x31 and len(raw) == 11:  # dateTime
        y, mo, d, h, mi, s, ds, sign, tzh, tzm = struct.unpack(">HBBBBBBcBB", raw)
        zone = f"{sign.decode('latin-1')}{tzh:02d}{tzm:02d}"
        return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{ds}{zone}"
    if tag == 0x32 and len(raw) == 9:  # resolution
        return struct.unpack(">iib", raw)
    if tag == 0x33 and len(raw) == 8:  # rangeOfInteger
        return struct.unpack(">ii", raw)
    if tag in (0x35, 0x36) and len(raw) >= 4:  # text/name with language: keep the text
        lang_len = struct.unpack(">H", raw[:2])[0]
        text_at = 2 + lang_len + 2
        return _text(raw[text_at:]) if text_at <= len(raw) else raw
    if tag == 0x30 or 0x41 <= tag <= 0x4A:  # octetString (supply strings are text) and string kinds
        return _text(raw)
    return raw


def _value(cursor: _Cursor, tag: int) -> Any:
    raw = cursor.take(cursor.u16())
    if tag == 0x34:  # begCollection: members follow until endCollection
        return _collection(cursor)
    return _convert(tag, raw)


def _collection(cursor: _Cursor) -> dict[str, list[Any]]:
    members: dict[str, list[Any]] = {}
    member: str | None = None
    while True:
        tag = cursor.u8()
        cursor.take(cursor.u16())  # names inside a collection are empty
        if tag == 0x37:  # endCollection
            cursor.take(cursor.u16())
            return members
        if tag == 0x4A:  # memberAttrName
            member = _text(cursor.take(cursor.u16()))
            members.setdefault(member, [])
            continue
        if member is None:
            raise MalformedReply(f"collection value without a member name at byte {cursor.pos}")
        members[member].append(_value(cursor, tag))


def decode_response(data: bytes) -> IppReply:
    """Parse an IPP response; raise :class:`MalformedReply` when the framing is broken."""
    cursor = _Cursor(data)
    major, minor = cursor.u8(), cursor.u8()
    status = cursor.u16()
    request_id = struct.unpack(">I", cursor.take(4))[0]
    groups: list[tuple[int, dict[str, list[Any]]]] = []
    current: dict[str, list[Any]] | None = None
    last: str | None = None
    while not cursor.at_end():  # tolerate a missing end tag after a complete attribute
        tag = cursor.u8()
        if tag == END_OF_ATTRIBUTES:
            break
        if tag < 0x10:  # a delimiter: a new attribute group starts
            current, last = {}, None
            groups.append((tag, current))
            continue
        if current is None:
            raise MalformedReply(f"attribute before any attribute group at byte {cursor.pos - 1}")
        name = _text(cursor.take(cursor.u16()))
        value = _value(cursor, tag)
        if name:
            current[name], last = [value], name
        elif last is None:
            raise MalformedReply(f"additional value without an attribute at byte {cursor.pos}")
        else:
            current[last].append(value)
    return IppReply((major, minor), status, request_id, tuple(groups))


def check_reply(reply: IppReply, request_id: int, version: tuple[int, int], where: str) -> None:
    """Is this the answer to the request we sent? Its request-id must be ours (RFC 8011 §4.1.1)
    and its version 1.x or 2.x, no higher a major version than we asked in (§4.1.8: a printer
    answers in the version asked, or a lower one it supports). Else ProtocolError naming both."""
    major, minor = reply.version
    if major not in (1, 2) or major > version[0]:
        raise ProtocolError(
            f"{where} answered in IPP version {major}.{minor} (asked in {version[0]}.{version[1]}; "
            f"an answer is 1.x or 2.x, at most the major version asked)"
        )
    if reply.request_id != request_id:
        raise ProtocolError(
            f"{where} answered request-id {reply.request_id}, not ours ({request_id}): "
            "not an answer to this request"
        )


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A job as the printer describes it (Print-Job's answer, or one group of Get-Jobs)."""

    id: int | None
    state: str = "unknown"  # pending, pending-held, processing, …, completed; "unknown" if not said
    name: str = ""
    reasons: tuple[str, ...] = ()
    attributes: dict[str, list[Any]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_attributes(cls, attrs: dict[str, list[Any]]) -> Job:
        def first(name: str) -> Any:
            return (attrs.get(name) or [None])[0]

        job_id, state, name = first("job-id"), first("job-state"), first("job-name")
        reasons = tuple(clean(r) for r in attrs.get("job-state-reasons", []) if isinstance(r, str))
        return cls(
            id=job_id if isinstance(job_id, int) and not isinstance(job_id, bool) else None,
            state=JOB_STATES.get(state, "unknown") if isinstance(state, int) else "unknown",
            name=clean(name) if isinstance(name, str) else "",
            reasons=tuple(r for r in reasons if r and r != "none"),
            attributes=attrs,
        )


# --- TLS ----------------------------------------------------------------------------------------


@functools.cache
def insecure_tls_context() -> ssl.SSLContext:
    """TLS that encrypts but checks no certificate or name: what ``insecure_tls=True`` uses.

    Hospital printers present self-signed certificates, and a readiness probe asks whether
    a printer can print, not who it is. Made once: building a context costs milliseconds,
    a sweep asks thousands of printers.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@functools.cache
def verified_tls_context() -> ssl.SSLContext:
    """TLS checked against the system's trust store: what ``insecure_tls=False`` uses."""
    return ssl.create_default_context()


# --- transport: h11 over asyncio's streams, one request per connection ----------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything behind it: causes, contexts, members of exception groups."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += list(getattr(current, "exceptions", ()))


class _Closed(Exception):
    """The printer closed the connection (or reset it) before its answer was complete."""


# --- the session --------------------------------------------------------------------------------


class IppSession:
    """One printer (host, port, path of an ``ipp``/``ipps`` URI) and one timeout per operation.

    Use as ``async with`` (nothing stays open between operations: each is one connection).
    ``insecure_tls`` (default True):
    ipps without certificate checks, for printers with self-signed certificates; False
    checks against the system's trust store; ``ssl_context`` replaces both. ``user`` and
    ``language`` go into every request (requesting-user-name, attributes-natural-language).
    """

    def __init__(
        self,
        uri: str,
        timeout: float,
        *,
        insecure_tls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        user: str = "rehearsal",
        language: str = "en",
    ) -> None:
        parts = urlsplit(uri)
        if parts.scheme not in ("ipp", "ipps", "http", "https") or not parts.hostname:
            raise ProbeError(f"not an IPP URI: {uri!r} (expected ipp://host:port/path)")
        try:
            self.port = parts.port or 631
        except ValueError:
            raise ProbeError(f"bad port in {uri!r}") from None
        self.uri, self.timeout, self.user, self.language = uri, timeout, user, language
        self.host, self.path = parts.hostname, parts.path or "/"
        self.secure = parts.scheme in ("ipps", "https")
        self.address = f"{self.host}:{self.port}"  # where the connection goes (transport messages)
        self.where = f"{self.address}{self.path}"  # which printer answered (IPP messages)
        bracketed = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if self.secure else 'http'}://{bracketed}:{self.port}{self.path}"
        self._host_header = f"{bracketed}:{self.port}"
        self._tls = ssl_context or (insecure_tls_context() if insecure_tls else verified_tls_context())
        self._open = False
        self._heard = b""  # the first bytes the printer sent on the latest connection
        self._ids = itertools.count(1)

    async def __aenter__(self) -> IppSession:
        self._open = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """End the session (each operation already closed its own connection)."""
        self._open = False

    # -- operations -------------------------------------------------------------------------

    async def get_printer_attributes(self, requested: Sequence[str] = ()) -> dict[str, list[Any]]:
        """Get-Printer-Attributes (RFC 8011 §4.2.5): the printer group, ``requested`` ones (default all)."""
        reply = await self.request(
            OP_GET_PRINTER_ATTRIBUTES, [(KEYWORD, "requested-attributes", list(requested))]
        )
        return reply.printer

    async def get_jobs(
        self,
        which: str = "not-completed",
        *,
        requested: Sequence[str] = JOB_ATTRIBUTES,
        limit: int | None = None,
        my_jobs: bool = False,
    ) -> list[Job]:
        """Get-Jobs (RFC 8011 §4.2.6): the printer's ``which`` jobs (not-completed, completed, all…)."""
        attributes: list[Attribute] = [
            (KEYWORD, "which-jobs", [which]),
            (KEYWORD, "requested-attributes", list(requested)),
            (INTEGER, "limit", [limit] if limit is not None else []),
            (BOOLEAN, "my-jobs", [True] if my_jobs else []),
        ]
        reply = await self.request(OP_GET_JOBS, attributes)
        return [Job.from_attributes(attrs) for attrs in reply.jobs]

    async def print_job(
        self, document: bytes, *, document_format: str = "application/pdf", job_name: str = "rehearsal"
    ) -> Job:
        """Print-Job (RFC 8011 §4.2.1) of one document; the job the printer made (its id, its state)."""
        attributes: list[Attribute] = [
            (NAME, "job-name", [job_name]),
            (MIME_TYPE, "document-format", [document_format]),
        ]
        reply = await self.request(OP_PRINT_JOB, attributes, document)
        return Job.from_attributes(reply.jobs[0] if reply.jobs else {})

    async def request(
        self,
        operation: int,
        attributes: Sequence[Attribute] = (),
        document: bytes = b"",
        *,
        printer_attributes: Sequence[Attribute] = (),
    ) -> IppReply:
        """Any operation: sent in IPP/2.0, again in 1.1 if the printer refuses 2.0, all within the
        timeout; the checked reply, or :class:`IppStatusError` for an error status."""
        if not self._open:
            raise RuntimeError("IppSession is used as `async with IppSession(...) as printer:`")
        try:
            async with asyncio.timeout(self.timeout):
                for version in VERSIONS:
                    request_id = next(self._ids)
                    head = encode_request(
                        operation, self.uri, request_id, [a for a in attributes if a[2]],
                        version=version, user=self.user, language=self.language,
                        printer_attributes=[a for a in printer_attributes if a[2]],
                    )  # fmt: skip
                    data = await self._post(head + document)
                    try:
                        reply = decode_response(data)
                    except MalformedReply as exc:
                        raise ProtocolError(f"malformed IPP reply from {self.where}: {exc}") from None
                    check_reply(reply, request_id, version, self.where)
                    if reply.status != VERSION_NOT_SUPPORTED:
                        break
        except TimeoutError:
            raise self._not_http() or self._timed_out() from None
        if reply.status >= 0x0400:
            detail = f": {reply.status_message}" if reply.status_message else ""
            name = IPP_STATUS.get(reply.status, "error")
            raise IppStatusError(f"{name} (0x{reply.status:04x}) from {self.where}{detail}", reply.status)
        return reply

    # -- HTTP -------------------------------------------------------------------------------

    async def _post(self, body: bytes) -> bytes:
        """POST one request on a connection of its own and return the IPP bytes of the answer.

        h11 frames HTTP/1.1 (the state machine under httpx, without its client, pool and models:
        a sweep asks thousands of printers once each, and that machinery cost more CPU than the
        printer's answer). The caller's deadline bounds every step."""
        self._heard = b""
        reader, writer = await self._connect()
        try:
            http = h11.Connection(our_role=h11.CLIENT)
            head = h11.Request(
                method="POST",
                target=self.path,
                headers=[("Host", self._host_header), *_HEADERS.items(), ("Content-Length", str(len(body)))],
            )
            try:
                writer.write(http.send(head) + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage()))
                await writer.drain()
            except OSError as exc:
                raise self._broken(exc, sending=True) from None
            try:
                return await self._answer(http, reader)
            except (h11.RemoteProtocolError, _Closed, OSError) as exc:
                raise self._not_http() or self._broken(exc) from None
        finally:
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if self.secure:
                return await asyncio.open_connection(
                    self.host, self.port, ssl=self._tls, server_hostname=self.host
                )
            return await asyncio.open_connection(self.host, self.port)
        except (OSError, ssl.SSLError) as exc:
            raise self._connect_failed(exc) from None

    async def _answer(self, http: h11.Connection, reader: asyncio.StreamReader) -> bytes:
        data = bytearray()
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                chunk = await reader.read(65536)
                if len(self._heard) < HEARD:
                    self._heard += chunk[: HEARD - len(self._heard)]
                http.receive_data(chunk)
            elif isinstance(event, h11.Response):
                self._check_head(event)
            elif isinstance(event, h11.Data):
                data += event.data
                if len(data) > MAX_REPLY_BYTES:
                    raise ProtocolError(f"{self.address} sent more than {MAX_REPLY_BYTES} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return bytes(data)
            elif isinstance(event, h11.ConnectionClosed):
                raise _Closed("closed")
            # an InformationalResponse (100 Continue): the real answer follows

    def _check_head(self, answer: h11.Response) -> None:
        if answer.status_code != 200:
            reason = answer.reason.decode("latin-1")
            status = clean(f"{answer.status_code} {reason}")
            raise HttpStatusError(f"{self.address} answered HTTP {status}, not 200 OK", answer.status_code)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in answer.headers}
        content_type = headers.get("content-type", "application/ipp")
        if not content_type.lower().startswith("application/ipp"):
            raise ProtocolError(f"{self.address} answered {clean(content_type, 80)}, not application/ipp")
        announced = headers.get("content-length", "0")
        if announced.isdigit() and int(announced) > MAX_REPLY_BYTES:
            raise ProtocolError(f"{self.address} announced {announced} bytes (limit {MAX_REPLY_BYTES})")

    def _timed_out(self) -> ProbeTimeout:
        return ProbeTimeout(f"no answer from {self.address} within {self.timeout:g} s")

    def _not_http(self) -> ProtocolError | None:
        """Something answered, but not in HTTP: say what it sent (None when nothing or HTTP)."""
        first = self._heard
        if first and not b"HTTP/".startswith(first[:5]):
            return ProtocolError(f"{self.address} did not answer in HTTP (reply starts {first[:40]!r})")
        return None

    def _connect_failed(self, exc: BaseException) -> ProbeError:
        causes = list(_causes(exc))
        tls = next((e for e in causes if isinstance(e, ssl.SSLError)), None)
        if tls is not None:
            return ProtocolError(f"TLS handshake with {self.address} failed: {tls.reason or tls}")
        if any(isinstance(e, ConnectionRefusedError) for e in causes):
            return Refused(f"connection refused at {self.address}")
        os_error = next((e for e in causes if isinstance(e, OSError) and e.errno), None)
        if os_error is not None:  # no route, name not found, reset during TLS set-up, …
            why = os_error.strerror or str(os_error) or type(os_error).__name__
            return Unreachable(f"{why.lower()} at {self.address}")
        return Unreachable(f"no connection to {self.address}: {clean(str(exc)) or type(exc).__name__}")

    def _broken(self, exc: BaseException, sending: bool = False) -> ProtocolError:
        tls = next((e for e in _causes(exc) if isinstance(e, ssl.SSLError)), None)
        if tls is not None:
            return ProtocolError(f"TLS error with {self.address}: {tls.reason or tls}")
        if sending:
            return ProtocolError(
                f"connection to {self.address} failed while sending: {clean(str(exc)) or 'reset'}"
            )
        if self._heard == b"":
            return ProtocolError(f"{self.address} closed the connection without an answer")
        if isinstance(exc, (_Closed, OSError)) or "closed" in str(exc) or "disconnected" in str(exc):
            return ProtocolError(f"{self.address} closed the connection in the middle of its reply")
        return ProtocolError(f"{self.address} sent a broken HTTP answer: {clean(str(exc), 200)}")


async def get_printer_attributes(
    uri: str,
    timeout: float,
    requested: Sequence[str] = (),
    *,
    insecure_tls: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, list[Any]]:
    """Get-Printer-Attributes of the printer at ``uri`` in a session of its own, within ``timeout``."""
    async with IppSession(uri, timeout, insecure_tls=insecure_tls, ssl_context=ssl_context) as printer:
        return await printer.get_printer_attributes(requested)


__all__ = [
    "IPP_STATUS",
    "IppReply",
    "IppSession",
    "HttpStatusError",
    "IppStatusError",
    "Job",
    "MalformedReply",
    "Refused",
    "check_reply",
    "decode_response",
    "encode_request",
    "get_printer_attributes",
    "insecure_tls_context",
    "status_name",
    "verified_tls_context",
]
