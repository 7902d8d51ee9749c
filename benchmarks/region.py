"""Benchmark: `rehearse demo` for a region — wall time, cost per added site, peak memory, CPU by part.

    .venv/bin/python benchmarks/region.py [--sites 2 6 12 20] [--rounds 3] [--jobs 1 2]

Each plan has the demo's shape and scenario set (plans/demo.yaml: its two sites taken in turn,
each with the demo's three printers, its EHR, legacy EHR, lab, bridge, directory, load and
runbook) with ``--sites`` sites under other names, every port a free one, attestations for
each site as plans/demo.attestations.yaml gives them, and the demo's load per site (five
simulated clinicians a site, every path as often, so each site's SLOs get measurements).
Per size, ``--jobs`` value and round: the whole ``rehearse demo`` (start of the reference
hospital, the rehearsal, its report and go/no-go, the stop), timed from outside, with the
resident memory of its process tree summed every 0.25 s (the peak) and the CPU seconds of each
process of the tree by what it is (Chromium, Locust, Allure's Node, the hospital's simulators,
the pytest sessions, the CLI; a process's last sample counts, so one shorter than a sample is
missed).

Rounds are interleaved (every size and ``--jobs`` once, then again), so a noisy minute on a
shared machine falls on all of them. Printed: the medians per size and ``--jobs``, the slope of
wall time per added site (least squares over the sizes), the ratio of each ``--jobs`` to the
first at each size, and whether a run with more jobs gave the same results (key, status and
evidence names per result) and the same decision as the first ``--jobs`` of its round. Exits 1
when a run was not GO or gave other results, 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hospital_scale import free_ports, region_plan  # noqa: E402

from rehearsal.lifetime import descendants  # noqa: E402
from rehearsal.results import read_results  # noqa: E402

DEMO_PRINTERS = (("document", "dok", 1), ("wristband", "armband", 1), ("label", "etikett", 1))
PARTS = ("chromium", "locust", "allure", "hospital", "pytest", "cli", "other")
TICKS = os.sysconf("SC_CLK_TCK")


def part_of(cmdline: str) -> str:
    """What a process of the tree is, from its command line (a pytest session's names --browser chromium)."""
    if "-m pytest" in cmdline:
        return "pytest"
    if "chrom" in cmdline:
        return "chromium"
    if "locust" in cmdline:
        return "locust"
    if "allure" in cmdline or cmdline.startswith("node"):
        return "allure"
    if any(n in cmdline for n in ("reference_hospital", "ippeveprinter", "snmpsim", "cupsd", "slapd")):
        return "hospital"
    if "rehearsal.cli" in cmdline:
        return "cli"
    return "other"


class TreeSampler:
    """Peak summed VmRSS of the process tree below ``root`` and the CPU of each of its processes."""

    def __init__(self, root: int) -> None:
        self.root, self.peak_kb = root, 0
        self.cpu: dict[int, float] = {}
        self.part: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in [self.root, *descendants(self.root)]:
                try:
                    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
                        rss = next((int(x.split()[1]) for x in status if x.startswith("VmRSS:")), 0)
                    if pid not in self.part:
                        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                        self.part[pid] = part_of(raw.replace(b"\0", b" ").decode(errors="replace"))
                except (OSError, IndexError, ValueError):
                    continue
                self.cpu[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
                total += rss
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(0.25)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def by_part(self) -> dict[str, float]:
        out = dict.fromkeys(PARTS, 0.0)
        for pid, seconds in self.cpu.items():
            out[self.part.get(pid, "other")] += seconds
        return out


@dataclass
class Measured:
    wall: float
    peak_mb: float
    cpu: dict[str, float]
    decision: str
    lines: list[str]
    results: dict[str, list[tuple[str, list[str]]]] = field(repr=False)


def write_plan(folder: Path, sites: int) -> Path:
    """A demo-shaped plan of ``sites`` sites on free ports, its attestations beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    ports = free_ports()
    data = region_plan(sites, lambda: next(ports), folder, printers=DEMO_PRINTERS)
    load = data["load"]  # the demo's five clinicians a site, each path as often: every site's SLOs measured
    load["users"] = load["spawn_rate"] = 5 * sites
    for path in load["paths"]:
        path.pop("weights", None)
        path["weight"] = 1
    path = folder / "region.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    ids = [s["id"] for s in data["sites"]]
    said: list[dict[str, Any]] = [{"item": "kommunikation", "by": "Maja Wik", "ok": True}]
    for site in ids:
        said += [
            {"item": item, "site": site, "by": "Karin Berg", "ok": True}
            for item in ("eskalering", "nedtidsrutin")
        ]
    said.append({"item": "runbook:frys", "site": data["runbook"]["site"], "by": "Johan Ek", "ok": True})
    (folder / "region.attestations.yaml").write_text(
        yaml.safe_dump(said, allow_unicode=True), encoding="utf-8"
    )
    return path


def results(run: Path) -> dict[str, list[tuple[str, list[str]]]]:
    found: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for result in read_results(run / "allure-results"):
        found[result.key].append((result.status, sorted(name for name, _ in result.attachments)))
    return {key: sorted(value) for key, value in found.items()}


def one_run(folder: Path, sites: int, jobs: int) -> Measured:
    plan = write_plan(folder, sites)
    reports = folder / "reports"
    cmd = [
        sys.executable,
        "-m",
        "rehearsal.cli",
        "-q",
        "--reports",
        str(reports),
        "demo",
        "--plan",
        str(plan),
    ]
    began = time.monotonic()
    proc = subprocess.Popen(
        [*cmd, "--jobs", str(jobs)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with TreeSampler(proc.pid) as tree:
        out, err = proc.communicate(timeout=3600)
    wall = time.monotonic() - began
    text = (out + err).decode(errors="replace").strip()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{sites} sites, --jobs {jobs}: exit {proc.returncode}: {text.splitlines()[-1:]}")
    run = (reports / "latest").resolve()
    said = text.splitlines()
    decision = said[0].split(":")[0] if said else "?"
    failing = [line.strip() for line in said if line.strip().startswith(("FAIL", "PENDING"))]
    return Measured(wall, tree.peak_kb / 1024, tree.by_part(), decision, failing, results(run))


def differences(a: Measured, b: Measured, most: int = 4) -> str:
    """The first results (by key) whose status or evidence differ between two runs."""
    keys = sorted(set(a.results) | set(b.results))
    odd = [k for k in keys if a.results.get(k) != b.results.get(k)]
    said = [
        f"{k} {[s for s, _ in a.results.get(k, [])]} vs {[s for s, _ in b.results.get(k, [])]}" for k in odd
    ]
    return f"{len(odd)} differ: " + "; ".join(said[:most])


def slope(points: list[tuple[int, float]]) -> float:
    """Seconds per added site, least squares over the sizes."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[2, 6, 12, 20])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    os.environ.setdefault("REHEARSAL_PASSWORD", "benchmark-only-" + os.urandom(6).hex())
    runs: dict[tuple[int, int], list[Measured]] = defaultdict(list)
    bad = False
    print(
        f"cores: {len(os.sched_getaffinity(0))}; sizes {args.sites}, --jobs {args.jobs}, {args.rounds} rounds"
    )
    with tempfile.TemporaryDirectory(prefix="region-") as tmp:
        for r in range(args.rounds):
            for sites in args.sites:
                first: Measured | None = None
                for jobs in args.jobs:
                    try:
                        m = one_run(Path(tmp) / f"{sites}-{jobs}-{r}", sites, jobs)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        print(f"error: {exc}", file=sys.stderr)
                        return 2
                    runs[(sites, jobs)].append(m)
                    same = "" if first is None else f", same results as --jobs {args.jobs[0]}: "
                    if first is not None:
                        alike = m.results == first.results and m.decision == first.decision
                        same += "yes" if alike else "NO: " + differences(first, m)
                        bad |= not alike
                    bad |= m.decision != "GO"
                    print(
                        f"round {r + 1}: {sites:>2} sites --jobs {jobs}: {m.wall:6.1f} s, "
                        f"{m.peak_mb:5.0f} MB, {m.decision}, {len(m.results)} results{same}",
                        flush=True,
                    )
                    first = first or m
                    for line in m.lines[:5]:
                        print(f"    {line}")
    print(
        f"\n{'sites':>5} {'jobs':>4} {'wall s':>7} {'peak MB':>7}  CPU s: "
        + " ".join(f"{p:>8}" for p in PARTS)
    )
    for (sites, jobs), ms in sorted(runs.items()):
        cpu = {p: statistics.median(m.cpu[p] for m in ms) for p in PARTS}
        wall, peak = statistics.median(m.wall for m in ms), statistics.median(m.peak_mb for m in ms)
        print(
            f"{sites:>5} {jobs:>4} {wall:>7.1f} {peak:>7.0f}         "
            + " ".join(f"{cpu[p]:>8.1f}" for p in PARTS)
        )
    for jobs in args.jobs:
        points = [(s, statistics.median(m.wall for m in runs[(s, jobs)])) for s in args.sites]
        if len(points) > 1:
            print(f"--jobs {jobs}: {slope(points):.1f} s per added site (least squares, medians)")
    for jobs in args.jobs[1:]:
        ratios = []
        for s in args.sites:
            pairs = zip(runs[(s, jobs)], runs[(s, args.jobs[0])], strict=True)
            ratios.append(f"{s} sites {statistics.median(a.wall / b.wall for a, b in pairs):.2f}")
        print(
            f"--jobs {jobs} / --jobs {args.jobs[0]} wall (median of the rounds' ratios): " + ", ".join(ratios)
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
