"""gonogo.{json,md,html} and the Allure 3 report of a run chain (a single-file page per site), end to end."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rehearsal.errors import UsageError
from rehearsal.pack import allure_link
from rehearsal.plan import LoadedPlan, load_plan
from rehearsal.report import (
    allure_config,
    allure_result_id,
    build_report,
    external_loads,
    generate_allure_report,
    strip_analytics,
)
from rehearsal.report_parts import INPUTS_FILE, build_key, collect, part_of, parts, stage
from rehearsal.run import Run, create_run, finish_run

pytestmark = pytest.mark.filterwarnings("ignore::rehearsal.results.ResultWarning")

ROOT = Path(__file__).resolve().parents[1]
HAVE_ALLURE = (ROOT / "node_modules" / "allure" / "cli.js").is_file() and shutil.which("node") is not None
needs_allure = pytest.mark.skipif(not HAVE_ALLURE, reason="Allure 3 not installed (npm ci)")

# A src/href that would make the browser fetch from another host.
OUTSIDE = re.compile(r"""\b(?:src|href|srcset|data|poster)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def add_result(
    run: Run,
    name: str,
    status: str,
    stop: int,
    *,
    criterion: str,
    aspect: str = "teknisk",
    site: str | None = None,
    device: str | None = None,
    message: str = "",
    attachment: str | None = None,
) -> str:
    """Write one allure-pytest style result into the run's allure-results; returns its uuid."""
    uid = str(uuid.uuid4())
    labels = {
        "aspect": aspect,
        "criterion": criterion,
        "rehearsal": run.rehearsal,
        "run": run.id,
        "nodeid": f"tests/t.py::{name}",
    }
    params = []
    if site:
        labels["site"] = site
        params.append({"name": "site", "value": site})
    if device:
        labels["device"] = device
        params.append({"name": "device", "value": device})
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


@pytest.fixture
def loaded() -> LoadedPlan:
    return load_plan(ROOT / "plans" / "demo.yaml")


@pytest.fixture
def chain_with_rerun(tmp_path: Path, loaded: LoadedPlan) -> Callable[[], tuple[Run, dict[str, str]]]:
    """A first run where lab ordering fails at NÄL and a printer is out of paper at Borås, then a
    rerun of the lab order that passes. Returns the rerun and the uuids by role."""

    def make() -> tuple[Run, dict[str, str]]:
        reports = tmp_path / "reports"
        first = create_run(reports, loaded)
        t = 1_795_000_000_000
        ids: dict[str, str] = {}
        for site in ("sas-boras", "nal-trollhattan"):
            add_result(
                first,
                "Kommandocentralen bemannad",
                "passed",
                t,
                criterion="org-roster",
                aspect="organisatorisk",
                site=site,
            )
            status = "failed" if site == "nal-trollhattan" else "passed"
            uid = add_result(
                first,
                "Labbeställning",
                status,
                t,
                criterion="clin-lab-order",
                aspect="klinisk",
                site=site,
                message="knappen Skicka syntes inte",
            )
            if status == "failed":
                ids["lab_failed"] = uid
        ids["printer"] = add_result(
            first,
            "Skrivare redo",
            "failed",
            t,
            criterion="tech-printers",
            site="sas-boras",
            device="sas-akut-dok1",
            message="printer-state-reasons: media-empty",
            attachment="printer-state: 5 stopped\nmedia-empty",
        )
        add_result(
            first,
            "Skrivare redo",
            "passed",
            t,
            criterion="tech-printers",
            site="nal-trollhattan",
            device="nal-lab-dok1",
        )
        add_result(first, "FHIR patientsökning", "passed", t, criterion="tech-fhir")
        add_result(first, "p95 patientsökning", "passed", t, criterion="load-slo")
        (first.results_dir / "ffffffff-truncated-result.json").write_text('{"name": "half', encoding="utf-8")
        first = finish_run(first, complete=True)
        rerun = create_run(reports, loaded, parent=first, selection=["tests/t.py::Labbeställning"])
        ids["lab_passed"] = add_result(
            rerun,
            "Labbeställning",
            "passed",
            t + 60_000,
            criterion="clin-lab-order",
            aspect="klinisk",
            site="nal-trollhattan",
        )
        return finish_run(rerun, complete=True), ids

    return make


