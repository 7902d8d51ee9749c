"""The hardware sweep: compatibility, dead devices cost one timeout, malformed facts do not stop it,
and the reference hospital's device faults end NO-GO on the right site's criterion (rehearse hardware)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import free_port
from reference_hospital.devices import DeviceFleet
from reference_hospital.zpl_printer import ZplSimulator
from rehearsal.hardware import (
    Device,
    Gate,
    SweepConfig,
    compatibility,
    hardware_plan,
    inventory,
    readiness_table,
    render_table,
    run_sweep,
)
from rehearsal.plan import DeviceModels, SupplyThresholds, load_plan

ROOT = Path(__file__).resolve().parents[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- judging ------------------------------------------------------------------------------------------


def test_compatibility_names_the_reason() -> None:
    wristband = DeviceModels(approved=["ZD510*", "ZD620*"], capabilities=["zpl", "300dpi"])
    assert compatibility("wristband", "ZD510-300dpi", ["zpl", "300dpi"], wristband) == []
    assert compatibility("wristband", "ZD410-203dpi", ["zpl", "203dpi"], wristband) == [
        "not approved: 'ZD410-203dpi' is not an approved model for wristband printers "
        "(approved: ZD510*, ZD620*)",
        "not compatible: needs 300dpi (device has: 203dpi, zpl)",
    ]
    assert compatibility("label", "", ["zpl"], DeviceModels(approved=["ZD421*"])) == [
        "not approved: make and model not reported, cannot confirm it is approved for label printers"
    ]
    document = DeviceModels(capabilities=["pdf|pcl"])
    assert compatibility("document", "HP", ["PCL"], document) == []
    assert compatibility("document", "HP", ["ps"], None) == []


def test_inventory_covers_every_device_of_the_demo_plan() -> None:
    loaded = load_plan(ROOT / "plans" / "demo.yaml")
    devices = inventory(loaded.plan, loaded.path.parent)
    kinds = {(d.site, d.kind, d.protocol) for d in devices}
    assert ("sas-boras", "document", "ipp+snmp") in kinds and ("nal-trollhattan", "wristband", "zpl") in kinds
    assert ("sas-boras", "workstation", "facts") in kinds
    ws = next(d for d in devices if d.id == "sas-akut-ws01")
    assert ws.address == str(ROOT / "reports" / ".workstations" / "sas-boras" / "sas-akut-ws01.json")
    assert [c.id for c in hardware_plan(loaded.plan).criteria] == [
        "tech-printers", "tech-wristband-printers", "tech-label-printers", "tech-workstations",
        "run-complete",
    ]  # fmt: skip


# --- dead devices cost one timeout period, not one per concurrency slot --------------------------------


@pytest.fixture(scope="module")
def zpl_fleet() -> Iterator[ZplSimulator]:
    with ZplSimulator() as sim:
        for i in range(150):
            sim.add(f"ok{i}", 0)
        for i in range(150):
            sim.add(f"silent{i}", 0, head_open=True, silent_in_error=True)
        yield sim


def zpl_devices(sim: ZplSimulator, prefix: str) -> list[Device]:
    return [
        Device("s", pid, "label", "zpl", f"tcp://127.0.0.1:{sim.port(pid)}")
        for pid in sim.printers
        if pid.startswith(prefix)
    ]


def test_each_printer_is_asked_hs_once_over_one_connection_within_the_gates_places() -> None:
    """No "is it there" connect before the probe (fired at every device at once it overflowed
    listen backlogs at 10,000): one connection per printer, at most the gate's places open."""
    with ZplSimulator() as sim:
        for i in range(120):
            sim.add(f"p{i}", 0)
        devices = zpl_devices(sim, "p")
        reports = run_sweep(devices, SweepConfig(timeout=5.0, concurrency=8, max_open=4096))
        assert all(r.ready for r in reports)
        assert {(s.connections, tuple(s.asked)) for s in sim.printers.values()} == {(1, ("~HS",))}
        assert sim.most_open <= 2 * 8  # the gate's 8 places (+ those given away by a slow probe)
        # the plan judges the model and resolution: then ~HI is asked too, on the same connection
        judged = {"label": DeviceModels(approved=["ZD510*"], capabilities=["300dpi"])}
        (report,) = run_sweep(devices[:1], SweepConfig(timeout=5.0, device_models=judged))
        assert report.ready and report.make_and_model == "ZD510-300dpi"
        assert sim.printers[devices[0].id].asked == ["~HS", "~HS", "~HI"]
        assert sim.printers[devices[0].id].connections == 2


