"""The one IPP client (rehearsal.probes.ipp_client) against real peers (#16).

Get-Jobs and Print-Job against ippeveprinter (CUPS' reference IPP printer, started by the
reference hospital's PrinterFleet); the sweep's test print going through the same client
(version fallback, job name, what the printer keeps); and small loopback servers for what
a printer must not be able to do: answer another request-id, drip its answer past the
deadline, speak something that is not HTTP.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import socketserver
import stat
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostile_http import Dripping

from rehearsal.hardware import Device, SweepConfig, run_sweep
from rehearsal.pdf import simple_pdf
from rehearsal.plan import Printer
from rehearsal.probes import ProbeTimeout, ProtocolError, Unreachable
from rehearsal.probes.ipp_client import (
    IppSession,
    IppStatusError,
    Job,
    Refused,
    get_printer_attributes,
)
from rehearsal.reference.printers import PrinterFleet

ROOT = Path(__file__).resolve().parents[1]
PDF = simple_pdf("Avdelning 12 – testsida", ["Rad ett (med parentes)", "Rad två: åäö \\ slut"])


def free_port() -> int:
    """A port free on 127.0.0.1 and ::1 (ippeveprinter binds both)."""
    while True:
        with socket.socket() as v4:
            v4.bind(("127.0.0.1", 0))
            port = v4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6) as v6:
                    v6.bind(("::1", port))
            except OSError:
                continue
            return port


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrinterFleet]:
    """Two ippeveprinters whose job command is ``true``: a job completes at once (without a
    command ippeveprinter "prints" for 13 s and answers server-error-busy meanwhile)."""
    home = tmp_path_factory.mktemp("client-fleet")
    ippeve = shutil.which("ippeveprinter", path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert ippeve, "ippeveprinter not found: install cups-ipp-utils"
    wrapper = home / "ippeveprinter-true"
    wrapper.write_text(f'#!/bin/sh\nexec {ippeve} -c {shutil.which("true")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    printers = [
        Printer(id=f"client-dok{i}", kind="document", uri=f"ipp://127.0.0.1:{free_port()}/ipp/print")
        for i in range(2)
    ]
    with PrinterFleet(printers, home / "fleet", ippeveprinter=str(wrapper)) as running:
        yield running


async def until_done(printer: IppSession, job_id: int | None, within: float = 10.0) -> Job:
    """Get-Jobs until the printer lists the job as done (the next job is then not refused as busy)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        done = {j.id: j for j in await printer.get_jobs("completed")}
        if job_id in done or loop.time() > deadline:
            assert job_id in done, f"job {job_id} not completed within {within:g} s"
            return done[job_id]
        await asyncio.sleep(0.05)


def run(coroutine):  # noqa: ANN001, ANN201 - a test helper
    return asyncio.run(coroutine)


# --- Print-Job and Get-Jobs against ippeveprinter ------------------------------------------------


def test_print_job_makes_a_job_that_get_jobs_lists(fleet: PrinterFleet) -> None:
    uri = fleet.printers[0].uri

    async def scenario() -> tuple[Job, list[Job], list[Job]]:
        async with IppSession(uri, 5.0, user="sjukskoterska") as printer:
            job = await printer.print_job(PDF, job_name="Patientöversikt 1")
            every = await printer.get_jobs("all")
            limited = await printer.get_jobs("all", limit=1)
            await until_done(printer, job.id)
        return job, every, limited

    job, every, limited = run(scenario())
    assert isinstance(job.id, int) and job.id > 0
    assert job.state in ("pending", "processing", "completed"), job
    listed = {j.id: j for j in every}
    assert job.id in listed, every
    assert listed[job.id].name == "Patientöversikt 1"
    assert listed[job.id].attributes["job-originating-user-name"] == ["sjukskoterska"]
    assert len(limited) == 1


def test_get_jobs_which_tells_waiting_from_done(fleet: PrinterFleet) -> None:
    uri = fleet.printers[1].uri

    async def scenario() -> tuple[Job, Job, list[Job]]:
        async with IppSession(uri, 5.0) as printer:
            job = await printer.print_job(PDF, job_name="which-jobs")
            done = await until_done(printer, job.id)
            return job, done, await printer.get_jobs("not-completed")

    job, done, waiting = run(scenario())
    assert done.state == "completed" and done.name == "which-jobs"
    assert "job-completed-successfully" in done.reasons
    assert job.id not in {j.id for j in waiting}


