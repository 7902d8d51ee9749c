"""The report of one run chain: the panel's evidence pack and the Allure 3 single-file report.

:func:`build_report` merges the allure-results of every run in the chain (a rerun's result
beats its parent's, the earlier one stays as a retry), takes the go/no-go decision with the
plan's waivers, records the run in its wave's history, works out what changed since the
run it is compared with and writes, in the newest run's folder:

- ``gonogo.json``  for machines: the decision (:meth:`rehearsal.gonogo.Decision.to_json`),
  the wave's trend and the changes (:meth:`rehearsal.pack.EvidencePack.to_json`);
- ``gonogo.md``    the same as text for e-mail and chat;
- ``gonogo.html``  the two-page evidence pack for the go/no-go panel (:mod:`rehearsal.pack`);
- ``allure-report/<site>/index.html``  Allure 3 (awesome, single file) per site and one for the
  region-wide results (:mod:`rehearsal.report_parts`: each a page a browser opens, a part
  whose inputs did not change is reused), with the wave's history (see
  :mod:`rehearsal.history` for how it is kept free of duplicates), and
  ``allure-report/index.html`` linking them with each part's counts.

A hospital report must not call out: Allure 3.18 always embeds Google Tag Manager, so the
analytics scripts are stripped, a Content-Security-Policy that allows no network source is
added, and the result is checked for any remaining outside load before it is published.
The go/no-go files are written first, so a missing Node/Allure never costs the decision.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import rehearsal
from rehearsal import attest, content, templating
from rehearsal.errors import RehearsalError, UsageError
from rehearsal.gonogo import Decision, decide
from rehearsal.history import Changes as Changes
from rehearsal.history import WaveHistory, changes, items_of, snapshot
from rehearsal.pack import ALLURE_DIR, EvidencePack, render_html, render_markdown, text_for
from rehearsal.pack import allure_result_id as allure_result_id
from rehearsal.plan import ASPECTS, Plan
from rehearsal.report_parts import (
    EVIDENCE_DIR,
    INPUTS_FILE,
    Part,
    PartInputs,
    build_key,
    built_from,
    central_part,
    collect,
    copy_tree,
    parts,
    reusable,
    stage,
)
from rehearsal.reports_folder import write_atomic
from rehearsal.results import ResultWarning, merge
from rehearsal.run import Run, chain, load_run
from rehearsal.runbook import load_state as runbook_state
from rehearsal.waivers import load_waivers

log = logging.getLogger(__name__)

NODE_MIN_MAJOR = 20
GENERATE_TIMEOUT_S = 600.0

#: Allows inline scripts/styles and data:/blob: URLs only: the page cannot load or send anything.
ALLURE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval' data: blob:; "
    "style-src 'unsafe-inline' data: blob:; img-src data: blob:; font-src data:; media-src data: blob:; "
    "connect-src data: blob:; frame-src data: blob:; worker-src data: blob:; form-action 'none'"
)


def build_report(
    run: Run,
    plan: Plan,
    *,
    repo_root: Path | None = None,
    timeout: float = GENERATE_TIMEOUT_S,
    compare: str | None = None,
    today: date | None = None,
    plan_path: str | Path | None = None,
) -> Decision:
    """Decide, write the evidence pack (gonogo.{json,md,html}) and history, then the Allure report.

    `compare` is a run id or folder to list changes against (default: the parent of a
    rerun, else the wave's previous run); `today` judges the waivers (default: the local
    date); `plan_path` locates the plan's ``waivers_file`` (default: the run's plan path).
    Raises UsageError (after the gonogo files are written) when Node.js ≥ 20 or the allure
    package is missing, naming the command that installs it.
    """
    pack = build_evidence(run, plan, compare=compare, today=today, plan_path=plan_path)
    decision = pack.decision
    t = text_for(plan)
    variables = {
        t["rehearsal"]: run.rehearsal,
        t["wave"]: pack.trend.wave,
        t["run"]: run.id,
        t["chain"]: " → ".join(pack.runs),
        t["complete"]: t["yes"] if run.complete else t["no"],
        "Go/no-go": decision.headline or decision.decision,
    }
    history = WaveHistory.of(run, plan)
    seconds = generate_allure_report(
        [r.results_dir for r in chain(run)],
        plan,
        run.dir / ALLURE_DIR,
        repo_root=repo_root,
        timeout=timeout,
        variables=variables,
        history_points=history.allure_points_before(run.id),
        keep_history_point=lambda point: history.keep_allure_point(run.id, point),
        run_id=run.id,
        reuse=[r.dir / ALLURE_DIR for r in reversed(chain(run)[:-1])],
        point_of=history.allure_point,
    )
    log.info("allure generate: %.1f s for %d result folder(s)", seconds, len(pack.runs))
    return decision


def build_evidence(
    run: Run,
    plan: Plan,
    *,
    compare: str | None = None,
    today: date | None = None,
    plan_path: str | Path | None = None,
) -> EvidencePack:
    """Everything but the Allure report: decide, record the run in its wave, write gonogo.*."""
    runs = chain(run)
    merged = merge([r.results_dir for r in runs])
    waivers = _waivers(run, plan, plan_path)
    clock = runbook_state(run.dir, plan) if plan.runbook else None
    decision = decide(
        plan,
        merged,
        complete=run.complete,
        rehearsal=run.rehearsal,
        run=run.id,
        parent=run.parent,
        waivers=waivers,
        today=today,
        runbook=clock,
    )
    history = WaveHistory.of(run, plan)
    history.put(snapshot(run, plan, decision, merged, runbook=clock))
    given = [f for r in runs for f in (*r.copies("attestations"), r.dir / attest.FILE)]  # oldest first
    pack = EvidencePack(
        decision=decision,
        runbook=clock,
        attestations=tuple(attest.seen(given, merged)),
        trend=history.trend(run.id),
        changes=_changes(run, runs, merged, history, compare),
        runs=tuple(r.id for r in runs),
        scope=run_scope(runs, plan),
    )
    write_gonogo(pack, plan, run)
    return pack


def _waivers(run: Run, plan: Plan, plan_path: str | Path | None) -> tuple[Any, ...]:
    """The waivers file beside the plan as it is now (the panel may accept a risk after the run),
    else the copy the run kept of it (the plan's folder has moved or the file is gone)."""
    base = Path(plan_path if plan_path is not None else run.plan_path)
    copies = run.copies("waivers")
    if plan.waivers_file and not (base.parent / plan.waivers_file).is_file() and copies:
        return load_waivers(plan.model_copy(update={"waivers_file": copies[0].name}), copies[0])
    return load_waivers(plan, base)


def _changes(
    run: Run, runs: Sequence[Run], merged: Sequence[Any], history: WaveHistory, compare: str | None
) -> Changes:
    """Against `compare`, else the parent of a rerun, else the wave's run before this one."""
    current = items_of(merged)
    if compare is not None:
        target = load_run(run.reports_root, compare)
        if target.id == run.id:
            raise UsageError(f"--compare {compare}: that is the run being reported")
        return changes(
            current, _items_on_disk(target), against=target.id, label=history.label(target.id), reason="given"
        )
    if run.parent and len(runs) > 1:
        parent = runs[-2]
        label = history.label(parent.id)
        return changes(current, _items_on_disk(parent), against=parent.id, label=label, reason="parent")
    previous = history.previous(run.id)
    if previous is None:
        return Changes()
    return changes(
        current,
        previous.get("items", {}),
        against=previous["run"],
        label=history.label(previous["run"]),
        reason="previous",
    )


def _items_on_disk(run: Run) -> dict[str, dict[str, Any]]:
    """A run chain's item statuses from its results (quietly: its own report warned already)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultWarning)
        return items_of(merge([r.results_dir for r in chain(run)]))


def write_gonogo(pack: EvidencePack, plan: Plan, run: Run) -> None:
    """Write gonogo.json, gonogo.md and gonogo.html into the run folder (each atomically)."""
    scope = pack.scope or run_scope([run], plan)
    _write(run.dir / "gonogo.json", json.dumps(pack.to_json(), indent=2, ensure_ascii=False) + "\n")
    _write(run.dir / "gonogo.md", render_markdown(pack, plan, run.dir) + scope_markdown(scope, plan.language))
    _write(run.dir / "gonogo.html", scope_html(render_html(pack, plan, run.dir), scope, plan.language))


# --- the run's scope: which sites and aspects ran (run.json), and which did not --------------------

SCOPE_TEXT = {
    "sv": {
        "heading": "Omfattning",
        "narrowed": "Körningen omfattade bara en del av planen; det som inte kördes står som väntande.",
        "sites": "Platser som inte kördes",
        "aspects": "Aspekter som inte kördes",
        "ran": "Körda: platser {sites}; aspekter {aspects}",
        "all": "alla",
    },
    "en": {
        "heading": "Scope",
        "narrowed": "The run covered only part of the plan; what did not run shows as pending.",
        "sites": "Sites not run",
        "aspects": "Aspects not run",
        "ran": "Run: sites {sites}; aspects {aspects}",
        "all": "all",
    },
}


def run_scope(runs: Sequence[Run], plan: Plan) -> dict[str, Any]:
    """The plan sites and aspects the run chain covered (run.json ``sites``/``aspects``; None = all) and
    those it did not. A rerun of selected items repeats parts of its parent and widens nothing."""
    sites: set[str] | None = set()
    aspects: set[str] | None = set()
    for r in runs:
        if r.selection is not None and r.parent:
            continue
        sites = None if sites is None or r.sites is None else sites | set(r.sites)
        aspects = None if aspects is None or r.aspects is None else aspects | set(r.aspects)
    not_sites = [] if sites is None else [s.id for s in plan.sites if s.id not in sites]
    not_aspects = [] if aspects is None else [a for a in ASPECTS if a not in aspects]
    return {
        "sites": None if sites is None else sorted(sites),
        "aspects": None if aspects is None else sorted(aspects),
        "not_run": {"sites": not_sites, "aspects": not_aspects},
        "complete_scope": not not_sites and not not_aspects,
    }


def _scope_lines(scope: dict[str, Any], t: dict[str, str]) -> list[str]:
    ran = t["ran"].format(
        sites=", ".join(scope["sites"]) if scope["sites"] is not None else t["all"],
        aspects=", ".join(scope["aspects"]) if scope["aspects"] is not None else t["all"],
    )
    lines = [t["narrowed"], ran]
    if scope["not_run"]["sites"]:
        lines.append(f"{t['sites']}: " + ", ".join(scope["not_run"]["sites"]))
    if scope["not_run"]["aspects"]:
        lines.append(f"{t['aspects']}: " + ", ".join(scope["not_run"]["aspects"]))
    return lines


def scope_markdown(scope: dict[str, Any], language: str = "sv") -> str:
    """A separate section at the end of gonogo.md, only when the run did not cover the whole plan."""
    if scope["complete_scope"]:
        return ""
    t = SCOPE_TEXT.get(language, SCOPE_TEXT["en"])
    return "\n## " + t["heading"] + "\n\n" + "\n".join(f"- {line}" for line in _scope_lines(scope, t)) + "\n"


def scope_html(page: str, scope: dict[str, Any], language: str = "sv") -> str:
    """The same note on the evidence pack's first page, right under the verdict."""
    if scope["complete_scope"]:
        return page
    t = SCOPE_TEXT.get(language, SCOPE_TEXT["en"])
    items = "".join(f"<li>{html.escape(line)}</li>" for line in _scope_lines(scope, t))
    note = (
        f'<aside class="scope" role="note" aria-label="{html.escape(t["heading"])}" '
        'style="border:2px solid #b45309;padding:.3em .8em;margin:.5em 0">'
        f"<strong>{html.escape(t['heading'])}</strong><ul>{items}</ul></aside>"
    )
    at = page.find("</header>")
    return page if at < 0 else page[: at + 9] + "\n" + note + page[at + 9 :]


# --- Allure 3 ----------------------------------------------------------------------------------


def allure_config(
    plan: Plan,
    output: Path,
    variables: dict[str, str] | None = None,
    history_path: Path | None = None,
    part: Part | None = None,
) -> str:
    """An ``allurerc.mjs`` exporting a plain object for the report of one `part` (a site or central).

    The part is Allure's one environment (named after the site, with its HSA-id), so test
    keys and the environment shown stay what they were when one report held every site.
    Without `part`: one environment per site plus ``central``. Results are matched on their
    ``site`` label; anything without a plan site (region-wide, or a site the plan does not
    know) lands in the central environment, so nothing is hidden. `history_path` (absolute:
    Allure resolves a relative one against its working folder) turns on Allure's history.
    """
    t = text_for(plan)
    site_ids = [s.id for s in plan.sites]
    central = central_part(plan)
    names: set[str] = set()
    envs = []
    for site in plan.sites:
        name = _env_name(site.name, site.id, names)
        if part is None or part.site == site.id:
            envs.append(
                f"    {json.dumps(site.id)}: {{ name: {json.dumps(name, ensure_ascii=False)}, "
                f"variables: {json.dumps({'HSA-id': site.hsa_id}, ensure_ascii=False)}, "
                f"matcher: onSite({json.dumps(site.id)}) }},"
            )
    central_name = json.dumps(_env_name(t["central"], central, names), ensure_ascii=False)
    if part is None or part.site is None:
        envs.append(
            f"    {json.dumps(central)}: {{ name: {central_name}, "
            'matcher: ({ labels }) => !labels.some((l) => l.name === "site" && SITES.includes(l.value)) },'
        )
    title = plan.title if part is None else f"{plan.title} – {part.name}"
    options = {"singleFile": True, "reportLanguage": plan.language, "reportName": title}
    return "\n".join(
        [
            "// Written by rehearsal.report for one report; regenerated every time (do not edit).",
            f"const SITES = {json.dumps(site_ids)};",
            'const onSite = (id) => ({ labels }) => labels.some((l) => l.name === "site" && l.value === id);',
            "export default {",
            f"  name: {json.dumps(title, ensure_ascii=False)},",
            f"  output: {json.dumps(str(output))},",
            *([f"  historyPath: {json.dumps(str(Path(history_path).resolve()))},"] if history_path else []),
            f"  plugins: {{ awesome: {{ options: {json.dumps(options, ensure_ascii=False)} }} }},",
            f"  variables: {json.dumps(variables or {}, ensure_ascii=False)},",
            "  environments: {",
            *envs,
            "  },",
            "};",
            "",
        ]
    )


REPORT_JOBS = 2
"""Allure processes at once: each is one Node thread; two keep both cores busy."""
NODE_HEAP_MB = 384
"""Each driver's V8 heap limit, so that it collects before growing past it (a part of 500
results was generated within 256). 10,000 results: peak of the tree 1,067 MiB with it, 1,001
and 1,290 MiB in two runs without; ~20 % more CPU (benchmarks/report_scale.py)."""


@dataclass
class _Built:
    part: Part
    seconds: float = 0.0
    point: dict[str, Any] | None = None
    reused_from: str | None = None
    stats: dict[str, int] = field(default_factory=dict)


def generate_allure_report(
    results_dirs: Iterable[Path],
    plan: Plan,
    destination: Path,
    *,
    repo_root: Path | None = None,
    timeout: float = GENERATE_TIMEOUT_S,
    variables: dict[str, str] | None = None,
    history_points: Sequence[dict[str, Any]] | None = None,
    keep_history_point: Callable[[dict[str, Any]], None] | None = None,
    run_id: str = "",
    reuse: Sequence[Path] = (),
    point_of: Callable[[str], dict[str, Any] | None] | None = None,
) -> float:
    """Generate the report in parts (:mod:`rehearsal.report_parts`) from the folders (oldest
    first) into ``destination``: ``<part>/index.html`` per site with results and for the
    region-wide ones, and ``index.html`` linking them with `variables` and each part's counts.

    A part built before from the same inputs, in ``destination`` or in one of the `reuse`
    report folders (the parents' reports), is taken from there instead of generated again.
    Everything is put together in a fresh temporary folder next to the destination (each
    page's analytics stripped and checked for outside loads), then swapped into place.
    Returns the seconds the ``allure generate`` processes took, added up.

    With `history_points` (Allure history points of earlier runs, oldest first) each page
    shows each test's history: they are written to a throw-away history file per part that
    Allure appends the part's point to; the parts' points together (a reused part's entries
    from `point_of` the run it was built for) are handed to `keep_history_point` as this
    run's one point, so the caller decides where it lives and nothing is appended twice.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    central_name = text_for(plan)["central"]
    every = parts(plan, central_name)
    dirs = [Path(d).resolve() for d in results_dirs if Path(d).is_dir()]
    clock = [time.perf_counter()]

    def took(what: str) -> None:  # where a region's report spends its time (logged at INFO)
        now = time.perf_counter()
        log.info("allure report: %s %.1f s", what, now - clock[0])
        clock[0] = now

    inputs = collect(dirs, plan, central_part(plan))
    took("sorting results into parts")
    work = Path(tempfile.mkdtemp(prefix=".allure-report-", dir=destination.parent))
    try:
        report = work / "report"  # new and empty: Allure 3 must never write over an old report
        report.mkdir()
        built: list[_Built] = []
        todo: list[tuple[_Built, PartInputs, str]] = []
        command: list[str] | None = None
        for part in every:
            part_inputs = inputs.get(part.id)
            if part_inputs is None or not part_inputs.results:
                continue
            settings = allure_config(plan, Path("-"), part=part)
            digest = part_inputs.digest(build_key(settings, _allure_version(repo_root)))
            entry = _Built(part)
            found = reusable([destination, *reuse], part.id, digest)
            if found is not None:
                copy_tree(found, report / part.id)
                entry.reused_from = built_from(found).get("run") or None
            else:
                command = command or allure_command(repo_root)
                todo.append((entry, part_inputs, digest))
            built.append(entry)
        if command is not None:
            jobs = [_prepare_part(plan, e, i, d, work, history_points, run_id) for e, i, d in todo]
            took(f"staging {len(jobs)} part(s)")
            _run_allure(command, jobs, work, timeout, repo_root)
            took("allure")
            for job in jobs:
                _finish_part(plan, job, report, history_points)
            took("stripping analytics and checking for outside loads")
        for entry in built:
            entry.stats = _stats(report / entry.part.id)
        if history_points is not None and keep_history_point is not None:
            point = _run_point(plan, built, point_of)
            if point is not None:
                keep_history_point(point)
        write_atomic(report / "index.html", _index_page(plan, built, variables))
        write_atomic(report / "summary.json", json.dumps(_summary(plan, built), indent=2, ensure_ascii=False))
        old = work / "previous"
        if destination.exists():
            os.replace(destination, old)
        os.replace(report, destination)
        return sum(e.seconds for e in built)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class _Job:
    """One part on its way through Allure: staged inputs, config, output folder."""

    entry: _Built
    digest: str
    run_id: str
    base: Path
    staged: Path
    config: Path
    out: Path
    size: int
    history_file: Path | None = None


def _prepare_part(
    plan: Plan,
    entry: _Built,
    inputs: PartInputs,
    digest: str,
    work: Path,
    history_points: Sequence[dict[str, Any]] | None,
    run_id: str,
) -> _Job:
    """Stage the part's inputs (evidence beside) and write its config and history file."""
    part = entry.part
    base = (work / "parts" / part.id).resolve()
    job = _Job(
        entry,
        digest,
        run_id,
        base,
        base / "results",
        base / "allurerc.mjs",
        base / "report",
        len(inputs.results),
    )
    stage(inputs, job.staged, base / EVIDENCE_DIR)
    if history_points is not None:
        job.history_file = base / "history.jsonl"
        job.history_file.write_text(
            "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in history_points), encoding="utf-8"
        )
    job.config.write_text(allure_config(plan, job.out, None, job.history_file, part=part), encoding="utf-8")
    return job


def _run_allure(
    command: list[str], jobs: Sequence[_Job], work: Path, timeout: float, repo_root: Path | None
) -> None:
    """Generate every job's part: the parts shared out over :data:`REPORT_JOBS` Node processes
    (``allure_parts.mjs``: Allure loaded once per process), or one ``allure generate`` per
    part where Allure's core module is not where the driver expects it."""
    core = _allure_core(repo_root)
    if core is None:
        groups = [[job] for job in jobs]
    else:
        groups = [[] for _ in range(min(REPORT_JOBS, len(jobs)))]
        for job in sorted(jobs, key=lambda j: -j.size):  # biggest first, each to the lightest process
            min(groups, key=lambda g: sum(j.size for j in g)).append(job)
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true", "NO_COLOR": "1", "FORCE_COLOR": "0"}

    def run(index: int, group: list[_Job]) -> None:
        if core is None:
            job = group[0]
            args = [
                *command,
                "generate",
                "--config",
                str(job.config),
                "--output",
                str(job.out),
                str(job.staged),
            ]
        else:
            listing = work / f"jobs-{index}.json"
            listing.write_text(
                json.dumps(
                    [
                        {
                            "part": j.entry.part.id,
                            "cwd": str(j.base),
                            "config": str(j.config),
                            "output": str(j.out),
                            "results": str(j.staged),
                        }  # fmt: skip
                        for j in group
                    ]
                ),
                encoding="utf-8",
            )
            driver = str(Path(__file__).with_name("allure_parts.mjs"))
            args = [command[0], f"--max-old-space-size={NODE_HEAP_MB}", driver, str(core), str(listing)]
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                args, cwd=group[0].base, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            names = ", ".join(j.entry.part.id for j in group)
            raise RehearsalError(f"allure generate did not finish within {timeout:.0f} s ({names})") from None
        seconds = time.perf_counter() - started
        done = {}
        for line in proc.stdout.splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = json.loads(line)
                done[record["done"]] = float(record["seconds"])
        for job in group:
            job.entry.seconds = done.get(job.entry.part.id, seconds / len(group))
        missing = [j for j in group if not (j.out / "index.html").is_file()]
        if proc.returncode != 0 or missing:
            last = next((ln for ln in reversed((proc.stderr or proc.stdout).splitlines()) if ln.strip()), "")
            where = missing[0].entry.part.id if missing else group[0].entry.part.id
            raise RehearsalError(
                f"allure generate failed for {where} (exit {proc.returncode}): {last.strip()[:300]}"
            )

    with ThreadPoolExecutor(max_workers=REPORT_JOBS) as pool:
        for future in [pool.submit(run, i, g) for i, g in enumerate(groups)]:
            future.result()


def _allure_core(repo_root: Path | None) -> Path | None:
    """Allure's core module beside the installed ``allure`` package (what allure_parts.mjs loads)."""
    cli = allure_cli(repo_root)
    if cli is None:
        return None
    for modules in (cli.parent / "node_modules", cli.parent.parent):
        core = modules / "@allurereport" / "core" / "dist" / "index.js"
        if core.is_file():
            return core
    return None


def _finish_part(
    plan: Plan, job: _Job, report: Path, history_points: Sequence[dict[str, Any]] | None
) -> None:
    """Strip the page's analytics, refuse it if it would load from outside, put the evidence
    beside it, record what it was built from, and move it into the report."""
    index = job.out / "index.html"
    cleaned = strip_analytics(index.read_bytes())
    leaks = external_loads(cleaned)
    if leaks:
        raise RehearsalError(f"{index}: report would load from outside ({leaks[0][:120]}); not published")
    index.write_bytes(cleaned)
    del cleaned
    evidence = job.base / EVIDENCE_DIR
    if evidence.is_dir():
        os.replace(evidence, job.out / EVIDENCE_DIR)
    name = _part_env_name(plan, job.entry.part)
    (job.out / INPUTS_FILE).write_text(
        json.dumps({"digest": job.digest, "run": job.run_id, "environment": name}), encoding="utf-8"
    )
    if job.history_file is not None:
        job.entry.point = _new_point(job.history_file, len(history_points or ()))
    os.replace(job.out, report / job.entry.part.id)


def _part_env_name(plan: Plan, part: Part) -> str:
    """The Allure environment name the part's tests carry (as :func:`allure_config` names it)."""
    names: set[str] = set()
    for site in plan.sites:
        name = _env_name(site.name, site.id, names)
        if site.id == part.site:
            return name
    return _env_name(text_for(plan)["central"], part.id, names)


def _new_point(history_file: Path, before: int) -> dict[str, Any] | None:
    """The one point Allure appended; anything else means Allure changed: log, carry on."""
    lines = [ln for ln in history_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(lines) != before + 1:
        log.warning("allure history: expected %d points, found %d; not kept", before + 1, len(lines))
        return None
    try:
        point = json.loads(lines[-1])
    except ValueError:
        log.warning("allure history: the new point is not JSON; not kept")
        return None
    return point if isinstance(point, dict) else None


def _run_point(
    plan: Plan, built: Sequence[_Built], point_of: Callable[[str], dict[str, Any] | None] | None
) -> dict[str, Any] | None:
    """This run's one Allure history point: the new parts' points together, and for a reused
    part its tests' entries in the point of the run it was built for."""
    points = [e.point for e in built if e.point]
    if not points:
        return None
    merged = dict(points[0])
    results: dict[str, Any] = {}
    known: list[Any] = []
    for point in points:
        results.update(point.get("testResults") or {})
        known += [k for k in point.get("knownTestCaseIds") or [] if k not in known]
    for entry in built:
        if entry.reused_from and point_of is not None:
            earlier = point_of(entry.reused_from) or {}
            name = _part_env_name(plan, entry.part)
            for key, value in (earlier.get("testResults") or {}).items():
                if isinstance(value, dict) and value.get("environment") == name:
                    results.setdefault(key, value)
    merged["testResults"], merged["knownTestCaseIds"] = results, known
    return merged


def _stats(folder: Path) -> dict[str, int]:
    try:
        stats = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("stats", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: v for k, v in stats.items() if isinstance(v, int)} if isinstance(stats, dict) else {}


def _summary(plan: Plan, built: Sequence[_Built]) -> dict[str, Any]:
    total: dict[str, int] = {}
    for entry in built:
        for key, value in entry.stats.items():
            total[key] = total.get(key, 0) + value
    return {
        "name": plan.title,
        "stats": total,
        "parts": {
            e.part.id: {"name": e.part.name, "stats": e.stats, "reused_from": e.reused_from} for e in built
        },
    }


def _index_page(plan: Plan, built: Sequence[_Built], variables: dict[str, str] | None) -> str:
    t = INDEX_TEXT.get(plan.language, INDEX_TEXT["en"])
    rows = [
        {
            "href": f"{e.part.id}/index.html",
            "name": e.part.name,
            "hsa_id": e.part.hsa_id or "",
            "stats": [
                (t["statuses"][s], e.stats.get(s, 0)) for s in ("passed", "failed", "broken", "skipped")
            ],
            "total": e.stats.get("total", 0),
            "reused_from": e.reused_from,
        }
        for e in built
    ]
    return templating.render(
        "allure_index.html", lang=plan.language, title=plan.title, t=t, variables=variables or {}, rows=rows
    )


INDEX_TEXT: dict[str, dict[str, Any]] = {
    "sv": {
        "heading": "Allure-rapporter per plats",
        "intro": "En rapport per plats (och en för det regionövergripande), så att varje sida går att öppna.",
        "part": "Plats",
        "total": "Tester",
        "built": "Byggd",
        "now": "nu",
        "reused": "oförändrad sedan körning {run}",
        "none": "Inga resultat att visa.",
        "statuses": {
            "passed": "godkända",
            "failed": "underkända",
            "broken": "trasiga",
            "skipped": "överhoppade",
        },
    },
    "en": {
        "heading": "Allure reports per site",
        "intro": "One report per site (and one for the region-wide results), so that every page opens.",
        "part": "Site",
        "total": "Tests",
        "built": "Built",
        "now": "now",
        "reused": "unchanged since run {run}",
        "none": "No results to show.",
        "statuses": {"passed": "passed", "failed": "failed", "broken": "broken", "skipped": "skipped"},
    },
}


def _allure_version(repo_root: Path | None) -> str:
    """The installed Allure's version (a new Allure builds every part again), or "" when absent."""
    cli = allure_cli(repo_root)
    if cli is None:
        return ""
    try:
        return str(json.loads((cli.parent / "package.json").read_text(encoding="utf-8")).get("version", ""))
    except (OSError, ValueError):
        return ""


def _allure_roots(repo_root: Path | None) -> list[Path]:
    package_root = Path(rehearsal.__file__).resolve().parents[2]
    here = [content.root(), package_root, Path.cwd(), *Path.cwd().parents]  # the installed copy: npm ci there
    return [repo_root] if repo_root else list(dict.fromkeys(here))


def allure_cli(repo_root: Path | None = None) -> Path | None:
    """``…/node_modules/allure/cli.js`` of the first root that has it."""
    return next(
        (
            r / "node_modules" / "allure" / "cli.js"
            for r in _allure_roots(repo_root)
            if (r / "node_modules/allure/cli.js").is_file()
        ),
        None,
    )


def allure_command(repo_root: Path | None = None) -> list[str]:
    """``[node, …/node_modules/allure/cli.js]`` or UsageError naming the install command."""
    roots = _allure_roots(repo_root)
    cli = allure_cli(repo_root)
    where = repo_root or next((r for r in roots if (r / "package.json").is_file()), Path.cwd())
    install = f"run `npm ci` in {where} (needs Node.js ≥ {NODE_MIN_MAJOR})"
    if cli is None:
        raise UsageError(f"Allure 3 is not installed (no node_modules/allure in {where}): {install}")
    node = shutil.which("node")
    if node is None:
        raise UsageError(f"Node.js is not on PATH, so the Allure report cannot be generated: {install}")
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=15
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"{node} --version failed ({exc}): {install}") from None
    match = re.match(r"v(\d+)", version)
    if not match or int(match.group(1)) < NODE_MIN_MAJOR:
        raise UsageError(
            f"{node} is {version or 'unknown'}; Allure 3 needs Node.js ≥ {NODE_MIN_MAJOR}: {install}"
        )
    return [node, str(cli)]


# The page is scanned as bytes, lowercased once (ASCII only, so every offset stays the same): a
# case-insensitive pattern cannot skip ahead to its first character, and a 40 MB page as a str
# is decoded, lowercased and copied again for each step (a page of 500 results: 1.4 s → 0.3 s).
_SCRIPT_OPEN = re.compile(rb"<script\b[^>]*>")
_EXTERNAL_SRC = re.compile(rb"""\bsrc\s*=\s*["']?\s*(?:https?:)?//""")
# Each starts with a literal found by bytes.find (fast), then matched there: Python's regular
# expressions scan an alternation character by character, ~0.3 s a pattern over a 40 MB page.
# Patterns with characters outside base64, so they never match inside the embedded data.
_ANALYTICS = (
    (b"gtag", re.compile(rb"gtag\s*\(")),
    (b"window.datalayer", re.compile(rb"window\.datalayer")),
    (b"googletagmanager.com", re.compile(rb"googletagmanager\.com")),
    (b"google-analytics.com", re.compile(rb"google-analytics\.com")),
)
_LOADING_TAG = re.compile(
    rb"""<(?:script|link|img|iframe|frame|embed|source|audio|video|object|track|input)\b[^>]*?"""
    rb"""\b(?:src|href|data|srcset|poster)\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]*"""
)
_CSS_URL = (
    (b"@import", re.compile(rb"""@import\s+["']?\s*(?:https?:)?//[^"')\s]*""")),
    (b"url(", re.compile(rb"""url\(\s*["']?\s*(?:https?:)?//[^"')\s]*""")),
)
_CHARSET = re.compile(rb"<meta\s+charset=[^>]*>")
_HEAD = re.compile(rb"<head\b[^>]*>")


def _at_each(
    low: bytes, literal: bytes, pattern: re.Pattern[bytes], start: int = 0, end: int | None = None
) -> Iterator[re.Match[bytes]]:
    """The matches of ``pattern`` at each place ``literal`` (its first characters) is found."""
    end = len(low) if end is None else end
    at = low.find(literal, start, end)
    while at >= 0:
        if found := pattern.match(low, at, end):
            yield found
        at = low.find(literal, at + 1, end)


def _analytics(low: bytes, start: int, end: int) -> bool:
    """A tag-manager call or host in ``low[start:end]`` (the data script is most of the page)."""
    return any(next(_at_each(low, word, pattern, start, end), None) for word, pattern in _ANALYTICS)


def _script_end(low: bytes, start: int) -> int | None:
    """Where the ``</script>`` closing the script whose content starts at `start` ends (with the
    whitespace after it), or None when it is never closed."""
    at = low.find(b"</script", start)
    close = low.find(b">", at + 8) if at >= 0 else -1
    if close < 0:
        return None
    end = close + 1
    while end < len(low) and low[end : end + 1].isspace():
        end += 1
    return end


def strip_analytics(page: bytes) -> bytes:
    """Remove the tag-manager scripts Allure embeds and forbid network loads with a CSP.

    Script by script with plain substring searches: the page of a site is tens of MB, almost
    all of it one data script, which a regular expression over the whole page crawled through."""
    low = page.lower()
    kept: list[bytes] = []
    pos = 0
    while (opening := _SCRIPT_OPEN.search(low, pos)) is not None:
        end = _script_end(low, opening.end())
        if end is None:
            break
        kept.append(page[pos : opening.start()])
        if not (_EXTERNAL_SRC.search(opening.group(0)) or _analytics(low, opening.start(), end)):
            kept.append(page[opening.start() : end])
        pos = end
    kept.append(page[pos:])
    page = b"".join(kept)
    if b"Content-Security-Policy" not in page:
        low = page.lower()
        found = _CHARSET.search(low) or _HEAD.search(low)
        at = found.end() if found else 0
        csp = f'<meta http-equiv="Content-Security-Policy" content="{ALLURE_CSP}">'.encode()
        page = page[:at] + b"\n    " + csp + page[at:]
    return page


def external_loads(page: bytes) -> list[str]:
    """Every tag attribute or CSS url() in the page that would fetch from another host (lowercased)."""
    low = page.lower()
    found = [*_LOADING_TAG.finditer(low), *(m for word, css in _CSS_URL for m in _at_each(low, word, css))]
    return [m.group(0).decode("utf-8", "replace") for m in found]


# --- helpers -----------------------------------------------------------------------------------


def _env_name(name: str, env_id: str, taken: set[str]) -> str:
    """Allure environment names: ≤ 64 chars, no slashes or control characters, unique."""
    clean = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", name).replace("/", "-").replace("\\", "-").strip() or env_id
    clean = clean[:64].strip()
    if clean in taken or clean in (".", ".."):
        clean = f"{clean[: 60 - len(env_id)]} ({env_id})"
    taken.add(clean)
    return clean


def _write(path: Path, text: str) -> None:
    write_atomic(path, text)  # the old file stays whole and no temporary is left when the disk refuses
