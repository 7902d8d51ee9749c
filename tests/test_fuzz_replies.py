"""Broken device replies and facts files, generated (issue #8, "Bad input").

Whatever a workstation facts file holds and whatever an SNMP agent, a ZPL printer, an MLLP
peer or a FHIR server answers, the harness ends in a record (not ready, unreachable, a
finding) or in its own error family, with a one-line reason that says where. Never a
traceback. The replies come from real loopback peers (one per protocol for the whole
module) that answer each request with a mutation of a valid reply: truncated, bit-flipped,
wrong lengths and tags, random bytes, missing segments, wrong ids, non-UTF-8, empty.
"""

from __future__ import annotations

import asyncio
import copy
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rehearsal.clients import hl7 as mllp
from rehearsal.clients.fhir import FhirClient, FhirError
from rehearsal.errors import TargetError
from rehearsal.hardware import Device, SweepConfig, probe_device
from rehearsal.plan import Baseline, Environment, Timeouts
from rehearsal.probes import snmp, zpl
from rehearsal.probes.workstation import check_workstation


def fuzz(examples: int) -> settings:
    """Each property's share of the cases; no deadline (loopback peers on a busy machine)."""
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


def assert_one_line(text: str | None, where: str) -> None:
    """A reason a person reads in a table or a terminal: not empty, one line, saying where."""
    assert text, "empty reason"
    assert len(text.splitlines()) == 1 and "\n" not in text and "\r" not in text, repr(text)
    assert where in text, f"{where!r} not named in {text!r}"


def assert_lines(texts: list[str]) -> None:
    for text in texts:
        assert text and len(text.splitlines()) == 1 and "\r" not in text, repr(text)


# --- byte mutations of a valid reply, shared by every protocol ---------------------------------


@dataclass(frozen=True)
class Mutation:
    kind: str
    at: int  # a position, taken modulo the reply's length
    junk: bytes

    def apply(self, data: bytes) -> bytes:
        at = self.at % (len(data) + 1)
        if self.kind == "none":
            return data
        if self.kind == "empty":
            return b""
        if self.kind == "random":
            return self.junk
        if self.kind == "truncate":
            return data[:at]
        if self.kind == "flip":
            if not data:
                return data
            i = at % len(data)
            return data[:i] + bytes([data[i] ^ (1 << (self.at % 8))]) + data[i + 1 :]
        if self.kind == "overwrite":
            return data[:at] + self.junk + data[at + len(self.junk) :]
        if self.kind == "insert":
            return data[:at] + self.junk + data[at:]
        if self.kind == "delete":
            return data[:at] + data[at + 1 + len(self.junk) :]
        if self.kind == "huge-length":  # a BER/frame length byte replaced by a long-form huge one
            return data[:at] + self.junk[:1] + b"\x84\xff\xff\xff\xf0" + data[at + 2 :]
        if self.kind == "repeat":
            return data * (2 + len(self.junk) % 3)
        raise AssertionError(self.kind)


mutations = st.builds(
    Mutation,
    kind=st.sampled_from(
        [
            "none",
            "empty",
            "random",
            "truncate",
            "flip",
            "flip",
            "overwrite",
            "overwrite",
            "insert",
            "delete",
            "huge-length",
            "repeat",
        ]
    ),
    at=st.integers(0, 4000),
    junk=st.binary(max_size=24)
    | st.sampled_from(
        [b"\n", b"\r\n", b"\x00", b"\xff\xfe", b"\xc3", b"\x85", "\u2028".encode(), b"\x02", b"\x03"]
    ),
)


class Holder:
    """What the module's peers answer with now; set by the running example."""

    def __init__(self) -> None:
        self.case: Any = None


# --- workstation facts files --------------------------------------------------------------------

