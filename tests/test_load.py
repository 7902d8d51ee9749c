"""rehearsal.load and load/: Locust in a subprocess against a real FHIR-ish HTTP server on loopback.

Each server variant is a stdlib ThreadingHTTPServer on a free port answering Patient
searches the way a FHIR server does (searchset Bundle); variants are slow, failing, or
answer without the patient. Plans are written as YAML and loaded with load_plan, so the
whole path plan -> locustfile -> Locust JSON -> verdicts is exercised.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from rehearsal.errors import UsageError
from rehearsal.load import LOCUSTFILE, LoadResult, evaluate, guard, run_load
from rehearsal.plan import LoadedPlan, load_plan

REPO = Path(__file__).resolve().parents[1]
PNR_SYSTEM = "urn:oid:1.2.752.129.2.1.3.1"
PLAN_PNRS = {"19121212-1212", "19800101-0019"}

PLAN_YAML = """\
rehearsal: load-test
title: Lasttest
language: sv
environment:
  name: testmiljö
  kind: {kind}
  fhir_base: {fhir_base}
  web_base: {web_base}
  allowed_hosts: [{allowed}]
  timeouts: {{connect: 2, read: 5, device: 2}}
sites:
  - id: sas-boras
    name: Södra Älvsborgs Sjukhus, Borås
    hsa_id: SE2321000131-E000000000101
command_centre:
  roles: [beslut]
test_identities:
  - {{personnummer: "19121212-1212", name: Tolvan Tolvansson}}
  - {{personnummer: "19800101-0019", name: Testa Testsson}}
load:
  users: {users}
  spawn_rate: {users}
  duration_s: {duration}
  paths:
    - {{id: patient-search, title: Patientsökning, p95_ms: 300, max_error_ratio: 0.01}}
criteria:
  - id: load-slo
    title: Svarstider under last inom SLO
    kind: load_slo
    aspect: teknisk
    severity: critical
"""


def write_plan(
    tmp_path: Path,
    fhir_base: str,
    *,
    kind: str = "test",
    allowed: str = "127.0.0.1, localhost",
    duration: float = 3,
    users: int = 5,
) -> LoadedPlan:
    web_base = fhir_base.rsplit("/fhir", 1)[0]
    text = PLAN_YAML.format(
        kind=kind, fhir_base=fhir_base, web_base=web_base, allowed=allowed, duration=duration, users=users
    )
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return load_plan(path)


class FhirServer(ThreadingHTTPServer):
    """Answers GET /fhir/Patient?identifier=system|value like a FHIR server, in one of four moods."""

    daemon_threads = True
    request_queue_size = 128  # Locust opens all its connections at once

    def __init__(self, mode: str, host: str = "127.0.0.1"):
        super().__init__((host, 0), _Handler)
        self.mode = mode
        self.lock = threading.Lock()
        self.searched: list[str] = []

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/fhir"

    def handle_error(self, request, client_address) -> None:  # Locust closes connections at the end
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FhirServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        identifier = parse_qs(url.query).get("identifier", [""])[0]
        system, _, value = identifier.partition("|")
        with self.server.lock:
            self.server.searched.append(value)
        mode = self.server.mode
        if mode == "slow":
            time.sleep(0.4)
        if mode == "error":
            self._send(500, {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]})
            return
        found = (
            url.path == "/fhir/Patient" and system == PNR_SYSTEM and value in PLAN_PNRS and mode != "empty"
        )
        patient = {"resourceType": "Patient", "identifier": [{"system": PNR_SYSTEM, "value": value}]}
        self._send(
            200,
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": int(found),
                "entry": [{"resource": patient}] if found else [],
            },
        )

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fhir_server(request: pytest.FixtureRequest) -> Iterator[FhirServer]:
    server = FhirServer(getattr(request, "param", "fast"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class ConnectionCounter:
    """A bare TCP listener that counts who connects: proof that nothing was sent."""

    def __init__(self, host: str = "127.0.0.2"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self.sock.getsockname()
        return f"http://{host}:{port}/fhir"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.count += 1
            conn.close()

    def assert_live(self) -> None:
        """Positive control: the listener does see a connection when one is made."""
        before = self.count
        socket.create_connection(self.sock.getsockname(), timeout=2).close()
        deadline = time.monotonic() + 2
        while self.count == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.count == before + 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def counter() -> Iterator[ConnectionCounter]:
    listener = ConnectionCounter()
    yield listener
    listener.close()


@pytest.fixture(autouse=True)
def no_think_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back-to-back requests, so a 3 s run gives enough samples (and shows throughput)."""
    monkeypatch.setenv("REHEARSAL_THINK_TIME", "0")


