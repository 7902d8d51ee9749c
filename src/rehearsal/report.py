"""The report of one run chain: ``gonogo.{json,md,html}`` and the Allure 3 single-file report.

:func:`build_report` merges the allure-results of every run in the chain (a rerun's result
beats its parent's, the earlier one stays as a retry), takes the go/no-go decision and
writes, in the newest run's folder:

- ``gonogo.json``  the decision for machines (shape: :meth:`rehearsal.gonogo.Decision.to_json`);
- ``gonogo.md``    the same as text for e-mail and chat;
- ``gonogo.html``  one self-contained page for the command centre, in the plan's language;
- ``allure-report/index.html``  Allure 3 (awesome, single file), one environment per site.

A hospital report must not call out: Allure 3.18 always embeds Google Tag Manager, so the
analytics scripts are stripped, a Content-Security-Policy that allows no network source is
added, and the result is checked for any remaining outside load before it is published.
The go/no-go files are written first, so a missing Node/Allure never costs the decision.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template

import rehearsal
from rehearsal.errors import RehearsalError, UsageError
from rehearsal.gonogo import CENTRAL, Decision, Line, decide
from rehearsal.plan import ASPECTS, Plan
from rehearsal.results import TestResult, merge
from rehearsal.run import Run, chain

log = logging.getLogger(__name__)

ALLURE_DIR = "allure-report"
NODE_MIN_MAJOR = 20
GENERATE_TIMEOUT_S = 600.0

#: Allows inline scripts/styles and data:/blob: URLs only: the page cannot load or send anything.
ALLURE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval' data: blob:; "
    "style-src 'unsafe-inline' data: blob:; img-src data: blob:; font-src data:; media-src data: blob:; "
    "connect-src data: blob:; frame-src data: blob:; worker-src data: blob:; form-action 'none'"
)

_TEXT = {
    "sv": {
        "decision": "Go/no-go-beslut",
        "summary": "{passed} av {total} kriterier godkända · {failed} underkända · {pending} väntar",
        "rehearsal": "Repetition",
        "run": "Körning",
        "parent": "Omkörning av",
        "chain": "Sammanslagna körningar",
        "complete": "Komplett",
        "yes": "ja",
        "no": "nej – körningen avbröts eller pågår",
        "generated": "Skapad",
        "scorecard": "Resultat per plats och aspekt",
        "site": "Plats",
        "criteria": "Kriterier",
        "criterion": "Kriterium",
        "aspect": "Aspekt",
        "status": "Status",
        "details": "Detaljer",
        "failed_heading": "Underkända kriterier",
        "failing_tests": "Underkända tester",
        "open_allure": "öppna i Allure-rapporten",
        "attachments": "bilagor",
        "retries": "{n} tidigare försök",
        "device": "enhet",
        "full_report": "Fullständig Allure-rapport",
        "central": "Regionen (central)",
        "region": "hela regionen",
        "counts": {"passed": "godk.", "failed": "underk.", "broken": "trasiga", "skipped": "överh."},
        "none": "–",
        "status_names": {"pass": "Godkänd", "fail": "Underkänd", "pending": "Väntar", "waived": "Undantagen"},
        "aspects": {"organisatorisk": "Organisatorisk", "klinisk": "Klinisk", "teknisk": "Teknisk"},
        "pending_heading": "Väntar på resultat",
        "footer": "golive-rehearsal · beslutet är GO bara när varje rad är godkänd; "
        "saknade resultat räknas aldrig som godkända.",
    },
    "en": {
        "decision": "Go/no-go decision",
        "summary": "{passed} of {total} criteria passed · {failed} failed · {pending} pending",
        "rehearsal": "Rehearsal",
        "run": "Run",
        "parent": "Rerun of",
        "chain": "Merged runs",
        "complete": "Complete",
        "yes": "yes",
        "no": "no – the run was interrupted or is still running",
        "generated": "Generated",
        "scorecard": "Results by site and aspect",
        "site": "Site",
        "criteria": "Criteria",
        "criterion": "Criterion",
        "aspect": "Aspect",
        "status": "Status",
        "details": "Details",
        "failed_heading": "Failed criteria",
        "failing_tests": "Failing tests",
        "open_allure": "open in the Allure report",
        "attachments": "attachments",
        "retries": "{n} earlier attempt(s)",
        "device": "device",
        "full_report": "Full Allure report",
        "central": "Region-wide (central)",
        "region": "whole region",
        "counts": {"passed": "passed", "failed": "failed", "broken": "broken", "skipped": "skipped"},
        "none": "–",
        "status_names": {"pass": "Pass", "fail": "Fail", "pending": "Pending", "waived": "Waived"},
        "aspects": {"organisatorisk": "Organisational", "klinisk": "Clinical", "teknisk": "Technical"},
        "pending_heading": "Waiting for results",
        "footer": "golive-rehearsal · GO only when every line passes; "
        "a missing result never counts as a pass.",
    },
}


def build_report(
    run: Run, plan: Plan, *, repo_root: Path | None = None, timeout: float = GENERATE_TIMEOUT_S
) -> Decision:
    """Merge the chain's results, decide, write gonogo.{json,md,html}, then the Allure report.

    Raises UsageError (after the gonogo files are written) when Node.js ≥ 20 or the allure
    package is missing, naming the command that installs it.
    """
    runs = chain(run)
    dirs = [r.results_dir for r in runs]
    merged = merge(dirs)
    decision = decide(
        plan, merged, complete=run.complete, rehearsal=run.rehearsal, run=run.id, parent=run.parent
    )
    write_gonogo(decision, plan, run, runs)
    t = _text(plan)
    variables = {
        t["rehearsal"]: run.rehearsal,
        t["run"]: run.id,
        t["chain"]: " → ".join(r.id for r in runs),
        t["complete"]: t["yes"] if run.complete else t["no"],
        "Go/no-go": decision.decision,
    }
    seconds = generate_allure_report(
        dirs, plan, run.dir / ALLURE_DIR, repo_root=repo_root, timeout=timeout, variables=variables
    )
    log.info("allure generate: %.1f s for %d result folder(s)", seconds, len(dirs))
    return decision


def write_gonogo(decision: Decision, plan: Plan, run: Run, runs: Sequence[Run] = ()) -> None:
    """Write gonogo.json, gonogo.md and gonogo.html into the run folder (each atomically)."""
    _write(run.dir / "gonogo.json", json.dumps(decision.to_json(), indent=2, ensure_ascii=False) + "\n")
    _write(run.dir / "gonogo.md", render_markdown(decision, plan))
    _write(run.dir / "gonogo.html", render_html(decision, plan, run.dir, [r.id for r in runs]))


# --- text for e-mail and chat -------------------------------------------------------------------


def render_markdown(decision: Decision, plan: Plan) -> str:
    """Plain Markdown that reads well pasted into an e-mail or a chat channel."""
    t = _text(plan)
    names = t["status_names"]
    out = [
        f"# {decision.decision} – {plan.title}",
        "",
        f"**{t['decision']}: {decision.decision}** · " + _summary(decision, t),
        "",
        f"- {t['rehearsal']}: `{decision.rehearsal}`",
        f"- {t['run']}: `{decision.run}`"
        + (f" ({t['parent'].lower()} `{decision.parent}`)" if decision.parent else ""),
        f"- {t['complete']}: {t['yes'] if decision.complete else t['no']}",
        "",
    ]
    failed = decision.failed()
    if failed:
        out += [f"## {t['failed_heading']}", ""]
        for line in failed:
            out.append(f"- **{line.title}** (`{line.id}`, {_site_name(plan, line.site, t)}): {line.details}")
            out += [f"  - {item}" for item in line.evidence]
        out.append("")
    pending = [line for line in decision.criteria if line.status == "pending"]
    if pending:
        out += [f"## {t['pending_heading']}", ""]
        out += [f"- {line.title} (`{line.id}`, {_site_name(plan, line.site, t)})" for line in pending]
        out.append("")
    out += [
        f"## {t['criteria']}",
        "",
        f"| {t['status']} | {t['criterion']} | {t['site']} | {t['details']} |",
        "|---|---|---|---|",
    ]
    for line in decision.criteria:
        out.append(
            f"| {names.get(line.status, line.status)} | {_md_cell(line.title)} (`{line.id}`) "
            f"| {_md_cell(_site_name(plan, line.site, t))} | {_md_cell(line.details)} |"
        )
    out += ["", f"{t['full_report']}: `{ALLURE_DIR}/index.html` · `gonogo.html`", ""]
    return "\n".join(out)


# --- the one-page decision ----------------------------------------------------------------------


def render_html(decision: Decision, plan: Plan, run_dir: Path, run_ids: Sequence[str] = ()) -> str:
    """One self-contained page (inline CSS, no scripts, no outside requests) in the plan's language."""
    t = _text(plan)
    e = html.escape
    template = Template(_resource("gonogo.html"))
    meta_rows = [
        (t["rehearsal"], e(decision.rehearsal)),
        (t["run"], e(decision.run)),
        (t["parent"], e(decision.parent) if decision.parent else t["none"]),
        (t["complete"], t["yes"] if decision.complete else f"<strong>{e(t['no'])}</strong>"),
    ]
    if len(run_ids) > 1:
        meta_rows.append((t["chain"], " → ".join(e(i) for i in run_ids)))
    meta_rows.append((t["generated"], e(datetime.now(UTC).isoformat(timespec="seconds"))))
    meta_rows.append(("Allure", f'<a href="{ALLURE_DIR}/index.html">{e(t["full_report"])}</a>'))
    meta = '<dl class="meta">' + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in meta_rows) + "</dl>"
    return template.substitute(
        lang=e(plan.language),
        title=e(plan.title),
        css=_resource("gonogo.css"),
        decision=e(decision.decision),
        decision_label=e(t["decision"]),
        verdict_class="go" if decision.go else "nogo",
        summary=e(_summary(decision, t)),
        meta=meta,
        scorecard_heading=e(t["scorecard"]),
        scorecard=_scorecard_html(decision, plan, t),
        criteria_heading=e(t["criteria"]),
        criteria=_criteria_html(decision, plan, t),
        failed=_failed_html(decision, plan, run_dir, t),
        footer=e(t["footer"]),
    )


