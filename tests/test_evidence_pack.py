"""The go/no-go panel's evidence pack across a wave: trend, what changed, waivers, the printed page.

Runs are real run folders (rehearsal.run.create_run) with hand-made allure-pytest style
results, so a whole wave (GR1, its rerun, GR2) takes a fraction of a second without the
reference hospital. The slow tests add the Allure 3 report with its history and open the
page in Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from rehearsal.errors import UsageError
from rehearsal.history import RUNS_FILE, WaveHistory
from rehearsal.pack import EvidencePack
from rehearsal.plan import LoadedPlan, Plan, load_plan
from rehearsal.report import build_evidence, build_report
from rehearsal.run import Run, create_run, finish_run

pytestmark = pytest.mark.filterwarnings("ignore::rehearsal.results.ResultWarning")

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "plans" / "demo.yaml"
HAVE_ALLURE = (ROOT / "node_modules" / "allure" / "cli.js").is_file() and shutil.which("node") is not None
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
T0 = 1_795_000_000_000
_clock = itertools.count(1)
TODAY = date(2026, 11, 26)
LAB_NAL = ("clin-lab-order", "nal-trollhattan")
PRINTER_SAS = ("tech-printers", "sas-boras")
ROSTER_NAL = ("org-roster", "nal-trollhattan")
ROSTER_WAIVER = {
    "criterion": "org-roster",
    "site": "nal-trollhattan",
    "reason": "Ersättare för beslutsrollen utsedd muntligen; skriftligt beslut kommer",
    "accepted_by": "Eva Strand",
    "date": "2026-11-25",
    "expiry": "2026-12-10",
}

# --- hand-made results ---------------------------------------------------------------------------

NAMES = {
    "org-roster": "Kommandocentralen bemannad",
    "clin-lab-order": "Labbeställning",
    "tech-printers": "Skrivare redo",
    "tech-fhir": "FHIR patientsökning",
    "load-slo": "p95 patientsökning",
}
MESSAGES = {
    "clin-lab-order": "knappen Skicka syntes inte",
    "tech-printers": "printer-state-reasons: media-empty",
    "org-roster": "rollen beslut är inte bemannad",
}


def add_result(
    run: Run,
    name: str,
    status: str,
    *,
    criterion: str,
    aspect: str,
    site: str | None = None,
    device: str | None = None,
    message: str = "",
    attachment: str | None = None,
) -> str:
    """One allure-pytest style result in the run's allure-results; returns its uuid."""
    uid = str(uuid.uuid4())
    stop = T0 + next(_clock) * 1000
    labels = {"aspect": aspect, "criterion": criterion, "rehearsal": run.rehearsal, "run": run.id}
    params = []
    if site:
        labels["site"] = site
        params.append({"name": "site", "value": site})
    if device:
        labels["device"] = device
        params.append({"name": "device", "value": device})
    labels["nodeid"] = f"tests/t.py::{name}"
    data: dict[str, Any] = {
        "uuid": uid,
        "name": name,
        "fullName": f"tests.t#{name}",
        "historyId": hashlib.md5(f"{name}{params}".encode()).hexdigest(),
        "testCaseId": hashlib.md5(name.encode()).hexdigest(),
        "status": status,
        "start": stop - 100,
        "stop": stop,
        "labels": [{"name": k, "value": v} for k, v in labels.items()],
        "parameters": params,
    }
    if message:
        data["statusDetails"] = {"message": message, "trace": "Traceback …"}
    if attachment:
        source = f"{uuid.uuid4()}-attachment.txt"
        (run.results_dir / source).write_text(attachment, encoding="utf-8")
        data["attachments"] = [{"name": "IPP-svar", "source": source, "type": "text/plain"}]
    (run.results_dir / f"{uid}-result.json").write_text(
        json.dumps(data, ensure_ascii=False), encoding="utf-8"
    )
    return uid


