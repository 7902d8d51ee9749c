"""The SNMP Printer-MIB probe against a real snmpsim agent, condition by condition; and its BER codec."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from rehearsal.reference.snmp_agents import SnmpAgents

pytestmark = pytest.mark.slow  # starts snmpsim


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpAgents]:
    running = SnmpAgents(tmp_path_factory.mktemp("snmp"))
    running.add("dok1")
    running.add("dok2", model="HP LaserJet M607", languages=(3, 47))
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