def embedded_data(index: Path) -> dict[str, Any]:
    """The JSON files Allure 3 embeds (base64) in a single-file report, by name."""
    page = index.read_text(encoding="utf-8")
    out = {}
    for name, value in re.findall(r'd\("([^"]+\.json)","([^"]*)"\)', page):
        out[name] = json.loads(base64.b64decode(value))
    return out


# --- fast: pieces -------------------------------------------------------------------------------

ALLURE_HEAD = """<!DOCTYPE html><html><head>
    <meta charset="utf-8">
    <title>x</title>
    <script>window.allureReportOptions = {"reportName":"x"}</script>
</head><body><div id="app"></div>
    <script src="data:text/javascript;base64,Z3RhZyhiYXNlNjQp"></script>
    <script async src="https://www.googletagmanager.com/gtag/js?id=G-LNDJ3J7WT0"></script>
    <script>
        window.dataLayer = window.dataLayer || [];
        function gtag(){dataLayer.push(arguments);}
        gtag('js', new Date());
    </script>
    <script defer>Promise.allSettled([d("widgets/x.json","eyJ4IjoxfQ==")])</script>
</body></html>"""


def test_strip_analytics_removes_tag_manager_and_adds_a_no_network_csp() -> None:
    assert external_loads(ALLURE_HEAD.encode())  # the check sees the tag manager script
    page = strip_analytics(ALLURE_HEAD.encode()).decode()
    assert "googletagmanager" not in page and "gtag(" not in page and "dataLayer" not in page
    assert external_loads(page.encode()) == []
    assert "data:text/javascript;base64,Z3RhZyhiYXNlNjQp" in page  # the app bundle stays
    assert 'd("widgets/x.json"' in page and "allureReportOptions" in page
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp and "default-src 'none'" in csp.group(1) and "connect-src data: blob:" in csp.group(1)
    assert page.index("Content-Security-Policy") < page.index("<script")
    assert strip_analytics(page.encode()).decode() == page  # idempotent


def test_external_loads_sees_links_images_and_css_imports() -> None:
    assert external_loads(b'<link rel="stylesheet" href="https://fonts.example/x.css">')
    assert external_loads(b"<img src=//cdn.example/a.png>")
    assert external_loads(b"<style>@import 'https://x.example/a.css';</style>")
    assert external_loads(b'<div style="background:url(HTTP://X.example/a.png)"></div>')
    assert not external_loads(b'<a href="https://allurereport.org">Allure</a>')  # a link, not a load
    assert not external_loads(
        b'<link rel="icon" href="data:image/svg+xml,xmlns=\'http://www.w3.org/2000/svg\'">'
    )


def test_allure_config_has_one_environment_per_site_plus_central(loaded: LoadedPlan, tmp_path: Path) -> None:
    text = allure_config(loaded.plan, tmp_path / "out", {"Körning": "r1"})
    assert text.count("matcher:") == 3
    assert '"sas-boras": { name: "Södra Älvsborgs Sjukhus, Borås"' in text
    assert '"nal-trollhattan": { name: "NÄL, Trollhättan"' in text
    assert '"central": { name: "Regionen (central)"' in text
    assert '"reportLanguage": "sv"' in text and '"singleFile": true' in text
    assert f"name: {json.dumps(loaded.plan.title, ensure_ascii=False)}" in text
    assert "import " not in text  # a plain object: nothing to resolve from the temp folder