def lines_of(plan: Plan) -> Iterable[tuple[str, str | None, str, str | None]]:
    """(criterion, site, aspect, device) of every line a test feeds (not run_complete/findings)."""
    for c in plan.criteria:
        if c.kind in ("run_complete", "findings"):
            continue
        for site in [s.id for s in plan.sites] if c.per_site else [None]:
            device = None
            if c.kind == "device_readiness":
                where = plan.site(site) if site else plan.sites[0]
                device = where.printers[0].id if where.printers else f"{where.id}-device"
                site = site or where.id
            yield c.id, site, c.aspect or "teknisk", device


def rehearse(
    reports: Path,
    loaded: LoadedPlan,
    failing: set[tuple[str, str | None]] = frozenset(),  # type: ignore[assignment]
    *,
    parent: Run | None = None,
    only: set[tuple[str, str | None]] | None = None,
) -> Run:
    """A finished run: one result per plan line (or only the `only` lines, for a rerun)."""
    run = create_run(reports, loaded, parent=parent)
    for criterion, site, aspect, device in lines_of(loaded.plan):
        if only is not None and (criterion, site) not in only:
            continue
        failed = (criterion, site) in failing
        add_result(
            run,
            NAMES.get(criterion, criterion),
            "failed" if failed else "passed",
            criterion=criterion,
            aspect=aspect,
            site=site,
            device=device,
            message=MESSAGES.get(criterion, "assertion failed") if failed else "",
            attachment="printer-state: 5 stopped\nmedia-empty" if failed and device else None,
        )
    return finish_run(run, complete=True)


# --- reading the page ----------------------------------------------------------------------------


def sparks(page: str) -> dict[tuple[str, str], tuple[list[float | None], list[int]]]:
    """The trend chart: per (site, aspect) the pass rates and open findings, run by run."""
    out = {}
    for site, aspect, rates, opens in re.findall(
        r"<svg class='spark'[^>]*data-site='([^']*)' data-aspect='([^']*)' data-rates='([^']*)' "
        r"data-open='([^']*)'",
        page,
    ):
        out[(site, aspect)] = (
            [float(x) if x else None for x in rates.split(",")],
            [int(x) for x in opens.split(",")],
        )
    return out


def points(page: str) -> list[str]:
    """The trend legend, one text per run: number, label, decision."""
    legend = re.search(r"<ol class='points'>(.*?)</ol>", page, re.S)
    assert legend, "no trend legend"
    return [re.sub(r"<[^>]+>", "", li).strip() for li in re.findall(r"<li[^>]*>(.*?)</li>", legend.group(1))]


def change_list(page: str, kind: str) -> list[str]:
    block = re.search(rf"<div class='change {kind}'>(.*?)</div>", page, re.S)
    if not block:
        return []
    items = re.findall(r"<li[^>]*>(.*?)</li>", block.group(1))
    return [" ".join(re.sub(r"<[^>]+>", " ", li).split()) for li in items]


def section(page: str, start: str, end: str) -> str:
    return page[page.index(start) : page.index(end)]


def page_of(run: Run) -> str:
    return (run.dir / "gonogo.html").read_text(encoding="utf-8")


# --- plans of one wave ---------------------------------------------------------------------------

CORE = ("org-roster", "clin-lab-order", "tech-fhir", "tech-printers", "load-slo", "run-complete")


def core(data: dict[str, Any]) -> None:
    """Only the demo plan's first criteria, so exact rates stay put as the demo plan grows."""
    data["criteria"] = [c for c in data["criteria"] if c["id"] in CORE]
    for c in data["criteria"]:
        if c["id"] == "load-slo":  # the load judged region-wide, as when these rates were set
            c.pop("per_site", None)


@pytest.fixture
def wave(make_plan: Callable[..., Path]) -> tuple[LoadedPlan, LoadedPlan]:
    """GR1 and GR2 of wave `vag-demo`; GR2's plan carries a waiver for the roster at NÄL."""

    def gr1(data: dict[str, Any]) -> None:
        core(data)
        data["wave"] = "vag-demo"

    def gr2(data: dict[str, Any]) -> None:
        core(data)
        data["wave"] = "vag-demo"
        data["rehearsal"] = "demo-gr2"
        data["title"] = "Generalrepetition GR2 – referenssjukhuset"
        data["waivers"] = [ROSTER_WAIVER]

    return load_plan(make_plan(gr1, name="gr1.yaml")), load_plan(make_plan(gr2, name="gr2.yaml"))


