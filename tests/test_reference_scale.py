"""The reference hospital at region scale (issue 17): a many-site plan's document printers are
print-server queues in one private cupsd, every printer still answers on its own URI with its
own state, the printer faults still bite per site, and nothing is left running after ``down``
or after ``kill -9`` of the hospital. The plan is the one benchmarks/hospital_scale.py times,
at 6 sites (60 printers) so the test stays fast."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from sockets import descendants, listeners

from conftest import free_port
from reference_hospital import control
from reference_hospital.print_server import PrintServer, served
from reference_hospital.printing import send_ipp, simple_pdf
from rehearsal.errors import TargetError, UsageError
from rehearsal.hardware import DeviceReport, SweepConfig, inventory, run_sweep
from rehearsal.plan import LoadedPlan, Printer, load_plan
from rehearsal.probes.ipp import get_printer_attributes
from rehearsal.probes.ipp_client import IppSession

ROOT = Path(__file__).resolve().parents[1]


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hospital_scale", ROOT / "benchmarks" / "hospital_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _region(folder: Path, sites: int) -> LoadedPlan:
    data = _benchmark().region_plan(sites, free_port, folder)
    path = folder / "region.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_plan(path)


def _commands(pids: set[int]) -> list[str]:
    found = []
    for pid in pids:
        try:
            found.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(pids)


def _sweep(loaded: LoadedPlan, sites: list[str] | None = None) -> dict[str, DeviceReport]:
    devices = [d for d in inventory(loaded.plan, loaded.path.parent, sites) if d.kind != "workstation"]
    return {r.device.id: r for r in run_sweep(devices, SweepConfig.from_plan(loaded.plan))}


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoadedPlan, Path, dict[str, Any]]]:
    """A 6-site hospital for the module (the faults first, then the test that stops it)."""
    folder = tmp_path_factory.mktemp("region")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REHEARSAL_PASSWORD", "test-only-password")
        loaded = _region(folder, 6)
        state_dir = folder / "state"
        state = control.up(loaded, [], state_dir, timeout=60, with_parent=True)
    try:
        yield loaded, state_dir, state
    finally:
        control.down(state_dir)


def test_printer_faults_bite_one_sites_queues_and_clear(
    region: tuple[LoadedPlan, Path, dict[str, Any]],
) -> None:
    loaded, state_dir, _ = region
    faulted, offline, other = (s.id for s in loaded.plan.sites[1:4])
    control.set_fault(state_dir, f"printer-paper-out@{faulted}")
    control.set_fault(state_dir, f"printer-offline@{offline}")
    control.set_fault(state_dir, f"toner-low@{other}")
    reports = _sweep(loaded, [faulted, offline, other, loaded.plan.sites[0].id])
    for report in reports.values():
        site, kind = report.device.site, report.device.kind
        text = " | ".join(report.problems)
        if kind != "document" or site == loaded.plan.sites[0].id:
            assert report.ready, (report.device.id, report.problems)
        elif site == faulted:
            assert not report.ready and "media-empty: paper out" in text, text
        elif site == offline:
            assert not report.ready and "stopped: printer-state is stopped" in text, text
        else:
            assert report.ready and any("toner" in w for w in report.warnings), report.warnings
    for fault in (f"printer-paper-out@{faulted}", f"printer-offline@{offline}", f"toner-low@{other}"):
        control.clear_fault(state_dir, fault)
    cleared = _sweep(loaded, [faulted, offline, other])
    assert all(r.ready and not any("toner" in w for w in r.warnings) for r in cleared.values()), {
        r.device.id: (r.problems, r.warnings) for r in cleared.values() if not r.ready or r.warnings
    }


def test_six_sites_start_every_printer_answers_on_its_uri_and_down_leaves_nothing(
    region: tuple[LoadedPlan, Path, dict[str, Any]],
) -> None:
    loaded, state_dir, state = region
    printers = [p for s in loaded.plan.sites for p in s.printers]
    queues = [p for p in printers if served(p)]
    assert len(printers) == 60 and len(queues) == 24
    tree = descendants(state["pid"])
    commands = _commands(tree)
    assert commands.count("cupsd") == 1 and "ippeveprinter" not in commands, commands

    reports = _sweep(loaded)
    assert set(reports) == {p.id for p in printers}
    not_ready = {pid: r.problems for pid, r in reports.items() if not r.ready}
    assert not not_ready

    async def names() -> list[Any]:
        return await asyncio.gather(*(get_printer_attributes(p.uri, 3.0, ["printer-name"]) for p in queues))

    answered = [attrs["printer-name"] for attrs in asyncio.run(names())]
    assert answered == [[p.uri.rsplit("/", 1)[1]] for p in queues]  # each queue on its own URI

    async def print_and_count() -> tuple[Any, list[int]]:
        printed = await send_ipp(queues[0].uri, simple_pdf("Testsida", ["Referenssjukhuset"]), 5.0)
        counts = []
        for queue in queues[:2]:
            async with IppSession(queue.uri, 3.0) as session:
                counts.append(len(await session.get_jobs("all")))
        return printed, counts

    printed, counts = asyncio.run(print_and_count())
    assert printed.accepted and counts == [1, 0], (printed, counts)  # the job is that queue's alone

    ports = {(lst.protocol, lst.port) for pid in tree for lst in listeners(pid)}
    assert control.down(state_dir)
    assert not _gone_within(tree, 5.0)
    still = {(lst.protocol, lst.port) for pid in descendants(os.getpid()) for lst in listeners(pid)}
    assert not ports & still


def test_kill_9_of_the_hospital_takes_every_simulator_along(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REHEARSAL_PASSWORD", "test-only-password")
    loaded = _region(tmp_path, 2)
    state_dir = tmp_path / "state"
    state = control.up(loaded, [], state_dir, timeout=60, with_parent=True)
    try:
        tree = descendants(state["pid"])
        assert {"cupsd", "slapd"} <= set(_commands(tree)), _commands(tree)
        os.kill(state["pid"], signal.SIGKILL)
        assert not _gone_within(tree, 5.0), _commands(_alive(tree))
    finally:
        control.down(state_dir)


def _queue(printer_id: str, port: int, queue: str | None = None) -> Printer:
    return Printer(
        id=printer_id, kind="document", uri=f"ipp://127.0.0.1:{port}/printers/{queue or printer_id}"
    )


def test_print_server_plan_mistakes_are_one_line_before_anything_starts(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(UsageError, match=r"printers a and b both use queue 'ward'"):
        PrintServer([_queue("a", port, "Ward"), _queue("b", free_port(), "ward")], tmp_path)
    with pytest.raises(UsageError, match=r"printer c: queue 'c\$1' in .* is not a print-server queue name"):
        PrintServer([_queue("c", port, "c$1")], tmp_path)
    assert (
        PrintServer(
            [Printer(id="d", kind="document", uri=f"ipp://127.0.0.1:{port}/ipp/print")], tmp_path
        ).printers
        == []
    )
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        server = PrintServer([_queue("e", port)], tmp_path)
        with pytest.raises(
            TargetError, match=rf"for the print server \(ipp://127.0.0.1:{port}\): port {port} is already"
        ):
            server.start()
    assert server.running == [] and not (tmp_path / "cups" / "cupsd.out").exists()
