"""The simulated printer fleet (real ippeveprinter processes) and the per-printer hardware check."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_probe_ipp import free_port  # dual-stack: ippeveprinter binds 127.0.0.1 and ::1

from reference_hospital.printers import PrinterFleet
from rehearsal.errors import TargetError, UsageError
from rehearsal.plan import Printer
from rehearsal.probes.ipp import probe_printer

ROOT = Path(__file__).resolve().parents[1]


def printer(printer_id: str, port: int | None = None, **fields: str) -> Printer:
    uri = fields.pop("uri", f"ipp://127.0.0.1:{port or free_port()}/ipp/print")
    return Printer(id=printer_id, kind=fields.pop("kind", "document"), uri=uri, **fields)


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
            found.add(str(ipaddress.ip_address(packed)))
    return found


def connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def ready(uri: str) -> bool:
    return asyncio.run(probe_printer(uri, 2.0)).ready


def test_start_stop_binds_loopback_only_and_cleans_up(tmp_path: Path) -> None:
    printers = [printer("akut-dok1", location="Akutmottagningen"), printer("lab-dok1")]
    fleet = PrinterFleet(printers, tmp_path)
    fleet.start()
    try:
        assert fleet.running == ["akut-dok1", "lab-dok1"]
        procs = [r.proc for r in fleet._running.values()] + [fleet._dbus]
        for p in printers:
            port = int(p.uri.split(":")[2].split("/")[0])
            assert listening_addresses(port) <= {"127.0.0.1", "::1"}
            assert "127.0.0.1" in listening_addresses(port)
            assert ready(p.uri)
        assert (tmp_path / "printers" / "akut-dok1" / "ippeveprinter.log").is_file()
    finally:
        fleet.stop()
    assert all(proc.poll() is not None for proc in procs)
    assert not any(connects(int(p.uri.split(":")[2].split("/")[0])) for p in printers)
    fleet.stop()  # idempotent
    assert fleet.running == []


def test_context_manager_and_skipped_printers(tmp_path: Path) -> None:
    local = printer("dok1")
    remote = printer("remote-dok", uri="ipp://printer.example.org:631/ipp/print")
    zebra = printer("zebra1", kind="wristband", uri="tcp://127.0.0.1:9100")
    with PrinterFleet([local, remote, zebra], tmp_path) as fleet:
        assert fleet.running == ["dok1"]
        assert [p.id for p in fleet.skipped] == ["remote-dok", "zebra1"]
        assert ready(local.uri)
    assert not ready(local.uri)


def test_set_paper_out_is_visible_at_once(tmp_path: Path) -> None:
    dok = printer("dok1")
    with PrinterFleet([dok], tmp_path) as fleet:
        fleet.set_paper_out("dok1", True)
        out = asyncio.run(probe_printer(dok.uri, 2.0))
        assert out.problems == ["media-empty: paper out"]
        fleet.set_paper_out("dok1", True)  # twice is fine
        fleet.set_paper_out("dok1", False)
        assert ready(dok.uri)
        with pytest.raises(UsageError, match=r"no simulated printer 'nope' \(running: dok1\)"):
            fleet.set_paper_out("nope", True)


def test_port_taken_names_printer_and_port_and_leaves_nothing_running(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        fleet = PrinterFleet([printer("ok-dok"), printer("busy-dok", port)], tmp_path)
        with pytest.raises(
            TargetError, match=rf"simulated printer busy-dok cannot start: port {port} .*in use"
        ):
            fleet.start()
    assert fleet.running == [] and fleet._dbus is None
    assert not ready(fleet.printers[0].uri)


def test_printer_that_dies_at_start_names_printer_and_port(tmp_path: Path) -> None:
    port = free_port()
    fleet = PrinterFleet([printer("dies", port)], tmp_path, ippeveprinter="/bin/false")
    with pytest.raises(
        TargetError, match=rf"simulated printer dies could not start on port {port}: exit status 1"
    ):
        fleet.start()
    assert fleet.running == [] and fleet._dbus is None


def test_missing_ippeveprinter_names_the_debian_package(tmp_path: Path) -> None:
    fleet = PrinterFleet([printer("dok1")], tmp_path, ippeveprinter=str(tmp_path / "no-such-binary"))
    with pytest.raises(TargetError, match=r"install the Debian package cups-ipp-utils"):
        fleet.start()


def test_plan_mistakes_are_usage_errors(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(UsageError, match=rf"printers a and b share port {port}"):
        PrinterFleet([printer("a", port), printer("b", port)], tmp_path)
    with pytest.raises(UsageError, match=r"printer c: the simulated printer answers at /ipp/print only"):
        PrinterFleet([printer("c", uri=f"ipp://127.0.0.1:{port}/ipp/faxout")], tmp_path)
    with pytest.raises(UsageError, match=r"printer d: simulated printers listen on 127.0.0.1 and ::1 only"):
        PrinterFleet([printer("d", uri=f"ipp://127.0.0.2:{port}/ipp/print")], tmp_path)


def test_long_workdir_still_gets_a_bus(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    dok = printer("dok1")
    with PrinterFleet([dok], deep) as fleet:
        bus_dir = fleet._dbus_dir[0]
        assert ready(dok.uri)
    assert not bus_dir.exists()


# --- the hardware check, run as a rehearsal would run it ------------------------------------


def plan_with_printers(path: Path, ports: dict[str, int]) -> Path:
    data = yaml.safe_load((ROOT / "plans" / "demo.yaml").read_text(encoding="utf-8"))
    for site in data["sites"]:
        site["printers"] = [p for p in site["printers"] if p["id"] in ports]
        site.pop("workstations", None)
        for p in site["printers"]:
            p["uri"] = f"ipp://127.0.0.1:{ports[p['id']]}/ipp/print"
            p.pop("snmp", None)
    site = data["sites"][0]
    closed = free_port()  # nothing listens there: the wristband is unreachable
    site["printers"].append({"id": "sas-armband1", "kind": "wristband", "uri": f"tcp://127.0.0.1:{closed}"})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def run_check(plan: Path, results: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "hardware_checks/test_printers.py", "-p", "no:cacheprovider"]
    command += ["--rehearsal-plan", str(plan), "--alluredir", str(results), "-q", *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=os.environ)


@pytest.mark.slow
def test_hardware_check_reports_each_printer(tmp_path: Path) -> None:
    ports = {"sas-akut-dok1": free_port(), "nal-lab-dok1": free_port()}
    plan = plan_with_printers(tmp_path / "plan.yaml", ports)
    printers = [printer(pid, port) for pid, port in ports.items()]
    with PrinterFleet(printers, tmp_path / "fleet") as fleet:
        fleet.set_paper_out("nal-lab-dok1", True)
        run = run_check(plan, tmp_path / "results")
        assert run.returncode == 1, run.stdout + run.stderr
        assert "2 failed, 1 passed" in run.stdout
        uri = f"ipp://127.0.0.1:{ports['nal-lab-dok1']}/ipp/print"
        assert (
            f"nal-trollhattan: printer nal-lab-dok1 at {uri} not ready: media-empty: paper out" in run.stdout
        )

        results = {
            {label["name"]: label["value"] for label in r["labels"]}["device"]: r
            for r in (json.loads(p.read_text()) for p in (tmp_path / "results").glob("*-result.json"))
        }
        assert set(results) == {"sas-akut-dok1", "nal-lab-dok1", "sas-armband1"}
        wristband = results["sas-armband1"]  # checked over ZPL now; nothing listens on its port
        assert wristband["status"] == "failed"
        assert "unreachable: connection refused" in wristband["statusDetails"]["message"]
        assert {x["name"]: x["value"] for x in wristband["labels"]}["criterion"] == "tech-wristband-printers"
        good, bad = results["sas-akut-dok1"], results["nal-lab-dok1"]
        assert good["status"] == "passed" and bad["status"] == "failed"
        assert good["name"] == "Skrivare sas-akut-dok1 (Akutmottagningen) redo"
        labels = {label["name"]: label["value"] for label in bad["labels"]}
        assert (
            labels
            | {
                "aspect": "teknisk",
                "site": "nal-trollhattan",
                "device": "nal-lab-dok1",
                "criterion": "tech-printers",
                "severity": "critical",
            }
            == labels
        )
        assert {p["name"]: p["value"] for p in bad["parameters"]} == {
            "site": "'nal-trollhattan'",
            "device": "'nal-lab-dok1'",
        }
        attachment = json.loads((tmp_path / "results" / bad["attachments"][0]["source"]).read_text())
        assert attachment["ready"] is False and attachment["details"]["ipp"]["reasons"] == ["media-empty"]

        # a rerun of the failed printer alone, after the fix
        fleet.set_paper_out("nal-lab-dok1", False)
        only = tmp_path / "only.txt"
        only.write_text(labels["nodeid"] + "\n", encoding="utf-8")
        rerun = run_check(plan, tmp_path / "rerun", "--rehearsal-only", str(only))
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "1 passed, 2 deselected" in rerun.stdout
