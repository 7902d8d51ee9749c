"""``--jobs``: a run in sessions side by side gives what one session gives.

The demo on free ports (conftest.FEW_CRITERIA: registration, lab order, every technical check,
the guard and the load; benchmarks/region.py compares the whole demo at 2 to 20 sites), once
with ``--jobs 1`` and once with ``--jobs 2``, each starting its own reference hospital: the same
results (by id and site, with their status), the same evidence per result (the names of its
attachments, steps included) and the same go/no-go, line by line. How the tests are dealt into
sessions (rehearsal.parts) is checked without processes.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_end_to_end import SECRET, faults_plan, gonogo, latest, rehearse

from rehearsal.errors import UsageError
from rehearsal.parts import Part, auto_jobs, split
from rehearsal.results import read_results


def results(run: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """Result key (id@site) → each result's status and the sorted names of its evidence."""
    found: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for result in read_results(run / "allure-results"):
        found[result.key].append((result.status, sorted(name for name, _ in result.attachments)))
    return {key: sorted(value) for key, value in found.items()}


def lines(run: Path) -> dict[tuple[str, str | None], str]:
    decision = gonogo(run)
    out = {("decision", None): decision["decision"]}
    for line in decision["criteria"]:  # the runbook's line says its minutes on the clock: its status only
        said = line["status"] if line["id"] == "org-runbook" else f"{line['status']}: {line['details']}"
        out[(line["id"], line.get("site"))] = said
    return out


@pytest.mark.slow
def test_two_jobs_give_the_same_results_evidence_and_decision_as_one(make_plan, tmp_path: Path) -> None:
    plan = str(make_plan(faults_plan))  # the whole demo's set is compared by benchmarks/region.py
    runs = {}
    for jobs in ("1", "2"):
        reports = tmp_path / f"jobs-{jobs}"
        done = rehearse(reports, "demo", "--plan", plan, "--jobs", jobs, secret=SECRET)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs[jobs] = latest(reports)
    one, two = results(runs["1"]), results(runs["2"])
    assert len(one) > 40 and {"tek-login-01@sas-boras", "tek-login-01@nal-trollhattan"} <= set(one)
    assert "tek-test-identities-01" in one and any(k.startswith("slo:") for k in one)  # the last part's
    assert sorted(one) == sorted(two)
    differ = {key: (one[key], two[key]) for key in one if one[key] != two[key]}
    assert not differ, differ
    assert lines(runs["1"]) == lines(runs["2"])
    assert lines(runs["2"])[("decision", None)] == "GO"
    planned = (runs["2"] / "planned.txt").read_text(encoding="utf-8")  # the whole run's, written once
    assert planned == (runs["1"] / "planned.txt").read_text(encoding="utf-8")


def _item(site: object = None, last: bool = False, load: bool = False) -> Any:
    params = {"site": site} if site is not None else {}
    if load:
        params["load_path"] = object()
    return SimpleNamespace(
        callspec=SimpleNamespace(params=params), get_closest_marker=lambda name: object() if last else None
    )


def test_sites_are_dealt_round_robin_and_the_region_goes_first_the_guard_and_load_last() -> None:
    first, second, last = split(["a", "b", "c"], 2)
    assert (str(first), str(second), str(last)) == ("first:a,c", "sites:b", "last")
    assert [str(p) for p in split(["a"], 4)] == ["first:a", "last"]  # never more sessions than sites
    region, guard, load = _item(), _item(last=True), _item(load=True)
    at_b, printer_at_b = _item(SimpleNamespace(id="b")), _item("b")  # a device check names its site by id
    kinds = (region, at_b, printer_at_b, guard, load)
    assert [first.keeps(i) for i in kinds] == [True, False, False, False, False]
    assert [second.keeps(i) for i in kinds] == [False, True, True, False, False]
    assert [last.keeps(i) for i in kinds] == [False, False, False, True, True]
    assert Part.parse(str(first)) == first and Part.parse("last") == last
    for bad in ("everything", "last:a"):
        with pytest.raises(UsageError, match="--rehearsal-part"):
            Part.parse(bad)


def test_jobs_must_be_a_whole_number_from_one(tmp_path: Path) -> None:
    done = rehearse(tmp_path, "run", "--plan", "plans/demo.yaml", "--jobs", "0")
    assert done.returncode == 2 and "--jobs: '0': a whole number from 1, or auto" in done.stderr
    assert "Traceback" not in done.stderr


def test_auto_is_a_session_per_three_sites_at_most_one_per_core() -> None:
    """What benchmarks/region.py measured on 2 cores: a second session gains nothing at 2 sites
    (0.97 of one session's wall time) and a quarter from 6 sites on (0.76, 0.75 at 20)."""
    assert [auto_jobs(sites, cores=2) for sites in (1, 2, 5, 6, 20)] == [1, 1, 1, 2, 2]
    assert auto_jobs(20, cores=1) == 1 and auto_jobs(20, cores=8) == 6 and auto_jobs(0, cores=8) == 1
