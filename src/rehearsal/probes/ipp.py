"""IPP readiness probe: Get-Printer-Attributes over asyncio streams, stdlib only.

Why our own client: pyipp reads supplies from ``marker-*`` only and stops at the first odd
attribute a vendor firmware sends; a rehearsal sweeps hundreds of printers and must come
back with one record per printer whatever each one answers. The encoder is a few lines
(RFC 8010); the decoder is strict about framing and tolerant about values (a value it
cannot convert is kept as bytes, never an exception).

    get_printer_attributes(uri, timeout)  -> dict[str, list]      raises ProbeError
    probe_printer(uri, timeout)           -> PrinterReadiness     never raises for the wire
    probe_all(uris, timeout, concurrency) -> list[PrinterReadiness]
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from rehearsal.devtext import clean
from rehearsal.probes import ProbeError, ProbeTimeout, ProtocolError, Unreachable

OP_GET_PRINTER_ATTRIBUTES = 0x000B
#: One request per connection, so a fixed id: the answer must carry it (check_reply), which a
#: proxy or printer answering some other request (a stale or a forged reply) does not.
REQUEST_ID = 1
MAX_REPLY_BYTES = 4 * 1024 * 1024
READINESS_ATTRIBUTES = (
    "printer-name",
    "printer-state",
    "printer-state-reasons",
    "printer-state-message",
    "printer-is-accepting-jobs",
    "printer-make-and-model",
    "media-ready",
    "document-format-supported",
    "printer-supply",
    "printer-supply-description",
)
STATES = {3: "idle", 4: "processing", 5: "stopped"}
# printer-state-reasons that stop a printer from printing, with the sentence the report shows.
BLOCKING_REASONS = {
    "media-empty": "paper out",
    "media-needed": "paper needed for a waiting job",
    "media-jam": "paper jam",
    "cover-open": "cover open",
    "door-open": "door open",
    "interlock-open": "interlock open",
    "input-tray-missing": "input tray missing",
    "output-tray-missing": "output tray missing",
    "output-area-full": "output tray full",
    "marker-supply-empty": "ink or toner empty",
    "toner-empty": "toner empty",
    "marker-waste-full": "waste toner container full",
    "spool-area-full": "spool area full",
    "paused": "printer paused",
    "moving-to-paused": "printer is pausing",
    "offline": "printer offline",
    "shutdown": "printer shut down",
    "stopped-partly": "printer partly stopped",
    "fuser-over-temp": "fuser over temperature",
}
WARNING_REASONS = {
    "media-low": "paper low",
    "toner-low": "toner low",
    "marker-supply-low": "ink or toner low",
    "marker-waste-almost-full": "waste toner container almost full",
}
IPP_STATUS = {
    0x0400: "client-error-bad-request",
    0x0401: "client-error-forbidden",
    0x0402: "client-error-not-authenticated",
    0x0403: "client-error-not-authorized",
    0x0404: "client-error-not-possible",
    0x0405: "client-error-timeout",
    0x0406: "client-error-not-found",
    0x040B: "client-error-attributes-or-values-not-supported",
    0x0500: "server-error-internal-error",
    0x0501: "server-error-operation-not-supported",
    0x0502: "server-error-service-unavailable",
    0x0503: "server-error-version-not-supported",
    0x0507: "server-error-busy",
}
_VERSION_NOT_SUPPORTED = 0x0503
State = Literal["idle", "processing", "stopped", "unknown"]


class IppStatusError(ProtocolError):
    """The printer answered with an IPP error status (e.g. client-error-not-found)."""

    kind = "ipp error"

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class MalformedReply(ValueError):
    """The bytes are not a well-formed IPP message (raised by :func:`decode_response`)."""


# --- encoding -----------------------------------------------------------------------------


def _attr(tag: int, name: str, values: Sequence[str]) -> bytes:
    out = b""
    for i, value in enumerate(values):
        n, v = (name.encode() if i == 0 else b""), value.encode()
        out += bytes([tag]) + struct.pack(">H", len(n)) + n + struct.pack(">H", len(v)) + v
    return out


def encode_get_printer_attributes(
    uri: str, request_id: int = 1, requested: Sequence[str] = (), version: tuple[int, int] = (2, 0)
) -> bytes:
    """The IPP body of a Get-Printer-Attributes request for ``uri`` (RFC 8011 §4.2.5)."""
    body = bytes(version) + struct.pack(">HI", OP_GET_PRINTER_ATTRIBUTES, request_id) + b"\x01"
    body += _attr(0x47, "attributes-charset", ["utf-8"])
    body += _attr(0x48, "attributes-natural-language", ["en"])
    body += _attr(0x45, "printer-uri", [uri])
    body += _attr(0x42, "requesting-user-name", ["rehearsal"])
    if requested:
        body += _attr(0x44, "requested-attributes", list(requested))
    return body + b"\x03"


# --- decoding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IppReply:
    version: tuple[int, int]
    status: int
    request_id: int
    groups: dict[int, dict[str, list[Any]]]

    @property
    def operation(self) -> dict[str, list[Any]]:
        return self.groups.get(0x01, {})

    @property
    def printer(self) -> dict[str, list[Any]]:
        return self.groups.get(0x04, {})


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
    if tag in (0x21, 0x23) and len(raw) == 4:  # integer, enum
        return struct.unpack(">i", raw)[0]
    if tag == 0x22 and len(raw) == 1:  # boolean
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
    groups: dict[int, dict[str, list[Any]]] = {}
    current: dict[str, list[Any]] | None = None
    last: str | None = None
    while not cursor.at_end():  # tolerate a missing end tag after a complete attribute
        tag = cursor.u8()
        if tag == 0x03:  # end-of-attributes
            break
        if tag < 0x10:  # a delimiter: a new attribute group starts
            current, last = groups.setdefault(tag, {}), None
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
    return IppReply((major, minor), status, request_id, groups)


# --- transport ----------------------------------------------------------------------------


def _address(uri: str) -> tuple[str, int, str, bool]:
    parts = urlsplit(uri)
    if parts.scheme not in ("ipp", "ipps", "http", "https") or not parts.hostname:
        raise ProbeError(f"not an IPP URI: {uri!r} (expected ipp://host:port/path)")
    try:
        port = parts.port or 631
    except ValueError:
        raise ProbeError(f"bad port in {uri!r}") from None
    return parts.hostname, port, parts.path or "/", parts.scheme in ("ipps", "https")


def _insecure_tls() -> ssl.SSLContext:
    """Printers present self-signed certificates; the probe asks about readiness, not trust."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _read_http_body(reader: asyncio.StreamReader, where: str) -> bytes:
    status_line = await reader.readline()
    if not status_line:
        raise ProtocolError(f"{where} closed the connection without an answer")
    if not status_line.startswith(b"HTTP/"):
        raise ProtocolError(f"{where} did not answer in HTTP (reply starts {status_line[:40]!r})")
    fields = status_line.decode("latin-1").split(None, 2)
    if len(fields) < 2 or fields[1] != "200":
        raise ProtocolError(f"{where} answered HTTP {clean(' '.join(fields[1:])) or '?'}, not 200 OK")
    headers: dict[str, str] = {}
    for _ in range(200):
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise ProtocolError(f"{where} sent more than 200 HTTP header lines")
    content_type = headers.get("content-type", "application/ipp")
    if not content_type.lower().startswith("application/ipp"):
        raise ProtocolError(f"{where} answered {clean(content_type, 80)}, not application/ipp")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader, where)
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise ProtocolError(f"{where} sent a bad Content-Length {headers['content-length']!r}") from None
        if not 0 <= length <= MAX_REPLY_BYTES:
            raise ProtocolError(f"{where} announced {length} bytes (limit {MAX_REPLY_BYTES})")
        return await reader.readexactly(length)
    body = await reader.read(MAX_REPLY_BYTES + 1)  # no length: until the server closes
    if len(body) > MAX_REPLY_BYTES:
        raise ProtocolError(f"{where} sent more than {MAX_REPLY_BYTES} bytes")
    return body