BASELINE = Baseline.model_validate(
    {
        "os": {"windows": "10.0.19045", "linux": "12"},
        "min_ram_gb": 8,
        "min_disk_free_gb": 20,
        "min_display": "1920x1080",
        "browsers": {"edge": "120", "firefox": "115"},
        "citrix_workspace": "2203",
        "peripherals": {"sjuksköterska": ["barcode-scanner"]},
        "endpoints": {"max_latency_ms": 150, "tls_trusted": True, "min_cert_days": 14},
        "max_clock_skew_s": 60,
        "max_facts_age_h": 48,
    }
)
GOOD_FACTS: dict[str, Any] = {
    "schema": "rehearsal-workstation-facts/1",
    "hostname": "SAS-AKUT-WS01",
    "collected_at": "2026-11-25T08:00:00+01:00",
    "collector": "collect-workstation.ps1 1.4",
    "os": {
        "family": "windows",
        "name": "Windows 11 Enterprise",
        "version": "10.0.22631.4317",
        "build": "22631",
    },
    "hardware": {"manufacturer": "HP", "model": "EliteDesk", "ram_gb": 16, "disk_free_gb": 120},
    "displays": [{"width": 1920, "height": 1080}],
    "browsers": {"edge": "130.0.2849.68"},
    "citrix_workspace": "2409.10.0.15",
    "peripherals": [{"kind": "barcode-scanner", "name": "Zebra DS2208", "status": "ok"}],
    "printers": [{"name": "sas-akut-dok1", "driver": "HP Universal", "port": "IP_10.0.0.5"}],
    "endpoints": [
        {"url": "https://ehr.example/", "latency_ms": 12, "tls_trusted": True, "cert_days_left": 200}
    ],
    "clock": {"skew_s": 0.4},
}
GOOD_OSQUERY: dict[str, Any] = {
    "os_version": [
        {
            "name": "Microsoft Windows 11 Enterprise",
            "platform": "windows",
            "major": "10",
            "minor": "0",
            "build": "22631",
            "version": "10.0.22631",
        }
    ],
    "system_info": [{"hostname": "NAL-LAB-WS01", "physical_memory": str(16 * 1024**3)}],
    "logical_drives": [{"device_id": "C:", "free_space": str(80 * 1024**3), "boot_partition": "1"}],
    "mounts": [{"path": "/", "blocks_available": "1000", "blocks_size": "4096"}],
    "programs": [
        {"name": "Microsoft Edge", "version": "131.0.2903.70"},
        {"name": "Citrix Workspace 2409", "version": "24.9.10.28"},
    ],
    "deb_packages": [{"name": "firefox-esr", "version": "128.5.0esr-1~deb12u1"}],
}
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# raw JSON spliced in as text: what json.dumps would never write but a file can hold
ODD_NUMBERS = [
    "1" * 400,
    "9" * 5000,
    "-" + "9" * 400,
    "1e999",
    "-1e999",
    "Infinity",
    "-Infinity",
    "NaN",
    "1E400",
    "0.000000000000000000000000000001",
    "-0",
    "123456789012345678901234567890",
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        ["", "10.0", "10.0\n", "1.2.3\r\n", "2026-11-25T08:00:00Z", "x" * 300, "åäö\u2028", "\x00", "ok"]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def json_paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += json_paths(value, (*prefix, i))
    return found


FACTS_PATHS = [p for p in json_paths(GOOD_FACTS) if p]
OSQUERY_PATHS = [p for p in json_paths(GOOD_OSQUERY) if p]
MARK = "__RAW_NUMBER__"


def changed(data: dict[str, Any], path: tuple[Any, ...], value: object, how: str) -> str:
    """``data`` as JSON text with the field at ``path`` replaced, removed, or given an odd raw number."""
    data = copy.deepcopy(data)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    if how == "delete":
        del node[path[-1]]
    elif how == "raw":
        node[path[-1]] = MARK
    elif how == "extra" and isinstance(node, dict):
        node[f"{path[-1]}-extra"] = value
    else:
        node[path[-1]] = value
    text = json.dumps(data, ensure_ascii=bool(len(path) % 2))
    return text.replace(json.dumps(MARK), str(value), 1) if how == "raw" else text


def check_facts(tmp: Path, content: str | bytes) -> None:
    """Read one facts file through the real loader, checker and hardware sweep; judge the reasons."""
    path = tmp / "sas-akut-ws01.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    readiness = check_workstation("sas-akut-ws01", path, BASELINE, "sjuksköterska", NOW)
    if readiness.error is not None:
        assert not readiness.ready and readiness.findings == ()
        assert_one_line(readiness.error, str(path))
    else:
        assert readiness.facts is not None and readiness.hostname
        assert all(f.rule and f.message for f in readiness.findings)
    assert_lines(readiness.problems)
    json.dumps(readiness.as_dict(), default=str)  # what the report writes
    device = Device("sas-boras", "sas-akut-ws01", "workstation", "facts", str(path), role="sjuksköterska")
    report = asyncio.run(probe_device(device, SweepConfig(baseline=BASELINE), None))
    assert not any(p.startswith("probe failed") for p in report.problems), report.problems
    assert_lines(list(report.problems))
    assert report.reachable == (readiness.error is None)


@fuzz(130)
@given(
    path=st.sampled_from(FACTS_PATHS),
    value=json_values | st.sampled_from(ODD_NUMBERS),
    how=st.sampled_from(["set", "set", "delete", "raw", "extra"]),
)
def test_a_facts_field_changed_or_removed_is_a_finding_or_a_reason(
    tmp_path: Path, path: tuple[Any, ...], value: object, how: str
) -> None:
    if how == "raw" and value not in ODD_NUMBERS:
        how = "set"
    check_facts(tmp_path, changed(GOOD_FACTS, path, value, how))


@fuzz(60)
@given(
    path=st.sampled_from(OSQUERY_PATHS),
    value=json_values | st.sampled_from(ODD_NUMBERS),
    how=st.sampled_from(["set", "set", "delete", "raw", "extra"]),
)
def test_odd_osquery_results_are_a_finding_or_a_reason(
    tmp_path: Path, path: tuple[Any, ...], value: object, how: str
) -> None:
    if how == "raw" and value not in ODD_NUMBERS:
        how = "set"
    check_facts(tmp_path, changed(GOOD_OSQUERY, path, value, how))


EXTRA_TEXT = {  # named, so a failing example prints short: (before, after) the mutated text
    "nothing": (b"", b""),
    "bom": (b"\xef\xbb\xbf", b""),
    "deep-list": (b"[" * 50_000, b""),
    "deep-object": (b'{"a":' * 5000, b""),
    "utf-16": (b"\xff\xfe{\x00", b"}\x00"),
    "trailing-garbage": (b"", b"\x00\x01garbage"),
}


@fuzz(60)
@given(
    base=st.sampled_from([GOOD_FACTS, GOOD_OSQUERY]),
    mutation=mutations,
    extra=st.sampled_from(sorted(EXTRA_TEXT)),
)
def test_broken_facts_text_is_a_reason_naming_the_file(
    tmp_path: Path, base: dict[str, Any], mutation: Mutation, extra: str
) -> None:
    text = mutation.apply(json.dumps(base, ensure_ascii=False).encode("utf-8"))
    head, tail = EXTRA_TEXT[extra]
    check_facts(tmp_path, head + text + tail)


# --- SNMP: a UDP agent answering each GETBULK with a mutated Printer-MIB answer -------------------

SNMP_VALUES: dict[str, tuple[str, bytes]] = {  # column -> (row suffix, encoded value)
    snmp.SYS_DESCR: ("0", snmp._tlv(0x04, b"HP LaserJet M607")),
    snmp.HR_DEVICE_DESCR: ("1", snmp._tlv(0x04, b"HP LaserJet M607 dn")),
    snmp.HR_DEVICE_STATUS: ("1", snmp._int(2)),
    snmp.HR_PRINTER_STATUS: ("1", snmp._int(3)),
    snmp.HR_PRINTER_ERRORS: ("1", snmp._tlv(0x04, b"\x00\x00")),
    f"{snmp.SUPPLY}.5": ("1.1", snmp._int(3)),
    f"{snmp.SUPPLY}.6": ("1.1", snmp._tlv(0x04, b"Black Toner Cartridge")),
    f"{snmp.SUPPLY}.8": ("1.1", snmp._int(100)),
    f"{snmp.SUPPLY}.9": ("1.1", snmp._tlv(0x42, b"\x50")),  # Gauge32
    snmp.INTERPRETER_LANG: ("1.1", snmp._int(54)),
    f"{snmp.ALERT}.2": ("1.1", snmp._int(3)),
    f"{snmp.ALERT}.7": ("1.1", snmp._int(8)),
    f"{snmp.ALERT}.8": ("1.1", snmp._tlv(0x04, b"Cover open")),
}


def tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """The agent's own BER reading of our (well-formed) requests: it must not share the code under test."""
    tag, size, pos = data[pos], data[pos + 1], pos + 2
    if size & 0x80:
        size, pos = int.from_bytes(data[pos : pos + (size & 0x7F)], "big"), pos + (size & 0x7F)
    return tag, data[pos : pos + size], pos + size


def oid_text(body: bytes) -> str:
    parts, n = [body[0] // 40, body[0] % 40], 0
    for byte in body[1:]:
        n = n << 7 | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(n)
            n = 0
    return ".".join(map(str, parts))


@dataclass(frozen=True)
class SnmpCase:
    mutation: Mutation  # on the whole datagram
    column: str | None  # this column's value replaced by a TLV of ``tag`` and ``body``
    tag: int
    body: bytes


NO_MUTATION = Mutation("none", 0, b"")


def snmp_answer(request: bytes, case: SnmpCase | None = None) -> bytes:
    """A valid Response-PDU to our GETBULK: the first row of each column, then endOfMibView;
    with ``case``, one value replaced and the datagram mutated."""
    _, message, _ = tlv(request, 0)
    _, _, pos = tlv(message, 0)
    _, community, pos = tlv(message, pos)
    _, pdu, _ = tlv(message, pos)
    header, pos = [], 0
    for _ in range(3):
        _, body, pos = tlv(pdu, pos)
        header.append(int.from_bytes(body, "big", signed=True))
    request_id, non_repeaters, repetitions = header
    _, binds, _ = tlv(pdu, pos)
    oids, pos = [], 0
    while pos < len(binds):
        _, bind, pos = tlv(binds, pos)
        _, oid, _ = tlv(bind, 0)
        oids.append(oid_text(oid))

    values = dict(SNMP_VALUES)
    if case is not None and case.column is not None:
        values[case.column] = (values[case.column][0], snmp._tlv(case.tag, case.body))

    def bind(oid: str, value: bytes) -> bytes:
        return snmp._tlv(0x30, snmp._oid(oid) + value)

    answer = [bind(f"{oid}.{values[oid][0]}", values[oid][1]) for oid in oids[:non_repeaters]]
    for row in range(repetitions):
        for oid in oids[non_repeaters:]:
            first = row == 0 and oid in values
            answer.append(bind(f"{oid}.1.1", values[oid][1]) if first else bind(oid, b"\x82\x00"))
    pdu = snmp._int(request_id) + snmp._int(0) + snmp._int(0) + snmp._tlv(0x30, b"".join(answer))
    reply = snmp._tlv(0x30, snmp._int(1) + snmp._tlv(0x04, community) + snmp._tlv(0xA2, pdu))
    return case.mutation.apply(reply) if case is not None else reply


@pytest.fixture(scope="module")
def snmp_agent() -> Iterator[tuple[int, Holder]]:
    holder = Holder()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                request, peer = sock.recvfrom(65536)
            except OSError:
                return
            sock.sendto(snmp_answer(request, holder.case), peer)

    threading.Thread(target=serve, daemon=True).start()
    yield sock.getsockname()[1], holder
    sock.close()


def probe_snmp_recording(port: int) -> tuple[snmp.SnmpReadiness, list[dict[str, Any]]]:
    """probe_snmp on a loop that records what escaped a callback (a datagram handler, say)."""
    escaped: list[dict[str, Any]] = []

    async def run() -> snmp.SnmpReadiness:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: escaped.append(context))
        return await snmp.probe_snmp("127.0.0.1", port, "public", 0.08)

    return asyncio.run(run()), escaped


SNMP_TAGS = [0x02, 0x04, 0x05, 0x06, 0x30, 0x40, 0x41, 0x42, 0x43, 0x44, 0x46, 0x80, 0x81, 0x82, 0xA2, 0xFF]
SNMP_BODIES = [
    b"Cover\nopen",
    b"\r\n",
    b"\xff\xfe\xc3",
    b"\x7f" + b"\xff" * 300,
    b"\x80" + b"\x00" * 300,
    b"\x01" * 2000,
    b"\x81" * 2100 + b"\x01",
    b"\x2b" + b"\xff" * 40 + b"\x7f",
    b"12",
    b"",
    b"\x00",
]
snmp_cases = st.builds(
    SnmpCase,
    mutation=mutations | st.just(NO_MUTATION),
    column=st.none() | st.sampled_from(sorted(SNMP_VALUES)),
    tag=st.sampled_from(SNMP_TAGS),
    body=st.binary(max_size=40) | st.sampled_from(SNMP_BODIES),
)


@fuzz(200)
@given(case=snmp_cases)
def test_mutated_snmp_answers_are_not_ready_or_unreachable_in_one_line(
    snmp_agent: tuple[int, Holder], case: SnmpCase
) -> None:
    port, holder = snmp_agent
    oids = [*snmp.SCALARS, *snmp.FIRST_ROW, *snmp.COLUMNS]
    try:  # the decoder alone, on the very bytes the agent sends
        snmp.decode_response(snmp_answer(snmp.encode_request("public", 4711, oids, bulk=(5, 4)), case))
    except snmp.MalformedReply as exc:
        assert_one_line(str(exc), "")
    holder.case = case
    try:
        readiness, escaped = probe_snmp_recording(port)
    finally:
        holder.case = None
    assert escaped == [], escaped
    assert f"127.0.0.1:{port}" in readiness.address
    if readiness.error is not None:
        assert not readiness.ready
        assert not readiness.error.startswith("probe failed"), readiness.error
        assert_one_line(readiness.error, f"127.0.0.1:{port}")
    assert_lines(readiness.problems + readiness.warnings)
    json.dumps(readiness.as_dict())
    if case.mutation.kind == "none" and case.column is None:
        assert readiness.reachable and readiness.problems == ["alert: Cover open (critical)"]


# --- ZPL: a raw TCP printer answering ~HS, ~HQES and ~HI with mutated frames ---------------------

ZPL_REPLIES = {
    "~HS": b"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n"
    b"\x021234,0\x03\r\n",
    "~HQES": b"\x02\r\n\r\n  PRINTER STATUS\r\n   ERRORS:         0 00000000 00000000\r\n"
    b"   WARNINGS:       0 00000000 00000000\r\n\x03\r\n",
    "~HI": b"\x02ZD621-203dpi,V93.21.26Z,8,8192KB\x03\r\n",
}
ZPL_ODD = [
    b"\x02\xb2\xb3,\xbd,\xb9\x03",
    b"\x02" + b"9" * 5000 + b"," * 5 + b"\x03",
    b"\x02,,,,\x03" * 3,
    b"\x02a,1,1,1," + b"9" * 400 + b"\x03",
    b"\x02ERRORS: 1 ffffffffffffffffffff 1\x03",
]


@dataclass(frozen=True)
class ZplCase:
    target: str  # which command's reply is mutated
    mutation: Mutation
    odd: bytes | None  # a hand-made odd frame put in place of the reply instead
    close_after: str | None  # close the connection after answering this command


@pytest.fixture(scope="module")
def zpl_printer() -> Iterator[tuple[int, Holder]]:
    holder = Holder()
    server = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                for command in ("~HQES", "~HS", "~HI"):  # ~HQES before ~HS: it does not start with ~HS
                    if command.encode() in buffer:
                        buffer = buffer.replace(command.encode(), b"", 1)
                        case: ZplCase | None = holder.case
                        reply = ZPL_REPLIES[command]
                        if case is not None and case.target == command:
                            reply = case.odd if case.odd is not None else case.mutation.apply(reply)
                        try:
                            conn.sendall(reply)
                        except OSError:
                            return
                        if case is not None and case.close_after == command:
                            return

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], holder
    server.close()


