"""The incident log (#15): raise, acknowledge, escalate, resolve with who and when, and the escalation
scenario judging the plan's times from it — in the page, through a real run of that scenario."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from rehearsal import incidents
from rehearsal.errors import UsageError
from rehearsal.plan import Escalation
from tests.console_peer import chromium, console, rehearse

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
TIMES = Escalation(acknowledge_within_min=10, escalate_within_min=30)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat(timespec="milliseconds")


def raise_one(run_dir: Path, site: str = "sas-boras", minute: float = 0) -> str:
    made = incidents.record(
        run_dir,
        incidents.Event(
            action="raise", by="Karin Berg", site=site, title="Skrivare ur funktion", at=at(minute)
        ),
    )
    return made.incident


def act(run_dir: Path, incident: str, action: str, minute: float, by: str = "Per Holm") -> incidents.Event:
    return incidents.record(run_dir, incidents.Event(action=action, by=by, incident=incident, at=at(minute)))


def test_each_event_is_one_line_with_who_and_when_and_the_incident_follows_from_them(tmp_path: Path):
    first = raise_one(tmp_path)
    act(tmp_path, first, "acknowledge", 4, by="Per Holm")
    act(tmp_path, first, "escalate", 12)
    act(tmp_path, first, "resolve", 50)
    lines = (tmp_path / incidents.FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["raise", "acknowledge", "escalate", "resolve"]
    assert all(json.loads(line)["site"] == "sas-boras" for line in lines)  # the site travels with each event
    (found,) = incidents.incidents(incidents.read([tmp_path / incidents.FILE]))
    assert found.id == first and found.state == "resolved" and found.open_actions == []
    assert found.acknowledged is not None and found.acknowledged.by == "Per Holm"
    assert found.minutes_to(found.escalated, T0) == pytest.approx(12)

    with (tmp_path / incidents.FILE).open("a", encoding="utf-8") as out:
        out.write('{"action": "acknowledge", "by": "X", "incid')  # a write cut short
    assert len(incidents.read([tmp_path / incidents.FILE])) == 4


@pytest.mark.parametrize(
    "action, why",
    [
        ("acknowledge", "already recorded by Per Holm"),
        ("nothing", "unknown action"),
    ],
)
def test_refused_events_are_one_line_and_leave_the_log_as_it_was(tmp_path: Path, action: str, why: str):
    first = raise_one(tmp_path)
    act(tmp_path, first, "acknowledge", 3)
    before = (tmp_path / incidents.FILE).read_bytes()
    with pytest.raises(UsageError, match=why):
        act(tmp_path, first, action, 5)
    with pytest.raises(UsageError, match="no such incident"):
        act(tmp_path, "INC-000000", "escalate", 5)
    with pytest.raises(UsageError, match="a name"):
        act(tmp_path, first, "escalate", 5, by="  ")
    with pytest.raises(UsageError, match="needs a title"):
        incidents.record(tmp_path, incidents.Event(action="raise", by="Karin", site="sas-boras"))
    act(tmp_path, first, "resolve", 9)
    with pytest.raises(UsageError, match="resolved by"):
        act(tmp_path, first, "escalate", 10)
    assert (tmp_path / incidents.FILE).read_bytes().startswith(before)
    assert len(incidents.read([tmp_path / incidents.FILE])) == 3


def test_the_times_are_judged_from_the_events_own_stamps(tmp_path: Path):
    on_time = raise_one(tmp_path, minute=0)
    act(tmp_path, on_time, "acknowledge", 4)
    act(tmp_path, on_time, "escalate", 20)
    found = incidents.incidents(incidents.read([tmp_path / incidents.FILE]))
    assert incidents.judge(found, TIMES, T0 + timedelta(hours=5)).status == "pass"

    late = raise_one(tmp_path, minute=60)
    act(tmp_path, late, "acknowledge", 72.5)
    act(tmp_path, late, "escalate", 80)
    found = incidents.incidents(incidents.read([tmp_path / incidents.FILE]))
    verdict = incidents.judge(found, TIMES, T0 + timedelta(hours=5))
    assert verdict.status == "fail"
    assert (
        verdict.message
        == f"{late} (Skrivare ur funktion) kvitterades efter 12 min, planen kräver inom 10 min"
    )

    still_open = raise_one(tmp_path, site="nal-trollhattan", minute=100)
    found = [
        i for i in incidents.incidents(incidents.read([tmp_path / incidents.FILE])) if i.id == still_open
    ]
    waiting = incidents.judge(found, TIMES, T0 + timedelta(minutes=105))
    assert waiting.status == "pending" and "väntar på kvittering (inom 10 min)" in waiting.message
    overdue = incidents.judge(found, TIMES, T0 + timedelta(minutes=115.5))
    assert overdue.status == "fail"
    assert "ingen kvittering efter 16 min, planen kräver inom 10 min" in overdue.message


def test_a_rerun_reads_the_incidents_of_its_parent(tmp_path: Path):
    reports = tmp_path / "reports" / "gr1"
    parent, child = reports / "20261202T090000Z-0001", reports / "20261202T091000Z-0002"
    for folder, up in ((parent, None), (child, parent.name)):
        folder.mkdir(parents=True)
        record = {"id": folder.name, "rehearsal": "gr1", "plan_path": "/p.yaml", "plan_sha256": "0",
                  "started": "2026-12-02T09:00:00+00:00", "parent": up}  # fmt: skip
        (folder / "run.json").write_text(json.dumps(record), encoding="utf-8")
    first = raise_one(parent)
    incidents.record(
        child,
        incidents.Event(action="acknowledge", by="Per", incident=first, at=at(3)),
        inherited=[parent / incidents.FILE],
    )
    (found,) = incidents.at_site(child, "sas-boras")
    assert found.acknowledged is not None and found.acknowledged.by == "Per"
    assert incidents.at_site(child, "nal-trollhattan") == []


def _plan(make_plan, ack_s: float) -> Path:
    """The demo plan with an exercise's compressed times; no site has its escalation attested."""

    def edit(data: dict) -> None:
        data["command_centre"]["escalation"] = {
            "acknowledge_within_min": ack_s / 60,
            "escalate_within_min": 5,
        }

    plan = make_plan(edit)
    path = plan.with_name(f"{plan.stem}.attestations.yaml")
    kept = [e for e in yaml.safe_load(path.read_text(encoding="utf-8")) if e["item"] != "eskalering"]
    path.write_text(yaml.safe_dump(kept, allow_unicode=True), encoding="utf-8")
    return plan


