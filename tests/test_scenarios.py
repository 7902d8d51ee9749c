"""The clinical and technical run-through against the reference hospital: for each of its faults
(except those only the device checks or the load SLOs can see), switched on at one site, NO-GO
with every failed criterion at that site (or central for a central fault) and none of its
criteria failing at another site. Faults whose criteria are apart run together (six runs for ten faults).

Each run of the table is a test of its own, spread over the pytest-xdist workers (an
``xdist_group`` each); each worker starts one hospital for the rows it gets (``rehearse reference
up`` once, on its own free ports) and for each row: ``rehearse fault set``, ``rehearse run --aspect
klinisk --aspect teknisk``, read gonogo.json, ``rehearse fault clear`` (so the next row on that
worker finds the hospital clean). The plan is the demo plan on free ports, without load and the
organisational criteria (not run here), with quicker coexistence timings so a fault that
makes a scenario wait costs seconds, not the demo's half minute. The clean GO is the demo's
(tests/test_end_to_end.py); here every line of the other site must pass in every run of one fault.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import plan_copy
from reference_hospital.faults import REGISTRY

pytestmark = pytest.mark.slow

#: fault → (where every failure must be, criteria that must fail there). Central faults: None.
TABLE: dict[str, tuple[str | None, set[str]]] = {
    "login-denied-role@nal-trollhattan": (
        "nal-trollhattan",
        {"tech-login", "clin-registration", "clin-lab-order", "load-slo"},  # its simulated users too
    ),
    "ehr-down": (None, {"tech-integrations", "tech-fhir"}),
    "wrong-patient-result@sas-boras": ("sas-boras", {"tech-lab-results", "clin-lab-order"}),
    # its users' roles sit at a unit whose HSA-id the directory does not know: login by role fails too
    "hsa-mismatch@nal-trollhattan": ("nal-trollhattan", {"tech-directory", "tech-login"}),
    "lab-results-lost@nal-trollhattan": ("nal-trollhattan", {"tech-lab-results", "clin-lab-order"}),
    "referral-dropped@sas-boras": ("sas-boras", {"tech-referrals", "clin-referral"}),
    "referral-negation-loss@nal-trollhattan": ("nal-trollhattan", {"tech-referrals", "clin-referral"}),
    "text-encoding-loss@sas-boras": ("sas-boras", {"tech-referrals", "clin-referral"}),
    "orphan-queue@sas-boras": ("sas-boras", {"tech-queues", "tech-lab-results", "tech-referrals"}),
    "migration-gap@nal-trollhattan": ("nal-trollhattan", {"tech-migration"}),
}
#: What may fail at the fault's site as well, downstream of what must: a site whose clinicians cannot
#: log in orders nothing, refers nothing, prints nothing, so its lab, queue and referral checks wait
#: in vain; results and referrals that land in the catch-all queue never reach the clinician.
DOWNSTREAM: dict[str, set[str]] = {
    "login-denied-role@nal-trollhattan": {
        "clin-printing", "clin-referral", "tech-lab-results", "tech-queues", "tech-referrals",
    },
    "orphan-queue@sas-boras": {"clin-lab-order", "clin-referral"},
}  # fmt: skip
#: Faults switched on together, their criteria apart (at one site or across the two): a leak of
#: one fault to the other site still shows (a criterion of one fault failing at the other's site),
#: as does one fault's criterion failing for another's (every failure at a site must be one of its
#: faults'). The lab and referral faults share criteria, so they need a run each. Not together:
#: login-denied-role with orphan-queue (seen failing each other's site: no clinician at one site
#: leaves the other's queue and lab checks waiting on messages that never come).
TOGETHER = [
    ("wrong-patient-result@sas-boras", "referral-dropped@sas-boras", "hsa-mismatch@nal-trollhattan"),
    ("text-encoding-loss@sas-boras", "lab-results-lost@nal-trollhattan"),
    ("orphan-queue@sas-boras", "migration-gap@nal-trollhattan"),
]
RUNS = TOGETHER + [(f,) for f in TABLE if not any(f in pair for pair in TOGETHER)]
#: What only the device checks (hardware_checks/) or the load SLOs (load/) can see.
NOT_HERE = {"slow-patient-search": "load SLO", "slow-lab-order": "load SLO"}


def rehearse(reports: Path, *args: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "REHEARSAL_DEBUG": "1"},
    )  # fmt: skip


def quick(data: dict[str, Any]) -> None:
    """Without the organisational criteria; a short load judged per site with loose limits (which
    site's simulated users fail is the point, not speed on a busy machine; judged only in the rows
    that name ``load-slo``); coexistence timings a fault costs little with."""
    data["load"].update(users=6, spawn_rate=6, duration_s=6)
    loose = {"p95_ms": 10_000, "max_error_ratio": 0.05, "weight": 1}  # every path often enough at each site
    dropped = ("p99_ms", "min_rps", "weights")
    paths = data["load"]["paths"]
    data["load"]["paths"] = [{k: v for k, v in p.items() if k not in dropped} | loose for p in paths]
    data["criteria"] = [c for c in data["criteria"] if c.get("aspect") != "organisatorisk"]
    assert next(c for c in data["criteria"] if c["kind"] == "load_slo")["per_site"]  # as the demo sets it
    data["environment"]["timeouts"] = {"connect": 3, "read": 10, "device": 2}  # a stall silences a component
    data["coexistence"]["lab"] = {"result_delay_s": 0.2, "result_within_s": 5}
    data["coexistence"]["bridge"] = {"poll_interval_s": 0.2, "batch": 50}


def decision(reports: Path) -> dict[str, Any]:
    return json.loads((reports / "latest" / "gonogo.json").read_text(encoding="utf-8"))


def failing(found: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(c["id"], c["site"]) for c in found["criteria"] if c["status"] == "fail"]


def failure_messages(reports: Path, criterion: str, site: str) -> list[str]:
    out = []
    for path in (reports / "latest" / "allure-results").glob("*-result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        labels = {lab["name"]: lab["value"] for lab in result.get("labels", [])}
        if (
            labels.get("criterion") == criterion
            and labels.get("site") == site
            and result["status"] != "passed"
        ):
            out.append((result.get("statusDetails") or {}).get("message", ""))
    return out


def test_table_covers_every_fault_but_device_and_load_ones():
    assert sorted(f for run in RUNS for f in run) == sorted(TABLE)  # each fault in exactly one run
    for run in TOGETHER:  # at the sites, criteria apart
        assert None not in {TABLE[f][0] for f in run} and len({TABLE[f][0] for f in run}) == 2, run
        criteria = [c for f in run for c in TABLE[f][1]]
        assert len(criteria) == len(set(criteria)), run
        for site in {TABLE[f][0] for f in run}:  # at one site, what one may fail the other must not
            here = [f for f in run if TABLE[f][0] == site]
            for f in here:
                others = set().union(*(TABLE[o][1] | DOWNSTREAM.get(o, set()) for o in here if o != f))
                assert not DOWNSTREAM.get(f, set()) & others, (run, f)
    assert set(DOWNSTREAM) <= set(TABLE)
    device = {name for name, spec in REGISTRY.items() if spec.component in ("printers", "workstations")}
    names = {f.partition("@")[0] for f in TABLE}
    missing = set(REGISTRY) - names - set(NOT_HERE) - device
    assert not missing, f"faults without a row in TABLE (add one): {sorted(missing)}"
    assert not names & (set(NOT_HERE) | device)
    for fault, (site, _) in TABLE.items():
        name, _, at = fault.partition("@")
        assert REGISTRY[name].per_site == bool(at) and (site == (at or None)), fault


@pytest.fixture(scope="session")
def fault_hospital(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One reference hospital per worker for the table's rows, faults off between rows."""
    folder = tmp_path_factory.mktemp("fault-table")
    reports, plan = folder / "reports", str(plan_copy(folder, quick))
    up = rehearse(reports, "reference", "up", "--plan", plan)
    assert up.returncode == 0, up.stdout + up.stderr
    yield reports, plan
    rehearse(reports, "reference", "down")


