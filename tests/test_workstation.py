"""Workstation facts against the baseline; malformed files; osquery input; the Linux collector and
the endpoint probes against a real HTTPS server on loopback (certificate made with openssl)."""

from __future__ import annotations

import asyncio
import copy
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import free_port
from reference_hospital.workstations import facts_for
from rehearsal.plan import Baseline, Plan, load_plan
from rehearsal.probes.network import clock_skew, tcp_latency, tls_check
from rehearsal.probes.workstation import (
    FactsError,
    check_workstation,
    findings_for,
    load_facts,
    schema,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]
BASELINE = Baseline.model_validate(
    {
        "os": {"windows": "10.0.19045"},
        "min_ram_gb": 8,
        "min_disk_free_gb": 20,
        "min_display": "1920x1080",
        "browsers": {"edge": "120"},
        "citrix_workspace": "2203",
        "peripherals": {"sjuksköterska": ["barcode-scanner"]},
        "endpoints": {"max_latency_ms": 150, "tls_trusted": True, "min_cert_days": 14},
        "max_clock_skew_s": 60,
        "max_facts_age_h": 48,
    }
)
GOOD = {
    "schema": "rehearsal-workstation-facts/1",
    "hostname": "SAS-AKUT-WS01",
    "collected_at": "2026-11-25T08:00:00+01:00",
    "os": {"family": "windows", "name": "Windows 11 Enterprise", "version": "10.0.22631.4317"},
    "hardware": {"ram_gb": 16, "disk_free_gb": 120},
    "displays": [{"width": 1920, "height": 1080}],
    "browsers": {"edge": "130.0.2849.68"},
    "citrix_workspace": "2409.10.0.15",
    "peripherals": [{"kind": "barcode-scanner", "name": "Zebra DS2208", "status": "ok"}],
    "endpoints": [
        {"url": "https://ehr.example/", "latency_ms": 12, "tls_trusted": True, "cert_days_left": 200}
    ],
    "clock": {"skew_s": 0.4},
}
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def write(tmp_path: Path, data: object, name: str = "ws.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_good_facts_meet_the_baseline(tmp_path: Path) -> None:
    r = check_workstation("ws01", write(tmp_path, GOOD), BASELINE, "sjuksköterska", NOW)
    assert r.ready and r.findings == () and r.hostname == "SAS-AKUT-WS01"


def test_one_finding_per_broken_rule(tmp_path: Path) -> None:
    bad = copy.deepcopy(GOOD)
    bad["os"]["version"] = "10.0.19044.1234"
    bad["hardware"] = {"ram_gb": 4, "disk_free_gb": 5}
    bad["displays"] = [{"width": 1366, "height": 768}]
    bad["browsers"] = {"edge": "109.0.1518.140"}
    bad["citrix_workspace"] = "2112.1"
    bad["peripherals"] = [{"kind": "barcode-scanner", "status": "error"}]
    bad["endpoints"] = [
        {"url": "https://ehr.example/", "latency_ms": 400, "tls_trusted": False, "cert_days_left": 3}
    ]
    bad["clock"] = {"skew_s": -95}
    bad["collected_at"] = "2026-11-20T08:00:00Z"
    r = check_workstation("ws01", write(tmp_path, bad), BASELINE, "sjuksköterska", NOW)
    assert not r.ready
    assert [f.rule for f in r.findings] == [
        "os", "ram", "disk", "display", "browser:edge", "citrix", "peripheral:barcode-scanner",
        "endpoint-latency", "endpoint-tls", "endpoint-cert", "clock", "facts-age",
    ]  # fmt: skip
    assert r.problems[0] == "os: windows 10.0.19044.1234 is older than the baseline 10.0.19045"
    assert "citrix: Citrix Workspace 2112.1 is older than the baseline 2203" in r.problems
    assert "clock: clock off by -95 s, baseline at most 60 s" in r.problems


def test_missing_sections_are_findings_not_crashes() -> None:
    minimal = {k: GOOD[k] for k in ("schema", "hostname", "collected_at", "os")}
    rules = [f.rule for f in findings_for(minimal, BASELINE, "sjuksköterska", NOW)]
    assert rules == ["ram", "disk", "display", "browser:edge", "citrix", "peripheral:barcode-scanner",
                     "endpoints", "clock"]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"schema": "rehearsal-workstation-facts/1",\n  "hostname": }',
            "ws.json:2:15: not JSON: Expecting value",
        ),
        (
            {**GOOD, "os": {"family": "windows", "version": 10}},
            "field os.version: 10 is not of type 'string'",
        ),
        ({**GOOD, "hardware": {"ram_gb": "lots"}}, "field hardware.ram_gb: 'lots' is not of type 'number'"),
        (
            {k: v for k, v in GOOD.items() if k != "hostname"},
            "field (file): 'hostname' is a required property",
        ),
        ({**GOOD, "collected_at": "yesterday"}, "field collected_at: not an RFC 3339 time: 'yesterday'"),
        ([1, 2], "field (file): [1, 2] is not of type 'object'"),
    ],
)
def test_malformed_facts_name_the_file_and_field(tmp_path: Path, content: object, expected: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(FactsError) as caught:
        load_facts(path)
    assert str(path) in str(caught.value) and expected in str(caught.value)
    r = check_workstation("ws01", path, BASELINE)
    assert not r.ready and not r.reachable and expected in r.problems[0]


def test_missing_file_says_the_collector_has_not_reported(tmp_path: Path) -> None:
    r = check_workstation("ws01", tmp_path / "nope.json", BASELINE)
    assert r.problems == [
        f"{tmp_path / 'nope.json'}: no facts file (the collector has not reported from this workstation)"
    ]


def test_a_fifo_as_facts_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO would block the sweep for good on open(): it is a finding, not a wait."""
    path = tmp_path / "ws01.json"
    os.mkfifo(path)
    r = check_workstation("ws01", path, BASELINE)
    assert r.problems == [f"{path}: not a regular file (a facts file is a plain JSON file)"]
    assert not r.ready and not r.reachable


def test_osquery_results_are_accepted(tmp_path: Path) -> None:
    osquery = {
        "os_version": [{"name": "Microsoft Windows 11 Enterprise", "platform": "windows", "major": "10",
                        "minor": "0", "build": "22631", "version": "10.0.22631"}],
        "system_info": [{"hostname": "NAL-LAB-WS01", "physical_memory": str(16 * 1024**3)}],
        "logical_drives": [{"device_id": "C:", "free_space": str(80 * 1024**3), "boot_partition": "1"}],
        "programs": [{"name": "Microsoft Edge", "version": "131.0.2903.70"},
                     {"name": "Citrix Workspace 2409", "version": "24.9.10.28"}],
    }  # fmt: skip
    facts = load_facts(write(tmp_path, osquery))
    assert facts["os"] == {"family": "windows", "name": "Microsoft Windows 11 Enterprise",
                           "version": "10.0.22631", "build": "22631"}  # fmt: skip
    assert facts["hardware"] == {"ram_gb": 16.0, "disk_free_gb": 80.0}
    assert facts["browsers"] == {"edge": "131.0.2903.70"} and facts["citrix_workspace"] == "24.9.10.28"
    rules = [f.rule for f in findings_for(facts, BASELINE.model_copy(update={"max_facts_age_h": None}))]
    assert rules == ["display", "endpoints", "clock"]


def test_generated_reference_facts_are_valid_and_meet_the_demo_baseline() -> None:
    plan: Plan = load_plan(ROOT / "plans" / "demo.yaml").plan
    assert plan.baseline is not None
    for site in plan.sites:
        for ws in site.workstations:
            good = facts_for(site, ws, plan.baseline)
            validate(good, ws.id)
            assert findings_for(good, plan.baseline, ws.role) == []
            old = facts_for(site, ws, plan.baseline, outdated=True)
            validate(old, ws.id)
            assert {f.rule for f in findings_for(old, plan.baseline, ws.role)} == {
                "os",
                "browser:edge",
                "citrix",
            }


def test_schema_file_is_the_documented_one() -> None:
    assert schema()["properties"]["schema"]["const"] == "rehearsal-workstation-facts/1"
    assert (ROOT / "src" / "rehearsal" / "probes" / "workstation-facts.schema.json").is_file()


# --- endpoints and the Linux collector against a real HTTPS server ------------------------------------


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "10", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


def test_network_probes_against_loopback_https(https: tuple[int, Path]) -> None:
    port, cert = https
    latency = asyncio.run(tcp_latency("127.0.0.1", port, 2.0))
    assert latency.error is None and 0 <= latency.ms < 1000
    untrusted = asyncio.run(tls_check("127.0.0.1", port, 2.0))
    assert not untrusted.trusted and "certificate not trusted" in (untrusted.error or "")
    trusted = asyncio.run(tls_check("127.0.0.1", port, 2.0, cafile=str(cert)))
    assert (
        trusted.trusted and 8 < (trusted.days_left or 0) <= 10 and trusted.subject == "commonName=127.0.0.1"
    )
    skew = asyncio.run(clock_skew(f"https://127.0.0.1:{port}/", 2.0))
    assert skew.error is None and skew.skew_s is not None and abs(skew.skew_s) <= 2  # 0.0 is a reading


def test_closed_port_is_an_error_not_an_exception() -> None:
    port = free_port()  # nobody listens there
    assert asyncio.run(tcp_latency("127.0.0.1", port, 1.0)).error == f"connection refused at 127.0.0.1:{port}"


def test_linux_collector_emits_valid_facts(tmp_path: Path, https: tuple[int, Path]) -> None:
    port, cert = https
    out = tmp_path / "ws.json"
    url = f"https://127.0.0.1:{port}/"
    command = [sys.executable, str(ROOT / "collectors" / "collect_workstation.py"), "--endpoint", url]
    subprocess.run([*command, "--cafile", str(cert), "--out", str(out)], check=True, timeout=60)
    facts = load_facts(out)  # validates against the schema
    assert facts["os"]["family"] == "linux" and facts["hardware"]["ram_gb"] > 0
    endpoint = facts["endpoints"][0]
    assert endpoint["url"] == url and endpoint["tls_trusted"] is True and endpoint["error"] is None
    assert abs(facts["clock"]["skew_s"]) <= 2
    untrusted = json.loads(
        subprocess.run(command, check=True, timeout=60, capture_output=True, text=True).stdout
    )
    assert untrusted["endpoints"][0]["tls_trusted"] is False
    baseline = Baseline.model_validate({"os": {"linux": "11"}, "endpoints": {}})
    rules = [f.rule for f in findings_for(untrusted, baseline)]
    assert rules == ["endpoint-tls"]
    old = datetime.now(UTC) - timedelta(hours=1)
    assert datetime.fromisoformat(facts["collected_at"]) > old


def test_powershell_collector_writes_every_schema_section() -> None:
    script = (ROOT / "collectors" / "collect-workstation.ps1").read_text(encoding="utf-8")
    for section in schema()["properties"]:
        assert f"{section} = " in script, section
    for source in ("Get-CimInstance", "Get-PnpDevice", "Get-Printer", "HKLM:", "ConvertTo-Json"):
        assert source in script
