"""Does the reference hospital carry the plan's load profile? Errors and p95 per path.

    .venv/bin/python benchmarks/reference_under_load.py [--plan plans/demo.yaml] [--rounds 3]

Starts the reference hospital of the plan (every port moved to a free one, so it runs
beside a hospital already up), runs the plan's load profile with Locust beside it, and
prints per path: requests, failures, p95 and p99 per round, then the medians. The target
(issue 3): zero errors and patient-search p95 below 200 ms. Exits 1 when a round has an
error or the median patient-search p95 is 200 ms or more. Measured here, never asserted in
the test suite: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

from reference_hospital import control
from rehearsal.load import run_load
from rehearsal.plan import load_plan

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = re.compile(r"(://(?:127\.0\.0\.1|localhost)):(\d+)")


def free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port


def on_free_ports(source: Path, folder: Path) -> Path:
    moved: dict[int, int] = {}
    taken: set[int] = set()

    def move(node: object) -> object:
        if isinstance(node, dict):
            return {
                k: moved.setdefault(v, free_port(taken)) if k == "port" and isinstance(v, int) else move(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [move(v) for v in node]
        if isinstance(node, str):
            return LOOPBACK.sub(
                lambda m: f"{m.group(1)}:{moved.setdefault(int(m.group(2)), free_port(taken))}", node
            )
        return node

    data = move(yaml.safe_load(source.read_text(encoding="utf-8")))
    path = folder / source.name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default=str(REPO / "plans" / "demo.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ref-load-") as tmp:
        folder = Path(tmp)
        loaded = load_plan(on_free_ports(Path(args.plan), folder))
        if loaded.plan.load is None:
            print(f"{args.plan}: the plan has no load profile")
            return 2
        for site in loaded.plan.sites:
            for user in site.users:
                os.environ.setdefault(user.password_env, secrets.token_urlsafe(12))
        profile = loaded.plan.load
        print(
            f"plan {args.plan}: {profile.users} users, {profile.duration_s:g} s, {len(profile.paths)} paths"
        )
        p95s: dict[str, list[float]] = {}
        errors = 0
        with control.running(loaded, [], folder / "state"):
            for n in range(1, args.rounds + 1):
                result = run_load(loaded.path, loaded.plan, folder / f"round{n}")
                print(f"round {n}:")
                for path_id, stats in sorted(result.paths.items()):
                    errors += stats.num_failures
                    p95s.setdefault(path_id, []).append(stats.p95_ms)
                    counts = f"{stats.num_requests:6} req {stats.num_failures:4} failed"
                    times = f"p95 {stats.p95_ms:7.1f} ms  p99 {stats.p99_ms:7.1f} ms  {stats.rps:6.1f} req/s"
                    print(f"  {path_id:18} {counts}  {times}")
        print("medians of p95 over rounds:")
        for path_id, values in sorted(p95s.items()):
            print(f"  {path_id:18} p95 {statistics.median(values):7.1f} ms")
        search = statistics.median(p95s.get("patient-search", [float("inf")]))
        verdict = errors == 0 and search < 200
        print(f"errors in all rounds: {errors}; patient-search median p95 {search:.1f} ms (< 200 ms): "
              f"{'met' if verdict else 'NOT met'}")  # fmt: skip
        return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