def _scorecard_html(decision: Decision, plan: Plan, t: dict) -> str:
    e = html.escape
    aspects = list(ASPECTS) + sorted({a for cells in decision.sites.values() for a in cells} - set(ASPECTS))
    head = "".join(f"<th>{e(t['aspects'].get(a, a))}</th>" for a in aspects)
    rows = []
    for site_id, cells in decision.sites.items():
        tds = []
        for aspect in aspects:
            counts = cells.get(aspect, {})
            tds.append(_count_cell(counts, t))
        label = f"{e(_site_name(plan, site_id, t))} <span class='id muted'>{e(site_id)}</span>"
        rows.append(f"<tr><th scope='row'>{label}</th>{''.join(tds)}</tr>")
    return (
        f"<table class='scorecard'><thead><tr><th>{e(t['site'])}</th>{head}</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _count_cell(counts: dict[str, int], t: dict) -> str:
    total = sum(counts.values())
    bad = counts.get("failed", 0) + counts.get("broken", 0)
    if total == 0:
        return f"<td class='cell empty'>{t['none']}</td>"
    klass = "bad" if bad else ("ok" if counts.get("passed", 0) else "only-skipped")
    parts = [f"{n} {html.escape(t['counts'][k])}" for k, n in counts.items() if n and k in t["counts"]]
    return f"<td class='cell {klass}'>{' · '.join(parts)}</td>"


def _criteria_html(decision: Decision, plan: Plan, t: dict) -> str:
    e = html.escape
    head = "".join(f"<th>{e(t[k])}</th>" for k in ("status", "criterion", "site", "aspect", "details"))
    rows = []
    for line in decision.criteria:
        status = t["status_names"].get(line.status, line.status)
        badge = f"<span class='badge {e(line.status)}'>{e(status)}</span>"
        title = f"{e(line.title)}<br><span class='id muted'>{e(line.id)}</span>"
        anchor = f" id='{_anchor(line)}'" if line.status == "fail" else ""
        aspect = e(t["aspects"].get(line.aspect or "", line.aspect or t["none"]))
        rows.append(
            f"<tr class='{e(line.status)}'{anchor}><td>{badge}</td><td>{title}</td>"
            f"<td>{e(_site_name(plan, line.site, t))}</td><td>{aspect}</td><td>{e(line.details)}</td></tr>"
        )
    return f"<table class='criteria'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _failed_html(decision: Decision, plan: Plan, run_dir: Path, t: dict) -> str:
    e = html.escape
    failed = decision.failed()
    if not failed:
        return ""
    blocks = [f"<h2>{e(t['failed_heading'])}</h2>"]
    for line in failed:
        items = []
        for result in line.failures:
            items.append(_failure_item(result, run_dir, t))
        listed = {r.name for r in line.failures}
        items += [f"<li>{e(x)}</li>" for x in line.evidence if x not in listed and not _is_device(x, line)]
        devices = [x for x in line.evidence if _is_device(x, line)]
        device_note = (
            f"<p><strong>{e(t['device'])}:</strong> {', '.join(f'<code>{e(d)}</code>' for d in devices)}</p>"
            if devices
            else ""
        )
        blocks.append(
            f"<section class='failure'><h3>{e(line.title)} – {e(_site_name(plan, line.site, t))}</h3>"
            f"<div class='id muted'>{e(line.id)}</div><p class='details'>{e(line.details)}</p>{device_note}"
            f"<strong>{e(t['failing_tests'])}</strong><ul>{''.join(items)}</ul></section>"
        )
    return "\n".join(blocks)


def _failure_item(result: TestResult, run_dir: Path, t: dict) -> str:
    e = html.escape
    link = f"{ALLURE_DIR}/index.html#/{allure_result_id(result)}"
    where = " · ".join(x for x in (result.site, result.device) if x)
    parts = [f"<a href='{e(link)}'>{e(result.name)}</a>"]
    if where:
        parts.append(f" <span class='muted'>({e(where)})</span>")
    parts.append(f" – <a href='{e(link)}'>{e(t['open_allure'])}</a>")
    if result.message.strip():
        parts.append(f"<pre class='message'>{e(_clip(result.message.strip(), 1200))}</pre>")
    if result.attachments:
        links = []
        for name, source in result.attachments:
            rel = os.path.relpath(result.results_dir / source, run_dir)
            links.append(f"<a href='{e(Path(rel).as_posix())}'>{e(name)}</a>")
        parts.append(f"<div>{e(t['attachments'])}: {', '.join(links)}</div>")
    return f"<li>{''.join(parts)}</li>"


def _is_device(value: str, line: Line) -> bool:
    return line.kind == "device_readiness" and any(r.device == value for r in line.failures)


def _anchor(line: Line) -> str:
    return html.escape(f"fail-{line.id}-{line.site or 'region'}")


# --- Allure 3 ----------------------------------------------------------------------------------


def allure_result_id(result: TestResult) -> str:
    """The id Allure 3 gives a result (md5 of its uuid): ``index.html#/<id>`` opens it."""
    return hashlib.md5(result.uuid.encode("utf-8")).hexdigest()  # noqa: S324 - an id, not security


def allure_config(plan: Plan, output: Path, variables: dict[str, str] | None = None) -> str:
    """An ``allurerc.mjs`` exporting a plain object: one environment per site plus ``central``.

    Results are matched on their ``site`` label; anything without a plan site (region-wide,
    or a site the plan does not know) lands in the central environment, so nothing is hidden.
    """
    t = _text(plan)
    site_ids = [s.id for s in plan.sites]
    central = CENTRAL if CENTRAL not in site_ids else "central-region"
    names: set[str] = set()
    envs = []
    for site in plan.sites:
        name = _env_name(site.name, site.id, names)
        envs.append(
            f"    {json.dumps(site.id)}: {{ name: {json.dumps(name, ensure_ascii=False)}, "
            f"variables: {json.dumps({'HSA-id': site.hsa_id}, ensure_ascii=False)}, "
            f"matcher: onSite({json.dumps(site.id)}) }},"
        )
    central_name = json.dumps(_env_name(t["central"], central, names), ensure_ascii=False)
    envs.append(
        f"    {json.dumps(central)}: {{ name: {central_name}, "
        'matcher: ({ labels }) => !labels.some((l) => l.name === "site" && SITES.includes(l.value)) },'
    )
    options = {"singleFile": True, "reportLanguage": plan.language, "reportName": plan.title}
    return "\n".join(
        [
            "// Written by rehearsal.report for one report; regenerated every time (do not edit).",
            f"const SITES = {json.dumps(site_ids)};",
            'const onSite = (id) => ({ labels }) => labels.some((l) => l.name === "site" && l.value === id);',
            "export default {",
            f"  name: {json.dumps(plan.title, ensure_ascii=False)},",
            f"  output: {json.dumps(str(output))},",
            f"  plugins: {{ awesome: {{ options: {json.dumps(options, ensure_ascii=False)} }} }},",
            f"  variables: {json.dumps(variables or {}, ensure_ascii=False)},",
            "  environments: {",
            *envs,
            "  },",
            "};",
            "",
        ]
    )


def generate_allure_report(
    results_dirs: Iterable[Path],
    plan: Plan,
    destination: Path,
    *,
    repo_root: Path | None = None,
    timeout: float = GENERATE_TIMEOUT_S,
    variables: dict[str, str] | None = None,
) -> float:
    """Generate the single-file report from the folders (oldest first) into ``destination``.

    Generates into a fresh temporary folder next to the destination, strips the analytics,
    checks that nothing outside is loaded, then swaps it into place. Returns the seconds
    ``allure generate`` took.
    """
    command = allure_command(repo_root)
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".allure-report-", dir=destination.parent))
    try:
        out = work / "report"  # new and empty: Allure 3 must never write over an old report
        dirs = [str(Path(d).resolve()) for d in results_dirs if Path(d).is_dir()]
        if not dirs:
            (work / "no-results").mkdir()
            dirs = [str(work / "no-results")]
        config = work / "allurerc.mjs"
        config.write_text(allure_config(plan, out.resolve(), variables), encoding="utf-8")
        env = {**os.environ, "ALLURE_NO_ANALYTICS": "true", "NO_COLOR": "1", "FORCE_COLOR": "0"}
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [*command, "generate", "--config", str(config), "--output", str(out.resolve()), *dirs],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RehearsalError(
                f"allure generate did not finish within {timeout:.0f} s ({destination})"
            ) from None
        seconds = time.perf_counter() - started
        index = out / "index.html"
        if proc.returncode != 0 or not index.is_file():
            last = next((ln for ln in reversed((proc.stderr or proc.stdout).splitlines()) if ln.strip()), "")
            raise RehearsalError(f"allure generate failed (exit {proc.returncode}): {last.strip()[:300]}")
        cleaned = strip_analytics(index.read_text(encoding="utf-8"))
        leaks = external_loads(cleaned)
        if leaks:
            raise RehearsalError(f"{index}: report would load from outside ({leaks[0][:120]}); not published")
        index.write_text(cleaned, encoding="utf-8")
        old = work / "previous"
        if destination.exists():
            os.replace(destination, old)
        os.replace(out, destination)
        return seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def allure_command(repo_root: Path | None = None) -> list[str]:
    """``[node, …/node_modules/allure/cli.js]`` or UsageError naming the install command."""
    package_root = Path(rehearsal.__file__).resolve().parents[2]
    roots = [repo_root] if repo_root else [package_root, Path.cwd(), *Path.cwd().parents]
    cli = next(
        (
            r / "node_modules" / "allure" / "cli.js"
            for r in roots
            if (r / "node_modules/allure/cli.js").is_file()
        ),
        None,
    )
    where = repo_root or (package_root if (package_root / "package.json").is_file() else Path.cwd())
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