def test_a_wave_gr1_rerun_and_gr2_trend_changes_and_decision_at_each_step(
    wave: tuple[LoadedPlan, LoadedPlan], tmp_path: Path
) -> None:
    gr1, gr2 = wave
    reports = tmp_path / "reports"

    # --- GR1: lab ordering fails at NÄL, the document printer at Borås is out of paper
    first = rehearse(reports, gr1, {LAB_NAL, PRINTER_SAS})
    pack = build_evidence(first, gr1.plan, today=TODAY)
    assert (pack.decision.decision, pack.decision.headline) == ("NO-GO", "NO-GO")
    page = page_of(first)
    assert re.search(r'<div class="word">NO-GO</div>', page)
    assert points(page) == ["1 demo-gr1 (denna) NO-GO"]
    trend = sparks(page)
    assert trend[("nal-trollhattan", "klinisk")] == ([0.0], [1])
    assert trend[("sas-boras", "teknisk")] == ([0.0], [1])
    assert trend[("sas-boras", "klinisk")] == ([1.0], [0])
    assert "Första körningen i vågen – inget att jämföra med." in page
    blocking = section(page, ">Blockerande fynd<", 'id="waivers"')
    assert blocking.count("<article class='finding") == 2
    assert "Labbeställning fungerar i webbklienten</strong> – NÄL, Trollhättan" in blocking
    assert "Per Holm" in blocking and "+46 10 435 00 00" in blocking  # NÄL's beslut
    assert "Karin Berg" in blocking and "media-empty" in blocking  # Borås's beslut, the printer's message
    assert pack.changes.against is None

    # --- rerun after fixing the lab order: the printer is still out of paper
    rerun = rehearse(reports, gr1, {PRINTER_SAS}, parent=first, only={LAB_NAL, PRINTER_SAS})
    pack = build_evidence(rerun, gr1.plan, today=TODAY)
    assert pack.decision.decision == "NO-GO"
    assert (pack.changes.against, pack.changes.reason) == (first.id, "parent")
    page = page_of(rerun)
    assert f"Jämfört med demo-gr1 ({first.id}, föräldrakörningen)." in page
    assert change_list(page, "fixed") == ["Labbeställning – NÄL, Trollhättan clin-lab-order"]
    assert change_list(page, "regressed") == [] and "1 fortfarande underkända." in page
    assert points(page) == ["1 demo-gr1 NO-GO", "2 demo-gr1 ↻1 (denna) NO-GO"]
    trend = sparks(page)
    assert trend[("nal-trollhattan", "klinisk")] == ([0.0, 1.0], [1, 0])
    assert trend[("sas-boras", "teknisk")] == ([0.0, 0.0], [1, 1])
    assert section(page, ">Blockerande fynd<", 'id="waivers"').count("<article class='finding") == 1

    # --- GR2: the printer is fixed, the roster at NÄL regressed and the panel waived it
    second = rehearse(reports, gr2, {ROSTER_NAL})
    pack = build_evidence(second, gr2.plan, today=TODAY)
    assert pack.decision.decision == "GO"
    assert pack.decision.headline == "GO med 1 undantag (godkänt av Eva Strand)"
    assert (pack.changes.against, pack.changes.reason) == (rerun.id, "previous")
    page = page_of(second)
    assert re.search(r'<div class="word">GO</div>', page)
    assert "<div class='with'>med 1 undantag (godkänt av Eva Strand)</div>" in page
    assert f"Jämfört med demo-gr1 ↻1 ({rerun.id}, vågens förra körning)." in page
    assert change_list(page, "fixed") == ["Skrivare redo – Södra Älvsborgs Sjukhus, Borås tech-printers"]
    assert change_list(page, "regressed") == ["Kommandocentralen bemannad – NÄL, Trollhättan org-roster"]
    assert points(page) == [
        "1 demo-gr1 NO-GO",
        "2 demo-gr1 ↻1 NO-GO",
        "3 demo-gr2 (denna) GO med 1 undantag (godkänt av Eva Strand)",
    ]
    trend = sparks(page)
    assert trend[("sas-boras", "teknisk")] == ([0.0, 0.0, 1.0], [1, 1, 0])
    assert trend[("nal-trollhattan", "klinisk")] == ([0.0, 1.0, 1.0], [1, 0, 0])
    assert trend[("nal-trollhattan", "organisatorisk")][0][-1] is not None
    assert trend[("nal-trollhattan", "organisatorisk")][1] == [0, 0, 0]  # waived, so not open
    assert "<td class='heat waived'" in page and "Inga blockerande fynd." in page
    waivers = section(page, 'id="waivers"', 'id="trend"')
    assert "Eva Strand" in waivers and "beslutet vilar på det" in waivers and "2026-12-10" in waivers

    md = (second.dir / "gonogo.md").read_text(encoding="utf-8")
    assert md.startswith("# GO med 1 undantag (godkänt av Eva Strand) – Generalrepetition GR2")
    assert "demo-gr1: NO-GO → demo-gr1 ↻1: NO-GO → demo-gr2: GO med 1 undantag" in md
    assert "- Skrivare redo – Södra Älvsborgs Sjukhus, Borås (`tech-printers`)" in md
    assert "**Försämrade (godkänd → underkänd)**" in md
    assert "| Södra Älvsborgs Sjukhus, Borås / Teknisk | 0 % → 0 % → 100 % (1 → 1 → 0 fynd) |" in md
    data = json.loads((second.dir / "gonogo.json").read_text(encoding="utf-8"))
    assert (data["decision"], data["waived"], data["wave"]) == ("GO", 1, "vag-demo")
    assert [p["label"] for p in data["trend"]["points"]] == ["demo-gr1", "demo-gr1 ↻1", "demo-gr2"]
    assert [c["name"] for c in data["changes"]["regressed"]] == ["Kommandocentralen bemannad"]

    # the wave's history: one record per run, however often each is reported
    history = reports / "vag-demo" / "history" / RUNS_FILE
    for _ in range(2):
        build_evidence(second, gr2.plan, today=TODAY)
        build_evidence(first, gr1.plan, today=TODAY)
    assert [json.loads(x)["run"] for x in history.read_text(encoding="utf-8").splitlines()] == [
        first.id,
        rerun.id,
        second.id,
    ]
    assert points(page_of(second)) == points(page)
    # reporting an earlier run again shows the trend up to that run, not what came after
    assert points(page_of(first)) == ["1 demo-gr1 (denna) NO-GO"]


