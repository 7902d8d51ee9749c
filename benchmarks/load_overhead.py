"""What our load flows cost on top of plain Locust: requests/second, same endpoint, same run.

    .venv/bin/python benchmarks/load_overhead.py [--rounds 7] [--seconds 5] [--users 50]

A trivial FHIR endpoint (an asyncio server in its own process, answering every request
with the same searchset Bundle holding the searched test patient) is hit in alternating
rounds by

- **ours**: ``load/locustfile.py`` with a one-path plan (``patient-search``): the plan read
  and checked, the guard, the request named by path, ``catch_response`` and the business
  check that the Bundle holds the searched personnummer;
- **plain**: a bare Locust ``FastHttpUser`` whose one task GETs the same URL (the same
  request on the wire: ``Patient?identifier=…&_format=json``), and does nothing else.

Each round runs both at the same time, one Locust process each without think time, for
the same seconds and users, pinned to the same CPU (the endpoint gets the other one): they
compete for one core, so whatever else loads the machine slows both alike, and the ratio
of their req/s is the cost of our flow per request. req/s is requests over the span
Locust measured (its --json-file). Printed: each round, the medians, and the median of the
rounds' ratios; the overhead is 1 − that ratio, and the script exits 1 when it is 10 % or
more. Speed is measured here, never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "load" / "locustfile.py"
PNR = "19121212-1212"
PNR_SYSTEM = "urn:oid:1.2.752.129.2.1.3.1"
LIMIT = 0.10

SERVER = textwrap.dedent(
    """
    import asyncio, json, sys
    body = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [{"resource": {
        "resourceType": "Patient", "id": "pat-1",
        "identifier": [{"system": "%(system)s", "value": "%(value)s"}]}}]}).encode()
    answer = (b"HTTP/1.1 200 OK\\r\\nContent-Type: application/fhir+json\\r\\n"
              b"Content-Length: " + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)

    class Endpoint(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""
        def data_received(self, data):
            self.buffer += data
            n = self.buffer.count(b"\\r\\n\\r\\n")
            if n:
                self.buffer = self.buffer.rsplit(b"\\r\\n\\r\\n", 1)[1]
                self.transport.write(answer * n)

    async def main():
        server = await asyncio.get_running_loop().create_server(Endpoint, "127.0.0.1", int(sys.argv[1]))
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())
    """
) % {"system": PNR_SYSTEM, "value": PNR.replace("-", "")}

PLAIN = textwrap.dedent(
    f"""
    from locust import FastHttpUser, constant, task

    class Plain(FastHttpUser):
        wait_time = constant(0)

        @task
        def search(self):
            self.client.get("/Patient?identifier={PNR_SYSTEM.replace(":", "%3A")}%7C{PNR}&_format=json")
    """
)

PLAN = textwrap.dedent(
    """\
    rehearsal: load-overhead
    title: Benchmark
    environment:
      name: benchmark
      kind: test
      fhir_base: {base}
      web_base: {base}
      allowed_hosts: [127.0.0.1]
    sites:
      - {{id: bench, name: Bench, hsa_id: SE2321000131-E000000000101}}
    command_centre:
      roles: [beslut]
    test_identities:
      - {{personnummer: "{pnr}", name: Tolvan Tolvansson}}
    load:
      users: 1
      spawn_rate: 1
      duration_s: 1
      paths:
        - {{id: patient-search, title: Patientsökning, p95_ms: 1000}}
    criteria:
      - {{id: load-slo, title: Last, kind: load_slo}}
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(
    locustfile: Path, host: str, users: int, seconds: int, out: Path, env: dict[str, str], cpu: int | None
) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", host,
        "--json-file", str(out / "stats"), "--exit-code-on-error", "0",
    ]  # fmt: skip
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    return subprocess.Popen(
        cmd, cwd=out, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=pin
    )


def _rate(name: str, proc: subprocess.Popen[str], out: Path, timeout: float) -> float:
    """Requests per second over the span Locust measured (its --json-file)."""
    _, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: locust failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    entries = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    requests = sum(e["num_requests"] for e in entries)
    failures = sum(e["num_failures"] for e in entries)
    if failures:
        raise SystemExit(f"{name}: {failures} of {requests} requests failed; the numbers mean nothing")
    span = max(e["last_request_timestamp"] for e in entries) - min(e["start_time"] for e in entries)
    return requests / span


def _cpus() -> tuple[int | None, int | None]:
    """(CPU for both Locust processes, CPU for the endpoint): they share one core, so they compete
    for it directly, whatever else the machine is doing; the endpoint has the other to itself."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()

    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    locust_cpu, server_cpu = _cpus()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {server_cpu})) if server_cpu is not None else None,
    )  # fmt: skip
    ours, plain, ratios = [], [], []
    try:
        if server.stdout is None or server.stdout.readline().strip() != "ready":
            raise SystemExit("the trivial endpoint did not start")
        with tempfile.TemporaryDirectory(prefix="load-overhead-") as tmp:
            folder = Path(tmp)
            plan = folder / "plan.yaml"
            plan.write_text(PLAN.format(base=base, pnr=PNR), encoding="utf-8")
            plain_file = folder / "plain_locustfile.py"
            plain_file.write_text(PLAIN, encoding="utf-8")
            env = {**os.environ, "REHEARSAL_PLAN": str(plan), "REHEARSAL_THINK_TIME": "0"}
            pinned = (
                f"both on CPU {locust_cpu}, endpoint on CPU {server_cpu}" if locust_cpu is not None else ""
            )
            print(
                f"{args.rounds} rounds × {args.seconds} s, {args.users} users each, "
                f"ours and plain at the same time ({pinned}), {base}"
            )
            print(f"{'round':>6}  {'ours req/s':>11}  {'plain req/s':>11}  {'ours/plain':>10}")
            for n in range(args.rounds):
                outs = {name: folder / f"{name}-{n}" for name in ("ours", "plain")}
                for out in outs.values():
                    out.mkdir()
                procs = {
                    "ours": _start(LOCUSTFILE, base, args.users, args.seconds, outs["ours"], env, locust_cpu),
                    "plain": _start(
                        plain_file, base, args.users, args.seconds, outs["plain"], env, locust_cpu
                    ),
                }
                rates = {
                    name: _rate(name, proc, outs[name], args.seconds + 60) for name, proc in procs.items()
                }
                ours.append(rates["ours"])
                plain.append(rates["plain"])
                ratios.append(rates["ours"] / rates["plain"])
                print(f"{n + 1:>6}  {ours[-1]:>11.0f}  {plain[-1]:>11.0f}  {ratios[-1]:>10.3f}")
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=10)

    ratio = statistics.median(ratios)
    overhead = 1 - ratio
    print(
        f"{'median':>6}  {statistics.median(ours):>11.0f}  {statistics.median(plain):>11.0f}  {ratio:>10.3f}"
    )
    print(
        f"overhead of our flows: {overhead * 100:.1f} % "
        f"(median of the rounds' ratios; limit {LIMIT * 100:.0f} %)"
    )
    return 0 if overhead < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
