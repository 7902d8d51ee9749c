"""The suite's ports: every xdist worker gets ports of its own slice at once, whatever parity the
kernel prefers for ``bind(0)`` (worker 0 of 2 once waited forever for an even port)."""

from __future__ import annotations

import socket

import pytest

from conftest import PORTS, free_port


@pytest.mark.parametrize("count", [1, 2, 4])
def test_each_worker_gets_free_ports_from_its_own_slice(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    taken: dict[int, set[int]] = {}
    for index in range(count):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(count))
        taken[index] = {free_port() for _ in range(20)}
        span = len(PORTS) // count
        assert all(PORTS.start + index * span <= p < PORTS.start + (index + 1) * span for p in taken[index])
        assert len(taken[index]) == 20  # never the same port twice
    assert {p % 2 for ports in taken.values() for p in ports} == {0, 1}  # even ones too
    for port in set().union(*taken.values()):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free when handed out (and still, nothing took it)