def test_a_waived_critical_failure_on_the_page_and_the_same_waiver_expired(
    make_plan: Callable[..., Path], tmp_path: Path
) -> None:
    def edit(data: dict[str, Any]) -> None:
        core(data)
        data["waivers"] = [{**ROSTER_WAIVER, "criterion": "tech-printers", "site": "sas-boras"}]

    loaded = load_plan(make_plan(edit))
    run = rehearse(tmp_path / "reports", loaded, {PRINTER_SAS})
    pack = build_evidence(run, loaded.plan, today=date(2026, 12, 10))
    assert pack.decision.headline == "GO med 1 undantag (godkänt av Eva Strand)"
    page = page_of(run)
    assert re.search(r'<div class="word">GO</div>', page) and "godkänt av Eva Strand" in page
    assert "<span class='badge waived'>Undantagen</span>" in page
    assert "<tr class='waiver used'>" in page
    data = json.loads((run.dir / "gonogo.json").read_text(encoding="utf-8"))
    assert (data["decision"], data["waived"], data["today"]) == ("GO", 1, "2026-12-10")
    assert data["waivers"][0]["accepted_by"] == "Eva Strand"

    pack = build_evidence(run, loaded.plan, today=date(2026, 12, 11))
    assert (pack.decision.decision, pack.decision.headline) == ("NO-GO", "NO-GO")
    page = page_of(run)
    assert re.search(r'<div class="word">NO-GO</div>', page)
    assert "<tr class='waiver expired'>" in page and "utgånget – räknas inte" in page
    assert "Dokumentskrivare redo per plats</strong> – Södra Älvsborgs Sjukhus, Borås" in page
    data = json.loads((run.dir / "gonogo.json").read_text(encoding="utf-8"))
    assert (data["decision"], data["waived"], data["waivers"][0]["state"]) == ("NO-GO", 0, "expired")
    # the wave's history follows the latest report of the run
    [record] = WaveHistory.of(run, loaded.plan).records()
    assert record["decision"] == "NO-GO" and record["open"]["critical"] == 1


