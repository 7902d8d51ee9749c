"""Benchmark: the hardware sweep over 1,000 and 10,000 simulated printers (mixed IPP, SNMP, ZPL) on loopback.

    .venv/bin/python benchmarks/hardware_sweep.py [--devices 1000 10000] [--baseline-rounds 3]
        [--compare-only] [--sequential-sample N]

First, against what a hospital would run: a Nagios-style sweep of the same devices in the
same order, ``xargs -P16`` of one whole process per device (``check_snmp`` GETting the OIDs
our sweep GETs, ``ipptool`` asking the attributes ours asks, ``printf '~HS' | nc -N``),
rounds interleaved with ours (ours, baseline, ours, …) after one uncounted warm-up sweep
(snmpsim indexes a community when it is first asked). Printed per size: each round, the
medians, the ratio, and how many answering devices each side reported unreachable (every
simulated device answers, so each is a false alarm). The tools come from Debian:
``apt-get install -y monitoring-plugins-standard snmp cups-ipp-utils netcat-openbsd``; the
baseline says in one line which are missing and is skipped. ``--compare-only`` stops there.

What is simulated, on this machine (all peers real, all on 127.0.0.1):

- ZPL: one child process runs reference_hospital.zpl_printer.ZplSimulator with one TCP
  port per printer (45 % of the devices, every one its own port);
- SNMP: one snmpsim process on one UDP port, one community (= one .snmprec agent) per
  printer (10 %: snmpsim answers ~80-100 Printer-MIB GETBULKs a second with thousands of
  communities, pyasn1 bound, so it, not the sweep, would set the pace of a larger share);
- IPP: 8 real ippeveprinter processes; the IPP devices (45 %) are spread over them, each
  device asking its printer's URI (10,000 processes would not fit; the probe work per
  device is the same).

Printed: devices/second and p95 time per device (the probe's own time, from its first
byte to its verdict) for the concurrent sweep; the same devices one at a time with the
same probes (all of them at 1,000; at 10,000 a sample of --sequential-sample devices,
scaled up, unless --sequential-sample 0 asks for all); and the cost of 1,000
unreachable devices added to a sweep of --unreachable-with live ones (median of --rounds
interleaved pairs), against one timeout period: 40 % silent
hosts (connect() never completes: listeners with a full backlog drop the SYNs), 30 %
closed TCP ports (refused), 30 % SNMP agents that never answer (UDP silence, each on an
address of its own as printers are).

On loopback every simulated printer answers within microseconds and shares the two cores
with the sweep, so "one at a time" is nearly as fast as concurrent (ratio ~1.3x): there is
no waiting to overlap. ``--zpl-delay-ms 20`` gives the ZPL printers a LAN printer's answer
time, and the ratio shows what concurrency buys in the field (~30x at 10,000).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reference_hospital.printers import PrinterFleet  # noqa: E402
from reference_hospital.snmp_agents import SnmpAgents  # noqa: E402
from rehearsal import hardware  # noqa: E402
from rehearsal.hardware import IPP_ATTRIBUTES, Device, SweepConfig  # noqa: E402
from rehearsal.plan import Printer  # noqa: E402
from rehearsal.probes import snmp, zpl  # noqa: E402

IPP_PROCESSES = 8
TIMEOUT = 2.0


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def zpl_child(count: int, silent: int, delay_ms: float) -> None:
    """In a child process: `count` ready ZPL printers and `silent` silent-in-error ones; ports to stdout."""
    raise_fd_limit()
    from reference_hospital.zpl_printer import ZplSimulator

    sim = ZplSimulator()
    for i in range(count):
        sim.add(f"zpl{i}", 0, delay_s=delay_ms / 1000)
    for i in range(silent):
        sim.add(f"zpl-silent{i}", 0, head_open=True, silent_in_error=True)
    sim.start()
    print(json.dumps({pid: sim.port(pid) for pid in sim.printers}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    sim.stop()


def free_port() -> int:
    while True:
        with socket.socket() as v4:
            v4.bind(("127.0.0.1", 0))
            port = v4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6) as v6:
                    v6.bind(("::1", port))
            except OSError:
                continue
            return port


def unreachable_devices(hosts: int, closed: int, snmp: int, keep: list[socket.socket]) -> list[Device]:
    """Silent hosts (listeners with a full backlog drop the SYNs, as a switched-off printer behind
    a firewall does: connect() hangs), closed TCP ports (refused), SNMP communities nobody answers."""
    holes = [socket.create_server(("127.0.0.1", 0), backlog=0) for _ in range(8)]
    keep.extend(holes)
    for hole in holes:
        for _ in range(4):  # fill the accept queue; later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(hole.getsockname())
            keep.append(filler)
    ports = [h.getsockname()[1] for h in holes]
    dead = [
        Device("s", f"silent{i}", "label", "zpl", f"tcp://127.0.0.1:{ports[i % 8]}") for i in range(hosts)
    ]
    for i in range(closed):
        dead.append(Device("s", f"closed{i}", "document", "ipp", f"ipp://127.0.0.1:{free_port()}/ipp/print"))
    for i in range(snmp):  # each its own address, as printers are: a bound UDP port nobody reads
        mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mute.bind(("127.0.0.1", 0))
        keep.append(mute)
        port = mute.getsockname()[1]
        where = ("127.0.0.1", port, "public")
        dead.append(Device("s", f"mute{i}", "document", "snmp", f"snmp://127.0.0.1:{port}", snmp=where))
    random.Random(3).shuffle(dead)
    return dead


# --- the Nagios-style baseline: what a hospital's monitoring would run on the same fleet ---------------

CHECK_SNMP = "/usr/lib/nagios/plugins/check_snmp"
TOOLS = {  # what each baseline command needs, and where Debian has it
    CHECK_SNMP: "monitoring-plugins-standard (or monitoring-plugins-basic) and snmp",
    "ipptool": "cups-ipp-utils",
    "nc": "netcat-openbsd",
}
PARALLEL = 16  # xargs -P


def missing_tools() -> list[str]:
    """The Debian packages to install for the baseline, one per missing tool (empty when all are there)."""
    return [package for tool, package in TOOLS.items() if shutil.which(tool) is None]


def ipptool_test(work: Path) -> Path:
    """An ipptool test asking the attributes our sweep asks (not ``all``: the same question both sides)."""
    path = work / "readiness.test"
    names = ",".join(IPP_ATTRIBUTES)
    path.write_text(
        '{\n NAME "readiness"\n OPERATION Get-Printer-Attributes\n GROUP operation-attributes-tag\n'
        " ATTR charset attributes-charset utf-8\n ATTR naturalLanguage attributes-natural-language en\n"
        f" ATTR uri printer-uri $uri\n ATTR keyword requested-attributes {names}\n"
        " STATUS successful-ok\n EXPECT printer-state\n}\n"
    )
    return path


def baseline_line(device: Device, test: Path) -> str:
    """One xargs line: the command a Nagios-style check runs for this device (whole process)."""
    timeout = f"{TIMEOUT:g}"
    if device.protocol == "snmp":
        assert device.snmp is not None
        host, port, community = device.snmp
        oids = ",".join(snmp.READINESS_OIDS)
        return f"{CHECK_SNMP} -H {host} -p {port} -C {community} -P 2c -t {timeout} -e 1 -o {oids}"
    if device.protocol == "ipp":
        return f"ipptool -t -T {timeout} {device.address} {test}"
    host, port = zpl.address(device.address)  # nc reads what it sends from stdin: a shell pipes ~HS in
    return f"sh -c \"printf '~HS' | nc -N -w {timeout} {host} {port}\""


def baseline(devices: list[Device], work: Path) -> tuple[float, dict[str, int]]:
    """``xargs -P16`` over one command per device, in the sweep's order: (wall seconds, per kind the
    devices that did not answer). Answers are counted in the output: ``SNMP OK`` lines, ``[PASS]``
    tests, three STX-framed ~HS lines per ZPL printer."""
    test = ipptool_test(work)
    commands = work / "baseline.txt"
    commands.write_text("".join(baseline_line(d, test) + "\n" for d in devices))
    started = time.monotonic()
    done = subprocess.run(
        ["xargs", "-a", str(commands), "-P", str(PARALLEL), "-L", "1", "env"],
        stdin=subprocess.DEVNULL, capture_output=True, check=False,
    )  # fmt: skip
    wall = time.monotonic() - started
    asked = {kind: sum(d.protocol == kind for d in devices) for kind in ("snmp", "ipp", "zpl")}
    if done.returncode == 0:  # xargs: every command exited 0
        return wall, dict.fromkeys(asked, 0)
    out = done.stdout  # the processes' writes interleave: count tokens no other write splits
    answered = {"snmp": out.count(b"SNMP OK"), "ipp": out.count(b"PASS]"), "zpl": out.count(b"\x02") // 3}
    return wall, {kind: max(0, asked[kind] - answered[kind]) for kind in asked}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 20 else max(values)


LAST: dict[str, float] = {}  # protocol -> when its last answer came, in the latest sweep (seconds)


def sweep(devices: list[Device], concurrency: int) -> tuple[float, list]:
    """The sweep as the harness runs it; ``concurrency=1`` is one device at a time, nothing open beside it.
    Also notes in LAST when each protocol's last report came (which kind's peer set the pace)."""
    config = SweepConfig(timeout=TIMEOUT, concurrency=concurrency, max_open=8192 if concurrency > 1 else 1)
    LAST.clear()
    started = time.monotonic()

    def note(report: Any) -> None:
        LAST[report.device.protocol] = time.monotonic() - started

    with ThreadPoolExecutor(max_workers=1) as pool:  # as run_sweep does, with a callback per report
        reports = pool.submit(asyncio.run, hardware.sweep(devices, config, on_report=note)).result()
    return time.monotonic() - started, reports


def compare(everything: list[Device], sizes: list[int], rounds: int, concurrency: int, work: Path) -> None:
    """Ours and the Nagios-style baseline on the same devices, rounds interleaved (ours, baseline, ours,
    …) so the machine's load hits both alike; medians, the ratio, and how many answering devices each
    side called unreachable (every simulated device answers: each one is a false alarm)."""
    missing = missing_tools()
    if missing:
        print(f"baseline skipped: install the Debian packages {', '.join(missing)} (apt-get install -y ...)")
        return
    warm, _ = sweep(everything[: max(sizes)], concurrency)  # snmpsim indexes a community when first asked
    print(f"  warm-up sweep of {max(sizes)} (not counted): {warm:.2f} s", flush=True)
    for n in sizes:
        devices = everything[:n]
        ours, theirs, our_false, their_false = [], [], [], []
        for round_no in range(1, rounds + 1):
            wall, reports = sweep(devices, concurrency)
            ours.append(wall)
            our_false.append(sum(not r.reachable for r in reports))
            not_ready = [r for r in reports if r.reachable and not r.ready]
            note = (
                f" | {len(not_ready)} answered not ready, e.g. {not_ready[0].problems[0]}"
                if not_ready
                else ""
            )
            gone = [r for r in reports if not r.reachable]
            if gone:
                kinds = collections.Counter(r.device.protocol for r in gone)
                note += f" | ours unreachable: {dict(kinds)}, e.g. {gone[0].problems[0]}"
            other_wall, missed = baseline(devices, work)
            silent = sum(missed.values())
            theirs.append(other_wall)
            their_false.append(silent)
            if silent:
                note += " | baseline missed " + ", ".join(f"{k} {v}" for k, v in missed.items() if v)
            last = ", ".join(f"{k} {v:.1f}" for k, v in sorted(LAST.items()))
            print(f"  {n:>6} round {round_no}: ours {wall:6.2f} s ({our_false[-1]} unreachable; last answer "
                  f"{last} s) | "
                  f"baseline {other_wall:6.2f} s ({silent} unreachable){note}", flush=True)  # fmt: skip
        mine, other = statistics.median(ours), statistics.median(theirs)
        print(
            f"{n:>6} mixed devices: ours {mine:.2f} s ({n / mine:.0f}/s), Nagios-style xargs -P{PARALLEL} "
            f"check_snmp/ipptool/nc {other:.2f} s ({n / other:.0f}/s): ours {other / mine:.1f}x faster "
            f"(medians of {rounds}); answering devices reported unreachable in {rounds} rounds: "
            f"ours {sum(our_false)}, baseline {sum(their_false)}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--concurrency", type=int, default=SweepConfig().concurrency)
    parser.add_argument("--unreachable", type=int, default=1000)
    parser.add_argument(
        "--unreachable-with", type=int, default=1000, help="live devices the unreachable ones are added to"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of live alone vs live + unreachable")
    parser.add_argument("--baseline-rounds", type=int, default=3, help="0 = no Nagios-style baseline")
    parser.add_argument(
        "--compare-only", action="store_true", help="only ours against the baseline (no sequential, no dead)"
    )
    parser.add_argument("--sequential-sample", type=int, default=1000, help="0 = all devices one at a time")
    parser.add_argument(
        "--zpl-delay-ms",
        type=float,
        default=0.0,
        help="each ZPL answer this much later, as a printer on a LAN (default 0: loopback speed)",
    )
    args = parser.parse_args()
    raise_fd_limit()
    biggest = max(args.devices)
    n_zpl, n_snmp = round(biggest * 0.45), round(biggest * 0.10)
    n_ipp = biggest - n_zpl - n_snmp
    dead_hosts = args.unreachable * 4 // 10
    dead_tcp = args.unreachable * 3 // 10
    dead_snmp = args.unreachable - dead_hosts - dead_tcp
    dead_zpl = 0
    work = Path(tempfile.mkdtemp(prefix="hardware-bench-"))
    delay = f", ZPL answers {args.zpl_delay_ms:g} ms late" if args.zpl_delay_ms else ""
    print(f"simulating {n_zpl} ZPL, {n_snmp} SNMP and {n_ipp} IPP printers{delay} "
          f"(+{args.unreachable} unreachable) in {work}", flush=True)  # fmt: skip

    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, __file__, "--zpl-child", str(n_zpl), str(dead_zpl), str(args.zpl_delay_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    agents = SnmpAgents(work / "snmp", start_timeout=300)
    for i in range(n_snmp):
        agents.add(f"snmp{i}")
    fleet: PrinterFleet | None = None
    fillers: list[socket.socket] = []
    try:
        agents.start()
        assert child.stdout is not None
        ports = json.loads(child.stdout.readline())  # before picking IPP ports: no race for them
        printers = [
            Printer(id=f"ipp{i}", kind="document", uri=f"ipp://127.0.0.1:{free_port()}/ipp/print")
            for i in range(IPP_PROCESSES)
        ]
        fleet = PrinterFleet(printers, work / "ipp", start_timeout=30)
        fleet.start()
        print(f"simulators up in {time.monotonic() - started:.1f} s", flush=True)

        zpl = [Device("s", pid, "label", "zpl", f"tcp://127.0.0.1:{port}") for pid, port in ports.items()
               if not pid.startswith("zpl-silent")]  # fmt: skip
        snmp = [Device("s", f"snmp{i}", "document", "snmp", f"snmp://127.0.0.1:{agents.port}",
                       snmp=("127.0.0.1", agents.port, f"snmp{i}")) for i in range(n_snmp)]  # fmt: skip
        ipp = [
            Device("s", f"ippdev{i}", "document", "ipp", printers[i % IPP_PROCESSES].uri)
            for i in range(n_ipp)
        ]
        everything = zpl + snmp + ipp
        random.Random(5).shuffle(everything)

        if args.baseline_rounds:
            compare(everything, sorted(args.devices), args.baseline_rounds, args.concurrency, work)
        if args.compare_only:
            return 0

        results: dict[int, dict[str, float]] = {}
        for n in sorted(args.devices):
            devices = everything[:n]
            wall, reports = sweep(devices, args.concurrency)
            not_ready = [r for r in reports if not r.ready]
            if not_ready:
                first = not_ready[0]
                print(f"  WARNING {len(not_ready)} not ready, e.g. {first.device.id}: {first.problems}")
            times = [r.elapsed_s for r in reports]
            sample = devices if not args.sequential_sample or n <= args.sequential_sample else random.Random(
                7).sample(devices, args.sequential_sample)  # fmt: skip
            seq_wall, _ = sweep(sample, 1)
            seq_total = seq_wall * n / len(sample)
            results[n] = {"wall": wall, "rate": n / wall, "p95_ms": p95(times) * 1000, "seq": seq_total,
                          "seq_sampled": len(sample) < n}  # fmt: skip
            how = f"{len(sample)} measured, scaled to {n}" if len(sample) < n else "all measured"
            print(
                f"{n:>6} devices: {wall:6.2f} s  {n / wall:7.0f} devices/s  "
                f"p95 {p95(times) * 1000:6.1f} ms/device  "
                f"| one at a time {seq_total:7.1f} s ({how})  ratio {seq_total / wall:5.1f}x",
                flush=True,
            )
        if len(results) >= 2:
            small, big = sorted(results)[0], sorted(results)[-1]
            per_small = results[small]["wall"] / small * 1000
            per_big = results[big]["wall"] / big * 1000
            print(f"cost per device: {per_small:.2f} ms at {small}, {per_big:.2f} ms at {big} "
                  f"(linear growth: ratio {per_big / per_small:.2f})")  # fmt: skip

        if args.unreachable:
            dead = unreachable_devices(dead_hosts, dead_tcp, dead_snmp, fillers)
            wall, reports = sweep(dead, args.concurrency)
            short = {re.sub(r" ?\(.*?\)|127\.0\.0\.1:\d+", "", r.problems[0]) for r in reports if not r.ready}
            reasons = sorted(short)
            naive = len(dead) / args.concurrency * TIMEOUT
            print(
                f"{len(dead)} unreachable alone: {wall:.2f} s (timeout {TIMEOUT:g} s; slots held to the end "
                f"would take {naive:.1f} s); {sum(not r.ready for r in reports)}/{len(dead)} not ready: "
                + "; ".join(reasons)
            )
            # What the dead add to a live sweep: live alone and live + dead, interleaved, so the
            # machine's load (shared, noisy) hits both alike; the median of the differences.
            live = everything[: args.unreachable_with]
            extras = []
            for round_no in range(args.rounds):
                alone, _ = sweep(live, args.concurrency)
                mixed = live + dead
                random.Random(9 + round_no).shuffle(mixed)
                together, _ = sweep(mixed, args.concurrency)
                extras.append(together - alone)
                print(f"  round {round_no + 1}: {len(live)} live {alone:.2f} s, "
                      f"+ {len(dead)} unreachable {together:.2f} s ({together - alone:+.2f} s)")  # fmt: skip
            median = statistics.median(extras)
            print(
                f"{len(dead)} unreachable add {median:+.2f} s (median of {len(extras)}) to {len(live)} live "
                f"devices: {median / TIMEOUT:.2f} timeout periods (timeout {TIMEOUT:g} s)"
            )
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if fleet is not None:
            fleet.stop()
        agents.stop()
        for sock in fillers:
            sock.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--zpl-child":
        zpl_child(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
