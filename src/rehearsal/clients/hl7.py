"""A thin HL7 v2 client over MLLP: send a message, get its ACK, with timeouts.

Lab orders and results cross the coexistence boundary as HL7 v2 over MLLP (a message
framed ``<VT> … <FS><CR>`` on a TCP stream). Scenarios and the reference hospital's own
components use this module to speak it, so both sides share one framing and one way of
building the messages; parsing is python-hl7's (``hl7.parse``). Messages are UTF-8
(``MSH-18 UNICODE UTF-8``): patient names and free text carry å/ä/ö.

Errors: :class:`MllpError` (a TargetError) names the peer and what went wrong (refused,
timed out, closed, no ACK). A negative ACK is still an ACK to :func:`read_ack` (the reference
hospital's own components answer and count them); a caller that needs the message *taken*
asks :func:`require_accepted` or :func:`refusal`: only ``AA`` (or ``CA``) is acceptance,
``AE``/``AR``/``CE``/``CR`` fail quoting MSA-3 and the ERR segment.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import hl7

from rehearsal import patient_gate, silence
from rehearsal.devtext import clean
from rehearsal.errors import TargetError

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
MAX_BLOCK = 1 << 20  # bytes read for one reply before giving up on its end block (an ACK is < 1 KiB)
ENCODING = "utf-8"
VERSION = "2.5.1"
#: PID-3 identifier type and assigning authority for a Swedish personnummer.
PNR_AUTHORITY = "1.2.752.129.2.1.3.1"


class MllpError(TargetError):
    """The MLLP peer could not be reached, closed the connection, or did not answer in time."""


def parse_uri(uri: str) -> tuple[str, int]:
    """``mllp://host:port`` → (host, port); UsageError-free: the plan validated the shape."""
    parts = urlsplit(uri)
    if parts.scheme != "mllp" or not parts.hostname or not parts.port:
        raise MllpError(f"not an MLLP address (mllp://host:port): {uri!r}")
    return parts.hostname, parts.port


def frame(message: str | hl7.Message) -> bytes:
    """One MLLP block: the message with segments ended by CR, UTF-8, between VT and FS CR."""
    text = str(message).replace("\r\n", "\r").replace("\n", "\r").rstrip("\r")
    return START_BLOCK + text.encode(ENCODING) + END_BLOCK


def unframe(block: bytes) -> bytes:
    """The payload of one MLLP block (without VT, FS, CR)."""
    if not block.startswith(START_BLOCK) or not block.endswith(END_BLOCK):
        raise ValueError("not an MLLP block (expected <VT> … <FS><CR>)")
    return block[1:-2]


def ack_code(ack: hl7.Message) -> str:
    """MSA-1 of an acknowledgement: AA, AE or AR (CA/CE/CR in enhanced mode)."""
    return str(ack.segment("MSA")(1))


def ack_text(ack: hl7.Message) -> str:
    """MSA-3 (text message) and the ERR segment's text, for failure messages (one clean line)."""
    parts = [str(ack.segment("MSA")(3))] if len(ack.segment("MSA")) > 3 else []
    try:
        err = ack.segment("ERR")
        parts.append(str(err(8)) if len(err) > 8 else str(err))
    except KeyError:
        pass
    return clean(" ".join(unescape(p) for p in parts if p))


#: MSA-1 codes that say the peer took the message (original and enhanced mode); every other
#: code is a refusal, whatever else the acknowledgement says.
ACCEPTED = ("AA", "CA")
MEANING = {
    "AA": "application accept",
    "AE": "application error",
    "AR": "application reject",
    "CA": "commit accept",
    "CE": "commit error",
    "CR": "commit reject",
}


