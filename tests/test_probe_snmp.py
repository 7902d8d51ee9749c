"""The SNMP Printer-MIB probe against a real snmpsim agent, condition by condition; and its BER codec."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_hospital.snmp_agents import SnmpAgents
from rehearsal.errors import UsageError
from rehearsal.probes.snmp import (
    MalformedReply,
    SnmpReadiness,
    decode_response,
    encode_request,
    error_bits,
    probe_all,
    probe_snmp,
)

pytestmark = pytest.mark.slow  # starts snmpsim


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpAgents]:
    running = SnmpAgents(tmp_path_factory.mktemp("snmp"))
    running.add("dok1")
    running.add("dok2", model="HP LaserJet M607", languages=(3, 47))
    running.add("dok3", device_index=2)  # another hrDevice comes first on this agent
    with running:
        yield running


@pytest.fixture
def dok1(agents: SnmpAgents) -> Iterator[str]:
    yield "dok1"
    agents.set_state("dok1", paper_out=False, paper_low=False, door_open=False, jammed=False, offline=False,
                     toner_percent=80)  # fmt: skip


def probe(agents: SnmpAgents, community: str, timeout: float = 2.0, **kw) -> SnmpReadiness:
    return asyncio.run(probe_snmp("127.0.0.1", agents.port, community, timeout, **kw))


def changed(agents: SnmpAgents, community: str, **state) -> SnmpReadiness:
    """Set the agent's state and probe until snmpsim has re-read its file (at most ~2 s)."""
    agents.set_state(community, **state)
    deadline = time.monotonic() + 5
    while True:
        r = probe(agents, community)
        if r.error_bits or r.device_status != "running" or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_healthy_agent_reads_every_part(agents: SnmpAgents, dok1: str) -> None:
    r = probe(agents, dok1)
    assert r.ready and r.problems == [] and r.warnings == []
    assert r.device_status == "running" and r.printer_status == "idle"
    assert r.make_and_model == "Rehearsal Simulated Document Printer"
    assert r.capabilities == ("pdf", "pcl", "ps")
    assert [(s.description, s.kind, s.percent) for s in r.supplies] == [
        ("Black Toner Cartridge", "toner", 80.0)
    ]
    assert r.alerts == () and r.round_trips == 1


@pytest.mark.parametrize(
    ("state", "bit", "problem", "alert"),
    [
        ({"paper_out": True}, "noPaper", "noPaper: paper out", "alert: Tray 2 empty (critical)"),
        ({"door_open": True}, "doorOpen", "doorOpen: door open", "alert: Front door open (critical)"),
        ({"jammed": True}, "jammed", "jammed: paper jam", "alert: Paper jam in tray 2 (critical)"),
        ({"offline": True}, "offline", "offline: printer offline", "alert: Printer offline (critical)"),
        ({"toner_percent": 0}, "noToner", "noToner: toner empty", "alert: Black cartridge empty (critical)"),
    ],
)
def test_each_blocking_condition(
    agents: SnmpAgents, dok1: str, state: dict, bit: str, problem: str, alert: str
) -> None:
    r = changed(agents, dok1, **state)
    assert not r.ready and r.reachable
    assert bit in r.error_bits and r.device_status == "down"
    assert r.problems[0] == "hrDeviceStatus down"
    assert problem in r.problems and alert in r.problems


def test_low_supplies_are_warnings_unless_the_threshold_says_so(agents: SnmpAgents, dok1: str) -> None:
    r = changed(agents, dok1, toner_percent=5, paper_low=True)
    assert r.ready, r.problems
    assert r.device_status == "warning"
    assert set(r.error_bits) == {"lowPaper", "lowToner"}
    assert "supply: Black Toner Cartridge at 5 %" in r.warnings and "lowToner: toner low" in r.warnings
    strict = probe(agents, dok1, fail_below=10)
    assert not strict.ready
    assert strict.problems == ["supply: Black Toner Cartridge at 5 % (plan requires at least 10 %)"]


def test_other_model_and_languages(agents: SnmpAgents) -> None:
    r = probe(agents, "dok2")
    assert r.make_and_model == "HP LaserJet M607" and r.capabilities == ("pcl",)


