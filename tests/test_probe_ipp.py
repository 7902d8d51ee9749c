"""The IPP readiness probe against real peers: ippeveprinter, and small HTTP servers that misbehave."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import free_port
from reference_hospital.printers import PrinterFleet
from rehearsal.plan import Printer
from rehearsal.probes import Unreachable
from rehearsal.probes.ipp import (
    MalformedReply,
    PrinterReadiness,
    decode_response,
    get_printer_attributes,
    probe_all,
    probe_printer,
    readiness_from_attributes,
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrinterFleet]:
    printers = [
        Printer(id=f"probe-dok{i}", kind="document", uri=f"ipp://127.0.0.1:{free_port(ipv6=True)}/ipp/print")
        for i in range(3)
    ]
    with PrinterFleet(printers, tmp_path_factory.mktemp("fleet")) as running:
        yield running


def probe(uri: str, timeout: float = 2.0, **kwargs) -> PrinterReadiness:
    return asyncio.run(probe_printer(uri, timeout, **kwargs))


# --- against ippeveprinter ----------------------------------------------------------------


def test_fresh_printer_is_idle_accepting_with_media(fleet: PrinterFleet) -> None:
    printer = fleet.printers[0]
    readiness = probe(printer.uri, required_formats=("application/pdf",))
    assert readiness.reachable and readiness.error is None
    assert readiness.state == "idle"
    assert readiness.accepting_jobs is True
    assert readiness.media_ready and all(m.startswith(("na_", "iso_")) for m in readiness.media_ready)
    assert "application/pdf" in readiness.formats
    assert readiness.name == printer.id
    assert readiness.make_and_model == "Rehearsal Simulated Document Printer"
    assert readiness.reasons == ()
    assert readiness.problems == [] and readiness.ready


def test_paper_out_makes_it_not_ready_and_refill_ready_again(fleet: PrinterFleet) -> None:
    printer = fleet.printers[1]
    fleet.set_paper_out(printer.id, True)
    try:
        out = probe(printer.uri)
        assert not out.ready
        assert out.problems == ["media-empty: paper out"]
        assert out.reasons == ("media-empty",)  # ippeveprinter says media-empty-report
        assert out.reachable and out.state == "idle"
    finally:
        fleet.set_paper_out(printer.id, False)
    back = probe(printer.uri)
    assert back.ready, back.problems
    assert back.reasons == ()


def test_missing_format_is_a_problem(fleet: PrinterFleet) -> None:
    readiness = probe(fleet.printers[0].uri, required_formats=("application/vnd.cerner-label",))
    assert not readiness.ready
    assert readiness.problems == ["document format application/vnd.cerner-label not supported"]


def test_ipps_works_over_tls(fleet: PrinterFleet) -> None:
    readiness = probe(fleet.printers[2].uri.replace("ipp://", "ipps://"))
    assert readiness.ready, readiness.problems


def test_wrong_resource_is_an_ipp_error(fleet: PrinterFleet) -> None:
    uri = fleet.printers[0].uri.replace("/ipp/print", "/printers/nope")
    readiness = probe(uri)
    assert not readiness.ready and readiness.reachable
    assert readiness.problems[0].startswith("ipp error: client-error-not-found (0x0406)")
    assert "/printers/nope" in readiness.problems[0]


def test_collections_and_all_attributes_decode(fleet: PrinterFleet) -> None:
    attrs = asyncio.run(get_printer_attributes(fleet.printers[0].uri, 2.0))
    assert len(attrs) > 50
    media_col = attrs["media-col-ready"][0]
    assert isinstance(media_col, dict)
    size = media_col["media-size"][0]
    assert isinstance(size["x-dimension"][0], int) and size["x-dimension"][0] > 0
    assert attrs["printer-supply"][0].startswith("index=1;")
    assert attrs["printer-is-accepting-jobs"] == [True]


def test_probe_all_keeps_order_and_records_each(fleet: PrinterFleet) -> None:
    dead = f"ipp://127.0.0.1:{closed_port()}/ipp/print"
    uris = [fleet.printers[2].uri, dead, fleet.printers[0].uri, fleet.printers[1].uri]
    results = asyncio.run(probe_all(uris, 2.0, concurrency=2))
    assert [r.uri for r in results] == uris
    assert [r.ready for r in results] == [True, False, True, True]
    assert results[1].problems[0].startswith("unreachable: connection refused")


# --- against servers that are not printers ---------------------------------------------------


def test_unreachable_port_is_quick_and_clear() -> None:
    port = closed_port()
    started = time.monotonic()
    readiness = probe(f"ipp://127.0.0.1:{port}/ipp/print", timeout=2.0)
    assert time.monotonic() - started < 1.0
    assert not readiness.ready and not readiness.reachable
    assert readiness.problems == [f"unreachable: connection refused at 127.0.0.1:{port}"]


def test_get_printer_attributes_raises_the_probe_family() -> None:
    with pytest.raises(Unreachable, match="connection refused"):
        asyncio.run(get_printer_attributes(f"ipp://127.0.0.1:{closed_port()}/ipp/print", 1.0))


def test_not_an_ipp_uri_is_recorded() -> None:
    readiness = probe("http:///no-host", timeout=0.5)
    assert not readiness.ready
    assert readiness.problems[0].startswith("probe failed: not an IPP URI")


class Server:
    """A loopback TCP server: reads one HTTP request, then does what ``handle`` says."""

    def __init__(self, handle: Callable[[socket.socket, bytes], None]):
        self.handle = handle
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.open_now = self.most_open = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with self._lock:
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
        try:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lengths = [
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ]
            length = int(lengths[0])
            while len(body) < length:
                body += conn.recv(65536)
            self.handle(conn, body)
        except OSError:
            pass
        finally:
            with self._lock:
                self.open_now -= 1

    def close(self) -> None:
        self.sock.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket, bytes], None]], Server]]:
    servers: list[Server] = []

    def start(handle: Callable[[socket.socket, bytes], None]) -> Server:
        servers.append(Server(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def silent(conn: socket.socket, body: bytes) -> None:
    """Hold the connection open and answer nothing, until the client gives up."""
    while conn.recv(1024):
        pass


def test_server_that_never_answers_ends_within_the_timeout(serve) -> None:
    server = serve(silent)
    started = time.monotonic()
    readiness = probe(server.uri, timeout=0.5)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 0.5 * 1.9  # one wait, not two (a busy machine adds some)
    assert not readiness.ready and not readiness.reachable
    assert readiness.problems == [f"timeout: no answer from 127.0.0.1:{server.port} within 0.5 s"]


def test_probe_all_bounds_concurrency(serve) -> None:
    server = serve(silent)
    started = time.monotonic()
    results = asyncio.run(probe_all([server.uri] * 6, 0.3, concurrency=2))
    elapsed = time.monotonic() - started
    assert all(r.problems[0].startswith("timeout:") for r in results)
    # unbounded, all six would be open at once; the server may see one closing socket late
    assert 2 <= server.most_open <= 3
    assert elapsed >= 0.85  # three waves of two (a lower bound: a busy machine only adds time)


def http_reply(status: str, content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def ipp_reply(status: int, groups: bytes) -> bytes:
    return struct.pack(">BBHI", 2, 0, status, 1) + groups + b"\x03"


def attribute(tag: int, name: str, value: bytes) -> bytes:
    return bytes([tag]) + struct.pack(">H", len(name)) + name.encode() + struct.pack(">H", len(value)) + value


OPERATION = b"\x01" + attribute(0x47, "attributes-charset", b"utf-8")
GARBAGE = {
    "not-http": (b"hello there\r\n", "did not answer in HTTP (reply starts b'hello there\\r\\n')"),
    "http-404": (
        http_reply("404 Not Found", "text/html", b"nope"),
        "answered HTTP 404 Not Found, not 200 OK",
    ),
    "html": (http_reply("200 OK", "text/html", b"<html></html>"), "answered text/html, not application/ipp"),
    "truncated-ipp": (http_reply("200 OK", "application/ipp", b"\x02\x00\x00"), "malformed IPP reply"),
    "attribute-before-group": (
        http_reply("200 OK", "application/ipp", ipp_reply(0, attribute(0x44, "x", b"y"))),
        "malformed IPP reply from 127.0.0.1:{port}/ipp/print: attribute before any attribute group",
    ),
    "short-body": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/ipp\r\nContent-Length: 500\r\n\r\n\x02\x00",
        "closed the connection in the middle of its reply",
    ),
    "bad-chunk": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/ipp\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "sent a broken HTTP answer: illegal chunk header",  # h11's words, through httpx
    ),
    "ipp-error": (
        http_reply("200 OK", "application/ipp", ipp_reply(0x0406, OPERATION)),
        "ipp error: client-error-not-found (0x0406) from 127.0.0.1:{port}/ipp/print",
    ),
    "nothing": (b"", "closed the connection without an answer"),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_garbage_replies_are_clear_problems(serve, case: str) -> None:
    reply, expected = GARBAGE[case]

    def answer(conn: socket.socket, body: bytes) -> None:
        conn.sendall(reply)
        conn.close()

    server = serve(answer)
    readiness = probe(server.uri, timeout=1.0)
    assert not readiness.ready
    assert len(readiness.problems) == 1
    assert expected.format(port=server.port) in readiness.problems[0]


def test_chunked_reply_with_odd_values_is_read(serve) -> None:
    printer = (
        b"\x04"
        + attribute(0x23, "printer-state", struct.pack(">i", 4))
        + attribute(0x44, "printer-state-reasons", b"toner-low-warning")
        + attribute(0x44, "", b"other-error")
        + attribute(0x22, "printer-is-accepting-jobs", b"\x01")
        + attribute(0x21, "odd-integer", b"\x01\x02")  # wrong length: kept as bytes
        + attribute(0x13, "media-ready", b"")  # no-value
        + attribute(0x7F, "vendor-extension", b"\x00\x00\x40\x00abc")
        + attribute(0x36, "printer-make-and-model", b"\x00\x02sv\x00\x05Zebra")
    )
    body = ipp_reply(0, OPERATION + printer)
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7)
    )

    def answer(conn: socket.socket, request: bytes) -> None:
        assert request[2:4] == b"\x00\x0b"  # Get-Printer-Attributes
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/ipp\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        conn.sendall(chunks + b"0\r\n\r\n")

    readiness = probe(serve(answer).uri, timeout=1.0)
    assert readiness.state == "processing"
    assert readiness.reasons == ("toner-low", "other")
    assert readiness.make_and_model == "Zebra"
    assert readiness.problems == ["other: reported as an error by the printer"]
    assert readiness.warnings == ["toner-low: toner low"]
    assert readiness.media_ready == ()


# --- decoder and verdict --------------------------------------------------------------------


def test_verdict_from_attributes() -> None:
    stopped = readiness_from_attributes(
        "ipp://x/ipp/print",
        {
            "printer-state": [5],
            "printer-state-message": ["Cover open"],
            "printer-state-reasons": ["cover-open-error", "media-low-report", "paused"],
            "printer-is-accepting-jobs": [False],
        },
    )
    assert stopped.reasons == ("cover-open", "media-low", "paused")
    assert stopped.problems == [
        "stopped: printer-state is stopped (Cover open)",
        "not accepting jobs",
        "cover-open: cover open",
        "paused: printer paused",
    ]
    assert stopped.warnings == ["media-low: paper low"]
    odd = readiness_from_attributes(
        "ipp://x/", {"printer-state": [b"\x03"], "printer-is-accepting-jobs": [1]}
    )
    assert odd.problems == ["printer-state not reported", "printer-is-accepting-jobs not reported"]


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_decoder_raises_only_malformed_reply(data: bytes) -> None:
    try:
        decode_response(data)
    except MalformedReply:
        pass


@given(st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_decoder_survives_corrupted_real_replies(at: int, junk: bytes) -> None:
    real = ipp_reply(
        0,
        OPERATION
        + b"\x04"
        + attribute(0x23, "printer-state", struct.pack(">i", 3))
        + attribute(0x34, "media-col-ready", b"")
        + attribute(0x4A, "", b"media-source")
        + attribute(0x44, "", b"main")
        + attribute(0x37, "", b""),
    )
    corrupted = real[:at] + junk + real[at + len(junk) :]
    try:
        decode_response(corrupted)
    except MalformedReply:
        pass


# --- the hardware sweep's IPP path: compatibility, supplies, test print (against ippeveprinter) -------


def ipp_report(uri: str, **config: object):
    from rehearsal.hardware import Device, SweepConfig, run_sweep

    device = Device("sas-boras", "dok1", "document", "ipp", uri)
    return run_sweep([device], SweepConfig(timeout=2.0, **config))[0]  # type: ignore[arg-type]


def test_sweep_reads_make_model_formats_and_resolution(fleet: PrinterFleet) -> None:
    from rehearsal.plan import DeviceModels

    uri = fleet.printers[0].uri
    report = ipp_report(uri)
    assert report.ready and report.make_and_model == "Rehearsal Simulated Document Printer"
    assert {"pdf", "pwg-raster", "urf", "600dpi"} <= set(report.capabilities)
    approved = DeviceModels(approved=["Rehearsal Simulated*"], capabilities=["pdf|pcl"])
    assert ipp_report(uri, device_models={"document": approved}).ready
    other = DeviceModels(approved=["HP LaserJet*"], capabilities=["pcl|ps"])
    refused = ipp_report(uri, device_models={"document": other})
    assert not refused.ready and refused.reachable
    assert list(refused.problems) == [
        "not approved: 'Rehearsal Simulated Document Printer' is not an approved model for document printers "
        "(approved: HP LaserJet*)",
        "not compatible: needs pcl or ps (device has: 600dpi, pdf, pwg-raster, urf)",
    ]


def test_supply_threshold_comes_from_the_plan(fleet: PrinterFleet) -> None:
    from urllib.parse import urlencode

    from reference_hospital.printers import _http_get
    from rehearsal.plan import SupplyThresholds

    printer = fleet.printers[2]
    running = fleet._running[printer.id]
    _http_get(running, "/supplies?" + urlencode({"supply0": 25, "supply1": 5}))
    try:
        warned = ipp_report(printer.uri)
        assert warned.ready and "supply: Black Toner at 5 %" in warned.warnings
        strict = ipp_report(printer.uri, supplies=SupplyThresholds(fail_below=10))
        assert not strict.ready
        assert "supply: Black Toner at 5 % (plan requires at least 10 %)" in strict.problems
    finally:
        _http_get(running, "/supplies?" + urlencode({"supply0": 25, "supply1": 75}))


def test_test_print_sends_a_labelled_page_only_when_asked(fleet: PrinterFleet, tmp_path_factory) -> None:
    printer = fleet.printers[1]
    spool = fleet.workdir / "printers" / printer.id / "spool"
    before = set(spool.rglob("*"))
    assert ipp_report(printer.uri).test_print is None
    report = ipp_report(printer.uri, test_print=True, rehearsal="demo-gr1")
    assert report.ready and report.test_print == "sent: test page"
    deadline = time.monotonic() + 5
    while not (set(spool.rglob("*.pdf")) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    new = sorted(set(spool.rglob("*.pdf")) - before)
    assert new, "ippeveprinter kept no job"
    document = new[0].read_bytes()
    assert document.startswith(b"%PDF-1.4") and b"TESTUTSKRIFT" in document and b"sas-boras/dok1" in document