def _run(tmp_path: Path, loaded: LoadedPlan) -> LoadResult:
    return run_load(loaded.path, loaded.plan, tmp_path / "load")


def _by_slo(loaded: LoadedPlan, result: LoadResult) -> dict[str, object]:
    return {v.slo: v for v in evaluate(loaded.plan.load, result)}


# --- runs against a real server ----------------------------------------------------------


@pytest.mark.slow
def test_fast_server_meets_both_slos_and_leaves_the_html_report(tmp_path: Path, fhir_server) -> None:
    loaded = write_plan(tmp_path, fhir_server.base)
    result = _run(tmp_path, loaded)

    stats = result.paths["patient-search"]
    verdicts = _by_slo(loaded, result)
    assert result.complete and result.exit_code == 0
    assert stats.num_requests > 50 and stats.num_failures == 0
    assert 0 < stats.p95_ms <= stats.p99_ms
    assert stats.rps > 10
    # every request reached the server, and only the plan's test identities were searched
    assert len(fhir_server.searched) >= stats.num_requests
    assert set(fhir_server.searched) <= PLAN_PNRS
    assert verdicts["p95"].passed and re.fullmatch(r"p95 \d+ ms ≤ 300 ms", verdicts["p95"].message)
    assert verdicts["error_ratio"].passed
    assert verdicts["error_ratio"].message == f"error ratio 0.00 % ≤ 1 % (0 of {stats.num_requests} failed)"
    html = result.html_report.read_text(encoding="utf-8")
    assert result.html_report == tmp_path / "load" / "report.html"
    assert "patient-search" in html and len(html) > 10_000
    print(f"fast server: {stats.num_requests} requests, {stats.rps} req/s, p95 {stats.p95_ms} ms")


@pytest.mark.slow
@pytest.mark.parametrize("fhir_server", ["slow"], indirect=True)
def test_slow_server_fails_p95_with_measured_figure(tmp_path: Path, fhir_server) -> None:
    loaded = write_plan(tmp_path, fhir_server.base)
    result = _run(tmp_path, loaded)

    verdicts = _by_slo(loaded, result)
    p95 = verdicts["p95"]
    assert not p95.passed
    match = re.fullmatch(r"p95 (\d+) ms > 300 ms", p95.message)
    assert match and int(match.group(1)) >= 400, p95.message
    assert p95.actual == int(match.group(1)) and p95.limit == 300
    assert verdicts["error_ratio"].passed
    assert result.html_report.is_file()


@pytest.mark.slow
@pytest.mark.parametrize("fhir_server", ["error"], indirect=True)
def test_failing_server_fails_error_ratio_and_p95(tmp_path: Path, fhir_server) -> None:
    loaded = write_plan(tmp_path, fhir_server.base)
    result = _run(tmp_path, loaded)

    stats = result.paths["patient-search"]
    verdicts = _by_slo(loaded, result)
    assert stats.num_requests > 0 and stats.num_failures == stats.num_requests
    assert not verdicts["error_ratio"].passed and verdicts["error_ratio"].actual == 1.0
    assert verdicts["error_ratio"].message.startswith(
        f"error ratio 100.00 % > 1 % ({stats.num_requests} of {stats.num_requests} failed)"
    )
    assert "HTTP 500" in verdicts["error_ratio"].message
    assert not verdicts["p95"].passed
    assert verdicts["p95"].message.startswith("p95 not measurable: all")


@pytest.mark.slow
@pytest.mark.parametrize("fhir_server", ["empty"], indirect=True)
def test_search_without_the_patient_counts_as_failure(tmp_path: Path, fhir_server) -> None:
    """200 OK with an empty Bundle is fast, and still wrong: the business check catches it."""
    loaded = write_plan(tmp_path, fhir_server.base)
    result = _run(tmp_path, loaded)

    verdicts = _by_slo(loaded, result)
    assert not verdicts["error_ratio"].passed
    assert "no Patient with the searched personnummer" in verdicts["error_ratio"].message


@pytest.mark.slow
def test_interrupted_run_keeps_its_figures_and_fails_as_incomplete(tmp_path: Path, fhir_server) -> None:
    loaded = write_plan(tmp_path, fhir_server.base, duration=6)
    ctrl_c = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    ctrl_c.start()
    try:
        started = time.monotonic()
        result = _run(tmp_path, loaded)
        took = time.monotonic() - started
    finally:
        ctrl_c.cancel()

    assert result.interrupted and not result.complete
    assert took < 5, "Locust was not stopped on Ctrl+C"
    assert result.paths["patient-search"].num_requests > 0  # what was written before the stop
    assert result.html_report.is_file()
    verdicts = evaluate(loaded.plan.load, result)
    assert verdicts and not any(v.passed for v in verdicts)
    assert all("run interrupted after" in v.message for v in verdicts)


