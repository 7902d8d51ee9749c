"""Benchmark: loading and validating a region-sized plan.

    .venv/bin/python benchmarks/plan_validation.py [--sites 20 200] [--printers-per-site 50] [--rounds 5]

Each plan is the demo plan with its first site copied ``--sites`` times (each copy with its
own ids and HSA-ids) and ``--printers-per-site`` printers per site (by default 1,000 and
10,000 devices: 20 and 200 sites of 50). Printed per size: the
plan's bytes, devices, and the median of ``--rounds`` whole ``load_plan`` calls (read,
YAML, duplicate-key walk, pydantic) in wall and in CPU time, and the cost per device; the
last line is the ratio of the per-device costs of the largest and the smallest plan
(1.0 = linear).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rehearsal.plan import load_plan  # noqa: E402


def _hsa(kind: str, n: int) -> str:
    return f"SE2321000131-{kind}{n:012d}"


def region_plan(sites: int, printers_per_site: int) -> dict[str, Any]:
    demo = yaml.safe_load((ROOT / "plans" / "demo.yaml").read_text(encoding="utf-8"))
    template = demo["sites"][0]
    demo["sites"] = []
    for s in range(sites):
        site = copy.deepcopy(template)
        site["id"], site["name"], site["hsa_id"] = f"site-{s}", f"Sjukhus {s}", _hsa("E", 10_000 + s)
        site["printers"] = [
            {"id": f"s{s}-p{p}", "kind": "document", "uri": f"ipp://127.0.0.1:{10_000 + p}/ipp/print"}
            for p in range(printers_per_site)
        ]
        site["units"] = [dict(u, id=f"s{s}-{u['id']}", hsa_id=_hsa("E", 500_000 + s * 100 + i))
                         for i, u in enumerate(site.get("units", []))]  # fmt: skip
        site["workstations"] = [dict(w, id=f"s{s}-{w['id']}") for w in site.get("workstations", [])]
        site["users"] = [
            dict(u, hsa_id=_hsa("P", 900_000 + s * 100 + i)) for i, u in enumerate(site["users"])
        ]
        demo["sites"].append(site)
    if demo.get("runbook", {}).get("site"):
        demo["runbook"]["site"] = "site-0"  # the demo's cutover site, renamed with the first copy
    demo["waivers"], demo["owners"] = [], {}
    for criterion in demo["criteria"]:
        criterion.pop("owner", None)
    return demo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--printers-per-site", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    per_device: list[float] = []
    per_device_cpu: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for sites in args.sites:
            path = Path(tmp) / f"region-{sites}.yaml"
            path.write_text(yaml.safe_dump(region_plan(sites, args.printers_per_site), allow_unicode=True))
            times, cpu = [], []
            for _ in range(args.rounds):
                start, start_cpu = time.perf_counter(), time.process_time()
                loaded = load_plan(path)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            devices = sum(len(s.printers) for s in loaded.plan.sites)
            median, median_cpu = statistics.median(times), statistics.median(cpu)
            per_device.append(median / devices)
            per_device_cpu.append(median_cpu / devices)
            print(
                f"{sites:5d} sites {devices:7,d} printers {path.stat().st_size / 1e6:6.2f} MB: "
                f"load_plan median {median:6.3f} s of {args.rounds} "
                f"(min {min(times):.3f}, max {max(times):.3f}); {median / devices * 1e6:6.1f} µs/device; "
                f"CPU median {median_cpu:.3f} s, {median_cpu / devices * 1e6:.1f} µs/device"
            )
    print(
        f"per-device cost, largest / smallest plan: {per_device[-1] / per_device[0]:.2f} wall, "
        f"{per_device_cpu[-1] / per_device_cpu[0]:.2f} CPU (1.0 = linear; CPU does not count waiting "
        "for a core on a shared machine)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