@pytest.mark.parametrize(
    "faults",
    [pytest.param(run, id="+".join(run), marks=pytest.mark.xdist_group(f"fault-row-{i}"))
     for i, run in enumerate(RUNS)],
)  # fmt: skip
def test_each_fault_is_no_go_at_its_site_only(faults: tuple[str, ...], fault_hospital: tuple[Path, str]):
    reports, plan = fault_hospital
    try:
        for fault in faults:
            assert rehearse(reports, "fault", "set", fault).returncode == 0
        started = time.monotonic()
        done = rehearse(reports, "run", "--plan", plan, "--aspect", "klinisk", "--aspect", "teknisk")
        took = round(time.monotonic() - started, 1)
    finally:
        cleared = [rehearse(reports, "fault", "clear", fault) for fault in faults]
    assert all(c.returncode == 0 for c in cleared), [c.stderr for c in cleared]
    problems = judge(faults, decision(reports), reports, done.returncode)
    assert not problems, "\n".join(problems) + f"\n(the run took {took} s)"


def judge(faults: tuple[str, ...], found: dict[str, Any], reports: Path, code: int) -> list[str]:
    """What is wrong with a run's decision given the faults that were on (empty: all as expected)."""
    name, problems = " + ".join(faults), []
    if not any("load-slo" in TABLE[f][1] for f in faults):  # the load is judged where a row names it
        found = {**found, "criteria": [c for c in found["criteria"] if c["id"] != "load-slo"]}
    fails = failing(found)
    sites = {TABLE[f][0] for f in faults}
    if code != 1 or found["decision"] != "NO-GO":
        problems.append(f"{name}: exit {code}, {found['decision']}")
    if {s or "central" for _, s in fails} != {s or "central" for s in sites}:
        problems.append(f"{name}: failures at {sorted({s or 'central' for _, s in fails})}: {fails}")
    others = [(c["id"], c["site"], c["status"]) for c in found["criteria"]
              if None not in sites and c["site"] not in (*sites, None) and c["status"] != "pass"]  # fmt: skip
    if others:
        problems.append(f"{name}: another site did not pass: {others}")
    for site in sites - {None}:  # nothing fails at a site but what its faults fail
        theirs = set().union(*(TABLE[f][1] | DOWNSTREAM.get(f, set()) for f in faults if TABLE[f][0] == site))
        if extra := sorted({c for c, s in fails if s == site} - theirs):
            problems.append(f"{name}: {extra} failed at {site} too, a criterion of none of its faults")
    for fault in faults:
        site, expected = TABLE[fault]
        if missing := expected - {c for c, s in fails if s == site}:
            problems.append(f"{fault}: expected {sorted(missing)} to fail too; failed: {fails}")
        for other in faults:
            other_site, other_expected = TABLE[other]
            leaked = [(c, s) for c, s in fails if s == other_site != site and c in expected - other_expected]
            if leaked:
                problems.append(f"{fault}: failed at {other_site} too: {leaked}")
        if fault.startswith("referral-negation-loss"):
            messages = failure_messages(reports, "clin-referral", site or "")
            if not [m for m in messages if "skickat" in m and "| mottaget" in m and "saknas i mottaget" in m]:
                problems.append(f"{fault}: the referral failure does not show sent and received: {messages}")
    return problems