# --- the guard: nothing is sent where the plan does not allow it -------------------------


def test_guard_refuses_production_and_sends_nothing(tmp_path: Path, counter: ConnectionCounter) -> None:
    loaded = write_plan(tmp_path, counter.base, kind="production", allowed="127.0.0.2")
    with pytest.raises(UsageError, match=r"^load refused: environment 'testmiljö' is kind 'production'"):
        run_load(loaded.path, loaded.plan, tmp_path / "load")
    time.sleep(0.3)
    assert counter.count == 0
    assert not (tmp_path / "load").exists()
    counter.assert_live()


def test_guard_refuses_host_outside_allowed_hosts_and_sends_nothing(
    tmp_path: Path, counter: ConnectionCounter
) -> None:
    loaded = write_plan(tmp_path, counter.base)
    with pytest.raises(UsageError) as refused:
        run_load(loaded.path, loaded.plan, tmp_path / "load")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("load refused: host '127.0.0.2'")
    assert "not in environment.allowed_hosts (127.0.0.1, localhost)" in message
    time.sleep(0.3)
    assert counter.count == 0
    counter.assert_live()


def test_guard_accepts_allowed_test_host(tmp_path: Path) -> None:
    loaded = write_plan(tmp_path, "http://localhost:9/fhir")
    guard(loaded.plan)  # no exception


@pytest.mark.slow
def test_locustfile_on_its_own_refuses_a_host_outside_the_plan(
    tmp_path: Path, counter: ConnectionCounter
) -> None:
    """`locust -f load/locustfile.py --host …` keeps the plan's rules for people who run Locust directly."""
    loaded = write_plan(tmp_path, "http://127.0.0.1:9/fhir")
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "2", "-t", "3s",
         "--host", counter.base],
        env={**os.environ, "REHEARSAL_PLAN": str(loaded.path)},
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "load refused: host '127.0.0.2'" in proc.stderr
    assert counter.count == 0
    counter.assert_live()


# --- the content module in a rehearsal session -------------------------------------------


def _rehearse_load(tmp_path: Path, loaded: LoadedPlan) -> list[dict]:
    results = tmp_path / "allure-results"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "load" / "test_slos.py"), "--rootdir", str(REPO),
         "-p", "no:cacheprovider", "-p", "no:locust", "-q",
         "--rehearsal-plan", str(loaded.path), "--rehearsal-run-dir", str(tmp_path / "run"),
         "--alluredir", str(results)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return [json.loads(p.read_text()) for p in results.glob("*-result.json")]


def _labels(result: dict) -> dict[str, str]:
    return {label["name"]: label["value"] for label in result["labels"]}


@pytest.mark.slow
def test_content_module_gives_one_labelled_result_per_slo(tmp_path: Path, fhir_server) -> None:
    loaded = write_plan(tmp_path, fhir_server.base)
    results = {r["name"]: r for r in _rehearse_load(tmp_path, loaded)}

    assert set(results) == {"Svarstid patientsökning p95 ≤ 300 ms", "Felandel patientsökning ≤ 1 %"}
    for result in results.values():
        assert result["status"] == "passed"
        labels = _labels(result)
        assert labels["aspect"] == "teknisk" and labels["criterion"] == "load-slo"
        assert labels["severity"] == "critical"
        kinds = {a["type"] for a in result["attachments"]}
        assert kinds == {"application/json", "text/html"}
    assert (tmp_path / "run" / "load" / "report.html").is_file()
    nodeids = sorted(_labels(r)["nodeid"] for r in results.values())
    assert [n.rsplit("[", 1)[1] for n in nodeids] == ["patient-search-error-ratio]", "patient-search-p95]"]


@pytest.mark.slow
def test_content_module_fails_every_slo_when_the_guard_refuses(
    tmp_path: Path, counter: ConnectionCounter
) -> None:
    loaded = write_plan(tmp_path, counter.base, kind="production", allowed="127.0.0.2")
    results = _rehearse_load(tmp_path, loaded)

    assert len(results) == 2
    for result in results:
        assert result["status"] == "failed"
        assert result["statusDetails"]["message"].startswith("Failed: load refused: environment")
    assert counter.count == 0
