"""The command-centre console (#15) in Chromium: a running rehearsal's results appear in the grid
within 2 s without a reload; an attestation made in the page is the same record as `rehearse
attest`, flips its pending line, is in gonogo.json at once and counts once the run is repeated; the page makes
no request outside the console; evidence is served from the run folder only; forms come only
from the console's own page."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml

from rehearsal import attest
from tests.console_peer import chromium, console, rehearse

ORG = "organisatorisk"


def test_a_result_the_run_writes_is_in_the_grid_within_two_seconds_without_a_reload(
    make_plan, tmp_path: Path
):
    """Open on a plan with no run yet; a real `rehearse run` starts; each result file lands and the grid
    counts it (a MutationObserver in the page notes when) within 2 s of the file's own time."""
    plan = make_plan()
    reports = tmp_path / "reports"
    with console(reports, "--plan", str(plan)) as con, chromium() as pages:
        assert con.url.startswith("http://127.0.0.1:"), con.first_line
        page = pages.page()
        page.goto(con.url)
        page.get_by_text("Väntar på en körning av").wait_for()
        page.evaluate(
            """() => {
              window.__samePage = true;
              window.__seen = [];
              const count = () => [...document.querySelectorAll('#live-grid td[data-ran]')]
                .reduce((n, td) => n + Number(td.dataset.ran), 0);
              new MutationObserver(() => window.__seen.push([Date.now(), count()]))
                .observe(document.getElementById('live-grid'), {childList: true, subtree: true});
            }"""
        )
        run = subprocess.run(
            [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), "run", "--plan", str(plan),
             "--aspect", ORG],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert run.returncode == 1, run.stdout + run.stderr  # NO-GO: the clinical and technical lines pending
        folder = (reports / "latest").resolve()
        landed = sorted(folder.glob("allure-results/*-result.json"), key=lambda p: p.stat().st_mtime)
        statuses = [json.loads(p.read_text(encoding="utf-8"))["status"] for p in landed]
        assert len(landed) >= 8 and set(statuses) == {"passed"}, statuses  # each one counted in the grid
        page.locator(f"#live-head .meta[data-run='{folder.name}'][data-state='finished']").wait_for()
        seen = page.evaluate("window.__seen")
        assert page.evaluate("window.__samePage") is True  # never reloaded
        for n, path in enumerate(landed, 1):
            shown = [at for at, count in seen if count >= n]
            assert shown, (n, seen)
            delay = shown[0] / 1000 - path.stat().st_mtime
            assert delay < 2.0, f"result {n} ({path.name}) shown {delay:.2f} s after it was written"
        cell = page.locator("#live-grid td[data-site='sas-boras'][data-aspect='organisatorisk']")
        per_site = [
            p for p in landed if {"name": "site", "value": "sas-boras"} in json.loads(p.read_text())["labels"]
        ]
        assert cell.get_attribute("data-ran") == str(len(per_site)) and cell.get_attribute(
            "data-passed"
        ) == str(len(per_site))
        assert page.locator("#live-head").get_attribute("aria-label") == "Beslutet som det står nu"
        assert page.locator("#live-head .verdict").get_attribute("data-decision") == "NO-GO"
        assert pages.outside(con.url) == []


def _without(plan: Path, item: str, site: str) -> None:
    """The plan's attestations file without one item at one site: that step waits for a person."""
    path = plan.with_name(f"{plan.stem}.attestations.yaml")
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    kept = [e for e in entries if not (e["item"] == item and e.get("site") == site)]
    assert len(kept) == len(entries) - 1
    path.write_text(yaml.safe_dump(kept, allow_unicode=True), encoding="utf-8")