@fuzz(200)
@given(
    case=st.builds(
        ZplCase,
        target=st.sampled_from(list(ZPL_REPLIES)),
        mutation=mutations,
        odd=st.none() | st.none() | st.sampled_from(ZPL_ODD),
        close_after=st.sampled_from(["~HS", "~HQES", "~HI", "~HI", None]),
    )
)
def test_mutated_zpl_answers_are_not_ready_or_unreachable_in_one_line(
    zpl_printer: tuple[int, Holder], case: ZplCase
) -> None:
    port, holder = zpl_printer
    holder.case = case
    readiness = asyncio.run(zpl.probe_zpl(f"tcp://127.0.0.1:{port}", 0.15))
    holder.case = None
    if readiness.error is not None:
        assert not readiness.ready
        assert not readiness.error.startswith("probe failed"), readiness.error
        assert_one_line(readiness.error, f"127.0.0.1:{port}")
    assert_lines(readiness.problems + readiness.warnings)
    json.dumps(readiness.as_dict())  # every property, as the sweep and the report read them
    if case.close_after is None and case.mutation.kind == "none" and case.odd is None:
        assert readiness.ready and readiness.dpi == 203


# --- HL7 v2: an MLLP peer answering each message with a mutated ACK ------------------------------


@dataclass(frozen=True)
class AckCase:
    change: str  # what is wrong in the ACK's text
    text: str  # a value used by the change
    mutation: Mutation  # then, on the framed bytes
    framing: str
    close: bool


