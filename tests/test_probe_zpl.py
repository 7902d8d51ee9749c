"""The ZPL probe against its peer, the ZPL printer simulator, condition by condition; and odd printers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from conftest import free_port
from reference_hospital.zpl_printer import ZplSimulator
from rehearsal.probes import Unreachable
from rehearsal.probes.zpl import (
    ZplReadiness,
    parse_extended_status,
    print_label,
    probe_all,
    probe_zpl,
    query,
    rehearsal_label,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[ZplSimulator]:
    with ZplSimulator() as running:
        running.add("armband", 0, model="ZD510-300dpi", dpmm=12)
        running.add("etikett", 0, model="ZD421-203dpi", dpmm=8)
        yield running


@pytest.fixture
def armband(sim: ZplSimulator) -> Iterator[str]:
    yield f"tcp://127.0.0.1:{sim.port('armband')}"
    flags = ("paper_out", "paused", "head_open", "ribbon_out", "paper_low", "silent_in_error", "offline")
    sim.set_state("armband", **dict.fromkeys(flags, False))


def probe(uri: str, timeout: float = 1.0) -> ZplReadiness:
    return asyncio.run(probe_zpl(uri, timeout))


def test_ready_printer_reports_model_resolution_and_no_problems(armband: str) -> None:
    r = probe(armband)
    assert r.ready and r.problems == [] and r.warnings == []
    assert (r.paper_out, r.paused, r.head_open, r.ribbon_out) == (False, False, False, False)
    assert (r.model, r.firmware, r.dpmm, r.dpi) == ("ZD510-300dpi", "V84.20.18Z", 12, 300)
    assert r.capabilities == ("zpl", "300dpi")
    assert r.error_mask == 0 and r.warning_mask == 0


@pytest.mark.parametrize(
    ("state", "problem", "bit"),
    [
        ("paper_out", "paper-out: out of labels/paper", 0x1),
        ("paused", "paused: printer paused", 0x10000),
        ("head_open", "head-open: print head open", 0x4),
        ("ribbon_out", "ribbon-out: ribbon out", 0x2),
    ],
)
def test_each_error_condition_is_read_from_hs_and_hqes(
    sim: ZplSimulator, armband: str, state: str, problem: str, bit: int
) -> None:
    sim.set_state("armband", **{state: True})
    r = probe(armband)
    assert not r.ready and r.reachable
    assert r.problems == [problem]
    assert getattr(r, state) is True
    assert r.error_mask == bit
    sim.set_state("armband", **{state: False})
    assert probe(armband).ready


def test_paper_low_is_a_warning_only(sim: ZplSimulator, armband: str) -> None:
    sim.set_state("armband", paper_low=True)
    r = probe(armband)
    assert r.ready and r.warnings == ["paper near end (~HQES)"]


def test_silent_printer_in_error_is_not_ready_within_the_timeout(sim: ZplSimulator, armband: str) -> None:
    sim.set_state("armband", silent_in_error=True)
    assert probe(armband).ready  # silent only while in error
    sim.set_state("armband", head_open=True)
    started = time.monotonic()
    r = probe(armband, timeout=0.4)
    assert 0.35 <= time.monotonic() - started < 1.0
    assert not r.ready and r.reachable
    assert r.problems[0].startswith("timeout: connected, but no answer to ~HS from 127.0.0.1:")
    assert "can stay silent" in r.problems[0]


def test_offline_printer_refuses_and_comes_back(sim: ZplSimulator, armband: str) -> None:
    sim.set_state("armband", offline=True)
    r = probe(armband)
    assert not r.ready and not r.reachable
    assert r.problems == [f"unreachable: connection refused at 127.0.0.1:{sim.port('armband')}"]
    sim.set_state("armband", offline=False)
    assert probe(armband).ready


def test_label_is_printed_and_queued_while_in_error(sim: ZplSimulator, armband: str) -> None:
    before = len(sim.printed("armband"))
    label = rehearsal_label("sas-armband1", "sas-boras", "demo-gr1", "2026-11-26 08:00")
    asyncio.run(print_label(armband, label, 1.0))
    assert sim.printed("armband")[before:] == [label]
    sim.set_state("armband", ribbon_out=True)
    asyncio.run(print_label(armband, "^XA^FDqueued^FS^XZ", 1.0))
    assert sim.printed("armband")[-1] == label
    sim.set_state("armband", ribbon_out=False)
    assert sim.printed("armband")[-1] == "^XA^FDqueued^FS^XZ"


def test_probe_all_keeps_order_and_reads_each(sim: ZplSimulator) -> None:
    uris = [f"tcp://127.0.0.1:{sim.port(p)}" for p in ("etikett", "armband", "etikett")]
    results = asyncio.run(probe_all(uris, 1.0, concurrency=2))
    assert [r.model for r in results] == ["ZD421-203dpi", "ZD510-300dpi", "ZD421-203dpi"]
    assert results[0].capabilities == ("zpl", "203dpi")


def test_query_raises_the_probe_family() -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(Unreachable, match="connection refused"):
        asyncio.run(query("127.0.0.1", port, "~HS", 3, 0.5))


# --- printers that are not our simulator ---------------------------------------------------------


class RawPrinter:
    """A loopback TCP server answering every command with what ``answer`` gives, in ``pieces``."""

    def __init__(self, answer: Callable[[bytes], bytes], pieces: int = 1):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answer, self.pieces = answer, pieces
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1024):
                reply = self.answer(data)
                step = max(1, len(reply) // self.pieces)
                for i in range(0, len(reply), step):
                    conn.sendall(reply[i : i + step])
                    time.sleep(0.005)


HS = (
    b"\x02030,1,0,1245,000,0,0,0,000,0,0,0\x03\r\n"
    b"\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n"
    b"\x021234,0\x03\r\n"
)


@pytest.fixture
def raw() -> Iterator[Callable[..., RawPrinter]]:
    made: list[RawPrinter] = []

    def start(answer: Callable[[bytes], bytes], pieces: int = 1) -> RawPrinter:
        made.append(RawPrinter(answer, pieces))
        return made[-1]

    yield start
    for printer in made:
        printer.sock.close()


def test_reply_split_over_many_packets_is_reassembled(raw) -> None:
    printer = raw(lambda data: HS if data.startswith(b"~HS") else b"", pieces=40)
    r = probe(f"tcp://127.0.0.1:{printer.port}", timeout=2.0)
    assert r.paper_out is True and r.problems[0] == "paper-out: out of labels/paper"
    assert r.warnings == ["no answer to ~HQES"]  # an older printer without ~HQES still gets a verdict


def test_garbage_answer_is_a_clear_problem(raw) -> None:
    printer = raw(lambda data: b"\x02hello\x03\x02x\x03\x02y\x03")
    r = probe(f"tcp://127.0.0.1:{printer.port}")
    assert not r.ready and r.reachable
    assert r.problems[0].startswith("bad reply: ") and "short line" in r.problems[0]


def test_hqes_parser_reads_both_groups() -> None:
    frame = (
        "\r\n  PRINTER STATUS\r\n   ERRORS:         1 00000001 00010004\r\n"
        "   WARNINGS:       1 00000000 00000008\r\n"
    )
    assert parse_extended_status(frame) == (0x1_00010004, 0x8)
    assert parse_extended_status("nothing") == (None, None)


# --- more conditions on the simulator: together, with a warning, and coming back ------------------


def test_all_four_errors_at_once_are_each_read_once(sim: ZplSimulator, armband: str) -> None:
    """~HS and ~HQES both report each error; the verdict names each one once, and clears."""
    sim.set_state("armband", paper_out=True, paused=True, head_open=True, ribbon_out=True)
    r = probe(armband)
    assert (r.paper_out, r.paused, r.head_open, r.ribbon_out) == (True, True, True, True)
    assert r.error_mask == 0x1 | 0x2 | 0x4 | 0x10000
    assert r.problems == [
        "paper-out: out of labels/paper",
        "head-open: print head open",
        "ribbon-out: ribbon out",
        "paused: printer paused",
    ]
    assert not r.ready
    sim.set_state("armband", paper_out=False, paused=False, head_open=False, ribbon_out=False)
    back = probe(armband)
    assert back.ready and back.problems == [] and back.error_mask == 0


def test_paper_low_stays_a_warning_beside_an_error_and_clears(sim: ZplSimulator, armband: str) -> None:
    sim.set_state("armband", paper_low=True, paused=True)
    r = probe(armband)
    assert r.problems == ["paused: printer paused"] and not r.ready
    assert r.warnings == ["paper near end (~HQES)"] and r.warning_mask == 0x8
    sim.set_state("armband", paused=False)
    assert probe(armband).ready
    sim.set_state("armband", paper_low=False)
    back = probe(armband)
    assert back.ready and back.warnings == [] and back.warning_mask == 0


def test_silent_printer_answers_again_once_the_error_is_cleared(sim: ZplSimulator, armband: str) -> None:
    sim.set_state("armband", silent_in_error=True, paper_out=True)
    silent = probe(armband, timeout=0.3)
    assert not silent.ready and silent.reachable and silent.problems[0].startswith("timeout: ")
    sim.set_state("armband", paper_out=False)
    back = probe(armband)
    assert back.ready and back.error is None and back.paper_out is False
