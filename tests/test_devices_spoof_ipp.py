"""IPP answers that are not the answer to our request (#12, finding 4), and device text that would
rewrite the operator's screen or the readiness table (finding 5).

The hostile printer here is a small HTTP/IPP server written for the test (a real socket on
loopback): it answers Get-Printer-Attributes with another request-id, an IPP version we never
asked in, or text with control characters. The text test goes through a real third-party
peer instead: a private CUPS scheduler (tests/cups_peer.py) whose queue is stopped with
``cupsdisable -r`` and the hostile message, and ``rehearse hardware`` end to end.
"""

from __future__ import annotations

import json
import os
import socketserver
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cups_peer import CupsPeer

from rehearsal.hardware import Device, SweepConfig, readiness_table, render_table, run_sweep
from rehearsal.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_TEXT = "ok\n| READY | GO |\x1b[2J\x1b[32mGO"


def _attribute(tag: int, name: str, value: bytes) -> bytes:
    n = name.encode()
    return bytes([tag]) + struct.pack(">H", len(n)) + n + struct.pack(">H", len(value)) + value


def printer_answer(version: tuple[int, int], request_id: int, model: str = "Hostile IPP 1") -> bytes:
    """An idle, accepting printer with no problems (what a ready printer says)."""
    body = bytes(version) + struct.pack(">HI", 0x0000, request_id) + b"\x01"
    body += _attribute(0x47, "attributes-charset", b"utf-8")
    body += _attribute(0x48, "attributes-natural-language", b"en")
    body += b"\x04"
    body += _attribute(0x23, "printer-state", struct.pack(">i", 3))
    body += _attribute(0x44, "printer-state-reasons", b"none")
    body += _attribute(0x22, "printer-is-accepting-jobs", b"\x01")
    body += _attribute(0x41, "printer-make-and-model", model.encode())
    body += _attribute(0x49, "document-format-supported", b"application/pdf")
    return body + b"\x03"


class HostilePrinter:
    """An IPP printer on 127.0.0.1 whose answer is shaped by ``answer(version, request_id)``."""

    def __init__(self, answer: Callable[[tuple[int, int], int], bytes]) -> None:
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                length = 0
                while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                request = self.rfile.read(length)
                outer.asked.append((request[0], request[1]))
                body = answer((request[0], request[1]), struct.unpack(">I", request[4:8])[0])
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: application/ipp\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                self.wfile.write(head.encode() + body)

        self.asked: list[tuple[int, int]] = []
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.uri = f"ipp://127.0.0.1:{self.server.server_address[1]}/ipp/print"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostilePrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def sweep_one(uri: str) -> Any:
    (report,) = run_sweep([Device("s", "p1", "document", "ipp", uri)], SweepConfig(timeout=2.0))
    return report


def test_the_hostile_printer_is_ready_when_it_answers_properly() -> None:
    """The control: the same server, answering our request-id in our version, is a ready printer."""
    with HostilePrinter(printer_answer) as printer:
        report = sweep_one(printer.uri)
    assert report.ready, report.problems
    assert report.make_and_model == "Hostile IPP 1"


def test_an_answer_with_another_request_id_fails_naming_the_printer() -> None:
    with HostilePrinter(lambda version, rid: printer_answer(version, rid + 1)) as printer:
        report = sweep_one(printer.uri)
    assert not report.ready
    (problem,) = report.problems
    where = printer.uri.removeprefix("ipp://")
    assert problem.startswith(f"bad reply: {where} answered request-id "), problem
    assert "not ours" in problem


@pytest.mark.parametrize("version", [(9, 9), (3, 0), (0, 1)])
def test_an_answer_in_a_version_never_asked_fails(version: tuple[int, int]) -> None:
    with HostilePrinter(lambda _asked, rid: printer_answer(version, rid)) as printer:
        report = sweep_one(printer.uri)
    assert not report.ready
    (problem,) = report.problems
    where = printer.uri.removeprefix("ipp://")
    assert problem.startswith(f"bad reply: {where} answered in IPP version {version[0]}.{version[1]} "), (
        problem
    )