def test_an_attestation_made_in_the_page_flips_its_line_is_in_gonogo_and_counts_at_the_rerun(
    make_plan, tmp_path: Path
):
    plan = make_plan(lambda d: d.update(language="en"))  # the page follows the plan's language
    _without(plan, "nedtidsrutin", "sas-boras")
    reports = tmp_path / "reports"
    first = rehearse(reports, "run", "--plan", str(plan), "--aspect", ORG, "--site", "sas-boras")
    assert first.returncode == 1, first.stdout + first.stderr
    run_dir = (reports / "latest").resolve()
    before = json.loads((run_dir / "gonogo.json").read_text(encoding="utf-8"))
    line = next(c for c in before["criteria"] if c["id"] == "org-readiness" and c["site"] == "sas-boras")
    assert line["status"] == "pending", line

    with console(reports, "--run", run_dir.name) as con, chromium() as pages:
        page = pages.page()
        page.goto(con.url)
        pending = page.locator("#live-manual li[data-item='nedtidsrutin'][data-site='sas-boras']")
        assert pending.get_attribute("data-state") == "pending"
        assert page.get_by_role("heading", name="Manual steps").is_visible()
        pending.get_by_role("button", name="Attest …").click()
        assert page.locator("#attest-item").input_value() == "nedtidsrutin"
        page.fill("#who", "Karin Berg")
        page.check("#attest-form input[value='ok']")
        page.fill("#attest-note", "Övat med pappersblanketter 09:10–09:40")
        page.locator("#attest-form").get_by_role("button", name="Attest").click()
        page.locator("#status.ok").wait_for()
        flipped = page.locator(
            "#live-manual li[data-item='nedtidsrutin'][data-site='sas-boras'][data-state='ok']"
        )
        flipped.wait_for(timeout=3_000)
        assert "attested ok by Karin Berg" in flipped.inner_text()
        assert pages.outside(con.url) == []

    records = [json.loads(line) for line in (run_dir / attest.FILE).read_text(encoding="utf-8").splitlines()]
    assert len(records) == 1
    made = records[0]
    assert (made["item"], made["site"], made["by"], made["ok"]) == (
        "nedtidsrutin",
        "sas-boras",
        "Karin Berg",
        True,
    )
    assert made["note"] == "Övat med pappersblanketter 09:10–09:40" and made["at"]
    assert set(made) == set(attest.Attestation.__dataclass_fields__)  # the record `rehearse attest` makes
    now = json.loads((run_dir / "gonogo.json").read_text(encoding="utf-8"))  # written again, at once
    mine = [a for a in now["attestations"] if (a["item"], a["site"]) == ("nedtidsrutin", "sas-boras")]
    assert mine == [{**made, "counted": False}]  # who and when; it counts when the step runs again
    assert "Karin Berg" in (run_dir / "gonogo.html").read_text(encoding="utf-8")

    again = rehearse(reports, "rerun")
    assert again.returncode in (0, 1), again.stdout + again.stderr
    rerun_dir = (reports / "latest").resolve()
    assert rerun_dir != run_dir
    after = json.loads((rerun_dir / "gonogo.json").read_text(encoding="utf-8"))
    line = next(c for c in after["criteria"] if c["id"] == "org-readiness" and c["site"] == "sas-boras")
    assert line["status"] == "pass", line
    assert [a for a in after["attestations"] if (a["item"], a["site"]) == ("nedtidsrutin", "sas-boras")] == [
        {**made, "counted": True}
    ]


def _raw_get(url: str, path: str) -> tuple[int, str]:
    """GET with the path exactly as given (an HTTP library would resolve the dots itself)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read().decode("utf-8", "replace")
    finally:
        connection.close()


def test_evidence_is_served_from_the_run_folder_only_and_forms_only_from_the_page(make_plan, tmp_path: Path):
    plan = make_plan()
    reports = tmp_path / "reports"
    done = rehearse(reports, "run", "--plan", str(plan), "--aspect", ORG, "--site", "sas-boras")
    assert done.returncode == 1, done.stderr
    run_dir = (reports / "latest").resolve()
    (tmp_path / "secret.txt").write_text("not the run's", encoding="utf-8")
    with console(reports, "--run", str(run_dir)) as con:
        base = con.url.rstrip("/")
        page = httpx.get(con.url, timeout=5)
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        csrf = page.text.split('name="csrf" content="')[1].split('"')[0]

        attachment = next(run_dir.glob("allure-results/*-attachment*"))
        served = httpx.get(f"{base}/files/{run_dir.name}/allure-results/{attachment.name}", timeout=5)
        assert served.status_code == 200 and served.content == attachment.read_bytes()
        assert served.headers["content-security-policy"].startswith("sandbox")
        for escape in ("../secret.txt", "..%2Fsecret.txt", "%2E%2E/%2E%2E/secret.txt", "/etc/passwd"):
            status, body = _raw_get(con.url, f"/files/{run_dir.name}/{escape}")  # sent as written
            assert status == 404 and "not the run" not in body and "root:" not in body, escape
        assert httpx.get(f"{base}/files/20990101T000000Z-0000/run.json", timeout=5).status_code == 404

        form = {"item": "nedtidsrutin", "site": "sas-boras", "result": "ok", "by": "Mallory"}
        assert httpx.post(f"{base}/attest", data=form, timeout=5).status_code == 403  # no page token
        cross = httpx.post(
            f"{base}/attest",
            data={**form, "csrf": csrf},
            headers={"Origin": "http://evil.example"},
            timeout=5,
        )
        assert cross.status_code == 403
        sent = httpx.post(
            f"{base}/attest", data={**form, "csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=5
        )
        assert sent.status_code == 403
        rebound = httpx.get(con.url, headers={"Host": "evil.example"}, timeout=5)
        assert rebound.status_code == 403  # a page elsewhere cannot reach it by DNS rebinding
        unknown = httpx.post(
            f"{base}/attest",
            data={**form, "site": "no-such-site", "csrf": csrf},
            headers={"Accept": "application/json"},
            timeout=5,
        )
        assert unknown.status_code == 400 and "no-such-site" in unknown.json()["message"]
        nameless = httpx.post(
            f"{base}/attest", data={**form, "by": " ", "csrf": csrf}, headers={"Accept": "application/json"}
        )
        assert nameless.status_code == 400
    assert not (run_dir / attest.FILE).exists()  # nothing refused was recorded