def test_an_incident_raised_and_acknowledged_late_in_the_page_fails_the_escalation_scenario_at_that_site(
    make_plan, tmp_path: Path
):
    ack_s = 6.0
    plan = _plan(make_plan, ack_s)
    reports = tmp_path / "reports"
    first = rehearse(reports, "run", "--plan", str(plan), "--aspect", "organisatorisk")
    assert first.returncode == 1, first.stdout + first.stderr  # the escalation waits at both sites
    run_dir = (reports / "latest").resolve()

    with console(reports, "--plan", str(plan)) as con, chromium() as pages:
        page = pages.page()
        page.goto(con.url)
        page.fill("#who", "Karin Berg")
        assert "kvittering inom 0,10 min" in page.locator("#live-incidents").inner_text()

        def raise_at(site: str, title: str) -> object:
            page.select_option("#raise-site", site)
            page.fill("#raise-title", title)
            page.locator("#raise-form").get_by_role("button", name="Lyft").click()
            row = page.locator("#live-incidents li.incident", has_text=title)
            row.wait_for()
            return row

        def do(row, button: str, state: str) -> None:
            row.get_by_role("button", name=button).click()
            row.and_(page.locator(f"[data-state='{state}']")).wait_for()

        late = raise_at("sas-boras", "Armbandsskrivaren på akuten ur funktion")
        page.wait_for_timeout((ack_s + 1.5) * 1000)  # the command centre is slow to answer
        do(late, "Kvittera", "acknowledged")
        do(late, "Eskalera", "escalated")
        assert late.get_attribute("data-late") == "yes"

        prompt = raise_at("nal-trollhattan", "Etikettskrivaren i labbet ur funktion")
        do(prompt, "Kvittera", "acknowledged")
        do(prompt, "Eskalera", "escalated")
        assert prompt.get_attribute("data-late") == "no"

        events = incidents.read([run_dir / incidents.FILE])
        assert [(e.action, e.by, e.site) for e in events] == [
            ("raise", "Karin Berg", "sas-boras"),
            ("acknowledge", "Karin Berg", "sas-boras"),
            ("escalate", "Karin Berg", "sas-boras"),
            ("raise", "Karin Berg", "nal-trollhattan"),
            ("acknowledge", "Karin Berg", "nal-trollhattan"),
            ("escalate", "Karin Berg", "nal-trollhattan"),
        ]

        again = rehearse(reports, "rerun")  # the escalation scenario, the only thing left waiting
        assert again.returncode == 1, again.stdout + again.stderr
        failures = [line for line in again.stderr.splitlines() if line.startswith("  underkänd: ")]
        assert len(failures) == 1, again.stderr
        assert failures[0].startswith("  underkänd: sas-boras · org-readiness: INC-"), failures
        assert "(Armbandsskrivaren på akuten ur funktion) kvitterades efter 0,1" in failures[0]
        assert failures[0].endswith("min, planen kräver inom 0,10 min")
        # the console follows the rerun: the failure is on the page as it lands
        page.locator("#live-failures li.failure[data-criterion='org-readiness']").wait_for(timeout=5_000)
        assert "kvitterades efter" in page.locator("#live-failures").inner_text()
        assert pages.outside(con.url) == []

    decided = json.loads(((reports / "latest").resolve() / "gonogo.json").read_text(encoding="utf-8"))
    lines = {c["site"]: c["status"] for c in decided["criteria"] if c["id"] == "org-readiness"}
    assert lines == {"sas-boras": "fail", "nal-trollhattan": "pass"}