def test_the_fleet_lists_a_printers_jobs_through_the_client(fleet: PrinterFleet) -> None:
    printer = fleet.printers[0]
    before = {j.id for j in fleet.jobs(printer.id)}

    async def one() -> None:
        async with IppSession(printer.uri, 5.0) as session:
            await until_done(session, (await session.print_job(PDF, job_name="fleet-jobs")).id)

    run(one())
    assert [j.name for j in fleet.jobs(printer.id) if j.id not in before] == ["fleet-jobs"]


def test_a_format_the_printer_does_not_take_is_an_ipp_error_naming_it(fleet: PrinterFleet) -> None:
    uri = fleet.printers[0].uri

    async def scenario() -> None:
        async with IppSession(uri, 5.0) as printer:
            await printer.print_job(b"hello", document_format="application/x-not-a-format")

    with pytest.raises(IppStatusError) as caught:
        run(scenario())
    assert caught.value.status == 0x040B
    where = uri.removeprefix("ipp://")
    assert str(caught.value) == (  # the printer's own status-message, cleaned, after who said it
        f"client-error-attributes-or-values-not-supported (0x040b) from {where}: "
        "Unsupported document-format mimeMediaType value."
    )


def test_ipps_is_insecure_only_when_asked(fleet: PrinterFleet) -> None:
    """ippeveprinter's certificate is self-signed: the default (insecure_tls) prints, a check refuses."""
    uri = fleet.printers[1].uri.replace("ipp://", "ipps://")
    attrs = run(get_printer_attributes(uri, 5.0, ["printer-name"]))
    assert attrs["printer-name"] == [fleet.printers[1].id]
    with pytest.raises(
        ProtocolError, match=r"TLS handshake with 127\.0\.0\.1:\d+ failed: CERTIFICATE_VERIFY_FAILED"
    ):
        run(get_printer_attributes(uri, 5.0, ["printer-name"], insecure_tls=False))


def test_an_operation_outside_async_with_says_how_to_use_it() -> None:
    session = IppSession("ipp://127.0.0.1:1/ipp/print", 1.0)
    with pytest.raises(RuntimeError, match="async with"):
        run(session.get_jobs())


# --- the sweep's test print goes through the client -------------------------------------------------


def test_the_sweeps_test_print_is_a_job_on_the_printer(fleet: PrinterFleet) -> None:
    printer = fleet.printers[1]
    before = {j.id for j in fleet.jobs(printer.id)}
    device = Device("sas-boras", "dok2", "document", "ipp", printer.uri)
    config = SweepConfig(timeout=5.0, test_print=True, rehearsal="demo-gr1")
    (report,) = run_sweep([device], config)
    assert report.ready and report.test_print == "sent: test page", report
    new = [j for j in fleet.jobs(printer.id) if j.id not in before]
    assert [j.name for j in new] == ["rehearsal test dok2"]
    assert new[0].attributes["job-originating-user-name"] == ["rehearsal"]

    async def settle() -> None:
        async with IppSession(printer.uri, 5.0) as session:
            await until_done(session, new[0].id)

    run(settle())


class ScriptedPrinter:
    """An IPP printer on 127.0.0.1 that answers each request with ``answer(request)``; every
    request is kept (version, operation, request-id) so a test sees what the client sent."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                length = 0
                while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                request = self.rfile.read(length)
                if not request:  # the sweep's "is it there at all" connect, no request
                    return
                outer.asked.append(request)
                body = answer(request)
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: application/ipp\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                self.wfile.write(head.encode() + body)

        self.asked: list[bytes] = []
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.uri = f"ipp://127.0.0.1:{self.server.server_address[1]}/ipp/print"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> ScriptedPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requests(self) -> list[tuple[tuple[int, int], int, int]]:
        """(version, operation, request-id) of each request, in order."""
        return [((r[0], r[1]), *struct.unpack(">HI", r[2:8])) for r in self.asked]


def _attr(tag: int, name: str, value: bytes) -> bytes:
    return bytes([tag]) + struct.pack(">H", len(name)) + name.encode() + struct.pack(">H", len(value)) + value


def ready_answer(version: tuple[int, int], request_id: int, operation: int) -> bytes:
    """What a ready printer says: its state for Get-Printer-Attributes, a job for Print-Job."""
    body = bytes(version) + struct.pack(">HI", 0, request_id) + b"\x01"
    body += _attr(0x47, "attributes-charset", b"utf-8") + _attr(0x48, "attributes-natural-language", b"en")
    if operation == 0x0002:
        body += (
            b"\x02"
            + _attr(0x21, "job-id", struct.pack(">i", 7))
            + _attr(0x23, "job-state", struct.pack(">i", 3))
        )
    else:
        body += b"\x04" + _attr(0x23, "printer-state", struct.pack(">i", 3))
        body += _attr(0x44, "printer-state-reasons", b"none") + _attr(
            0x22, "printer-is-accepting-jobs", b"\x01"
        )
        body += _attr(0x41, "printer-make-and-model", b"IPP 1.1 Only")
    return body + b"\x03"


def only_ipp_1_1(request: bytes) -> bytes:
    """A printer that speaks IPP/1.1 only: 2.0 requests get server-error-version-not-supported."""
    (operation, request_id), version = struct.unpack(">HI", request[2:8]), (request[0], request[1])
    if version[0] == 2:
        return bytes((1, 1)) + struct.pack(">HI", 0x0503, request_id) + b"\x01\x03"
    return ready_answer(version, request_id, operation)


def test_the_test_print_falls_back_to_ipp_1_1_like_every_operation() -> None:
    """The test print's own encoder asked in 2.0 only, so a 1.1 printer failed it; the client retries."""
    with ScriptedPrinter(only_ipp_1_1) as printer:
        device = Device("s", "old1", "document", "ipp", printer.uri)
        (report,) = run_sweep([device], SweepConfig(timeout=3.0, test_print=True))
        asked = printer.requests()
    assert report.ready and report.test_print == "sent: test page", report
    assert [(v, op) for v, op, _ in asked] == [
        ((2, 0), 0x000B),
        ((1, 1), 0x000B),
        ((2, 0), 0x0002),
        ((1, 1), 0x0002),
    ]
    assert b"%PDF-1.4" in printer.asked[-1] and b"TESTUTSKRIFT" in printer.asked[-1]


