"""Benchmark: the reference hospital at region scale — start time and peak memory per plan size.

    .venv/bin/python benchmarks/hospital_scale.py [--sites 2 6 12 20] [--rounds 3]
        [--layout print-server ippeveprinter]

Each plan has the demo plan's shape (plans/demo.yaml: its two sites taken in turn, its EHR,
legacy EHR, lab, bridge and directory) with ``--sites`` sites under other names and ten
printers a site (four document printers with SNMP, three wristband and three label
printers), every port a free one. ``--layout`` says how the document printers are
addressed: ``print-server`` (``ipp://…:PORT/printers/QUEUE``, a print-server port per site,
all served by one private cupsd) or ``ippeveprinter`` (each on its own port at
``/ipp/print``, one ippeveprinter each, as the demo's are).

Per size and layout, ``--rounds`` times: ``rehearse reference up``'s own start
(``reference_hospital.control.up``) timed until the hospital answers healthy, the resident
memory of its whole process tree sampled every 50 ms from the start until a second after
(the peak: the sum of VmRSS over the tree), then ``down`` and a check that no process of
the tree remains. Printed: the medians, processes, and the seconds and MB per added site.
Exits 1 if a round left a process behind, or if the largest print-server plan took more
than 30 s or 1 GB (issue 17's goal for 20 sites).
"""

from __future__ import annotations

import argparse
import copy
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reference_hospital import control  # noqa: E402
from rehearsal.errors import RehearsalError, TargetError  # noqa: E402
from rehearsal.lifetime import descendants  # noqa: E402
from rehearsal.plan import LoadedPlan, load_plan  # noqa: E402

#: Site names of a region (Västra Götaland), none of them the demo's.
TOWNS = (
    "kss-skovde", "su-goteborg", "ostra-goteborg", "molndal", "kungalv", "alingsas", "uddevalla",
    "lidkoping", "falkoping", "mariestad", "angered", "frolunda", "lysekil", "stromstad", "amal",
    "ulricehamn", "kungsbacka", "lerum", "partille", "tanumshede",
)  # fmt: skip
PRINTERS = (("document", "dok", 4), ("wristband", "armband", 3), ("label", "etikett", 3))
LAYOUTS = ("print-server", "ippeveprinter")


def free_ports() -> Iterator[int]:
    """Free loopback ports, each once."""
    taken: set[int] = set()
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in taken:
            taken.add(port)
            yield port


def region_plan(
    sites: int,
    port: Callable[[], int],
    folder: Path,
    *,
    layout: str = "print-server",
    printers: tuple[tuple[str, str, int], ...] = PRINTERS,
) -> dict[str, Any]:
    """The demo plan's shape with `sites` sites of `printers` each (ten by default), on ports from
    `port()`."""
    demo = yaml.safe_load((ROOT / "plans" / "demo.yaml").read_text(encoding="utf-8"))
    env = demo["environment"]
    ehr = port()
    env["fhir_base"], env["web_base"] = f"http://127.0.0.1:{ehr}/fhir", f"http://127.0.0.1:{ehr}"
    for field in ("legacy_base", "lab_mllp", "bridge_base", "bridge_mllp", "directory"):
        env[field] = f"{env[field].split('://')[0]}://127.0.0.1:{port()}"
    snmp = port()
    templates, made = demo["sites"], []
    for n in range(sites):
        site = copy.deepcopy(templates[n % len(templates)])
        sid = TOWNS[n % len(TOWNS)] + (f"-{n // len(TOWNS)}" if n >= len(TOWNS) else "")
        site.update(
            id=sid, name=sid.replace("-", " ").title(), hsa_id=f"SE2321000131-E{300_000 + n * 10:012d}"
        )
        for i, unit in enumerate(site.get("units", [])):
            unit.update(id=f"{sid}-u{i}", hsa_id=f"SE2321000131-E{300_000 + n * 10 + i + 1:012d}")
        server = port()  # the site's print server, for the print-server layout
        site["printers"] = []
        for kind, name, count in printers:
            for i in range(1, count + 1):
                printer: dict[str, Any] = {
                    "id": f"{sid}-{name}{i}",
                    "kind": kind,
                    "location": f"Avdelning {i}",
                }
                if kind != "document":
                    printer["uri"] = f"tcp://127.0.0.1:{port()}"
                elif layout == "print-server":
                    printer["uri"] = f"ipp://127.0.0.1:{server}/printers/{printer['id']}"
                else:
                    printer["uri"] = f"ipp://127.0.0.1:{port()}/ipp/print"
                if kind == "document":
                    printer["snmp"] = {"community": printer["id"], "port": snmp}
                site["printers"].append(printer)
        site["workstations"] = [
            dict(w, id=f"{sid}-ws{i}") for i, w in enumerate(site.get("workstations", []))
        ]
        site["users"] = [
            dict(u, hsa_id=f"SE2321000131-P{700_000 + n * 10 + i:012d}") for i, u in enumerate(site["users"])
        ]
        made.append(site)
    demo["sites"] = made
    demo["runbook"]["site"] = made[0]["id"]
    demo["workstation_facts"] = str(folder / "workstations")
    return demo