def ack_for(message: bytes, case: AckCase) -> bytes:
    segments = message.strip(b"\x0b\x1c\r").decode("utf-8").split("\r")
    control = segments[0].split("|")[9]
    code, refers, tail, msh_extra = "AA", control, "", ""
    if case.change == "wrong-control-id":
        refers = case.text
    elif case.change == "code":
        code = case.text
    elif case.change == "msa-text":
        tail = f"|{case.text}"
    elif case.change == "msh":
        msh_extra = case.text
    msh = f"MSH|^~\\&|LAB|KLINKEM|REHEARSAL|SITE|20261125080000||ACK^O01^ACK|ACK-{control}|P|2.5.1{msh_extra}"
    lines = [msh, f"MSA|{code}|{refers}{tail}"]
    if case.change == "no-msa":
        lines = [msh, f"ERR|||||E||||{case.text}"]
    elif case.change == "only-msh":
        lines = [msh]
    elif case.change == "no-msh":
        lines = lines[1:]
    elif case.change == "two-msa":
        lines.append(f"MSA|AE|{case.text}")
    elif case.change == "text-only":
        lines = [case.text]
    payload = "\r".join(lines).encode("utf-8", "surrogatepass")
    if case.change == "latin-1":
        payload = payload.replace(b"KLINKEM", "KLINKEMÅÄÖ".encode("latin-1"))
    framed = {
        "mllp": mllp.START_BLOCK + payload + mllp.END_BLOCK,
        "no-start": payload + mllp.END_BLOCK,
        "no-end": mllp.START_BLOCK + payload,
        "two-blocks": (mllp.START_BLOCK + payload + mllp.END_BLOCK) * 2,
        "crlf": mllp.START_BLOCK + payload.replace(b"\r", b"\r\n") + mllp.END_BLOCK,
    }[case.framing]
    return case.mutation.apply(framed)