def test_each_request_of_a_session_has_its_own_id_and_the_answer_must_carry_it() -> None:
    """A printer that always answers request-id 1 answers the first request only."""
    stuck = ScriptedPrinter(lambda r: ready_answer((r[0], r[1]), 1, struct.unpack(">H", r[2:4])[0]))

    async def twice() -> None:
        async with IppSession(stuck.uri, 3.0) as printer:
            await printer.get_printer_attributes()
            await printer.get_printer_attributes()

    with stuck, pytest.raises(ProtocolError, match=r"answered request-id 1, not ours \(2\)"):
        run(twice())
    assert [rid for _, _, rid in stuck.requests()] == [1, 2]


# --- time and strangers ---------------------------------------------------------------------------


def test_a_dripping_printer_is_cut_off_at_the_total_deadline() -> None:
    """Each byte comes within httpx's per-read timeout; only the total deadline ends the call."""
    with Dripping([0], interval=0.1) as drip:
        uri = f"ipp://127.0.0.1:{drip.ports[0]}/ipp/print"
        with pytest.raises(ProbeTimeout, match=rf"no answer from 127\.0\.0\.1:{drip.ports[0]} within 0\.6 s"):
            run(get_printer_attributes(uri, 0.6))
        assert drip.sent >= 2  # it was dripping, not silent, when it was cut off


def test_a_port_that_answers_but_not_in_http_is_named_as_such() -> None:
    """A banner and then silence (an SSH or raw print port): a bad reply quoting it, not a timeout."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def banner() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            conn.recv(65536)
            conn.recv(65536)  # until the client gives up

    threading.Thread(target=banner, daemon=True).start()
    try:
        with pytest.raises(ProtocolError) as caught:
            run(get_printer_attributes(f"ipp://127.0.0.1:{port}/ipp/print", 0.5))
    finally:
        server.close()
    assert (
        str(caught.value)
        == f"127.0.0.1:{port} did not answer in HTTP (reply starts b'SSH-2.0-OpenSSH_9.2\\r\\n')"
    )


def test_refused_and_bad_uris_are_the_probe_family() -> None:
    port = closed_port()
    with pytest.raises(Refused, match=rf"^connection refused at 127\.0\.0\.1:{port}$") as caught:
        run(get_printer_attributes(f"ipp://127.0.0.1:{port}/ipp/print", 1.0))
    assert isinstance(caught.value, Unreachable) and caught.value.kind == "unreachable"
    with pytest.raises(Exception, match=r"not an IPP URI: 'tcp://x:9100'"):
        IppSession("tcp://x:9100", 1.0)


# --- one client, one PDF writer --------------------------------------------------------------------


def test_no_module_calls_the_ipp_modules_private_names() -> None:
    """The sweep's test print once called the probe's _address, _exchange and _insecure_tls."""
    private = re.compile(r"(?<![\w.])ipp(?:_client)?\._[a-z]")  # the modules, not an attribute named ipp
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "src").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if private.search(line)
    ]
    assert offenders == []
