"""Starting, poking and stopping the reference hospital as a detached process; the fault registry."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sockets import listeners

from conftest import free_port
from reference_hospital import control
from reference_hospital.faults import Fault, FaultBoard, known_faults, parse_fault
from rehearsal.errors import TargetError, UsageError
from rehearsal.plan import load_plan
from rehearsal.probes.ipp import get_printer_attributes

DEMO = Path(__file__).resolve().parents[1] / "plans" / "demo.yaml"


def _coexistence_on_free_ports(data: dict[str, Any]) -> None:
    """Move the legacy EHR, lab, bridge and directory of the demo plan off its fixed ports."""
    env = data["environment"]
    for field in ("legacy_base", "lab_mllp", "bridge_base", "bridge_mllp", "directory"):
        if env.get(field) and "://" in env[field]:
            scheme, rest = env[field].split("://", 1)
            env[field] = f"{scheme}://{rest.rsplit(':', 1)[0]}:{free_port()}"


def _no_printers(data: dict[str, Any]) -> None:
    _coexistence_on_free_ports(data)
    for site in data["sites"]:
        site["printers"] = []


def _listening_ports() -> set[int]:
    """TCP ports in LISTEN state on this machine, from /proc/net/tcp and tcp6."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _processes_mentioning(text: str) -> list[int]:
    """Live (not zombie) processes whose command line mentions ``text`` (our state folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def _plan_ports(loaded: Any) -> set[int]:
    env = loaded.plan.environment
    urls = [env.fhir_base, env.legacy_base, env.lab_mllp, env.bridge_base, env.bridge_mllp, env.directory]
    urls += [p.uri for s in loaded.plan.sites for p in s.printers if p.uri.startswith(("ipp://", "tcp://"))]
    return {int(u.split("://", 1)[1].split("/")[0].rsplit(":", 1)[1]) for u in urls if u and "://" in u}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def state_dir(tmp_path: Path) -> Any:
    """A state folder whose hospital is stopped after the test, whatever happened in it."""
    folder = tmp_path / "state"
    yield folder
    control.down(folder)


@pytest.fixture
def plan_path(make_plan: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REHEARSAL_PASSWORD", "test-only-password")
    return make_plan(_no_printers)


# -- faults ----------------------------------------------------------------------------------------


def test_parse_fault_accepts_registered_faults() -> None:
    plan = load_plan(DEMO).plan
    assert parse_fault("slow-patient-search", plan) == Fault("slow-patient-search")
    assert parse_fault("printer-paper-out@nal-trollhattan", plan) == Fault(
        "printer-paper-out", "nal-trollhattan"
    )
    assert str(Fault("printer-paper-out", "sas-boras")) == "printer-paper-out@sas-boras"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("paper-jam", "unknown fault 'paper-jam' (known faults: slow-patient-search, slow-lab-order, "),
        ("printer-paper-out", "needs a site: printer-paper-out@SITE (sites: sas-boras, nal-trollhattan)"),
        ("printer-paper-out@mars", "plan has no site 'mars' (sites: sas-boras, nal-trollhattan)"),
        ("slow-patient-search@sas-boras", "applies to the whole hospital"),
    ],
)
def test_parse_fault_refuses_in_one_line(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_fault(text, load_plan(DEMO).plan)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "printer-paper-out@SITE" in known_faults() and "orphan-queue@SITE" in known_faults()


def test_fault_board_runs_effects_once_per_change() -> None:
    calls: list[str] = []
    board = FaultBoard()
    board.on("printer-paper-out", lambda f: calls.append(f"on {f}"), lambda f: calls.append(f"off {f}"))
    fault = Fault("printer-paper-out", "sas-boras")
    board.activate(fault)
    board.activate(fault)
    assert board.active("printer-paper-out", "sas-boras") and not board.active("printer-paper-out", "x")
    assert board.deactivate(fault) and not board.deactivate(fault)
    assert calls == ["on printer-paper-out@sas-boras", "off printer-paper-out@sas-boras"]


# -- the detached process --------------------------------------------------------------------------


@pytest.mark.slow
def test_up_fault_down_round_trip(plan_path: Path, state_dir: Path) -> None:
    loaded = load_plan(plan_path)
    state = control.up(loaded, ["slow-patient-search"], state_dir)
    assert state["faults"] == ["slow-patient-search"]
    assert json.loads((state_dir / control.STATE_FILE).read_text()) == state
    assert {"pid", "plan", "admin_url", "started", "faults"} <= state.keys()
    health = httpx.get(f"{state['admin_url']}/health", timeout=5).json()
    assert health["pid"] == state["pid"] and health["faults"] == ["slow-patient-search"]
    assert control.status(state_dir) == state

    with pytest.raises(UsageError, match="already running"):
        control.up(loaded, [], state_dir)

    assert control.set_fault(state_dir, "printer-paper-out@sas-boras") == [
        "printer-paper-out@sas-boras",
        "slow-patient-search",
    ]
    assert control.clear_fault(state_dir, "slow-patient-search") == ["printer-paper-out@sas-boras"]
    assert control.status(state_dir)["faults"] == ["printer-paper-out@sas-boras"]
    with pytest.raises(UsageError, match="unknown fault 'bogus'"):
        control.set_fault(state_dir, "bogus")

    assert control.down(state_dir) is True
    assert not _alive(state["pid"])
    assert not (state_dir / control.STATE_FILE).exists()
    assert control.down(state_dir) is False
    log = (state_dir / control.LOG_FILE).read_text()
    assert "reference hospital stopped" in log
    assert "test-only-password" not in log


def test_fault_commands_without_a_hospital_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no reference hospital is running"):
        control.set_fault(tmp_path, "slow-patient-search")
    with pytest.raises(UsageError, match="no reference hospital is running"):
        control.clear_fault(tmp_path, "slow-patient-search")
    assert control.down(tmp_path) is False


def test_unknown_start_fault_is_refused_before_anything_starts(plan_path: Path, state_dir: Path) -> None:
    with pytest.raises(UsageError, match="unknown fault"):
        control.up(load_plan(plan_path), ["paper-jam"], state_dir)
    assert not (state_dir / control.LOG_FILE).exists()


@pytest.mark.slow
def test_port_taken_reports_the_childs_last_line(plan_path: Path, state_dir: Path) -> None:
    loaded = load_plan(plan_path)
    port = int(loaded.plan.environment.fhir_base.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(TargetError) as caught:
            control.up(loaded, [], state_dir)
    assert f"port {port} is already in use" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert control.status(state_dir) is None


@pytest.mark.slow
def test_running_stops_the_hospital_even_when_the_block_fails(plan_path: Path, state_dir: Path) -> None:
    loaded = load_plan(plan_path)
    with pytest.raises(RuntimeError, match="boom"):
        with control.running(loaded, [], state_dir) as state:
            pid = state["pid"]
            assert httpx.get(f"{loaded.plan.environment.fhir_base}/metadata", timeout=5).status_code == 200
            raise RuntimeError("boom")
    assert not _alive(pid)
    assert control.status(state_dir) is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{loaded.plan.environment.fhir_base}/metadata", timeout=2)


def _media_empty(uri: str) -> bool:
    attrs = asyncio.run(get_printer_attributes(uri, 3.0, ["printer-state-reasons"]))
    return any(str(r).startswith("media-empty") for r in attrs.get("printer-state-reasons", []))


@pytest.mark.slow
def test_printer_paper_out_reaches_the_real_printers(
    make_plan: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, state_dir: Path
) -> None:
    monkeypatch.setenv("REHEARSAL_PASSWORD", "test-only-password")
    loaded = load_plan(make_plan(_coexistence_on_free_ports))
    boras, nal = (site.printers[0].uri for site in loaded.plan.sites)
    state = control.up(loaded, ["printer-paper-out@sas-boras"], state_dir)
    health = httpx.get(f"{state['admin_url']}/health", timeout=5).json()
    assert health["printers"] == ["sas-akut-dok1", "nal-lab-dok1"]
    assert _media_empty(boras) and not _media_empty(nal)
    control.clear_fault(state_dir, "printer-paper-out@sas-boras")
    control.set_fault(state_dir, "printer-paper-out@nal-trollhattan")
    assert not _media_empty(boras) and _media_empty(nal)
    assert control.down(state_dir)
    port = int(boras.split(":")[2].split("/")[0])
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.settimeout(2)
        probe.connect(("127.0.0.1", port))


# -- every component up, nothing left behind ----------------------------------------------------------


@pytest.mark.slow
def test_up_starts_every_component_and_down_leaves_no_process_and_no_port(
    make_plan: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, state_dir: Path
) -> None:
    monkeypatch.setenv("REHEARSAL_PASSWORD", "test-only-password")
    loaded = load_plan(make_plan(_coexistence_on_free_ports))
    ports = _plan_ports(loaded)
    assert len(ports) >= 6  # EHR, legacy, lab, bridge HTTP and MLLP, directory, IPP and ZPL printers
    state = control.up(loaded, [], state_dir)
    health = httpx.get(f"{state['admin_url']}/health", timeout=5).json()
    assert health["status"] == "up" and health["started_in_s"] is not None
    components = {k for k, v in health["components"].items() if v["ok"]}
    assert components == {"ehr", "directory", "migration", "legacy", "lab", "bridge", "devices"}
    assert ports <= _listening_ports()
    assert _processes_mentioning(str(state_dir.resolve()))  # the hospital, slapd, printers, D-Bus
    # everything it started listens on loopback only (issue #8): TCP and UDP, every child
    opened = listeners(state["pid"])
    assert ports <= {o.port for o in opened}, "the listeners were not found under the pid"
    assert {o.command for o in opened} >= {"slapd", "ippeveprinter"}
    assert any(o.protocol.startswith("udp") for o in opened)  # the SNMP agents
    assert [str(o) for o in opened if not o.loopback] == []
    assert control.down(state_dir)
    assert not ports & _listening_ports()
    assert _processes_mentioning(str(state_dir.resolve())) == []


def test_a_fault_not_implemented_yet_is_refused_before_anything_starts(
    make_plan: Callable[..., Path], state_dir: Path
) -> None:
    def no_bridge(data: dict[str, Any]) -> None:
        _no_printers(data)
        del data["environment"]["bridge_base"]

    with pytest.raises(UsageError, match="'referral-dropped' is not implemented yet .* bridge component"):
        control.up(load_plan(make_plan(no_bridge)), ["referral-dropped@sas-boras"], state_dir)
    assert not (state_dir / control.LOG_FILE).exists()


@pytest.mark.slow
def test_a_component_that_cannot_start_is_one_line_naming_it_and_its_port(
    plan_path: Path, state_dir: Path
) -> None:
    loaded = load_plan(plan_path)
    port = int(str(loaded.plan.environment.lab_mllp).rsplit(":", 1)[1])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(TargetError) as caught:
            control.up(loaded, [], state_dir)
    message = str(caught.value)
    assert "lab system" in message and f"port {port} is already in use" in message and "\n" not in message
    assert control.status(state_dir) is None
    assert not (_plan_ports(loaded) - {port}) & _listening_ports()


def test_fault_list_says_what_each_fault_does_and_whether_it_works(
    plan_path: Path, make_plan: Callable[..., Path], tmp_path: Path
) -> None:
    rows = control.fault_list(tmp_path, load_plan(plan_path))
    by_name = {r["fault"]: r for r in rows}
    assert all(r["works"] for r in rows), [r["fault"] for r in rows if not r["works"]]
    assert "inte, ingen, inget, ej" in by_name["referral-negation-loss@SITE"]["description"]
    assert all(r["caught_by"] for r in rows)

    def no_lab(data: dict[str, Any]) -> None:
        _no_printers(data)
        del data["environment"]["lab_mllp"]

    without_lab = {
        r["fault"]: r for r in control.fault_list(tmp_path, load_plan(make_plan(no_lab, "nolab.yaml")))
    }
    assert without_lab["lab-results-lost@SITE"]["works"] is False
    text = control.format_fault_list(list(without_lab.values()))
    assert "lab-results-lost@SITE" in text and "not implemented yet" in text
    done = subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "fault", "list", "--plan", str(plan_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REHEARSAL_REPORTS": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "migration-gap@SITE" in done.stdout and "caught by:" in done.stdout