def refusal(ack: hl7.Message, where: str) -> str | None:
    """None when the acknowledgement accepts (MSA-1 ``AA`` or ``CA``); otherwise one line saying
    who refused with which code, quoting MSA-3 (text message) and the ERR segments as the peer
    sent them (cleaned: the peer chose that text, and it ends up in a terminal and a report)."""
    code = field(ack, "MSA", 1)
    if code in ACCEPTED:
        return None
    said = []
    text = clean(unescape(field(ack, "MSA", 3)), 200)
    said.append(f"MSA-3 {text!r}" if text else "no MSA-3 text")
    errors = [clean(str(s), 200) for s in ack if str(s(0)) == "ERR"]
    said.append("ERR " + " / ".join(repr(e) for e in errors) if errors else "no ERR segment")
    control = field(ack, "MSA", 2)
    return (
        f"{where} answered {code} ({MEANING.get(code, 'not an acceptance')}), not AA, "
        f"to message {control!r}: {'; '.join(said)}"
    )


class Refused(MllpError):
    """The peer acknowledged our message with AE, AR, CE or CR: it did not take it."""


def require_accepted(ack: hl7.Message, where: str) -> hl7.Message:
    """``ack`` when it accepts our message; :class:`Refused` (one line, see :func:`refusal`) otherwise."""
    why = refusal(ack, where)
    if why is not None:
        raise Refused(why)
    return ack