def test_a_lower_major_version_is_an_answer_a_higher_one_is_not() -> None:
    """RFC 8011 §4.1.8: asked in 2.0, a 1.1-only printer answers in 1.1 (fine); asked in 1.1
    (the fallback after version-not-supported), an answer in 2.0 is not one."""
    with HostilePrinter(lambda _asked, rid: printer_answer((1, 1), rid)) as printer:
        assert sweep_one(printer.uri).ready

    def refuse_2_then_answer_2(asked: tuple[int, int], rid: int) -> bytes:
        if asked[0] == 2:  # server-error-version-not-supported
            return bytes((2, 0)) + struct.pack(">HI", 0x0503, rid) + b"\x01\x03"
        return printer_answer((2, 0), rid)

    with HostilePrinter(refuse_2_then_answer_2) as printer:
        report = sweep_one(printer.uri)
        assert printer.asked == [(2, 0), (1, 1)]
    assert not report.ready
    assert "answered in IPP version 2.0 (asked in 1.1" in report.problems[0]


def test_control_characters_in_the_make_and_model_never_reach_the_record() -> None:
    with HostilePrinter(
        lambda version, rid: printer_answer(version, rid, "Evil\x1b[2J\n| x |\x9b1m\x07")
    ) as p:
        report = sweep_one(p.uri)
    assert report.make_and_model == "Evil | x |"
    details = json.dumps(report.as_dict())
    assert "\\u001b" not in details and "\\n" not in details and "\\u009b" not in details


# --- finding 5 end to end: a real CUPS queue stopped with a hostile message -------------------------


@pytest.fixture
def cups(tmp_path: Path) -> Iterator[CupsPeer]:
    with CupsPeer(tmp_path / "cups") as peer:
        yield peer


def one_printer_plan(make_plan: Callable[..., Path], uri: str) -> Path:
    def edit(data: dict[str, Any]) -> None:
        first, *others = data["sites"]
        first["printers"] = [{"id": "sas-akut-dok9", "kind": "document", "uri": uri, "location": "Akuten"}]
        first["workstations"] = []
        for site in others:
            site["printers"], site["workstations"] = [], []

    return make_plan(edit)


@pytest.mark.slow  # a whole `rehearse hardware` run (a pytest child, the report): ~10-20 s
def test_a_hostile_state_message_reaches_no_terminal_table_or_report_raw(
    make_plan: Callable[..., Path], cups: CupsPeer, tmp_path: Path
) -> None:
    uri = cups.add_queue("dok9")
    cups.pause("dok9", HOSTILE_TEXT)
    plan = one_printer_plan(make_plan, uri)
    loaded = load_plan(plan)
    env = {**os.environ, **{u.password_env: "x" for s in loaded.plan.sites for u in s.users}}
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), "hardware", "--plan", str(plan)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    run = (reports / "latest").resolve()
    table = (run / "hardware-readiness.md").read_text(encoding="utf-8")
    for name, text in [("stdout", done.stdout), ("stderr", done.stderr), ("hardware-readiness.md", table)]:
        assert "\x1b" not in text and "\x9b" not in text, name
        assert not any(line.lstrip().startswith("| READY") for line in text.splitlines()), (name, text)
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 3, table  # header, rule, the one site and kind: no injected row
    bullets = [line for line in table.splitlines() if line.startswith("- ")]
    assert bullets == [
        "- sas-boras/sas-akut-dok9: stopped: printer-state is stopped (ok \\| READY \\| GO \\|GO)"
    ], table
    # the terminal shows the table and the decision: the message stays inside its own line
    shown = [line for line in done.stdout.splitlines() if "READY" in line]
    assert shown and all("sas-akut-dok9" in line for line in shown), done.stdout
    # every other sink of the run: the decision, its report, the results
    for path in [run / "gonogo.md", run / "gonogo.html", run / "gonogo.json", *run.glob("allure-results/*")]:
        if path.is_file():
            raw = path.read_bytes()
            assert b"\x1b" not in raw and b"\\u001b" not in raw and b"\\x1b" not in raw, path.name
    assert "ok | READY | GO |GO" in (run / "gonogo.json").read_text(encoding="utf-8")


def test_the_table_escapes_cell_separators_of_any_text() -> None:
    """render_table on its own: a device id or reason with a pipe or backslash stays in its cell."""
    plan = load_plan(ROOT / "plans" / "demo.yaml").plan
    device = Device("sas-boras", "evil\\|id", "document", "ipp", "ipp://127.0.0.1:1/x")
    from rehearsal.hardware import DeviceReport

    reports = [DeviceReport(device, ready=False, reachable=True, problems=("a | b\nc",))]
    text = render_table(readiness_table(plan, reports))
    assert "- sas-boras/evil\\\\\\|id: a \\| b c" in text.splitlines()