def test_unreachable_devices_cost_a_few_timeouts_not_one_per_slot_turn(zpl_fleet: ZplSimulator) -> None:
    timeout = 1.0
    config = SweepConfig(timeout=timeout, concurrency=32, max_open=1024)
    ready = zpl_devices(zpl_fleet, "ok")
    holes = [socket.create_server(("127.0.0.1", 0), backlog=0) for _ in range(4)]
    fillers = []
    for hole in holes:  # a full accept queue drops every further SYN: connect() hangs, a silent host
        for _ in range(4):
            fillers.append(socket.socket())
            fillers[-1].setblocking(False)
            fillers[-1].connect_ex(hole.getsockname())
    hosts = [
        Device("s", f"host{i}", "label", "zpl", f"tcp://127.0.0.1:{holes[i % 4].getsockname()[1]}")
        for i in range(100)
    ]
    closed = []
    for i in range(150):  # closed ports: refused at once
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed.append(Device("s", f"closed{i}", "label", "zpl", f"tcp://127.0.0.1:{s.getsockname()[1]}"))
    dead = zpl_devices(zpl_fleet, "silent") + closed + hosts
    started = time.monotonic()
    baseline = run_sweep(ready, config)
    alone = time.monotonic() - started
    mixed = ready + dead
    random.Random(4).shuffle(mixed)
    started = time.monotonic()
    try:
        reports = run_sweep(mixed, config)
    finally:
        for sock in holes + fillers:
            sock.close()
    together = time.monotonic() - started
    assert all(r.ready for r in baseline)
    by_id = {r.device.id: r for r in reports}
    assert all(by_id[d.id].ready for d in ready)
    for d in dead:
        r = by_id[d.id]
        assert not r.ready and r.problems
        if d.id.startswith("closed"):
            assert not r.reachable and r.problems[0].startswith(
                "unreachable: connection refused at 127.0.0.1:"
            )
        elif d.id.startswith("host"):
            assert not r.reachable and r.problems[0].startswith("unreachable: no connection to 127.0.0.1:")
            assert r.problems[0].endswith(f"within {timeout:g} s")
        else:
            assert r.problems[0].startswith("timeout: connected, but no answer to ~HS")
    # 400 dead devices in 32 slots would be ~12 timeouts if each held its slot to the end. Without a
    # pre-connect a dead device's timeout starts at its turn, not at 0: ~1.4 timeouts measured here
    # (benchmarks/hardware_sweep.py), so the bound is a quarter of what it rules out, not 1.
    assert together - alone <= timeout * 3, (alone, together)


def test_gate_bounds_active_probes_and_releases_slow_ones() -> None:
    async def scenario() -> tuple[int, int, float]:
        gate = Gate(concurrency=4, max_open=100, ceiling=0.05)
        active = most = 0

        async def work(seconds: float):
            nonlocal active, most
            active += 1
            most = max(most, active)
            await asyncio.sleep(seconds)
            active -= 1
            from rehearsal.hardware import Device, DeviceReport

            return DeviceReport(Device("s", "d", "label", "zpl", "x"), True, True)

        started = time.monotonic()
        await asyncio.gather(*(gate.run(lambda: work(0.5)) for _ in range(40)))
        return most, gate.released, time.monotonic() - started

    most, released, elapsed = asyncio.run(scenario())
    assert released == 40 and most == 40  # nobody answered: every slow probe gave its slot away, waiting on
    assert elapsed < 5 / 2  # well under 40 / 4 × 0.5 s = 5 s (a busy machine adds some)


def test_gate_stops_giving_slots_away_once_released_probes_turn_out_alive() -> None:
    """Slow but alive (a loaded machine): the first slow probes look dead and give their slots
    away, then answer; the hold backs off, and the gate stops putting more probes in flight
    (more would only slow every answer further, until live devices time out)."""

    async def scenario() -> tuple[int, int, int]:
        gate = Gate(concurrency=4, max_open=1000, ceiling=0.02)
        active = most = 0

        async def work():
            nonlocal active, most
            active += 1
            most = max(most, active)
            await asyncio.sleep(0.15)
            active -= 1
            from rehearsal.hardware import Device, DeviceReport

            return DeviceReport(Device("s", "d", "label", "zpl", "x"), True, True)

        await asyncio.gather(*(gate.run(work) for _ in range(40)))
        early, most, active = gate.released, 0, 0
        await asyncio.gather(*(gate.run(work) for _ in range(40)))
        return early, gate.released - early, most

    early, late, most = asyncio.run(scenario())
    assert early >= 4  # the first ones did look dead
    assert late == 0 and most == 4  # then: at most the gate's places in flight, none given away


