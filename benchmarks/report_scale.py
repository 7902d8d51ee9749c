"""Benchmark: `rehearse report` at region scale, made from a real run's results.

    .venv/bin/python benchmarks/report_scale.py [--from RUN] [--results 10000] [--sites 20]
                                                [--rerun-of RUN --rerun RUN]

The source is a real run of the demo plan (default: the newest complete run under reports/
whose rehearsal is the demo plan's; `rehearse demo` leaves one there). Its plan's sites are
copied until there are ``--sites`` of them (each copy with its own ids, HSA-ids and device
ids); each copy gets the source site's results, and every site's results are copied again
(``-cN`` on the stable id) until there are ``--results`` of them. Every result, container
and attachment file is its own file with its own uuid, as a real run of that size would
write (attachments are hard links: the disk does not fill, Allure still reads each one).

Printed: `rehearse report` wall time, the peak RSS of its whole process tree (Node and
Allure included, sampled every 20 ms), the size of the page a test lead opens and of the
whole report folder, the time of the go/no-go pages (read + merge, decide, gonogo.*), and the
same `rehearse report` again after one site's results changed (a rerun of that site).

With ``--rerun-of FULL --rerun RERUN`` (two real runs of the demo plan: a full run with a
fault at one site and `rehearse rerun` of it after the fault was cleared) it also prints the
rerun's wall time as a share of the full run's, from their run.json clocks plus their report
times measured here.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rehearsal.plan import load_plan  # noqa: E402
from rehearsal.run import load_run  # noqa: E402

REHEARSE = [sys.executable, "-m", "rehearsal"]


# --- a region plan and its results, from a real run --------------------------------------------


def _suffix(value: str, k: int) -> str:
    return value if k == 0 else f"{value}-{k}"


def _hsa(hsa_id: str, k: int) -> str:
    """A distinct HSA-id for copy k (the last digits moved by k × 1,000)."""
    if k == 0:
        return hsa_id
    head, digits = hsa_id[:-12], hsa_id[-12:]
    return f"{head}{int(digits) + k * 1000:012d}"


def region_plan(demo: dict[str, Any], sites: int) -> tuple[dict[str, Any], list[tuple[str, int, str]]]:
    """The demo plan with its sites copied round-robin until there are `sites`; also
    (source site id, copy number, new site id) per site."""
    plan = copy.deepcopy(demo)
    sources = demo["sites"]
    plan["sites"], mapping = [], []
    for n in range(sites):
        src, k = sources[n % len(sources)], n // len(sources)
        site = copy.deepcopy(src)
        site["id"], site["hsa_id"] = _suffix(src["id"], k), _hsa(src["hsa_id"], k)
        site["name"] = src["name"] if k == 0 else f"{src['name']} {k + 1}"
        for group in ("printers", "workstations"):
            site[group] = [dict(d, id=_suffix(d["id"], k)) for d in src.get(group, [])]
        site["units"] = [
            dict(u, id=_suffix(u["id"], k), hsa_id=_hsa(u["hsa_id"], k)) for u in src.get("units", [])
        ]
        site["users"] = [dict(u, hsa_id=_hsa(u["hsa_id"], k)) for u in src.get("users", [])]
        plan["sites"].append(site)
        mapping.append((src["id"], k, site["id"]))
    return plan, mapping


def _renamer(demo: dict[str, Any], source_site: str, k: int) -> re.Pattern[str] | None:
    """A pattern for the site's own ids (the site, its devices, units) as whole words."""
    if k == 0:
        return None
    site = next(s for s in demo["sites"] if s["id"] == source_site)
    names = [site["id"]] + [d["id"] for g in ("printers", "workstations", "units") for d in site.get(g, [])]
    return re.compile(
        r"(?<![\w-])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")(?![\w-])"
    )


def _labels_of(result: dict[str, Any]) -> dict[str, str]:
    return {label["name"]: label["value"] for label in result.get("labels", [])}