class MllpClient:
    """One MLLP connection to a peer, opened on first use; ``with MllpClient(uri, timeout) as c:``.

    ``send(message)`` writes one message and returns the parsed ACK; the connection is
    kept for the next message (MLLP peers expect that) and reopened once if the peer had
    closed it meanwhile.
    """

    def __init__(self, uri: str, timeout: float = 5.0, connect_timeout: float | None = None) -> None:
        self.uri = uri
        self.host, self.port = parse_uri(uri)
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                silence.check(self.uri)  # a peer that timed out earlier in this run is not waited for again
            except silence.Silent as exc:
                raise MllpError(str(exc)) from None
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
                self._sock.settimeout(self.timeout)
            except TimeoutError:
                raise MllpError(
                    silence.timed_out(self.uri, self.connect_timeout, "MLLP connect", "no connection")
                ) from None
            except OSError as exc:
                raise MllpError(f"{self.uri}: cannot connect: {exc.strerror or exc}") from None
        return self._sock

    def send_raw(self, data: bytes) -> bytes:
        """Write bytes as they are (already framed or deliberately broken); return the next block."""
        for attempt in (1, 2):
            sock = self._connect()
            try:
                sock.sendall(data)
                return self._read_block(sock)
            except (BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt == 2:
                    raise MllpError(f"{self.uri}: connection lost: {exc.strerror or exc}") from None
            except MllpError:
                self.close()
                raise
        raise AssertionError("unreachable")

    def _read_block(self, sock: socket.socket) -> bytes:
        """The next framed block, within ``timeout`` for the whole reply (a peer trickling bytes
        does not get a fresh timeout per byte) and at most :data:`MAX_BLOCK` bytes."""
        deadline = time.monotonic() + self.timeout
        while END_BLOCK not in self._buffer:
            if len(self._buffer) > MAX_BLOCK:
                raise MllpError(f"{self.uri}: more than {MAX_BLOCK} bytes without an end of block")
            try:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(65536)
            except TimeoutError:
                raise MllpError(
                    silence.timed_out(self.uri, self.timeout, f"MLLP {self.uri}", "no acknowledgement")
                ) from None
            except OSError as exc:
                raise MllpError(f"{self.uri}: connection lost: {exc.strerror or exc}") from None
            if not chunk:
                raise MllpError(f"{self.uri}: the peer closed the connection without an acknowledgement")
            self._buffer += chunk
        block, _, self._buffer = self._buffer.partition(END_BLOCK)
        start = block.find(START_BLOCK)
        return block[start + 1 :] if start >= 0 else block

    def send(self, message: str | hl7.Message) -> hl7.Message:
        """Send one message; the peer's ACK to it, parsed and checked by :func:`read_ack` (then
        :func:`ack_code` tells accepted from refused)."""
        reply = self.send_raw(frame(message))
        return read_ack(reply, self.uri, control_id(message))


def send_message(
    uri: str, message: str | hl7.Message, timeout: float = 5.0, connect_timeout: float | None = None
) -> hl7.Message:
    """Open, send one message, close; the parsed ACK (``connect_timeout`` defaults to ``timeout``)."""
    with MllpClient(uri, timeout, connect_timeout) as client:
        return client.send(message)


async def send_message_async(uri: str, message: str | hl7.Message, timeout: float = 5.0) -> hl7.Message:
    """The asyncio twin of :func:`send_message`, for components that live on an event loop."""
    host, port = parse_uri(uri)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        raise MllpError(f"{uri}: no connection within {timeout:g} s") from None
    except OSError as exc:
        raise MllpError(f"{uri}: cannot connect: {exc.strerror or exc}") from None
    try:
        writer.write(frame(message))
        await writer.drain()
        block = await asyncio.wait_for(reader.readuntil(END_BLOCK), timeout)
    except TimeoutError:
        raise MllpError(f"{uri}: no acknowledgement within {timeout:g} s") from None
    except asyncio.IncompleteReadError:
        raise MllpError(f"{uri}: the peer closed the connection without an acknowledgement") from None
    except asyncio.LimitOverrunError:  # more than the stream's 64 KiB without <FS><CR>: no ACK is that long
        raise MllpError(f"{uri}: the acknowledgement runs past 64 KiB without an end block") from None
    except OSError as exc:
        raise MllpError(f"{uri}: connection lost: {exc.strerror or exc}") from None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    payload = block[:-2]
    payload = payload[payload.find(START_BLOCK) + 1 :] if START_BLOCK in payload else payload
    return read_ack(payload, uri, control_id(message))


ACK_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")


def control_id(message: str | hl7.Message) -> str:
    """MSH-10 of a message we send ('' when it has none to tell), read without parsing it."""
    text = str(message).lstrip()
    if not text.startswith("MSH") or len(text) < 4:
        return ""
    fields = text.replace("\n", "\r").split("\r", 1)[0].split(text[3])
    return fields[9] if len(fields) > 9 else ""


def read_ack(payload: bytes, where: str, control: str = "") -> hl7.Message:
    """The peer's reply as the acknowledgement of our message ``control`` (MSH-10), or MllpError why not.

    Checked here, once for every caller: a reply that is not UTF-8 HL7, has no MSA, has no
    acknowledgement code in MSA-1, or acknowledges another message (MSA-2: a stale or a
    foreign ACK) is no answer to what we sent, so :func:`ack_code` and :func:`ack_text` only
    ever see a real ACK.
    """
    shown = repr(payload[:60])
    try:
        ack = parse(payload.decode(ENCODING))
    except UnicodeDecodeError as exc:
        raise MllpError(f"{where}: the acknowledgement is not UTF-8 ({exc.reason}): {shown}") from None
    except Exception as exc:  # python-hl7 raises several kinds on garbage
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise MllpError(f"{where}: the acknowledgement is not HL7: {shown} ({why!r})") from None
    try:
        ack.segment("MSA")
    except KeyError:
        raise MllpError(f"{where}: the acknowledgement has no MSA segment: {shown}") from None
    code = field(ack, "MSA", 1)
    if code not in ACK_CODES:
        raise MllpError(
            f"{where}: MSA-1 is {code[:20]!r}, not an acknowledgement code ({', '.join(ACK_CODES)})"
        )
    refers = field(ack, "MSA", 2)
    if control and refers != control:
        raise MllpError(
            f"{where}: the acknowledgement is for message {refers[:60]!r}, not ours ({control!r})"
        )
    return ack


# -- building messages ---------------------------------------------------------------------------


def timestamp(moment: datetime | None = None) -> str:
    """HL7 DTM in UTC, to the second: ``20250301142501``."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S")


def escape(text: str) -> str:
    """HL7 v2 escaping of free text for the default separators ``|^~\\&``."""
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("~", "\\R\\")
        .replace("&", "\\T\\")
        .replace("\r", "\\X0D\\")
        .replace("\n", "\\X0A\\")
    )


def unescape(text: str) -> str:
    """The inverse of :func:`escape` for the sequences it writes."""
    out, i = [], 0
    table = {"F": "|", "S": "^", "R": "~", "T": "&", "E": "\\", "X0D": "\r", "X0A": "\n"}
    while i < len(text):
        if text[i] == "\\":
            end = text.find("\\", i + 1)
            if end > i and text[i + 1 : end] in table:
                out.append(table[text[i + 1 : end]])
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _msh(sender: tuple[str, str], receiver: tuple[str, str], kind: str, control_id: str) -> str:
    return "|".join(
        [
            "MSH",
            "^~\\&",
            sender[0],
            sender[1],
            receiver[0],
            receiver[1],
            timestamp(),
            "",
            kind,
            control_id,
            "P",
            VERSION,
            "",
            "",
            "AL",
            "NE",
            "",
            "UNICODE UTF-8",
        ]
    )


def _pid(personnummer: str, name: str) -> str:
    digits = patient_gate.check(personnummer, "skicka HL7 för").replace("-", "").replace("+", "")
    given, _, family = name.rpartition(" ")
    return "|".join(
        ["PID", "1", "", f"{digits}^^^{PNR_AUTHORITY}^PN", "", f"{escape(family or name)}^{escape(given)}"]
    )


@dataclass(frozen=True)
class LabOrder:
    """What an order message says: who orders what for whom; ``placer`` is the orderer's number."""

    placer: str
    personnummer: str
    patient_name: str
    test_code: str
    test_name: str
    sending_application: str
    sending_facility: str
    orderer_hsa_id: str = ""
    orderer_name: str = ""
    comment: str = ""
    """Free text to the lab (an NTE after the OBR); with the orderer's name, where å/ä/ö travel."""


def build_order(
    order: LabOrder,
    receiver: tuple[str, str] = ("LAB", "KLINKEM"),
    kind: str = "ORM^O01^ORM_O01",
    control_id: str | None = None,
) -> str:
    """An ORM^O01 (or, with ``kind="OML^O21^OML_O21"``, an OML^O21) new-order message."""
    control_id = control_id or f"{order.placer}-{timestamp()}"
    coded = f"{order.test_code}^{escape(order.test_name)}^NPU"
    orderer = f"{order.orderer_hsa_id}^{escape(order.orderer_name)}" if order.orderer_hsa_id else ""
    segments = [
        _msh((order.sending_application, order.sending_facility), receiver, kind, control_id),
        _pid(order.personnummer, order.patient_name),
        "|".join(
            [
                "ORC",
                "NW",
                f"{order.placer}^{order.sending_application}",
                "",
                "",
                "",
                "",
                "",
                "",
                timestamp(),
                "",
                "",
                orderer,
            ]
        ),
        "|".join(
            ["OBR", "1", f"{order.placer}^{order.sending_application}", "", coded, "", "", timestamp()]
            + ([""] * 8 + [orderer] if order.comment else [])
        ),
    ]
    if order.comment:  # OBR-16 (ordering provider) beside ORC-12, and the comment: what a lab echoes
        segments.append("|".join(["NTE", "1", "P", escape(order.comment)]))
    return "\r".join(segments)


@dataclass(frozen=True)
class LabValue:
    """One OBX: a numeric result with unit, reference range and abnormal flag."""

    code: str
    name: str
    value: str
    unit: str
    reference: str = ""
    flag: str = ""


def build_result(
    order: hl7.Message,
    filler: str,
    values: list[LabValue],
    sender: tuple[str, str] = ("LAB", "KLINKEM"),
    control_id: str | None = None,
) -> str:
    """The ORU^R01 answering ``order``: addressed back to its sender, PID and placer number copied."""
    msh = order.segment("MSH")
    receiver = (str(msh(3)), str(msh(4)))
    placer = str(order.segment("ORC")(2))
    when = timestamp()
    segments = [
        _msh(sender, receiver, "ORU^R01^ORU_R01", control_id or f"{filler}-{when}"),
        str(order.segment("PID")),
        "|".join(["ORC", "RE", placer, filler]),
        "|".join(
            ["OBR", "1", placer, filler, str(order.segment("OBR")(4)), "", "", when]
            + [""] * 14
            + [when, "", "LAB", "F"]
        ),
    ]
    for i, v in enumerate(values, start=1):
        segments.append(
            "|".join(
                [
                    "OBX",
                    str(i),
                    "NM",
                    f"{v.code}^{escape(v.name)}^NPU",
                    "",
                    v.value,
                    escape(v.unit),
                    escape(v.reference),
                    v.flag,
                    "",
                    "",
                    "F",
                    "",
                    "",
                    when,
                ]
            )
        )
    return "\r".join(segments)


def field(message: hl7.Message, segment: str, index: int, component: int | None = None) -> str:
    """A field (or one component of it) of the first such segment as text; '' when absent.

    ``field(msg, "MSH", 9, 1)`` is the message code (``ORM``), ``field(msg, "PID", 3, 1)``
    the patient id. Numbering is HL7's (MSH-1 is the field separator).
    """
    try:
        if component is None:
            return str(message.segment(segment)(index))
        return str(message.extract_field(segment, 1, index, 1, component))
    except (KeyError, IndexError):
        return ""


def parse(text: str) -> hl7.Message:
    """python-hl7's parser, tolerant of blank segments (a stray CR) that would otherwise break it."""
    return hl7.parse("\r".join(s for s in text.replace("\n", "\r").split("\r") if s.strip()))


def acknowledge(message: hl7.Message, code: str, sender: tuple[str, str], text: str = "") -> str:
    """The ACK to ``message`` (MSA-1 ``code``); with ``text``, MSA-3 and an ERR segment say why."""
    ack = message.create_ack(code, application=sender[0], facility=sender[1])
    lines = [segment for segment in str(ack).split("\r") if segment]
    if text:
        lines = [
            f"{line}|{escape(text)}" if line.startswith("MSA|") and line.count("|") == 2 else line
            for line in lines
        ]
        lines.append(f"ERR|||||E||||{escape(text)}")
    return "\r".join(lines)


# -- receiving: where a peer sends its messages to us -------------------------------------------


def field_name(segment: str, index: int) -> str:
    """HL7's name of a field: ``PID-5``; MSH counts its field separator as MSH-1."""
    return f"{segment}-{index}"


def undecodable_fields(payload: bytes, encoding: str = ENCODING) -> list[str]:
    """The fields (``PID-5``, ``NTE-3``) whose bytes are not text in ``encoding``: where a peer
    re-encoded (latin-1 ``å`` is the single byte 0xE5, never valid UTF-8)."""
    found = []
    for raw in payload.replace(b"\n", b"\r").split(b"\r"):
        if not raw.strip():
            continue
        name = raw[:3].decode("ascii", "replace")
        parts = raw.split(b"|")
        for i, part in enumerate(parts[1:], start=1):
            try:
                part.decode(encoding)
            except UnicodeDecodeError:
                found.append(field_name(name, i + 1 if name == "MSH" else i))
    return found


@dataclass(frozen=True)
class Received:
    """One message a peer sent us: the bytes as they came, the text when it decoded, and what was
    wrong with it (not UTF-8 in which fields, not HL7) in one line, or None."""

    raw: bytes
    text: str | None
    problem: str | None = None

    @property
    def message(self) -> hl7.Message | None:
        return parse(self.text) if self.text is not None and self.problem is None else None

    def lenient(self) -> hl7.Message | None:
        """The message as latin-1 when it was not UTF-8 (to find which order it answers), else as read."""
        try:
            return parse(self.text if self.text is not None else self.raw.decode("latin-1"))
        except Exception:  # noqa: BLE001 - garbage: nothing to match it by
            return None


class MllpListener:
    """A loopback MLLP endpoint for messages a peer sends *to* the rehearsal (a lab's ORU^R01).

    ``with MllpListener("mllp://127.0.0.1:PORT") as inbox: … inbox.wait_for(match, 30)``. Each
    block is kept as it came (:class:`Received`) and acknowledged at once on the same
    connection: ``AA`` when it is UTF-8 HL7, ``AR`` (with the reason in MSA-3) when not, so the
    peer is told, and the check still sees what arrived. Bounded: a connection silent for
    ``timeout`` is closed, a block over :data:`MAX_BLOCK` ends it, at most ``keep`` messages are
    kept; every thread is a daemon and :meth:`close` stops them.
    """

    def __init__(
        self,
        uri: str,
        timeout: float = 5.0,
        sender: tuple[str, str] = ("REHEARSAL", "REHEARSAL"),
        keep: int = 1000,
    ) -> None:
        self.uri = uri
        self.host, self.port = parse_uri(uri)
        self.timeout = timeout
        self.sender = sender
        self.keep = keep
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        try:
            self._server = socket.create_server((self.host, self.port), reuse_port=False)
        except OSError as exc:
            raise MllpError(f"{self.uri}: cannot listen: {exc.strerror or exc}") from None
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, name=f"mllp-listen-{self.port}", daemon=True).start()

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self._open):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self) -> None:
        while (server := self._server) is not None:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        conn.settimeout(self.timeout)
        try:
            while self._server is not None:
                try:
                    chunk = conn.recv(65536)
                except (TimeoutError, OSError):
                    return
                if not chunk:
                    return
                buffer += chunk
                while END_BLOCK in buffer:
                    block, _, buffer = buffer.partition(END_BLOCK)
                    start = block.find(START_BLOCK)
                    conn.sendall(frame(self._take(block[start + 1 :] if start >= 0 else block)))
                if len(buffer) > MAX_BLOCK:
                    return
        except OSError:
            return
        finally:
            self._open.discard(conn)
            conn.close()

    def _take(self, payload: bytes) -> str:
        """Keep one block; the ACK to send back for it."""
        problem, text = None, None
        try:
            text = payload.decode(ENCODING)
            parsed = parse(text)
            parsed.segment("MSH")
        except UnicodeDecodeError:
            where = ", ".join(undecodable_fields(payload)) or "?"
            problem = f"not UTF-8 in {where}"
        except Exception as exc:  # noqa: BLE001 - python-hl7 raises several kinds on garbage
            problem = "not HL7: " + (" ".join(str(exc).split())[:80] or type(exc).__name__)
        got = Received(payload, text, problem)
        with self._changed:
            self.received = [*self.received[-(self.keep - 1) :], got]
            self._changed.notify_all()
        message = got.lenient()
        if message is None:
            return "\r".join([f"MSH|^~\\&|{self.sender[0]}|{self.sender[1]}|||{timestamp()}||ACK|"
                              f"{timestamp()}|P|{VERSION}", f"MSA|AR||{escape(problem or '')}"])  # fmt: skip
        return acknowledge(message, "AR" if problem else "AA", self.sender, problem or "")

    def wait_for(self, match: Callable[[Received], bool], within_s: float) -> Received | None:
        """The first kept message ``match`` accepts, waiting at most ``within_s``; None if none came."""
        deadline = time.monotonic() + within_s
        with self._changed:
            while True:
                found = next((r for r in self.received if match(r)), None)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self._changed.wait(left)
