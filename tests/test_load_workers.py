"""Locust master and workers on one machine: the master's merged figures are the sum of the workers'.

Each worker tallies the requests it sent itself (an event hook in load/locustfile.py,
switched on by the harness); the master's --json-file is what the SLOs are judged from.
The peer is a real HTTP server on loopback counting what arrives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sockets import Listener, listeners

from rehearsal.load import ENV_REMOTE_WORKERS, ENV_WORKER_COUNTS, LOCUSTFILE, _free_port, run_load
from rehearsal.plan import load_plan

PNR_SYSTEM = "urn:oid:1.2.752.129.2.1.3.1"
PLAN = """\
rehearsal: load-workers
title: Lasttest med arbetare
environment:
  name: testmiljö
  kind: test
  fhir_base: {base}
  web_base: {base}
  allowed_hosts: [127.0.0.1]
sites:
  - {{id: sas-boras, name: SÄS Borås, hsa_id: SE2321000131-E000000000101}}
command_centre:
  roles: [beslut]
test_identities:
  - {{personnummer: "19121212-1212", name: Tolvan Tolvansson}}
load:
  users: 6
  spawn_rate: 6
  duration_s: 3
  workers: 2
  paths:
    - {{id: patient-search, title: Patientsökning, p95_ms: 1000}}
criteria:
  - {{id: load-slo, title: Last, kind: load_slo}}
"""


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.count = 0

    def handle_error(self, request, client_address) -> None:  # Locust closes connections at the end
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        value = parse_qs(urlsplit(self.path).query).get("identifier", [""])[0].partition("|")[2]
        with self.server.lock:
            self.server.count += 1
        patient = {"resourceType": "Patient", "identifier": [{"system": PNR_SYSTEM, "value": value}]}
        data = json.dumps({"resourceType": "Bundle", "entry": [{"resource": patient}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[CountingServer]:
    srv = CountingServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.mark.slow
def test_two_workers_merged_figures_equal_the_sum_of_the_workers(
    tmp_path: Path, server: CountingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REHEARSAL_THINK_TIME", "0.01")
    host, port = server.server_address[:2]
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.format(base=f"http://{host}:{port}/fhir"), encoding="utf-8")
    loaded = load_plan(plan_file)

    with SocketWatch() as watch:  # what the master and workers listen on while they run
        result = run_load(loaded.path, loaded.plan, tmp_path / "load")  # workers: 2 from the plan

    assert result.complete and result.workers == 2
    cmd = " ".join(result.command)
    assert "--master --master-bind-host 127.0.0.1 " in cmd and "--expect-workers 2 " in cmd
    assert len(result.worker_counts) == 2, list((tmp_path / "load").glob("worker-*.log"))
    own = [w["requests"].get("patient-search", 0) for w in result.worker_counts]
    assert all(n > 0 for n in own), own  # both workers did work
    merged = result.paths["patient-search"]
    assert merged.num_requests == sum(own), (merged.num_requests, own)
    assert merged.num_failures == sum(w["failures"].get("patient-search", 0) for w in result.worker_counts)
    assert server.count >= merged.num_requests > 0
    assert not any(_alive(w["pid"]) for w in result.worker_counts)  # no worker left behind
    started = {o for o in watch.seen if o.pid != os.getpid()}
    assert started, "the master's listener was never seen"
    assert [str(o) for o in started if not o.loopback] == []


@pytest.mark.slow
def test_a_worker_on_another_machine_joins_a_master_the_plan_binds_elsewhere(
    tmp_path: Path, server: CountingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load/README.md's recipe for workers on other hosts, with 127.0.0.3 standing in for the
    rehearsal machine's address on the site network: the plan binds the master there (not on
    127.0.0.1), the harness waits for one local and one remote worker, and the remote one is
    started by hand exactly as the README says (its own folder, only the plan's path)."""
    monkeypatch.setenv("REHEARSAL_THINK_TIME", "0.01")
    monkeypatch.setenv(ENV_REMOTE_WORKERS, "1")
    host, port = server.server_address[:2]
    master = f"127.0.0.3:{_free_port('127.0.0.3')}"
    plan_file = tmp_path / "plan.yaml"
    text = PLAN.format(base=f"http://{host}:{port}/fhir")
    plan_file.write_text(
        text.replace("  workers: 2\n", f'  workers: 1\n  master_bind: "{master}"\n'), "utf-8"
    )
    loaded = load_plan(plan_file)
    remote_counts, elsewhere = tmp_path / "remote-counts", tmp_path / "machine-b"
    remote_counts.mkdir()
    elsewhere.mkdir()
    address, _, master_port = master.partition(":")
    remote_env = {**os.environ, "REHEARSAL_PLAN": str(plan_file), ENV_WORKER_COUNTS: str(remote_counts)}
    remote = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
         "--master-host", address, "--master-port", master_port],
        cwd=elsewhere, env=remote_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        with SocketWatch() as watch:
            result = run_load(loaded.path, loaded.plan, tmp_path / "load")
        _, err = remote.communicate(timeout=60)  # the master tells its workers to quit at the end
    finally:
        remote.kill()
    assert result.complete, err[-2000:]
    assert f"--master-bind-host {address} --master-bind-port {master_port} " in " ".join(result.command)
    assert "--expect-workers 2 " in " ".join(result.command)  # one local, one remote
    theirs = [json.loads(p.read_text(encoding="utf-8")) for p in remote_counts.glob("*.json")]
    assert len(theirs) == 1 and len(result.worker_counts) == 1, (theirs, result.worker_counts)
    own = [w["requests"].get("patient-search", 0) for w in (*result.worker_counts, *theirs)]
    assert all(n > 0 for n in own), own  # the remote worker did its share
    assert result.paths["patient-search"].num_requests == sum(own)
    listening = {(o.address, o.port) for o in watch.seen if o.pid != os.getpid()}
    assert (address, int(master_port)) in listening, listening
    assert not [a for a, p in listening if p == int(master_port) and a != address]


class SocketWatch(threading.Thread):
    """Samples the listening sockets of this process's children until the block ends."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: set[Listener] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.seen.update(listeners(os.getpid()))

    def __enter__(self) -> SocketWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join()