def synthesize(source: Path, out: Path, demo: dict[str, Any], sites: int, total: int) -> int:
    """Write `total` results over `sites` sites into the folder `out`, made from `source`'s.

    Containers (fixtures) are copied with the results they hold: a container of several
    tests once per batch (one site copy, one round), holding that batch's copies."""
    out.mkdir(parents=True)
    results = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(source.glob("*-result.json"))]
    containers = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(source.glob("*-container.json"))]
    containers = [c for c in containers if c.get("children")]  # Allure ignores empty ones
    by_site: dict[str | None, list[dict[str, Any]]] = {}
    for data in results:
        by_site.setdefault(_labels_of(data).get("site"), []).append(data)
    _, mapping = region_plan(demo, sites)
    groups: list[tuple[str | None, int]] = [(None, 0)] + [(src, k) for src, k, _ in mapping]
    written, round_ = 0, 0
    while written < total:
        for source_site, k in groups:
            rename = _renamer(demo, source_site, k) if source_site else None
            batch: dict[str, str] = {}
            for data in by_site.get(source_site, [])[: total - written]:
                batch[data["uuid"]] = _copy_result(data, source, out, rename, k, round_)
            written += len(batch)
            for container in containers:
                children = [batch[c] for c in container["children"] if c in batch]
                if children:
                    twin = _renamed(container, rename, k)
                    twin["uuid"], twin["children"] = str(uuid.uuid4()), children
                    _relink(twin, source, out)
                    _write_json(out / f"{twin['uuid']}-container.json", twin)
        round_ += 1
    return written


def _renamed(data: dict[str, Any], rename: re.Pattern[str] | None, k: int) -> dict[str, Any]:
    text = json.dumps(data, ensure_ascii=False)
    if rename is not None:
        text = rename.sub(lambda m: f"{m.group(1)}-{k}", text)
    return json.loads(text)  # type: ignore[no-any-return]


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _copy_result(
    data: dict[str, Any], source: Path, out: Path, rename: re.Pattern[str] | None, k: int, round_: int
) -> str:
    """One copy of a result for site copy `k` and round `round_`; returns its new uuid."""
    result = _renamed(data, rename, k)
    result["uuid"] = str(uuid.uuid4())
    if round_:
        for label in result["labels"]:
            if label["name"] in ("rehearsal_id", "nodeid"):
                label["value"] = f"{label['value']}-c{round_}"
        result["name"] = f"{result['name']} (kopia {round_})"
        result.setdefault("parameters", []).append({"name": "kopia", "value": str(round_)})
    for field in ("historyId", "testCaseId"):
        if field in result:
            result[field] = hashlib.md5(f"{result[field]}/{k}/{round_}".encode()).hexdigest()
    _relink(result, source, out)
    _write_json(out / f"{result['uuid']}-result.json", result)
    return str(result["uuid"])


def _relink(node: Any, source: Path, out: Path) -> None:
    """Give every attachment of `node` a file of its own (a hard link of the source's)."""
    if isinstance(node, dict):
        for attachment in node.get("attachments", []) or []:
            old = source / attachment["source"]
            if old.is_file():
                new = f"{uuid.uuid4()}-attachment{old.suffix}"
                os.link(old, out / new)
                attachment["source"] = new
        for value in node.values():
            if isinstance(value, list):
                for item in value:
                    _relink(item, source, out)


