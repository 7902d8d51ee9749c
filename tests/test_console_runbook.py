"""The runbook in the console (#15): the plan's steps with planned, actual and drift, the chart, and
buttons for the steps people time; a start and a done made in the page are the records `rehearse
runbook start|done` makes (who and when), and the panel shows the step done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.console_peer import chromium, console, rehearse

runbook = pytest.importorskip("rehearsal.runbook")


def test_a_manual_step_started_and_done_in_the_page_is_recorded_with_who_and_when(make_plan, tmp_path: Path):
    plan = make_plan()
    reports = tmp_path / "reports"
    done = rehearse(reports, "run", "--plan", str(plan), "--aspect", "organisatorisk", "--site", "sas-boras")
    assert done.returncode == 1, done.stdout + done.stderr
    run_dir = (reports / "latest").resolve()
    from rehearsal.plan import load_plan

    steps = load_plan(plan).plan.runbook
    if steps is None:
        pytest.skip("the demo plan has no runbook")
    by_people = [s.id for s in steps.steps if s.kind == "manual"]
    timed_by_run = [s.id for s in steps.steps if s.kind in ("automated", "gate")]
    assert by_people and timed_by_run

    with console(reports, "--run", run_dir.name) as con, chromium() as pages:
        page = pages.page()
        page.goto(con.url)
        panel = page.locator("#live-runbook")
        assert panel.locator("svg").count() == 1  # the planned-vs-actual chart
        for step in timed_by_run:  # their times come from the run: nothing to press
            assert panel.locator(f"tr[data-step='{step}'] button").count() == 0
        row = panel.locator(f"tr[data-step='{by_people[0]}']")
        page.fill("#who", "Karin Berg")
        row.get_by_role("button", name="Starta").click()
        panel.locator(f"tr[data-step='{by_people[0]}'][data-status='running']").wait_for(timeout=5_000)
        row.get_by_role("button", name="Klart").click()
        panel.locator(f"tr[data-step='{by_people[0]}'][data-status='done']").wait_for(timeout=5_000)
        assert "Karin Berg" in panel.locator(f"tr[data-step='{by_people[0]}']").inner_text()
        assert pages.outside(con.url) == []

    records = [json.loads(x) for x in (run_dir / runbook.FILE).read_text(encoding="utf-8").splitlines()]
    assert [(r["step"], r["action"], r["by"]) for r in records] == [
        (by_people[0], "start", "Karin Berg"),
        (by_people[0], "done", "Karin Berg"),
    ]
    assert all(r["at"] for r in records)