def test_gate_narrows_its_window_while_answers_come_slowly_and_widens_it_again() -> None:
    """Answers slower than ``slow`` (a loaded machine: on loopback it is CPU, not the network, that
    queues them) halve the places in flight, so live devices are not pushed past their timeout."""

    async def scenario() -> tuple[int, int, int, int]:
        gate = Gate(concurrency=32, max_open=100, ceiling=1.0, slow=0.1)
        active = most = 0

        async def work(seconds: float):
            nonlocal active, most
            active += 1
            most = max(most, active)
            await asyncio.sleep(seconds)
            active -= 1
            from rehearsal.hardware import Device, DeviceReport

            return DeviceReport(Device("s", "d", "label", "zpl", "x"), True, True)

        await asyncio.gather(*(gate.run(lambda: work(0.15)) for _ in range(96)))
        narrowed, most_slow = gate.active.size, most
        await asyncio.gather(*(gate.run(lambda: work(0.001)) for _ in range(200)))
        return narrowed, most_slow, gate.active.size, gate.released

    narrowed, most, widened, _ = asyncio.run(scenario())
    assert 8 <= narrowed <= 16 and most == 32  # 32 at first, then halved per answer time, not below 8
    assert widened == 32  # timely answers give the places back


def test_gate_stops_holding_slots_once_a_whole_batch_went_unanswered() -> None:
    """A dead range of devices (nobody answers) costs one hold time, not one per batch."""

    async def scenario() -> tuple[float, int]:
        gate = Gate(concurrency=4, max_open=100, ceiling=0.5)

        async def dead():
            from rehearsal.hardware import Device, DeviceReport

            await asyncio.sleep(1.0)  # its own timeout
            return DeviceReport(Device("s", "d", "label", "zpl", "x"), False, False)

        started = time.monotonic()
        await asyncio.gather(*(gate.run(dead) for _ in range(40)))
        return time.monotonic() - started, gate.unanswered

    elapsed, unanswered = asyncio.run(scenario())
    assert unanswered == 40
    assert elapsed < 6 / 2  # one 0.5 s hold, then the floor (1.5 s): not 40 / 4 × 0.5 s + 1 s = 6 s


# --- workstations: a malformed file fails alone -------------------------------------------------------


def test_malformed_facts_fail_that_workstation_only(tmp_path: Path) -> None:
    from reference_hospital.workstations import facts_for
    from rehearsal.plan import Baseline

    plan = load_plan(ROOT / "plans" / "demo.yaml").plan
    site = plan.sites[0]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(facts_for(site, site.workstations[0], plan.baseline)), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({**json.loads(good.read_text()), "hardware": {"ram_gb": "16 GB"}}), encoding="utf-8"
    )
    devices = [
        Device(site.id, "bad", "workstation", "facts", str(bad), role="sjuksköterska"),
        Device(site.id, "good", "workstation", "facts", str(good), role="sjuksköterska"),
    ]
    reports = run_sweep(devices, SweepConfig(baseline=plan.baseline or Baseline()))
    assert [r.ready for r in reports] == [False, True]
    assert reports[0].problems == (
        f"{bad}: not valid workstation facts: field hardware.ram_gb: '16 GB' is not of type 'number'",
    )
    table = readiness_table(plan, reports)
    row = table["sites"][site.id]["workstation"]
    assert (row["devices"], row["ready"], row["criterion"], row["meets"]) == (
        2,
        1,
        "tech-workstations",
        False,
    )
    assert "| sas-boras | arbetsstationer | 2 | 1 | 1 | 0 | 50.0 % ✗ |" in render_table(table)


# --- the reference hospital's devices and `rehearse hardware` -----------------------------------------


def plan_copy(tmp_path: Path) -> Path:
    """The demo plan on free ports; workstation facts beside the copy."""
    data = yaml.safe_load((ROOT / "plans" / "demo.yaml").read_text(encoding="utf-8"))
    snmp_port = free_udp_port()
    for site in data["sites"]:
        for p in site["printers"]:
            scheme, rest = p["uri"].split("://", 1)
            hostport, _, path = rest.partition("/")
            p["uri"] = f"{scheme}://127.0.0.1:{free_port(ipv6=True)}" + (f"/{path}" if path else "")
            if "snmp" in p:
                p["snmp"]["port"] = snmp_port
    data["workstation_facts"] = "facts"
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, env=os.environ)


def line(decision: dict, criterion: str, site: str) -> dict:
    return next(c for c in decision["criteria"] if c["id"] == criterion and c["site"] == site)