def write_plan(folder: Path, sites: int, layout: str, port: Callable[[], int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"region-{sites}-{layout}.yaml"
    data = region_plan(sites, port, folder, layout=layout)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeMemory:
    """Samples the summed VmRSS of every process below this one (the hospital's tree)."""

    def __init__(self) -> None:
        self.peak_kb, self.processes = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = descendants(os.getpid())
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(p) for p in pids))
            self.processes = max(self.processes, len(pids))
            self._stop.wait(0.05)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def one_round(
    folder: Path, sites: int, layout: str, port: Callable[[], int]
) -> tuple[float, float, int, int]:
    """(start seconds, peak MB, processes, processes left after down) for one start and stop.

    Each round has a plan of its own on ports free just before it starts; a port another
    program took in between costs a retry on other ports (the machine is shared).
    """
    for attempt in range(3):
        loaded = load_plan(write_plan(folder / f"try-{attempt}", sites, layout, port))
        try:
            return _measured(loaded, folder / f"try-{attempt}" / "state")
        except TargetError as exc:
            if "already in use" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _measured(loaded: LoadedPlan, state: Path) -> tuple[float, float, int, int]:
    with TreeMemory() as memory:
        began = time.monotonic()
        control.up(loaded, [], state, timeout=120, with_parent=True)
        started = time.monotonic() - began
        time.sleep(1.0)
        pids = descendants(os.getpid())
    control.down(state)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and [p for p in pids if Path(f"/proc/{p}").exists()]:
        time.sleep(0.05)
    left = [p for p in pids if Path(f"/proc/{p}").exists()]
    return started, memory.peak_kb / 1024, memory.processes, len(left)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[2, 6, 12, 20])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layout", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    args = parser.parse_args()
    os.environ.setdefault("REHEARSAL_PASSWORD", "benchmark-only-" + os.urandom(6).hex())
    ports = free_ports()
    failed = False
    print(
        f"{'layout':<14} {'sites':>5} {'printers':>8} {'procs':>5} {'start s':>8} {'peak MB':>8} {'left':>4}"
    )
    with tempfile.TemporaryDirectory(prefix="hospital-scale-") as tmp:
        for layout in args.layout:
            rows = []
            for sites in args.sites:
                try:
                    rounds = [
                        one_round(Path(tmp) / f"{layout}-{sites}-{r}", sites, layout, lambda: next(ports))
                        for r in range(args.rounds)
                    ]
                except RehearsalError as exc:
                    print(f"error: {layout}, {sites} sites: {exc}", file=sys.stderr)
                    return 2
                start = statistics.median(r[0] for r in rounds)
                peak = statistics.median(r[1] for r in rounds)
                procs, left = max(r[2] for r in rounds), sum(r[3] for r in rounds)
                rows.append((sites, start, peak))
                failed |= left > 0
                print(
                    f"{layout:<14} {sites:>5} {sites * 10:>8} {procs:>5} {start:>8.2f} {peak:>8.0f} "
                    f"{left:>4}",
                    flush=True,
                )
            if len(rows) > 1:
                (s0, t0, m0), (s1, t1, m1) = rows[0], rows[-1]
                print(
                    f"{layout:<14} per added site: {(t1 - t0) / (s1 - s0):.3f} s, "
                    f"{(m1 - m0) / (s1 - s0):.1f} MB ({s0} → {s1} sites)"
                )
            if layout == "print-server" and rows and (rows[-1][1] > 30 or rows[-1][2] > 1024):
                print(f"goal missed at {rows[-1][0]} sites: ≤ 30 s and ≤ 1024 MB")
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