_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>\s*", re.S | re.I)
_EXTERNAL_SRC = re.compile(r"""\bsrc\s*=\s*["']?\s*(?:https?:)?//""", re.I)
# Patterns with characters outside base64, so they never match inside the embedded data.
_ANALYTICS = re.compile(r"gtag\s*\(|window\.dataLayer|googletagmanager\.com|google-analytics\.com", re.I)
_LOADING_TAG = re.compile(
    r"""<(?:script|link|img|iframe|frame|embed|source|audio|video|object|track|input)\b[^>]*?"""
    r"""\b(?:src|href|data|srcset|poster)\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]*""",
    re.I,
)
_CSS_URL = re.compile(r"""(?:@import\s+|url\(\s*)["']?\s*(?:https?:)?//[^"')\s]*""", re.I)


def strip_analytics(page: str) -> str:
    """Remove the tag-manager scripts Allure embeds and forbid network loads with a CSP."""

    def keep(match: re.Match[str]) -> str:
        tag = match.group(0)
        opening = tag[: tag.find(">") + 1]
        if _EXTERNAL_SRC.search(opening) or _ANALYTICS.search(tag):
            return ""
        return tag

    page = _SCRIPT.sub(keep, page)
    csp = f'<meta http-equiv="Content-Security-Policy" content="{ALLURE_CSP}">'
    if "Content-Security-Policy" not in page:
        charset = re.search(r"<meta\s+charset=[^>]*>", page, re.I)
        head = re.search(r"<head\b[^>]*>", page, re.I)
        at = charset.end() if charset else (head.end() if head else 0)
        page = page[:at] + "\n    " + csp + page[at:]
    return page