def make_run(source_run: Path, work: Path, sites: int, total: int) -> Path:
    """A run folder under ``work/reports`` with the region plan and `total` synthetic results."""
    source = load_run(source_run.parent.parent, str(source_run))
    demo = yaml.safe_load(Path(source.plan_path).read_text(encoding="utf-8"))
    plan, _ = region_plan(demo, sites)
    plan_dir = work / "plans"
    shutil.copytree(Path(source.plan_path).parent, plan_dir, ignore=shutil.ignore_patterns("*.yaml"))
    for name in Path(source.plan_path).parent.glob("*.yaml"):  # attestations, waivers beside the plan
        if name.name != Path(source.plan_path).name:
            shutil.copy2(name, plan_dir / name.name)
    plan_path = plan_dir / "region.yaml"
    plan_path.write_text(yaml.safe_dump(plan, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_plan(plan_path)  # refuse here, not inside the timed report
    run_id = "20261201T000000Z-b17a"
    run_dir = work / "reports" / source.rehearsal / run_id
    shutil.copytree(
        source.dir,
        run_dir,
        ignore=shutil.ignore_patterns("allure-results", "allure-report", "gonogo.*", ".allure-report-*"),
    )
    meta = json.loads((source.dir / "run.json").read_text(encoding="utf-8"))
    meta.update(
        id=run_id, plan_path=str(plan_path), plan_sha256=hashlib.sha256(plan_path.read_bytes()).hexdigest()
    )
    meta["inputs"] = [
        dict(i, source=str(plan_path)) if i["role"] == "plan" else i for i in meta.get("inputs", [])
    ]
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.copy2(plan_path, run_dir / "used" / "plan.yaml")
    n = synthesize(source.results_dir, run_dir / "allure-results", demo, sites, total)
    print(f"synthetic run: {n:,} results over {sites} sites from {source.dir} ({source.id})")
    return run_dir


# --- measuring --------------------------------------------------------------------------------


CPU = [0.0]
"""CPU seconds (user + system) of the last measured command and everything it waited for."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """(wall seconds, peak RSS of the process tree in bytes, exit code) of `command`; its CPU
    seconds in :data:`CPU` (what the figures would be on two idle cores: wall ≥ CPU / 2).

    The tree's RSS is summed over the process and all its descendants every 20 ms, so the
    Node process Allure runs in is counted with the Python one that starts it."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for p in tree:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - started
    CPU[0] = _children_cpu() - cpu_before
    done.set()
    sampler.join()
    if proc.returncode not in (0, 1):
        print(f"  {' '.join(command[-3:])}: exit {proc.returncode}: {err.strip().splitlines()[-1:]}")
    return wall, peak[0], proc.returncode


def site_rerun(full_run: Path, site: str, run_id: str) -> tuple[Path, int]:
    """A rerun of `full_run` holding a new result for every test of `site` (an hour later), as
    `rehearse rerun` after a fix there writes; returns its folder and how many results."""
    rerun = full_run.parent / run_id
    out = rerun / "allure-results"
    out.mkdir(parents=True)
    source = full_run / "allure-results"
    batch: dict[str, str] = {}
    for path in sorted(source.glob("*-result.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if _labels_of(data).get("site") != site:
            continue
        old, data["uuid"] = data["uuid"], str(uuid.uuid4())
        for key in ("start", "stop"):
            if isinstance(data.get(key), int):
                data[key] += 3_600_000
        _relink(data, source, out)
        _write_json(out / f"{data['uuid']}-result.json", data)
        batch[old] = data["uuid"]
    for path in sorted(source.glob("*-container.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        children = [batch[c] for c in data.get("children", []) if c in batch]
        if children:
            data["uuid"], data["children"] = str(uuid.uuid4()), children
            _relink(data, source, out)
            _write_json(out / f"{data['uuid']}-container.json", data)
    meta = json.loads((full_run / "run.json").read_text(encoding="utf-8"))
    meta.update(id=run_id, parent=full_run.name, selection=[f"{site}: every test"], sites=[site])
    for name in ("used", "load"):
        if (full_run / name).is_dir():
            shutil.copytree(full_run / name, rerun / name)
    (rerun / "run.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return rerun, len(batch)


def report(reports: Path, run_id: str) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    wall, peak, code = measured([*REHEARSE, "--reports", str(reports), "report", run_id], env)
    if code not in (0, 1):
        raise SystemExit(f"rehearse report {run_id} failed (exit {code})")
    return wall, peak


def pages(run_dir: Path) -> tuple[int, int, int, str]:
    """(largest page, the report folder's bytes, the parts, the largest page's part)."""
    index = run_dir / "allure-report"
    sizes = {p.parent.name: p.stat().st_size for p in index.glob("*/index.html")}
    folder = sum(p.stat().st_size for p in index.rglob("*") if p.is_file())
    biggest = max(sizes, key=lambda k: sizes[k]) if sizes else "-"
    return (sizes.get(biggest, 0), folder, len(sizes), biggest)


def gonogo_seconds(reports: Path, run_id: str) -> tuple[float, float, float]:
    """(read + merge, all of build_evidence, gonogo.* alone) in this process: the pages the panel opens."""
    from rehearsal.report import build_evidence, write_gonogo
    from rehearsal.results import merge
    from rehearsal.run import chain

    run = load_run(reports, run_id)
    plan = load_plan(run.plan_path).plan
    started = time.perf_counter()
    merge([r.results_dir for r in chain(run)])
    merged = time.perf_counter() - started
    started = time.perf_counter()
    pack = build_evidence(run, plan)
    evidence = time.perf_counter() - started
    started = time.perf_counter()
    write_gonogo(pack, plan, run)
    return merged, evidence, time.perf_counter() - started


def real_rerun_share(reports: Path, full_id: str, rerun_id: str, work: Path) -> None:
    """The rerun's wall time as a share of the full run's, for two real runs of the demo plan.

    Each is its run's own clock (run.json: started → finished) plus its report measured here
    on a copy: the full run's from scratch, the rerun's with its parent's report in place."""
    copy_root = work / "real"
    shutil.copytree(reports, copy_root, symlinks=True, ignore=shutil.ignore_patterns("latest"))
    full, rerun = load_run(copy_root, full_id), load_run(copy_root, rerun_id)
    shutil.rmtree(full.dir / "allure-report", ignore_errors=True)
    shutil.rmtree(rerun.dir / "allure-report", ignore_errors=True)

    def clock(run: Any) -> float:
        from datetime import datetime

        return (datetime.fromisoformat(run.finished) - datetime.fromisoformat(run.started)).total_seconds()

    full_report, _ = report(copy_root, full.id)
    rerun_report, _ = report(copy_root, rerun.id)
    total_full, total_rerun = clock(full) + full_report, clock(rerun) + rerun_report
    print(
        f"real demo runs: full {clock(full):.0f} s run + {full_report:.1f} s report = {total_full:.1f} s; "
        f"rerun {clock(rerun):.0f} s run + {rerun_report:.1f} s report = {total_rerun:.1f} s: "
        f"{100 * total_rerun / total_full:.1f} % of the full run (goal ≤ 10 %)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", help="run folder or id of a real run (default: the newest)")
    parser.add_argument("--reports", default=str(ROOT / "reports"), help="where the real runs are")
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--work", help="keep the synthetic runs in this folder (default: a temporary one)")
    parser.add_argument("--rerun-of", help="a real full run of the demo plan (with a fault at one site)")
    parser.add_argument("--rerun", help="its real `rehearse rerun` after the fault was cleared")
    args = parser.parse_args()
    source = load_run(Path(args.reports), args.source)
    work = Path(args.work or tempfile.mkdtemp(prefix="report-scale-"))
    try:
        run_dir = make_run(source.dir, work, args.sites, args.results)
        reports, run_id = run_dir.parent.parent, run_dir.name
        wall, peak = report(reports, run_id)
        page, folder, n, biggest = pages(run_dir)
        landing = (run_dir / "allure-report" / "index.html").stat().st_size
        print(
            f"rehearse report, {args.results:,} results / {args.sites} sites: {wall:.1f} s (goal ≤ 30 s; "
            f"{CPU[0]:.0f} CPU-s), peak RSS of the process tree {peak / 2**20:.0f} MiB (goal ≤ 1024)"
        )
        print(
            f"  pages: {n} parts, largest {page / 1e6:.1f} MB ({biggest}; goal ≤ 50 MB), "
            f"allure-report/index.html {landing / 1e3:.1f} kB, report folder {folder / 1e6:.0f} MB"
        )
        merged, evidence, gonogo = gonogo_seconds(reports, run_id)
        print(
            f"  go/no-go pages: read + merge {merged:.2f} s; read, merge, decide, history and gonogo.* "
            f"{evidence:.2f} s (goal ≤ 3 s), of which gonogo.* {gonogo:.2f} s"
        )
        again, _ = report(reports, run_id)
        print(
            f"  the same report again (every part unchanged): {again:.1f} s ({100 * again / wall:.0f} %; "
            f"{CPU[0]:.0f} CPU-s)"
        )
        site = load_plan(load_run(reports, run_id).plan_path).plan.sites[-1].id
        rerun_dir, count = site_rerun(run_dir, site, "20261201T010000Z-b17b")
        rerun_wall, rerun_peak = report(reports, rerun_dir.name)
        print(
            f"  a rerun of one site ({site}, {count} results): report {rerun_wall:.1f} s = "
            f"{100 * rerun_wall / wall:.0f} % of the full report ({CPU[0]:.0f} CPU-s), "
            f"peak {rerun_peak / 2**20:.0f} MiB"
        )
        if args.rerun_of and args.rerun:
            real_rerun_share(Path(args.reports), args.rerun_of, args.rerun, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