@pytest.fixture(scope="module")
def mllp_peer() -> Iterator[tuple[str, Holder]]:
    holder = Holder()
    server = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while mllp.END_BLOCK in buffer:
                    message, _, buffer = buffer.partition(mllp.END_BLOCK)
                    case: AckCase = holder.case
                    try:
                        conn.sendall(ack_for(message, case))
                    except OSError:
                        return
                    if case.close:
                        return

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"mllp://127.0.0.1:{server.getsockname()[1]}", holder
    server.close()


ORDER = mllp.build_order(
    mllp.LabOrder("FUZZ-1", "191212121212", "Tolvan Tolvansson", "NPU19748", "P-CRP", "REHEARSAL", "SITE"),
    control_id="FUZZ-CONTROL-1",
)
hl7_text = st.text(max_size=30) | st.sampled_from(
    [
        "AA",
        "AE",
        "AR",
        "CA",
        "XX",
        "",
        "FUZZ-CONTROL-1\rPID|1",
        "FUZZ-CONTROL-2",
        "A\nA",
        "\\F\\",
        "|||",
        "^~\\&",
        "x" * 70_000,  # more than an asyncio stream reads up to a separator by default
    ]
)


@fuzz(200)
@given(
    case=st.builds(
        AckCase,
        change=st.sampled_from(
            [
                "none",
                "wrong-control-id",
                "code",
                "msa-text",
                "msh",
                "no-msa",
                "only-msh",
                "no-msh",
                "two-msa",
                "text-only",
                "latin-1",
            ]
        ),
        text=hl7_text,
        mutation=mutations | st.just(Mutation("none", 0, b"")),
        framing=st.sampled_from(["mllp", "mllp", "mllp", "no-start", "no-end", "two-blocks", "crlf"]),
        close=st.booleans(),
    ),
    asynchronous=st.booleans(),
)
def test_mutated_acks_are_an_ack_for_our_message_or_an_mllp_error(
    mllp_peer: tuple[str, Holder], case: AckCase, asynchronous: bool
) -> None:
    uri, holder = mllp_peer
    holder.case = case
    try:
        if asynchronous:
            ack = asyncio.run(mllp.send_message_async(uri, ORDER, timeout=0.2))
        else:
            ack = mllp.send_message(uri, ORDER, timeout=0.2)
    except mllp.MllpError as exc:
        assert_one_line(str(exc), uri.removeprefix("mllp://"))
        return
    finally:
        holder.case = None
    assert mllp.ack_code(ack) in ("AA", "AE", "AR", "CA", "CE", "CR")
    assert mllp.field(ack, "MSA", 2) == "FUZZ-CONTROL-1"
    assert "\n" not in mllp.ack_text(ack) and "\r" not in mllp.ack_text(ack)
    if case.change == "none" and case.mutation.kind == "none" and case.framing in ("mllp", "crlf"):
        assert mllp.ack_code(ack) == "AA"