def test_allure_config_of_a_part_has_only_its_own_environment(loaded: LoadedPlan, tmp_path: Path) -> None:
    central, sas = parts(loaded.plan, "Regionen (central)")[-1], parts(loaded.plan, "x")[0]
    text = allure_config(loaded.plan, tmp_path / "out", part=sas)
    assert text.count("matcher:") == 1 and '"sas-boras": { name: "Södra Älvsborgs Sjukhus, Borås"' in text
    assert f'"reportName": "{loaded.plan.title} – Södra Älvsborgs Sjukhus, Borås"' in text
    text = allure_config(loaded.plan, tmp_path / "out", part=central)
    assert text.count("matcher:") == 1 and '"central": { name: "Regionen (central)"' in text


# --- fast: the report in parts (rehearsal.report_parts) ---------------------------------------------


def test_results_are_sorted_into_their_sites_part_and_containers_follow_their_tests(
    chain_with_rerun: Callable[[], tuple[Run, dict[str, str]]], loaded: LoadedPlan
) -> None:
    rerun, ids = chain_with_rerun()
    first = rerun.dir.parent / str(rerun.parent)
    container = {"uuid": str(uuid.uuid4()), "children": [ids["printer"], ids["lab_failed"]], "befores": []}
    (first / "allure-results" / f"{container['uuid']}-container.json").write_text(json.dumps(container))
    dirs = [first / "allure-results", rerun.results_dir]
    found = collect(dirs, loaded.plan, "central")
    assert sorted(found) == ["central", "nal-trollhattan", "sas-boras"]
    assert [len(found[p].results) for p in ("sas-boras", "nal-trollhattan", "central")] == [3, 4, 2]
    assert rerun.results_dir / f"{ids['lab_passed']}-result.json" in found["nal-trollhattan"].results
    assert [c.name for c in found["sas-boras"].containers] == [f"{container['uuid']}-container.json"]
    assert found["sas-boras"].containers == found["nal-trollhattan"].containers  # in both parts
    assert not found["central"].containers
    assert part_of("nowhere", ["sas-boras"], "central") == "central" == part_of(None, [], "central")


def test_large_attachments_are_kept_beside_the_page_and_named_in_it(
    chain_with_rerun: Callable[[], tuple[Run, dict[str, str]]], loaded: LoadedPlan, tmp_path: Path
) -> None:
    rerun, ids = chain_with_rerun()
    first = rerun.dir.parent / str(rerun.parent) / "allure-results"
    result_file = first / f"{ids['printer']}-result.json"
    data = json.loads(result_file.read_text(encoding="utf-8"))
    small = data["attachments"][0]["source"]
    (first / "big-attachment.html").write_bytes(b"x" * 2000)
    data["attachments"].append(
        {"name": "Locust-rapport", "source": "big-attachment.html", "type": "text/html"}
    )
    result_file.write_text(json.dumps(data), encoding="utf-8")
    inputs = collect([first], loaded.plan, "central")["sas-boras"]
    moved = stage(inputs, tmp_path / "staged", tmp_path / "evidence", inline_max=1000)
    assert moved == 1
    assert (tmp_path / "evidence" / "big-attachment.html").stat().st_ino == (
        first / "big-attachment.html"
    ).stat().st_ino
    assert (tmp_path / "staged" / "big-attachment.html.uri").read_text() == "evidence/big-attachment.html\n"
    assert not (tmp_path / "staged" / "big-attachment.html").exists()
    assert (tmp_path / "staged" / small).stat().st_ino == (first / small).stat().st_ino  # small: embedded
    staged = json.loads((tmp_path / "staged" / result_file.name).read_text(encoding="utf-8"))
    assert staged["attachments"][1] == {
        "name": "Locust-rapport (evidence/big-attachment.html, 0.0 MB)",
        "source": "big-attachment.html.uri",
        "type": "text/uri-list",
    }
    # a result without a large attachment is the same file, not a copy
    other = next(p for p in inputs.results if p != result_file)
    assert (tmp_path / "staged" / other.name).stat().st_ino == other.stat().st_ino