async def _read_chunked(reader: asyncio.StreamReader, where: str) -> bytes:
    body = b""
    while True:
        size_line = await reader.readline()
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"{where} sent a bad chunk size {size_line[:20]!r}") from None
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return body
        if len(body) + size > MAX_REPLY_BYTES:
            raise ProtocolError(f"{where} sent more than {MAX_REPLY_BYTES} bytes")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _exchange(host: str, port: int, path: str, tls: ssl.SSLContext | None, body: bytes) -> bytes:
    where = f"{host}:{port}"
    try:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls else None
        )
    except ConnectionRefusedError:
        raise Unreachable(f"connection refused at {where}") from None
    except ssl.SSLError as exc:
        raise ProtocolError(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
    except OSError as exc:  # no route, name not found, reset during TLS set-up, …
        raise Unreachable(f"{(exc.strerror or str(exc) or type(exc).__name__).lower()} at {where}") from None
    try:
        host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/ipp\r\n"
            f"Content-Length: {len(body)}\r\nAccept: application/ipp\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        return await _read_http_body(reader, where)
    except asyncio.IncompleteReadError:
        raise ProtocolError(f"{where} closed the connection in the middle of its reply") from None
    except (asyncio.LimitOverrunError, ValueError):
        raise ProtocolError(f"{where} sent an HTTP line longer than 64 KiB") from None
    except ssl.SSLError as exc:
        raise ProtocolError(f"TLS error with {where}: {exc.reason or exc}") from None
    except OSError as exc:
        raise ProtocolError(f"connection to {where} failed: {exc.strerror or exc}") from None
    finally:
        writer.close()


async def get_printer_attributes(
    uri: str,
    timeout: float,
    requested: Sequence[str] = (),
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, list[Any]]:
    """Ask the printer at ``uri`` for its attributes; everything within ``timeout`` seconds.

    ``requested`` narrows the answer (default: all). Raises :class:`~rehearsal.probes.ProbeError`
    subclasses naming the address. ipps URIs use TLS without certificate checks unless an
    ``ssl_context`` is given. Falls back to IPP/1.1 when the printer rejects IPP/2.0.
    """
    host, port, path, secure = _address(uri)
    tls = (ssl_context or _insecure_tls()) if secure else None
    where = f"{host}:{port}{path}"
    try:
        async with asyncio.timeout(timeout):
            for version in ((2, 0), (1, 1)):
                data = await _exchange(
                    host, port, path, tls, encode_get_printer_attributes(uri, REQUEST_ID, requested, version)
                )
                try:
                    reply = decode_response(data)
                except MalformedReply as exc:
                    raise ProtocolError(f"malformed IPP reply from {where}: {exc}") from None
                check_reply(reply, REQUEST_ID, version, where)
                if reply.status != _VERSION_NOT_SUPPORTED:
                    break
    except TimeoutError:
        raise ProbeTimeout(f"no answer from {host}:{port} within {timeout:g} s") from None
    if reply.status >= 0x0400:
        name = IPP_STATUS.get(reply.status, "error")
        message = next(iter(reply.operation.get("status-message", [])), "")
        detail = f": {clean(message)}" if isinstance(message, str) and clean(message) else ""
        raise IppStatusError(f"{name} (0x{reply.status:04x}) from {where}{detail}", reply.status)
    return reply.printer


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


# --- readiness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PrinterReadiness:
    """What one printer said (or why it said nothing); ``ready`` is the verdict a check asserts."""

    uri: str
    reachable: bool = False
    state: State = "unknown"
    reasons: tuple[str, ...] = ()  # printer-state-reasons without -report/-warning/-error, no "none"
    error_reasons: tuple[str, ...] = ()  # those the printer reported with the -error suffix
    accepting_jobs: bool | None = None
    media_ready: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    make_and_model: str = ""
    name: str = ""
    state_message: str = ""
    missing_formats: tuple[str, ...] = ()
    error: str | None = None  # "unreachable: …", "timeout: …", "bad reply: …", "ipp error: …"
    elapsed_s: float = 0.0

    @property
    def problems(self) -> list[str]:
        """Why the printer is not ready, one plain sentence each; empty when it is ready."""
        if self.error:
            return [self.error]
        found: list[str] = []
        if self.state == "stopped":
            detail = f" ({self.state_message})" if self.state_message else ""
            found.append(f"stopped: printer-state is stopped{detail}")
        elif self.state == "unknown":
            found.append("printer-state not reported")
        if self.accepting_jobs is None:
            found.append("printer-is-accepting-jobs not reported")
        elif not self.accepting_jobs:
            found.append("not accepting jobs")
        for reason in self.reasons:
            if reason in BLOCKING_REASONS:
                found.append(f"{reason}: {BLOCKING_REASONS[reason]}")
            elif reason in self.error_reasons:
                found.append(f"{reason}: reported as an error by the printer")
        found.extend(f"document format {f} not supported" for f in self.missing_formats)
        return found

    @property
    def warnings(self) -> list[str]:
        """Reasons worth reading that do not stop printing (paper low, toner low, …)."""
        return [
            f"{r}: {WARNING_REASONS.get(r, 'reported by the printer')}"
            for r in self.reasons
            if r not in BLOCKING_REASONS and r not in self.error_reasons
        ]

    @property
    def ready(self) -> bool:
        return self.reachable and not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the verdict, for evidence attachments."""
        return {**asdict(self), "ready": self.ready, "problems": self.problems, "warnings": self.warnings}


def _strings(values: Iterable[Any]) -> tuple[str, ...]:
    """The text values, each cleaned (keywords and media names come from the printer too)."""
    return tuple(text for v in values if isinstance(v, str) and (text := clean(v)))


def _strip_severity(reason: str) -> str:
    for suffix in ("-report", "-warning", "-error"):
        if reason.endswith(suffix):
            return reason[: -len(suffix)]
    return reason


def readiness_from_attributes(
    uri: str, attrs: dict[str, list[Any]], required_formats: Sequence[str] = (), elapsed_s: float = 0.0
) -> PrinterReadiness:
    """Build the readiness record from a Get-Printer-Attributes answer (pure; odd values → unknown)."""

    def first(name: str) -> Any:
        values = attrs.get(name) or [None]
        return values[0]

    def text(name: str) -> str:  # the printer chose it: one clean line (rehearsal.devtext)
        value = first(name)
        return clean(value) if isinstance(value, str) else ""

    state_value = first("printer-state")
    raw_reasons = _strings(attrs.get("printer-state-reasons", []))
    reasons = tuple(dict.fromkeys(_strip_severity(r) for r in raw_reasons if r != "none"))
    accepting = first("printer-is-accepting-jobs")
    formats = _strings(attrs.get("document-format-supported", []))
    return PrinterReadiness(
        uri=uri,
        reachable=True,
        state=STATES.get(state_value, "unknown") if isinstance(state_value, int) else "unknown",
        reasons=reasons,
        error_reasons=tuple(dict.fromkeys(r[: -len("-error")] for r in raw_reasons if r.endswith("-error"))),
        accepting_jobs=accepting if isinstance(accepting, bool) else None,
        media_ready=_strings(attrs.get("media-ready", [])),
        formats=formats,
        make_and_model=text("printer-make-and-model"),
        name=text("printer-name"),
        state_message=text("printer-state-message"),
        missing_formats=tuple(f for f in required_formats if f not in formats),
        elapsed_s=round(elapsed_s, 4),
    )


async def probe_printer(
    uri: str,
    timeout: float,
    *,
    required_formats: Sequence[str] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> PrinterReadiness:
    """Readiness of one printer. Never raises for network or protocol trouble: it is recorded."""
    started = time.monotonic()
    try:
        attrs = await get_printer_attributes(uri, timeout, READINESS_ATTRIBUTES, ssl_context=ssl_context)
    except ProbeError as exc:
        return PrinterReadiness(  # reachable: something answered, even if unusable
            uri=uri,
            reachable=isinstance(exc, ProtocolError),
            error=clean(f"{exc.kind}: {exc}", 1000),
            elapsed_s=round(time.monotonic() - started, 4),
        )
    except Exception as exc:  # one odd device must not end a sweep of hundreds
        return PrinterReadiness(
            uri=uri,
            error=f"probe failed: {type(exc).__name__}: {exc}",
            elapsed_s=round(time.monotonic() - started, 4),
        )
    return readiness_from_attributes(uri, attrs, required_formats, time.monotonic() - started)


async def probe_all(
    uris: Iterable[str],
    timeout: float,
    concurrency: int = 50,
    *,
    required_formats: Sequence[str] = (),
) -> list[PrinterReadiness]:
    """Probe many printers, at most ``concurrency`` at a time; results in the order of ``uris``."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)

    async def one(uri: str) -> PrinterReadiness:
        async with gate:
            return await probe_printer(uri, timeout, required_formats=required_formats)

    return list(await asyncio.gather(*(one(u) for u in uris)))


__all__ = [
    "IppReply",
    "IppStatusError",
    "MalformedReply",
    "PrinterReadiness",
    "decode_response",
    "encode_get_printer_attributes",
    "get_printer_attributes",
    "probe_all",
    "probe_printer",
    "readiness_from_attributes",
]