def external_loads(page: str) -> list[str]:
    """Every tag attribute or CSS url() in the page that would fetch from another host."""
    return [m.group(0) for m in _LOADING_TAG.finditer(page)] + [m.group(0) for m in _CSS_URL.finditer(page)]


# --- helpers -----------------------------------------------------------------------------------


def _text(plan: Plan) -> dict:
    return _TEXT.get(plan.language, _TEXT["en"])


def _summary(decision: Decision, t: dict) -> str:
    statuses = [line.status for line in decision.criteria]
    return t["summary"].format(
        passed=statuses.count("pass"),
        total=len(statuses),
        failed=statuses.count("fail"),
        pending=statuses.count("pending"),
    )


def _site_name(plan: Plan, site_id: str | None, t: dict) -> str:
    if site_id is None:
        return t["region"]
    if site_id == CENTRAL and all(s.id != CENTRAL for s in plan.sites):
        return t["central"]
    return next((s.name for s in plan.sites if s.id == site_id), site_id)


def _env_name(name: str, env_id: str, taken: set[str]) -> str:
    """Allure environment names: ≤ 64 chars, no slashes or control characters, unique."""
    clean = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", name).replace("/", "-").replace("\\", "-").strip() or env_id
    clean = clean[:64].strip()
    if clean in taken or clean in (".", ".."):
        clean = f"{clean[: 60 - len(env_id)]} ({env_id})"
    taken.add(clean)
    return clean


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def _resource(name: str) -> str:
    return resources.files("rehearsal").joinpath("templates", name).read_text(encoding="utf-8")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