# --- FHIR: an HTTP server answering with error bodies, OperationOutcomes of every shape ----------


@dataclass(frozen=True)
class HttpCase:
    status: int
    content_type: str | None
    body: bytes
    length: str  # "right", "short" (Content-Length larger than the body, then close), "none"


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[tuple[str, Holder]]:
    holder = Holder()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            case: HttpCase = holder.case
            self.send_response(case.status)
            if case.content_type is not None:
                self.send_header("Content-Type", case.content_type)
            if case.length == "right":
                self.send_header("Content-Length", str(len(case.body)))
            elif case.length == "short":
                self.send_header("Content-Length", str(len(case.body) + 10))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(case.body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            """Print nothing."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fhir", holder
    server.shutdown()
    server.server_close()


def outcome(issues: object) -> bytes:
    return json.dumps({"resourceType": "OperationOutcome", "issue": issues}).encode()


GOOD_OUTCOME = outcome([{"severity": "error", "code": "not-found", "diagnostics": "Patient/x is not known"}])
issue_values = json_values | st.sampled_from(["line one\nline two", "tab\there", "\u2028", "x" * 5000])
issues = st.one_of(
    json_values,
    st.lists(
        st.dictionaries(
            st.sampled_from(["severity", "code", "diagnostics", "details", "expression"]),
            issue_values,
            max_size=4,
        )
        | json_values,
        max_size=4,
    ),
)
bodies = st.one_of(
    issues.map(outcome),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda m: m.apply(GOOD_OUTCOME), mutations),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"<html><body>Bad Gateway</body></html>",
            b"[" * 100_000,
            b'{"issue":' * 5000 + b"1",
            b'{"issue": [{"diagnostics": ' + b"9" * 5000 + b"}]}",
            b"\xff\xfe\x00{",
            b'{"issue": NaN}',
            b'{"resourceType": "OperationOutcome", "issue": {"diagnostics": "x"}}',
        ]
    ),
)


@fuzz(200)
@given(
    case=st.builds(
        HttpCase,
        status=st.sampled_from(
            [400, 401, 403, 404, 409, 410, 412, 422, 429, 500, 502, 503, 504, 200, 201, 299]
        ),
        content_type=st.sampled_from(
            [
                "application/fhir+json",
                "application/json; charset=utf-8",
                "text/html",
                "application/fhir+json; charset=iso-8859-1",
                "",
                None,
            ]
        ),
        body=bodies,
        length=st.sampled_from(["right", "right", "right", "short", "none"]),
    )
)
def test_fhir_error_bodies_of_any_shape_are_a_target_error_in_one_line(
    fhir_server: tuple[str, Holder], case: HttpCase
) -> None:
    base, holder = fhir_server
    environment = Environment(
        name="fuzz",
        kind="test",
        fhir_base=base,
        web_base="http://127.0.0.1:1/",
        allowed_hosts=["127.0.0.1"],
        timeouts=Timeouts(connect=0.5, read=0.5),
    )
    holder.case = case
    try:
        with FhirClient(environment) as client:
            resource = client.read("Patient", "x")
    except TargetError as exc:
        assert_one_line(str(exc), base)
        assert len(str(exc)) < 2000
        if isinstance(exc, FhirError):
            assert exc.status == case.status >= 400
        return
    finally:
        holder.case = None
    assert case.status < 400 and isinstance(resource, dict)


# --- the properties above can fail: a decoder that breaks is caught -------------------------------


def test_a_decoder_that_raises_something_else_is_caught(
    snmp_agent: tuple[int, Holder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SNMP property sees an IndexError in the datagram handler, not only an unreachable agent."""
    port, holder = snmp_agent

    def broken(tag: int, body: bytes) -> Any:
        raise IndexError("index out of range")

    monkeypatch.setattr(snmp, "_decode_value", broken)
    holder.case = SnmpCase(NO_MUTATION, None, 0, b"")
    try:
        readiness, escaped = probe_snmp_recording(port)
    finally:
        holder.case = None
    assert escaped and not readiness.reachable


# --- regressions: what the fuzz found, one case each --------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[" * 50_000, "not JSON: nested too deeply"),  # was RecursionError
        ('{"schema": ' + "9" * 5000 + "}", "not JSON: Exceeds the limit"),  # was ValueError
        (
            json.dumps({**GOOD_FACTS, "hardware": {"ram_gb": "NaN"}}).replace('"NaN"', "NaN"),
            "field hardware.ram_gb",
        ),
        (json.dumps({**GOOD_FACTS, "clock": {"skew_s": 10**400}}), "field clock.skew_s: not a usable number"),
        (
            json.dumps({**GOOD_FACTS, "os": {**GOOD_FACTS["os"], "version": "10.0\n"}}),
            "field os.version: not a version: '10.0\\n'",
        ),
        (
            json.dumps({**GOOD_FACTS, "browsers": {"edge\nx": "1.2\n"}}),
            "field browsers.edge\\nx: not a version",
        ),
    ],
)
def test_facts_the_fuzz_broke_are_one_line_reasons(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "ws.json"
    path.write_text(content, encoding="utf-8")
    readiness = check_workstation("ws", path, BASELINE, "sjuksköterska", NOW)
    assert readiness.error is not None and reason in readiness.error
    assert_one_line(readiness.error, str(path))


def test_versions_beyond_int_are_compared_and_odd_values_quoted_on_one_line(tmp_path: Path) -> None:
    facts = copy.deepcopy(GOOD_FACTS)
    facts["browsers"] = {"edge": "9" * 5000, "firefox": "0" * 4999 + "1"}  # was ValueError in int()
    facts["endpoints"] = [{"url": "https://ehr.example/\nX-Injected: 1", "error": "refused\r\nagain"}]
    path = tmp_path / "ws.json"
    path.write_text(json.dumps(facts), encoding="utf-8")
    readiness = check_workstation("ws", path, BASELINE, "sjuksköterska", NOW)
    assert [f.rule for f in readiness.findings] == ["browser:firefox", "endpoint"]
    assert readiness.problems[1] == "endpoint: https://ehr.example/\\nX-Injected: 1: refused\\r\\nagain"
    osquery = copy.deepcopy(GOOD_OSQUERY)
    osquery["system_info"][0]["physical_memory"] = "nan"  # was a RAM that passes every baseline
    osquery["logical_drives"][0]["free_space"] = "9" * 5000  # a float beyond range: not reported
    del osquery["mounts"]
    path.write_text(json.dumps(osquery), encoding="utf-8")
    readiness = check_workstation("ws", path, BASELINE, "sjuksköterska", NOW)
    assert {"ram: RAM not reported", "disk: free disk space not reported"} <= set(readiness.problems)


def test_snmp_values_of_the_wrong_type_or_size_are_judged_not_crashed() -> None:
    mib: dict[str, dict[str, Any]] = {c: {} for c in (*snmp.SCALARS, *snmp.FIRST_ROW, *snmp.COLUMNS)}
    mib[snmp.HR_PRINTER_STATUS]["1"] = 3
    mib[snmp.SYS_DESCR]["0"] = 10**5000  # INTEGER where text belongs: was ValueError in str()
    mib[f"{snmp.SUPPLY}.9"]["1.1"] = 2**600  # was OverflowError in percent
    mib[f"{snmp.SUPPLY}.8"]["1.1"] = 100
    mib[f"{snmp.ALERT}.2"]["1.1"] = 3
    mib[f"{snmp.ALERT}.7"]["1.1"] = b"\x00"  # OCTET STRING where a code belongs: was ValueError in int()
    mib[f"{snmp.ALERT}.8"]["1.1"] = b"Cover\r\nopen\x07"  # was a two-line problem
    readiness = snmp.readiness_from_mib("snmp://127.0.0.1:161", mib)
    assert readiness.sys_descr == "" and readiness.supplies == ()
    assert readiness.problems == ["alert: Cover open (critical)"]  # BEL dropped (rehearsal.devtext)
    with pytest.raises(snmp.MalformedReply, match="64 bits"):
        snmp._decode_oid(b"\x2b" + b"\x81" * 2100 + b"\x01")  # was ValueError in str() of the arc
    header = snmp._tlv(0x02, b"\x01" * 2000)  # a 2000-byte error status: was ValueError when reported
    pdu = snmp._tlv(0xA2, snmp._int(1) + header + snmp._int(0) + snmp._tlv(0x30, b""))
    with pytest.raises(snmp.MalformedReply, match="header INTEGER"):
        snmp.decode_response(snmp._tlv(0x30, snmp._int(1) + snmp._tlv(0x04, b"public") + pdu))


def test_zpl_odd_digits_are_not_numbers() -> None:
    assert zpl.parse_identification("ZD621,V1,\u00b9")[2] is None  # '¹'.isdigit() is True: was ValueError
    assert zpl.parse_identification("ZD621,V1," + "9" * 400)[2] is None  # was OverflowError in .dpi
    status = zpl.parse_host_status(["030,0,0,1245,\u00b2\u00b3,0", "001,0,0,0,1,2", "1234,0"])
    assert status["formats_in_buffer"] is None


def test_zpl_printer_that_resets_the_connection_is_a_bad_reply() -> None:
    """A reset while the probe reads was ConnectionResetError out of probe_zpl."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def reset() -> None:
        conn, _ = server.accept()
        conn.recv(16)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # linger 0: RST instead of FIN

    thread = threading.Thread(target=reset, daemon=True)
    thread.start()
    try:
        readiness = asyncio.run(zpl.probe_zpl(f"tcp://127.0.0.1:{port}", 2.0))
    finally:
        thread.join(2)
        server.close()
    assert readiness.reachable and not readiness.ready
    assert readiness.error is not None and readiness.error.startswith("bad reply: ")
    assert_one_line(readiness.error, f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("ack", "reason"),
    [
        (b"MSH|^~\\&|LAB|K|R|S|20261125||ACK|A1|P|2.5.1\rERR|||||E", "has no MSA segment"),  # was KeyError
        (b"MSH|^~\\&|LAB|K|R|S|20261125||ACK|A1|P|2.5.1\rMSA|AA|OTHER-1", "for message 'OTHER-1', not ours"),
        (b"MSH|^~\\&|LAB|K|R|S|20261125||ACK|A1|P|2.5.1\rMSA|OK|C-1", "MSA-1 is 'OK'"),
        (b"MSH|^~\\&|LAB|\xc5|R|S|20261125||ACK|A1|P|2.5.1\rMSA|AA|C-1", "not UTF-8"),
        (b"hello", "not HL7"),
    ],
)
def test_an_ack_that_does_not_acknowledge_our_message_is_an_mllp_error(ack: bytes, reason: str) -> None:
    with pytest.raises(mllp.MllpError, match=reason) as caught:
        mllp.read_ack(ack, "mllp://lab:2575", "C-1")
    assert_one_line(str(caught.value), "mllp://lab:2575")
    ok = mllp.read_ack(b"MSH|^~\\&|LAB|K|R|S|20261125||ACK|A1|P|2.5.1\rMSA|AE|C-1|unknown test", "x", "C-1")
    assert (mllp.ack_code(ok), mllp.ack_text(ok)) == ("AE", "unknown test")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (outcome(None), "Bad Request"),  # was TypeError
        (outcome([{"diagnostics": 5, "code": "invalid"}]), "invalid"),  # was TypeError in join
        (outcome([{"diagnostics": "line one\nline two"}]), "line one line two"),  # was two lines
        (b"[" * 100_000, "Bad Request"),  # was RecursionError
    ],
)
def test_fhir_error_bodies_the_fuzz_broke(fhir_server: tuple[str, Holder], body: bytes, reason: str) -> None:
    base, holder = fhir_server
    environment = Environment(
        name="fuzz", kind="test", fhir_base=base, web_base="http://127.0.0.1:1/", allowed_hosts=["127.0.0.1"]
    )
    holder.case = HttpCase(400, "application/fhir+json", body, "right")
    try:
        with FhirClient(environment) as client, pytest.raises(FhirError) as caught:
            client.read("Patient", "x")
    finally:
        holder.case = None
    assert str(caught.value) == f"GET {base}/Patient/x: HTTP 400: {reason}"


@pytest.mark.parametrize(
    "bundle",
    [
        {"resourceType": "Bundle", "entry": [5, None, "x", {"resource": 7}]},
        {"resourceType": "Bundle", "entry": {"resource": {"resourceType": "Patient"}}},
        {"resourceType": "Bundle", "link": [3, {"relation": "next", "url": 5}], "entry": []},
        {"resourceType": "Bundle", "link": "next"},
    ],
)
def test_a_search_bundle_of_odd_shape_gives_what_is_a_resource(
    fhir_server: tuple[str, Holder], bundle: dict[str, Any]
) -> None:
    """A third-party server's 2xx Bundle of the wrong shape: no crash, no resources made up."""
    base, holder = fhir_server
    environment = Environment(
        name="fuzz", kind="test", fhir_base=base, web_base="http://127.0.0.1:1/", allowed_hosts=["127.0.0.1"]
    )
    holder.case = HttpCase(200, "application/fhir+json", json.dumps(bundle).encode(), "right")
    try:
        with FhirClient(environment) as client:
            assert client.search("Patient") == []
    finally:
        holder.case = None


def _streaming_peer(chunk: bytes, pause: float) -> tuple[socket.socket, int]:
    """An MLLP peer that reads the message, then sends ``chunk`` every ``pause`` s, never an end block."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            try:
                while True:
                    conn.sendall(chunk)
                    threading.Event().wait(pause)
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.mark.parametrize(
    ("chunk", "pause", "reason"),
    [
        (b"\x0bMSH", 0.2, "within 1 s"),  # trickles: the timeout is for the whole reply
        (b"x" * 65536, 0.0, "more than 1048576 bytes without an end of block"),  # floods
    ],
)
def test_an_mllp_peer_that_never_ends_its_reply_is_cut_off(chunk: bytes, pause: float, reason: str) -> None:
    server, port = _streaming_peer(chunk, pause)
    uri = f"mllp://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        with pytest.raises(mllp.MllpError, match=reason) as caught:
            mllp.send_message(uri, "MSH|^~\\&|A|B|C|D|20261126||ADT^A01|C-1|P|2.5.1", timeout=1.0)
    finally:
        server.close()
    assert time.monotonic() - started < 3.0
    assert_one_line(str(caught.value), uri)