def test_wrong_community_and_closed_port_are_unreachable_within_the_timeout(agents: SnmpAgents) -> None:
    started = time.monotonic()
    r = probe(agents, "no-such-printer", timeout=0.6)
    assert 0.5 < time.monotonic() - started < 1.2
    assert not r.ready and not r.reachable
    assert r.problems[0].startswith(f"unreachable: no SNMP answer from 127.0.0.1:{agents.port}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    r = asyncio.run(probe_snmp("127.0.0.1", closed, "dok1", 0.5))
    assert not r.reachable and "agent down, wrong community or filtered" in r.problems[0]


def test_long_tables_are_followed_up(tmp_path: Path) -> None:
    rows = {f"1.3.6.1.2.1.43.18.1.1.{col}.1.{i}": v for i in range(1, 12) for col, v in
            ((2, "2|4"), (7, "2|807"), (8, f"4|Tray {i} low"))}  # fmt: skip
    with pytest.raises(UsageError, match="no SNMP agents to simulate"):
        SnmpAgents(tmp_path).start()
    agents = SnmpAgents(tmp_path, start_timeout=10)
    agents.add("many", extra=rows)
    with agents:
        r = probe(agents, "many")
    assert len(r.alerts) == 11 and r.round_trips > 1
    assert r.ready and r.warnings[-1] == "alert: Tray 11 low"


# --- the sweep's depth: one GET of what decides readiness ------------------------------------------


def test_the_readiness_get_asks_one_round_trip_and_no_tables(agents: SnmpAgents, dok1: str) -> None:
    r = probe(agents, dok1, detail=False)
    assert r.ready and r.round_trips == 1 and r.make_and_model == "Rehearsal Simulated Document Printer"
    assert (r.device_status, r.printer_status) == ("running", "idle")
    assert r.supplies == () and r.alerts == () and r.languages == ()
    full = probe(agents, dok1)
    assert full.supplies and full.languages  # the same agent has its tables: the GET left them out


def test_the_readiness_get_sees_each_blocking_bit(agents: SnmpAgents, dok1: str) -> None:
    changed(agents, dok1, paper_out=True, door_open=True)
    r = probe(agents, dok1, detail=False)
    assert not r.ready and r.round_trips == 1
    assert r.problems == ["hrDeviceStatus down", "noPaper: paper out", "doorOpen: door open"]


def test_an_agent_without_hrdevice_1_is_read_in_full(agents: SnmpAgents) -> None:
    r = probe(agents, "dok3", detail=False)
    assert r.ready and r.round_trips == 2 and r.supplies  # the GET found no row 1, the GETBULK found row 2
    assert r.make_and_model == "Rehearsal Simulated Document Printer"


def test_the_sweep_reads_tables_only_when_the_plan_needs_them(agents: SnmpAgents) -> None:
    from rehearsal.hardware import Device, SweepConfig, run_sweep
    from rehearsal.plan import DeviceModels, SupplyThresholds

    def device(protocol: str) -> Device:
        return Device("s", "dok2", "document", protocol, "ipp://127.0.0.1:1/x" if "ipp" in protocol else
                      "snmp://", snmp=("127.0.0.1", agents.port, "dok2"))  # fmt: skip

    def read(config: SweepConfig) -> SnmpReadiness:
        (report,) = run_sweep([device("snmp")], config)
        return report.details["snmp"]

    assert read(SweepConfig()).round_trips == 1 and read(SweepConfig()).supplies == ()
    assert read(SweepConfig(supplies=SupplyThresholds(fail_below=10))).supplies  # levels against the plan
    needs_pdf = SweepConfig(device_models={"document": DeviceModels(capabilities=["pdf"])})
    (report,) = run_sweep([device("snmp")], needs_pdf)
    assert report.problems == ("not compatible: needs pdf (device has: pcl)",)  # languages were read


def test_probe_all_shares_one_socket(agents: SnmpAgents) -> None:
    results = asyncio.run(
        probe_all([("127.0.0.1", agents.port, c) for c in ("dok2", "dok1", "nope")], 1.0, 2)
    )
    assert [r.reachable for r in results] == [True, True, False]


def test_error_bits_are_msb_first() -> None:
    assert error_bits(b"\x40") == ("noPaper",)
    assert error_bits(b"\x00\x80") == ("inputTrayMissing",)
    assert error_bits(b"") == ()


def test_codec_round_trip_of_a_request() -> None:
    raw = encode_request("public", 1234, ["1.3.6.1.2.1.1.1.0"], bulk=(1, 4))
    assert raw[0] == 0x30 and b"public" in raw and bytes([0xA5]) in raw
    with pytest.raises(MalformedReply, match="not a Response-PDU"):
        decode_response(raw)


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_decoder_raises_only_malformed_reply(data: bytes) -> None:
    try:
        decode_response(data)
    except MalformedReply:
        pass


# --- the rest of the conditions, each set on the agent and read back ---------------------
# (hrPrinterStatus, every hrPrinterDetectedErrorState bit, each low/empty supply and its alert
# on its own, supply levels the agent cannot measure, hrDeviceStatus testing)

ERROR_STATE = "1.3.6.1.2.1.25.3.5.1.2.1"
DEVICE_STATUS = "1.3.6.1.2.1.25.3.2.1.5.1"
SUPPLY_LEVEL = "1.3.6.1.2.1.43.11.1.1.9.1.1"


@pytest.fixture
def dok1_any(agents: SnmpAgents, dok1: str) -> Iterator[str]:
    """dok1, with what the other fixture does not reset (raw OIDs, printing) reset too."""
    yield dok1
    agents.set_state(dok1, extra={}, printing=False)


def until(
    agents: SnmpAgents, community: str, wanted: Callable[[SnmpReadiness], bool], within: float = 5.0
) -> SnmpReadiness:
    """Probe until ``wanted(reading)`` (snmpsim re-reads a changed file on a later request)."""
    deadline = time.monotonic() + within
    while True:
        r = probe(agents, community)
        if wanted(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def healthy(r: SnmpReadiness) -> bool:
    return r.ready and r.error_bits == () and r.device_status == "running" and r.printer_status == "idle"


def test_printing_printer_is_ready_and_offline_one_reports_other(agents: SnmpAgents, dok1_any: str) -> None:
    agents.set_state(dok1_any, printing=True)
    busy = until(agents, dok1_any, lambda r: r.printer_status != "idle")
    assert busy.printer_status == "printing" and busy.device_status == "running"
    assert busy.ready and busy.problems == [] and busy.warnings == []

    agents.set_state(dok1_any, printing=False, offline=True)
    off = until(agents, dok1_any, lambda r: r.printer_status != "printing")
    assert off.printer_status == "other" and off.device_status == "down"
    assert off.error_bits == ("offline",)
    assert off.problems == [
        "hrDeviceStatus down",
        "offline: printer offline",
        "alert: Printer offline (critical)",
    ]

    agents.set_state(dok1_any, offline=False)
    assert healthy(until(agents, dok1_any, healthy))


@pytest.mark.parametrize(
    ("state", "bits", "problems"),
    [
        ({"paper_out": True}, ("noPaper",), ["noPaper: paper out", "alert: Tray 2 empty (critical)"]),
        ({"door_open": True}, ("doorOpen",), ["doorOpen: door open", "alert: Front door open (critical)"]),
        ({"jammed": True}, ("jammed",), ["jammed: paper jam", "alert: Paper jam in tray 2 (critical)"]),
        (
            {"toner_percent": 0},
            ("noToner",),
            [
                "noToner: toner empty",
                "alert: Black cartridge empty (critical)",
                "supply: Black Toner Cartridge empty",
            ],
        ),
    ],
    ids=["no-paper", "door-open", "jammed", "no-toner"],
)
def test_each_blocking_condition_exactly_and_back(
    agents: SnmpAgents, dok1_any: str, state: dict, bits: tuple[str, ...], problems: list[str]
) -> None:
    """The whole verdict, not just one line of it, and that it clears when the agent does."""
    agents.set_state(dok1_any, **state)
    r = until(agents, dok1_any, lambda r: r.error_bits != ())
    assert r.error_bits == bits and r.device_status == "down"
    assert r.problems == ["hrDeviceStatus down", *problems]
    assert r.warnings == []

    agents.set_state(dok1_any, paper_out=False, door_open=False, jammed=False, toner_percent=80)
    back = until(agents, dok1_any, healthy)
    assert healthy(back) and back.alerts == () and back.problems == []


LOW_ALONE = [
    (
        {"toner_percent": 10},
        ("lowToner",),
        [
            "hrDeviceStatus warning",
            "lowToner: toner low",
            "alert: Black cartridge low",
            "supply: Black Toner Cartridge at 10 %",
        ],
    ),
    (
        {"paper_low": True},
        ("lowPaper",),
        ["hrDeviceStatus warning", "lowPaper: paper low", "alert: Tray 2 low"],
    ),
]


@pytest.mark.parametrize(("state", "bits", "warnings"), LOW_ALONE, ids=["toner-low", "paper-low"])
def test_each_low_condition_alone_is_a_warning(
    agents: SnmpAgents, dok1_any: str, state: dict, bits: tuple[str, ...], warnings: list[str]
) -> None:
    agents.set_state(dok1_any, **state)
    r = until(agents, dok1_any, lambda r: r.error_bits != ())
    assert r.error_bits == bits and r.device_status == "warning"
    assert r.ready and r.problems == []
    assert r.warnings == warnings

    agents.set_state(dok1_any, toner_percent=80, paper_low=False)
    back = until(agents, dok1_any, healthy)
    assert healthy(back) and back.warnings == []


# Bits the simulator's flags do not cover: the agent sends the raw bit string (byte 1 bit 0 and
# the whole second byte, RFC 3805), so every named bit has been read off the wire once.
RAW_BITS = [
    ("0100", "serviceRequested", "service requested", True),
    ("0080", "inputTrayMissing", "input tray missing", True),
    ("0040", "outputTrayMissing", "output tray missing", True),
    ("0020", "markerSupplyMissing", "toner/ink cartridge missing", True),
    ("0010", "outputNearFull", "output tray nearly full", False),
    ("0008", "outputFull", "output tray full", True),
    ("0004", "inputTrayEmpty", "an input tray is empty", False),
    ("0002", "overduePreventMaint", "preventive maintenance overdue", False),
]


@pytest.mark.parametrize(("hex_bits", "bit", "text", "blocks"), RAW_BITS, ids=[b for _, b, _, _ in RAW_BITS])
def test_every_other_error_bit_from_the_agent(
    agents: SnmpAgents, dok1_any: str, hex_bits: str, bit: str, text: str, blocks: bool
) -> None:
    agents.set_state(dok1_any, extra={ERROR_STATE: f"4x|{hex_bits}"})
    r = until(agents, dok1_any, lambda r: r.error_bits != ())
    assert r.error_bits == (bit,)
    assert r.device_status == "running"  # this agent's hrDeviceStatus does not follow: the bit alone decides
    if blocks:
        assert r.problems == [f"{bit}: {text}"] and not r.ready
    else:
        assert r.problems == [] and r.warnings == [f"{bit}: {text}"] and r.ready

    agents.set_state(dok1_any, extra={})
    assert healthy(until(agents, dok1_any, healthy))


@pytest.mark.parametrize(("level", "meaning"), [(-3, "some remaining"), (-2, "unknown")])
def test_supply_level_the_agent_cannot_measure_is_neither_warning_nor_problem(
    agents: SnmpAgents, dok1_any: str, level: int, meaning: str
) -> None:
    agents.set_state(dok1_any, extra={SUPPLY_LEVEL: f"2|{level}"})
    r = until(agents, dok1_any, lambda r: bool(r.supplies) and r.supplies[0].level == level)
    assert r.supplies[0].level == level and r.supplies[0].percent is None, meaning
    assert r.ready and r.problems == [] and r.warnings == []
    strict = probe(agents, dok1_any, fail_below=10)  # a threshold cannot fail a level nobody knows
    assert strict.ready

    agents.set_state(dok1_any, extra={})
    back = until(agents, dok1_any, lambda r: bool(r.supplies) and r.supplies[0].level == 80)
    assert back.supplies[0].percent == 80.0


def test_device_status_testing_is_not_ready(agents: SnmpAgents, dok1_any: str) -> None:
    agents.set_state(dok1_any, extra={DEVICE_STATUS: "2|4"})
    r = until(agents, dok1_any, lambda r: r.device_status != "running")
    assert r.device_status == "testing"
    assert r.problems == ["hrDeviceStatus testing"] and not r.ready

    agents.set_state(dok1_any, extra={})
    assert healthy(until(agents, dok1_any, healthy))
