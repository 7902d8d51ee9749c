"""A hostile SNMP agent beside a silent printer (#12, finding 4): a reply counts only when it comes
from the address and port the request went to, carries the request's id and its community.

The sweep asks every SNMP printer over one shared UDP socket with request ids that follow
each other. Before the fix, an answer was matched by request id alone: an agent that answers
with its neighbours' ids made a printer with no agent at all READY, with the hostile
agent's make and model; an answer from another port, or with another community, made the
hostile agent itself READY. Here the silent printer is a UDP port nobody answers on
(tests/silent_peers.py), the hostile agent a small UDP server written for this test (a real
socket on loopback speaking SNMPv2c, built with the probe's own BER helpers), and beside
them a real snmpsim agent, which must stay READY with its own model.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from silent_peers import SilentPeers

from conftest import free_port
from reference_hospital.snmp_agents import SnmpAgents
from rehearsal.hardware import Device, SweepConfig, run_sweep
from rehearsal.probes import snmp

HOSTILE_MODEL = "Hostile LaserJet 9000"


def _request(data: bytes) -> tuple[str, int, list[str]]:
    """(community, request id, OIDs) of a GetRequest/GetBulkRequest we sent."""
    _, message, _ = snmp._read(data, 0)
    _, _, pos = snmp._read(message, 0)  # version
    _, community, pos = snmp._read(message, pos)
    _, pdu, _ = snmp._read(message, pos)
    _, rid, pos = snmp._read(pdu, 0)
    _, _, pos = snmp._read(pdu, pos)
    _, _, pos = snmp._read(pdu, pos)
    _, binds, _ = snmp._read(pdu, pos)
    oids, at = [], 0
    while at < len(binds):
        _, bind, at = snmp._read(binds, at)
        _, oid, _ = snmp._read(bind, 0)
        oids.append(snmp._decode_oid(oid))
    return community.decode(), int.from_bytes(rid, "big", signed=True), oids


def ready_printer_answer(community: str, request_id: int, oids: list[str]) -> bytes:
    """A Printer-MIB answer of an idle printer with no problems (the first row of every column)."""
    values = {
        snmp.SYS_DESCR: ("0", snmp._tlv(0x04, HOSTILE_MODEL.encode())),
        snmp.HR_DEVICE_DESCR: ("1", snmp._tlv(0x04, HOSTILE_MODEL.encode())),
        snmp.HR_DEVICE_STATUS: ("1", snmp._int(2)),
        snmp.HR_PRINTER_STATUS: ("1", snmp._int(3)),
        snmp.HR_PRINTER_ERRORS: ("1", snmp._tlv(0x04, b"\x00\x00")),
    }
    binds = []
    for oid in oids:
        if oid in values:
            row, value = values[oid]
            binds.append(snmp._tlv(0x30, snmp._oid(f"{oid}.{row}") + value))
        else:  # every table column ends at once
            binds.append(snmp._tlv(0x30, snmp._oid(oid) + b"\x82\x00"))
    pdu = snmp._int(request_id) + snmp._int(0) + snmp._int(0) + snmp._tlv(0x30, b"".join(binds))
    return snmp._tlv(0x30, snmp._int(1) + snmp._tlv(0x04, community.encode()) + snmp._tlv(0xA2, pdu))


class HostileAgent:
    """A UDP SNMP agent on 127.0.0.1 that never answers a request properly, in one of three ways:

    - ``neighbours``: answers with the ids just before and after the request's (the other
      printers' requests on a shared socket), from its own port, with the right community;
    - ``other-port``: the right id and community, sent from another port of the same host;
    - ``community``: the right id, from its own port, with another community;
    - ``relay``: both forgeries above first, then the true answer of the agent at ``upstream``
      (a proxy in front of a real printer, with a spoofer racing it).
    """

    def __init__(self, how: str, upstream: int | None = None) -> None:
        self.how, self.upstream = how, upstream
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.side.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> HostileAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        self.side.close()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            community, rid, oids = _request(data)
            try:
                if self.how == "neighbours":
                    for other in (*range(rid - 8, rid), *range(rid + 1, rid + 9)):
                        self.sock.sendto(ready_printer_answer(community, other, oids), peer)
                elif self.how == "other-port":
                    self.side.sendto(ready_printer_answer(community, rid, oids), peer)
                elif self.how == "community":
                    self.sock.sendto(ready_printer_answer("not-" + community, rid, oids), peer)
                else:
                    self.side.sendto(ready_printer_answer(community, rid, oids), peer)
                    self.sock.sendto(ready_printer_answer("not-" + community, rid, oids), peer)
                    self.side.settimeout(5)
                    self.side.sendto(data, ("127.0.0.1", self.upstream))
                    self.sock.sendto(self.side.recvfrom(65536)[0], peer)
            except OSError:
                return


@pytest.fixture(scope="module")
def real_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpAgents]:
    agents = SnmpAgents(Path(tmp_path_factory.mktemp("snmpsim")))
    agents.add("ward3")
    agents.start()
    try:
        yield agents
    finally:
        agents.stop()


def snmp_device(name: str, port: int, community: str = "public") -> Device:
    return Device(
        "s", name, "document", "snmp", f"snmp://127.0.0.1:{port}", snmp=("127.0.0.1", port, community)
    )


@pytest.mark.parametrize("how", ["neighbours", "other-port", "community"])
def test_a_hostile_agent_neither_speaks_for_a_silent_printer_nor_passes_itself(
    how: str, real_agent: SnmpAgents
) -> None:
    silent_port = free_port()
    with SilentPeers([], [silent_port]), HostileAgent(how) as hostile:
        devices = [
            snmp_device("silent", silent_port),
            snmp_device("hostile", hostile.port),
            snmp_device("silent2", silent_port, "other"),
            snmp_device("real", real_agent.port, "ward3"),
        ]
        reports = {r.device.id: r for r in run_sweep(devices, SweepConfig(timeout=0.6))}
        assert hostile.requests >= 1
    for name in ("silent", "silent2"):
        silent = reports[name]
        assert not silent.ready and not silent.reachable, (name, silent.make_and_model, silent.problems)
        assert silent.make_and_model == ""
        assert silent.problems[0].startswith(f"unreachable: no SNMP answer from 127.0.0.1:{silent_port}")
    bad = reports["hostile"]
    assert not bad.ready, (bad.make_and_model, bad.problems)
    assert bad.make_and_model != HOSTILE_MODEL
    assert f"127.0.0.1:{hostile.port}" in bad.problems[0]
    good = reports["real"]
    assert good.ready, good.problems
    assert good.make_and_model and good.make_and_model != HOSTILE_MODEL


def test_forgeries_arriving_first_are_ignored_and_the_true_answer_still_counts(
    real_agent: SnmpAgents,
) -> None:
    """A forged answer does not end the wait: the request waits on for its agent's own answer."""
    with HostileAgent("relay", upstream=real_agent.port) as proxy:
        (report,) = run_sweep([snmp_device("proxied", proxy.port, "ward3")], SweepConfig(timeout=2.0))
    assert report.ready, report.problems
    assert report.make_and_model and report.make_and_model != HOSTILE_MODEL


def test_the_sweep_socket_is_bound_to_loopback_not_every_interface() -> None:
    async def bound() -> tuple[str, int]:
        async with snmp.Session() as session:
            return session.local_address("127.0.0.1")

    host, _ = asyncio.run(bound())
    assert host == "127.0.0.1"