def test_a_page_embeds_its_smallest_attachments_within_its_budget(
    chain_with_rerun: Callable[[], tuple[Run, dict[str, str]]], loaded: LoadedPlan, tmp_path: Path
) -> None:
    rerun, ids = chain_with_rerun()
    first = rerun.dir.parent / str(rerun.parent) / "allure-results"
    result_file = first / f"{ids['printer']}-result.json"
    data = json.loads(result_file.read_text(encoding="utf-8"))
    for name, size in (("a-attachment.png", 300), ("b-attachment.png", 500)):
        (first / name).write_bytes(b"p" * size)
        data["attachments"].append({"name": f"Skärmbild {name}", "source": name, "type": "image/png"})
    result_file.write_text(json.dumps(data), encoding="utf-8")
    small = data["attachments"][0]["source"]  # the IPP answer, 36 bytes
    inputs = collect([first], loaded.plan, "central")["sas-boras"]
    assert stage(inputs, tmp_path / "staged", tmp_path / "evidence", budget=400) == 1
    assert (tmp_path / "staged" / small).is_file() and (tmp_path / "staged" / "a-attachment.png").is_file()
    assert [p.name for p in (tmp_path / "evidence").iterdir()] == ["b-attachment.png"]
    staged = json.loads((tmp_path / "staged" / result_file.name).read_text(encoding="utf-8"))
    assert [a["source"] for a in staged["attachments"]] == [small, "a-attachment.png", "b-attachment.png.uri"]


def test_a_part_built_from_the_same_inputs_is_reused_and_a_changed_one_is_built_again(
    chain_with_rerun: Callable[[], tuple[Run, dict[str, str]]], loaded: LoadedPlan, tmp_path: Path
) -> None:
    """Reuse needs no Allure at all (repo_root without node_modules): only a changed part asks for it."""
    rerun, ids = chain_with_rerun()
    first = rerun.dir.parent / str(rerun.parent)
    dirs = [first / "allure-results", rerun.results_dir]
    earlier = tmp_path / "earlier-report"
    for part in parts(loaded.plan, "Regionen (central)"):
        digest = collect(dirs, loaded.plan, "central")[part.id].digest(
            build_key(allure_config(loaded.plan, Path("-"), part=part), "")
        )
        (earlier / part.id).mkdir(parents=True)
        (earlier / part.id / "index.html").write_text(f"<html>{part.id}</html>", encoding="utf-8")
        (earlier / part.id / "summary.json").write_text('{"stats": {"total": 2, "passed": 1, "failed": 1}}')
        (earlier / part.id / INPUTS_FILE).write_text(json.dumps({"digest": digest, "run": str(rerun.parent)}))
    destination = rerun.dir / "allure-report"
    generate_allure_report(
        dirs, loaded.plan, destination, repo_root=tmp_path, reuse=[earlier], run_id=rerun.id
    )
    assert (destination / "sas-boras" / "index.html").read_text(encoding="utf-8") == "<html>sas-boras</html>"
    landing = (destination / "index.html").read_text(encoding="utf-8")
    assert f"oförändrad sedan körning {rerun.parent}" in landing and 'href="central/index.html"' in landing
    summary = json.loads((destination / "summary.json").read_text(encoding="utf-8"))
    assert summary["stats"] == {"total": 6, "passed": 3, "failed": 3}
    assert summary["parts"]["nal-trollhattan"]["reused_from"] == rerun.parent

    # one more result at one site: that part must be built again, so Allure is asked for
    add_result(
        rerun, "Skrivare redo", "passed", 1_795_000_100_000, criterion="tech-printers", site="sas-boras"
    )
    with pytest.raises(UsageError, match="Allure 3 is not installed"):
        generate_allure_report(dirs, loaded.plan, destination, repo_root=tmp_path, reuse=[earlier])
    assert (destination / "index.html").read_text(encoding="utf-8") == landing  # the old report stays
    assert not list(rerun.dir.glob(".allure-report-*"))