@pytest.mark.slow
def test_device_faults_give_no_go_on_the_right_site_and_rerun_checks_only_failed(tmp_path: Path) -> None:
    loaded = load_plan(plan_copy(tmp_path))
    reports = tmp_path / "reports"
    faults = [
        ("printer-paper-out", "sas-boras"),
        ("wristband-head-open", "nal-trollhattan"),
        ("label-printer-offline", "sas-boras"),
        ("workstation-outdated", "nal-trollhattan"),
        ("toner-low", "nal-trollhattan"),
    ]
    expected = {
        ("tech-printers", "sas-boras"): "sas-akut-dok1",
        ("tech-wristband-printers", "nal-trollhattan"): "nal-akut-armband1",
        ("tech-label-printers", "sas-boras"): "sas-lab-etikett1",
        ("tech-workstations", "nal-trollhattan"): "nal-lab-ws01",
    }
    with DeviceFleet(loaded.plan, tmp_path / "fleet", plan_dir=loaded.path.parent) as fleet:
        done = rehearse(reports, "hardware", "--plan", str(loaded.path))
        assert done.returncode == 0, done.stdout + done.stderr
        for name, site in faults:
            fleet.set_fault(name, site)
        done = rehearse(reports, "hardware", "--plan", str(loaded.path))
        assert done.returncode == 1, done.stdout + done.stderr
        decision = json.loads((reports / "latest" / "gonogo.json").read_text())
        failing = {(c["id"], c["site"]) for c in decision["criteria"] if c["status"] == "fail"}
        assert failing == set(expected)
        for (criterion, site), device in expected.items():
            assert device in line(decision, criterion, site)["details"]
        assert "media-empty: paper out" in line(decision, "tech-printers", "sas-boras")["details"]
        assert "head-open" in line(decision, "tech-wristband-printers", "nal-trollhattan")["details"]
        assert (
            line(decision, "tech-printers", "nal-trollhattan")["status"] == "pass"
        )  # toner low: a warning only
        table = json.loads((reports / "latest" / "hardware-readiness.json").read_text())
        assert table["sites"]["nal-trollhattan"]["document"]["warnings"] == 1
        assert table["sites"]["sas-boras"]["label"]["unreachable"] == 1

        # the plan's supply threshold turns toner low into a failure
        devices = [d for d in inventory(loaded.plan, loaded.path.parent) if d.id == "nal-lab-dok1"]
        strict = SweepConfig.from_plan(loaded.plan, supplies=SupplyThresholds(fail_below=10))
        assert (
            "supply: Black Toner Cartridge at 5 % (plan requires at least 10 %)"
            in run_sweep(devices, strict)[0].problems
        )

        # printer-offline: the IPP printer stops answering, SNMP says offline
        fleet.set_fault("printer-offline", "sas-boras")
        dok1 = [d for d in inventory(loaded.plan, loaded.path.parent) if d.id == "sas-akut-dok1"]
        offline = run_sweep(dok1, SweepConfig.from_plan(loaded.plan, timeout=0.5))[0]
        assert offline.problems[0].startswith("timeout: no answer from 127.0.0.1:")
        assert "offline: printer offline" in offline.problems

        for name, site in [*faults, ("printer-offline", "sas-boras")]:
            fleet.clear_fault(name, site)
        done = rehearse(reports, "hardware", "--plan", str(loaded.path), "--rerun")
        assert done.returncode == 0, done.stdout + done.stderr
        log = (reports / "latest" / "pytest.log").read_text()
        assert "5 passed, 5 deselected" in log  # paper out, head open, label offline, 2 outdated workstations
        assert "(rerun of" in done.stdout


def test_test_print_sends_a_labelled_label_to_ready_zpl_printers_only(zpl_fleet: ZplSimulator) -> None:
    ok, silent = zpl_devices(zpl_fleet, "ok")[0], zpl_devices(zpl_fleet, "silent")[0]
    before = len(zpl_fleet.printed(ok.id)), len(zpl_fleet.printed(silent.id))
    config = SweepConfig(timeout=0.5, test_print=True, rehearsal="demo-gr1")
    reports = run_sweep([ok, silent], config)
    assert reports[0].ready and reports[0].test_print == "sent: test label"
    assert reports[1].test_print is None  # not ready: nothing sent
    label = zpl_fleet.printed(ok.id)[before[0]]
    assert label.startswith("^XA") and f"demo-gr1 s/{ok.id}" in label and "TESTUTSKRIFT" in label
    assert len(zpl_fleet.printed(silent.id)) == before[1]


def test_supplies_low_warn_empty_fails_threshold_decides_between() -> None:
    from rehearsal.hardware import supply_verdict
    from rehearsal.plan import SupplyThresholds

    levels = [("Black Toner", 0.0), ("Cyan", 12.0), ("Magenta", 55.0)]
    assert supply_verdict(levels, SupplyThresholds()) == (
        ["supply: Black Toner is empty"],
        ["supply: Cyan at 12 %"],
    )
    assert supply_verdict(levels, SupplyThresholds(fail_below=15)) == (
        ["supply: Black Toner is empty", "supply: Cyan at 12 % (plan requires at least 15 %)"],
        [],
    )
