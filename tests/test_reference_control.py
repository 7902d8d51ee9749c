"""Starting, poking and stopping the reference hospital as a detached process; the fault registry."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rehearsal.errors import TargetError, UsageError
from rehearsal.plan import load_plan
from rehearsal.probes.ipp import get_printer_attributes
from rehearsal.reference import control
from rehearsal.reference.faults import Fault, FaultBoard, known_faults, parse_fault

DEMO = Path(__file__).resolve().parents[1] / "plans" / "demo.yaml"


def _no_printers(data: dict[str, Any]) -> None:
    for site in data["sites"]:
        site["printers"] = []


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
        (
            "paper-jam",
            "unknown fault 'paper-jam' (known faults: slow-patient-search, printer-paper-out@SITE)",
        ),
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
    assert "printer-paper-out@SITE" in known_faults()


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
    loaded = load_plan(make_plan())
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