def test_evidence_links_open_the_results_own_part(loaded: LoadedPlan) -> None:
    from rehearsal.results import TestResult

    def result(site: str | None) -> TestResult:
        labels = {"site": site} if site else {}
        return TestResult(
            uuid="u1", history_id="h", name="n", full_name="f", nodeid="x", status="failed", labels=labels
        )

    digest = hashlib.md5(b"u1").hexdigest()
    assert (
        allure_link(result("nal-trollhattan"), loaded.plan)
        == f"allure-report/nal-trollhattan/index.html#/{digest}"
    )
    assert allure_link(result(None), loaded.plan) == f"allure-report/central/index.html#/{digest}"
    assert allure_link(result("elsewhere"), loaded.plan) == f"allure-report/central/index.html#/{digest}"


def test_allure_result_id_is_md5_of_uuid() -> None:
    from rehearsal.results import TestResult

    r = TestResult(
        uuid="dfe4b08f-880d-4fde-9879-24d0aa363d5e",
        history_id="h",
        name="n",
        full_name="",
        nodeid="",
        status="passed",
    )
    assert allure_result_id(r) == "92091e6b5d68c57ce9073c8c67b01d8e"  # as seen in an Allure 3.18 report


def test_gonogo_files_are_written_even_when_node_is_missing(
    chain_with_rerun: Callable[[], tuple[Run, dict[str, str]]],
    loaded: LoadedPlan,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rerun, ids = chain_with_rerun()
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    with pytest.raises(UsageError, match=r"npm ci") as caught:
        build_report(rerun, loaded.plan)
    assert "\n" not in str(caught.value)
    for name in ("gonogo.json", "gonogo.md", "gonogo.html"):
        assert (rerun.dir / name).is_file(), name
    assert not (rerun.dir / "allure-report").exists()


def test_missing_allure_package_names_npm_ci(
    chain_with_rerun: Callable[[], tuple[Run, dict[str, str]]], loaded: LoadedPlan, tmp_path: Path
) -> None:
    rerun, _ = chain_with_rerun()
    with pytest.raises(UsageError, match=r"no node_modules/allure in .*: run `npm ci` in"):
        build_report(rerun, loaded.plan, repo_root=tmp_path)
    assert json.loads((rerun.dir / "gonogo.json").read_text(encoding="utf-8"))["decision"] == "NO-GO"


def test_gonogo_html_and_md_name_the_failure_and_stay_offline(
    chain_with_rerun: Callable[[], tuple[Run, dict[str, str]]], loaded: LoadedPlan, tmp_path: Path
) -> None:
    rerun, ids = chain_with_rerun()
    with pytest.raises(UsageError):
        build_report(rerun, loaded.plan, repo_root=tmp_path)  # no Allure: only the gonogo files
    page = (rerun.dir / "gonogo.html").read_text(encoding="utf-8")
    assert '<html lang="sv">' in page
    assert re.search(r'<div class="word">NO-GO</div>', page)
    assert loaded.plan.title in page
    assert rerun.id in page and rerun.parent and rerun.parent in page
    assert not OUTSIDE.search(page) and "<script" not in page
    assert "default-src 'none'" in page
    # scorecard: every site and central, with counts
    for name in ("Södra Älvsborgs Sjukhus, Borås", "NÄL, Trollhättan", "Regionen (central)"):
        assert name in page
    # the failing printer: site, printer, message, a link into Allure and to the raw evidence
    failed = page[page.index("Blockerande fynd") : page.index('id="waivers"')]
    assert "Dokumentskrivare redo per plats</strong> – Södra Älvsborgs Sjukhus, Borås" in failed
    assert "sas-akut-dok1" in failed and "media-empty" in failed
    assert "Johan Ek" not in failed and "Karin Berg" in failed  # owner: the site's first role (beslut)
    assert f"allure-report/sas-boras/index.html#/{hashlib.md5(ids['printer'].encode()).hexdigest()}" in failed
    # the printer failed in the first run: its attachment is linked in that run's folder
    link = re.search(r"href='(\.\./[^']+/allure-results/[^']+-attachment\.txt)'", failed)
    assert link and "media-empty" in (rerun.dir / link.group(1)).read_text(encoding="utf-8")
    # the lab order passed on rerun: not among the failures
    assert "Labbeställning fungerar" not in failed
    md = (rerun.dir / "gonogo.md").read_text(encoding="utf-8")
    assert md.startswith("# NO-GO – Generalrepetition GR1")
    assert "sas-akut-dok1" in md and "Södra Älvsborgs Sjukhus, Borås" in md
    assert "1 efter omkörning" in md


# --- slow: Allure 3 end to end ------------------------------------------------------------------


@pytest.mark.slow
@needs_allure
def test_build_report_end_to_end(
    chain_with_rerun: Callable[[], tuple[Run, dict[str, str]]], loaded: LoadedPlan
) -> None:
    rerun, ids = chain_with_rerun()
    with pytest.warns(UserWarning, match="truncated-result.json"):
        decision = build_report(rerun, loaded.plan)
    assert decision.decision == "NO-GO"

    data = json.loads((rerun.dir / "gonogo.json").read_text(encoding="utf-8"))
    assert {k: data[k] for k in decision.to_json()} == json.loads(json.dumps(decision.to_json()))
    assert data["chain"] == [rerun.parent, rerun.id] and data["changes"]["reason"] == "parent"
    assert (data["run"], data["parent"], data["complete"]) == (rerun.id, rerun.parent, True)
    by_key = {(c["id"], c["site"]): c for c in data["criteria"]}
    assert by_key[("clin-lab-order", "nal-trollhattan")]["status"] == "pass"  # fixed by the rerun
    printer = by_key[("tech-printers", "sas-boras")]
    assert printer["status"] == "fail" and "sas-akut-dok1" in printer["evidence"]
    assert [c["status"] for c in data["criteria"]].count("fail") == 1

    index = rerun.dir / "allure-report" / "index.html"  # the parts, linked, with the run's values
    landing = index.read_text(encoding="utf-8")
    assert "NO-GO" in landing and rerun.id in landing and "Content-Security-Policy" in landing
    assert 'href="sas-boras/index.html"' in landing and 'href="nal-trollhattan/index.html"' in landing
    pages = {p.parent.name: p for p in index.parent.glob("*/index.html")}
    assert set(pages) <= {"sas-boras", "nal-trollhattan", "central"} and "sas-boras" in pages
    for page_file in pages.values():
        page = page_file.read_text(encoding="utf-8")
        for host in ("googletagmanager", "google-analytics", "gtag(", "window.dataLayer"):
            assert host not in page
        tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", page)
        assert tags and not [t for t in tags if OUTSIDE.search(t)]
        assert "Content-Security-Policy" in page
        options = re.search(r"window\.allureReportOptions = (\{.*?\})\s*$", page, re.M)
        assert options and json.loads(options.group(1))["reportLanguage"] == "sv"
        assert json.loads(options.group(1))["reportName"].startswith(loaded.plan.title + " – ")

    sas, nal = embedded_data(pages["sas-boras"]), embedded_data(pages["nal-trollhattan"])
    sas_envs = {e["id"]: e["name"] for e in sas["widgets/environments.json"]}
    nal_envs = {e["id"]: e["name"] for e in nal["widgets/environments.json"]}
    assert sas_envs["sas-boras"] == "Södra Älvsborgs Sjukhus, Borås" and "nal-trollhattan" not in sas_envs
    assert nal_envs["nal-trollhattan"] == "NÄL, Trollhättan" and "sas-boras" not in nal_envs
    assert sas["widgets/sas-boras/variables.json"]["HSA-id"] == "SE2321000131-E000000000101"
    # the rerun's pass is the result; the first run's failure is its retry
    embedded = {**sas, **nal}
    lab = embedded[f"data/test-results/{hashlib.md5(ids['lab_passed'].encode()).hexdigest()}.json"]
    assert lab["status"] == "passed" and lab["environment"] == "NÄL, Trollhättan"
    assert [(r["status"], r["id"]) for r in lab["retries"]] == [
        ("failed", hashlib.md5(ids["lab_failed"].encode()).hexdigest())
    ]
    printer_tr = embedded[f"data/test-results/{hashlib.md5(ids['printer'].encode()).hexdigest()}.json"]
    assert printer_tr["status"] == "failed" and printer_tr["environment"] == "Södra Älvsborgs Sjukhus, Borås"
    summary = json.loads((rerun.dir / "allure-report" / "summary.json").read_text(encoding="utf-8"))
    assert summary["stats"]["retries"] == 1 and summary["name"] == loaded.plan.title

    # a second report replaces the first cleanly and leaves no temporary folders behind
    (index.parent / "stale.txt").write_text("old", encoding="utf-8")
    with pytest.warns(UserWarning):
        build_report(rerun, loaded.plan)
    assert index.is_file() and not (index.parent / "stale.txt").exists()
    assert not list(rerun.dir.glob(".allure-report-*"))


@pytest.mark.slow
@needs_allure
def test_allure_report_makes_no_outside_request_in_a_browser(
    chain_with_rerun: Callable[[], tuple[Run, dict[str, str]]], loaded: LoadedPlan
) -> None:
    """Open both pages from file:// in Chromium and record every request they make."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("no Chromium")
    rerun, ids = chain_with_rerun()
    with pytest.warns(UserWarning):
        build_report(rerun, loaded.plan)
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost"],
        )
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto((rerun.dir / "gonogo.html").as_uri())
            page.locator("article.finding").get_by_role("link", name="Skrivare redo").first.click()
            page.get_by_text("printer-state-reasons: media-empty").first.wait_for(timeout=15_000)
        finally:
            browser.close()
    outside = [u for u in requests if not u.startswith(("file:", "data:", "blob:"))]
    assert outside == []
    assert any(re.search(r"/allure-report/[a-z0-9-]+/index\.html$", u) for u in requests)


# What a target may send back, shown in a failure: a patient name, a printer message.
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.mark.slow
@needs_allure
def test_text_from_the_target_is_shown_never_run(tmp_path: Path, loaded: LoadedPlan) -> None:
    """A patient name like ``<script>…`` in a failure is text on both pages, and nothing runs."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("no Chromium")
    run = create_run(tmp_path / "reports", loaded)
    message = f"19121212-1212: namnet är {HOSTILE!r}, väntat 'Tolvan Tolvansson'"
    uid = add_result(
        run,
        "Testpatienter finns",
        "failed",
        1_795_000_000_000,
        criterion="tech-fhir",
        message=message,
        attachment=f"name: {HOSTILE}",
    )
    run = finish_run(run, complete=True)
    build_report(run, loaded.plan)
    gonogo = (run.dir / "gonogo.html").read_text(encoding="utf-8")
    assert HOSTILE not in gonogo and "&lt;script&gt;window.__pwned" in gonogo

    requests: list[str] = []
    dialogs: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        try:
            context = browser.new_context()
            context.route(
                "**/*",
                lambda route: (
                    route.abort()
                    if not route.request.url.startswith(("file:", "data:", "blob:"))
                    else route.continue_()
                ),
            )
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto((run.dir / "gonogo.html").as_uri())
            page.get_by_text("window.__pwned = 1", exact=False).first.wait_for(timeout=15_000)
            assert page.evaluate("window.__pwned") is None
            allure_index = (run.dir / "allure-report" / "central" / "index.html").as_uri()  # no site
            page.goto(f"{allure_index}#/{hashlib.md5(uid.encode()).hexdigest()}")
            page.get_by_text("window.__pwned = 1", exact=False).first.wait_for(timeout=15_000)
            page.wait_for_timeout(500)  # give an injected handler its chance to run
            assert page.evaluate("window.__pwned") is None
        finally:
            browser.close()
    assert dialogs == []
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
    assert not [u for u in requests if u.endswith("/x")]  # the injected <img> was never an element
