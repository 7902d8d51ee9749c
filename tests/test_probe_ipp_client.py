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
import stat
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_http import Dripping
from test_devices_spoof_ipp import HostilePrinter, printer_answer
from test_probe_ipp import closed_port, free_port

from reference_hospital.printers import PrinterFleet
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

ROOT = Path(__file__).resolve().parents[1]
PDF = simple_pdf("Avdelning 12 – testsida", ["Rad ett (med parentes)", "Rad två: åäö \\ slut"])


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


def only_ipp_1_1(asked: tuple[int, int], request_id: int) -> bytes:
    """A printer that speaks IPP/1.1 only: a 2.0 request gets server-error-version-not-supported."""
    if asked[0] == 2:
        return bytes((1, 1)) + struct.pack(">HI", 0x0503, request_id) + b"\x01\x03"
    return printer_answer((1, 1), request_id, "IPP 1.1 Only")


def test_the_test_print_falls_back_to_ipp_1_1_like_every_operation() -> None:
    """The test print's own encoder asked in 2.0 only, so a 1.1 printer failed it; the client retries."""
    with HostilePrinter(only_ipp_1_1) as printer:
        device = Device("s", "old1", "document", "ipp", printer.uri)
        (report,) = run_sweep([device], SweepConfig(timeout=3.0, test_print=True))
        asked = printer.asked
    assert report.ready and report.test_print == "sent: test page", report
    assert report.make_and_model == "IPP 1.1 Only"
    assert asked == [(2, 0), (1, 1), (2, 0), (1, 1)]  # Get-Printer-Attributes, then Print-Job


def test_each_request_of_a_session_has_its_own_id_and_the_answer_must_carry_it() -> None:
    """A printer that always answers request-id 1 answers the first request of a session only."""

    async def twice(uri: str) -> None:
        async with IppSession(uri, 3.0) as printer:
            await printer.get_printer_attributes()
            await printer.get_printer_attributes()

    with HostilePrinter(lambda version, _rid: printer_answer(version, 1)) as stuck:
        with pytest.raises(ProtocolError, match=r"answered request-id 1, not ours \(2\)"):
            run(twice(stuck.uri))
        assert stuck.asked == [(2, 0), (2, 0)]


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