def test_english_pack(make_plan: Callable[..., Path], tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        core(data)
        data["language"] = "en"
        data["waivers"] = [{**ROSTER_WAIVER, "criterion": "tech-printers", "site": "sas-boras"}]

    loaded = load_plan(make_plan(edit))
    run = rehearse(tmp_path / "reports", loaded, {PRINTER_SAS})
    build_evidence(run, loaded.plan, today=TODAY)
    page = page_of(run)
    assert '<html lang="en">' in page and "with 1 waiver (accepted by Eva Strand)" in page
    for heading in (
        "Results by site and aspect",
        "Blocking findings",
        "Waivers",
        "Trend in wave",
        "What changed",
    ):
        assert heading in page
    assert "First run of the wave – nothing to compare with." in page
    md = (run.dir / "gonogo.md").read_text(encoding="utf-8")
    assert md.startswith("# GO with 1 waiver (accepted by Eva Strand)")


def test_compare_with_a_chosen_run(wave: tuple[LoadedPlan, LoadedPlan], tmp_path: Path) -> None:
    gr1, gr2 = wave
    reports = tmp_path / "reports"
    first = rehearse(reports, gr1, {LAB_NAL, PRINTER_SAS})
    build_evidence(first, gr1.plan)
    second = rehearse(reports, gr2, {ROSTER_NAL})
    pack = build_evidence(second, gr2.plan, compare=first.id, today=TODAY)
    assert (pack.changes.against, pack.changes.reason) == (first.id, "given")
    assert [(c.name, c.site) for c in pack.changes.fixed] == [
        ("Labbeställning", "nal-trollhattan"),
        ("Skrivare redo", "sas-boras"),
    ]
    assert [(c.name, c.before, c.after) for c in pack.changes.regressed] == [
        ("Kommandocentralen bemannad", "passed", "failed")
    ]
    with pytest.raises(UsageError, match="that is the run being reported"):
        build_evidence(second, gr2.plan, compare=second.id)
    with pytest.raises(UsageError, match="no-such-run: no such run"):
        build_evidence(second, gr2.plan, compare="no-such-run")


def test_new_failures_and_a_compared_run_missing_from_the_history(
    make_plan: Callable[..., Path], tmp_path: Path
) -> None:
    loaded = load_plan(make_plan())
    reports = tmp_path / "reports"
    first = rehearse(reports, loaded)  # never reported: not in the history
    second = rehearse(reports, loaded)
    add_result(second, "Ny kontroll", "failed", criterion="tech-fhir", aspect="teknisk", message="500")
    pack = build_evidence(second, loaded.plan, compare=str(first.dir))
    assert [c.name for c in pack.changes.new_failures] == ["Ny kontroll"]
    assert change_list(page_of(second), "new_failures") == ["Ny kontroll – hela regionen tech-fhir"]


def test_history_survives_a_torn_line_and_keeps_order(make_plan: Callable[..., Path], tmp_path: Path) -> None:
    loaded = load_plan(make_plan())
    reports = tmp_path / "reports"
    first = rehearse(reports, loaded)
    build_evidence(first, loaded.plan)
    history = WaveHistory.of(first, loaded.plan)
    with open(history.dir / RUNS_FILE, "a", encoding="utf-8") as out:
        out.write('{"run": "half-written')  # a report killed mid-write
    second = rehearse(reports, loaded)
    build_evidence(second, loaded.plan)
    assert [r["run"] for r in history.records()] == [first.id, second.id]
    assert history.previous(second.id)["run"] == first.id  # type: ignore[index]
    assert history.previous(first.id) is None


def test_evidence_pack_json_round_trips(wave: tuple[LoadedPlan, LoadedPlan], tmp_path: Path) -> None:
    gr1, _ = wave
    run = rehearse(tmp_path / "reports", gr1, {LAB_NAL})
    pack = build_evidence(run, gr1.plan)
    assert isinstance(pack, EvidencePack)
    data = json.loads((run.dir / "gonogo.json").read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(pack.to_json(), ensure_ascii=False))
    [finding] = data["findings"]
    assert finding["owner"]["name"] == "Per Holm" and finding["blocking"] is True
    assert finding["items"][0]["name"] == "Labbeställning"


# --- slow: Allure history and the page in a real browser ------------------------------------------


@pytest.fixture(scope="module")
def demo_wave(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedPlan, list[Run]]:
    """The demo plan itself: a run with failures, its rerun, a second full run; all reported
    with the Allure report (built once for the module)."""
    if not HAVE_ALLURE:
        pytest.skip("Allure 3 not installed (npm ci)")
    loaded = load_plan(DEMO)
    reports = tmp_path_factory.mktemp("wave") / "reports"
    first = rehearse(reports, loaded, {LAB_NAL, PRINTER_SAS})
    build_report(first, loaded.plan)
    rerun = rehearse(reports, loaded, {PRINTER_SAS}, parent=first, only={LAB_NAL, PRINTER_SAS})
    build_report(rerun, loaded.plan)
    second = rehearse(reports, loaded, {ROSTER_NAL})
    build_report(second, loaded.plan)
    return loaded, [first, rerun, second]


def embedded(index: Path) -> dict[str, Any]:
    page = index.read_text(encoding="utf-8")
    return {
        name: json.loads(base64.b64decode(value))
        for name, value in re.findall(r'd\("([^"]+\.json)","([^"]*)"\)', page)
    }


def allure_tests(index: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest results in the report by (name, environment)."""
    out = {}
    for name, data in embedded(index).items():
        if name.startswith("data/test-results/") and not data.get("hidden"):
            key = (data["name"], data["environment"])
            if key not in out or data.get("retries"):
                out[key] = data
    return out


@pytest.mark.slow
def test_allure_keeps_the_waves_history_once_per_run(demo_wave: tuple[LoadedPlan, list[Run]]) -> None:
    loaded, (first, rerun, second) = demo_wave
    history = WaveHistory.of(second, loaded.plan)
    assert history.allure_runs() == [first.id, rerun.id, second.id]
    index = second.dir / "allure-report" / "sas-boras" / "index.html"  # one page per site
    before = embedded(index)
    assert len([n for n in before if n.startswith("data/history/")]) == 2  # the two earlier runs
    printer = allure_tests(index)[("Skrivare redo", "Södra Älvsborgs Sjukhus, Borås")]
    assert printer["status"] == "passed" and printer.get("transition") == "fixed"
    assert [h["status"] for h in printer["history"]] == ["failed", "failed"]
    nal = second.dir / "allure-report" / "nal-trollhattan" / "index.html"
    roster = allure_tests(nal)[("Kommandocentralen bemannad", "NÄL, Trollhättan")]
    assert roster["status"] == "failed" and roster.get("transition") == "regressed"

    # reporting the same run again (as `rehearse report` does) adds no point and no duplicate
    for _ in range(2):
        build_report(second, loaded.plan)
    assert history.allure_runs() == [first.id, rerun.id, second.id]
    assert len([r["run"] for r in history.records()]) == 3
    printer = allure_tests(index)[("Skrivare redo", "Södra Älvsborgs Sjukhus, Borås")]
    assert [h["status"] for h in printer["history"]] == ["failed", "failed"]
    # the rerun's report has only its parent as history
    rerun_index = rerun.dir / "allure-report" / "sas-boras" / "index.html"
    assert len([n for n in embedded(rerun_index) if n.startswith("data/history/")]) == 1


@pytest.mark.slow
def test_the_evidence_pack_in_chromium_offline_linked_and_two_a4_pages(
    demo_wave: tuple[LoadedPlan, list[Run]],
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium")
    _, runs = demo_wave
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost"],
        )
        try:
            check_page_in_browser(browser, runs[0], attachment=True)  # GR1: lab order and printer fail
            check_page_in_browser(browser, runs[-1], attachment=False)  # later: three points, changes
        finally:
            browser.close()


def check_page_in_browser(browser: Any, run: Run, *, attachment: bool) -> None:
    page = browser.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("request", lambda r: requests.append(r.url))
    gonogo = run.dir / "gonogo.html"
    page.goto(gonogo.as_uri())
    page.wait_for_load_state("load")
    assert page.locator(".verdict .word").inner_text() in ("GO", "NO-GO")
    assert page.locator("svg.spark").count() > 0
    assert problems == [], problems
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []

    # every link resolves: an anchor on the page, a file, or a test inside the Allure report
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    evidence = [h for h in hrefs if re.match(r"allure-report/[a-z0-9-]+/index\.html#/", h)]
    assert evidence, "no evidence link into the Allure report"
    in_report = {(page_of.parent.name, n.removeprefix("data/test-results/").removesuffix(".json"))
                 for page_of in (run.dir / "allure-report").glob("*/index.html")
                 for n in embedded(page_of) if n.startswith("data/test-results/")}  # fmt: skip
    for href in hrefs:
        parts = urlsplit(href)
        assert not parts.scheme and not parts.netloc, href
        if not parts.path:
            assert page.locator(f"[id='{parts.fragment}']").count() == 1, href
            continue
        target = (run.dir / unquote(parts.path)).resolve()
        assert target.is_file(), href
        if parts.fragment:
            assert target.name == "index.html" and target.parent.parent.name == "allure-report", href
            assert (target.parent.name, parts.fragment.removeprefix("/")) in in_report, href
    assert any(h.endswith("-attachment.txt") for h in hrefs) == attachment  # the printer's IPP answer

    # printed (PDF, A4, the page's own @page rules): the evidence pack is exactly two pages
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))
    assert pages == 2, f"{gonogo}: {pages} printed pages"
    # and an opened evidence link really lands on the test in the Allure report
    link = page.locator("article.finding a[href*='/index.html#/']").first
    name = link.inner_text()
    link.click()
    page.get_by_text(name).first.wait_for(timeout=15_000)
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
    page.close()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_ALLURE, reason="Allure 3 not installed (npm ci)")
def test_rehearse_report_compare_from_the_command_line(
    make_plan: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rehearsal.cli import main

    def gr1_plan(data: dict[str, Any]) -> None:
        core(data)
        data["wave"] = "vag-demo"

    def gr2_plan(data: dict[str, Any]) -> None:  # the CLI judges waivers on the real date
        gr1_plan(data)
        data["rehearsal"] = "demo-gr2"
        data["waivers"] = [{**ROSTER_WAIVER, "date": "2000-01-01", "expiry": "2099-12-31"}]

    gr1 = load_plan(make_plan(gr1_plan, name="gr1.yaml"))
    gr2 = load_plan(make_plan(gr2_plan, name="gr2.yaml"))
    reports = tmp_path / "reports"
    first = rehearse(reports, gr1, {LAB_NAL, PRINTER_SAS})
    second = rehearse(reports, gr2, {ROSTER_NAL})
    assert main(["--reports", str(reports), "report", first.id]) == 1
    assert main(["--reports", str(reports), "report", second.id, "--compare", first.id]) == 0
    out = capsys.readouterr().out
    assert "GO med 1 undantag (godkänt av Eva Strand): demo-gr2 run" in out
    assert "WAIVED  org-roster [nal-trollhattan]" in out
    data = json.loads((second.dir / "gonogo.json").read_text(encoding="utf-8"))
    assert (data["changes"]["against"], data["changes"]["reason"]) == (first.id, "given")
    assert main(["--reports", str(reports), "report", second.id, "--compare", "nope"]) == 2
    assert "rehearse: nope: no such run under" in capsys.readouterr().err
