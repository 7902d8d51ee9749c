"""The clinical and technical run-through against the reference hospital: GO when it is clean, and
for each of its faults (except those only the device checks or the load SLOs can see), switched on
alone at one site, NO-GO with every failed criterion at that site (or central for a central fault)
and none at another site.

One hospital for the whole table (``rehearse reference up`` once), and for each fault:
``rehearse fault set``, ``rehearse run --aspect klinisk --aspect teknisk``, read gonogo.json,
``rehearse fault clear``. The plan is the demo plan on free ports, without load and the
organisational criteria (not run here), with quicker coexistence timings so a fault that
makes a scenario wait costs seconds, not the demo's half minute. The clean GO is the demo's
(tests/test_end_to_end.py); here every line of the other site must pass in every run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rehearsal.reference.faults import REGISTRY

pytestmark = pytest.mark.slow

#: fault → (where every failure must be, criteria that must fail there). Central faults: None.
TABLE: dict[str, tuple[str | None, set[str]]] = {
    "login-denied-role@nal-trollhattan": (
        "nal-trollhattan",
        {"tech-login", "clin-registration", "clin-lab-order"},
    ),
    "ehr-down": (None, {"tech-integrations", "tech-fhir"}),
    "wrong-patient-result@sas-boras": ("sas-boras", {"tech-lab-results", "clin-lab-order"}),
    "hsa-mismatch@nal-trollhattan": ("nal-trollhattan", {"tech-directory"}),
    "lab-results-lost@nal-trollhattan": ("nal-trollhattan", {"tech-lab-results", "clin-lab-order"}),
    "referral-dropped@sas-boras": ("sas-boras", {"tech-referrals", "clin-referral"}),
    "referral-negation-loss@nal-trollhattan": ("nal-trollhattan", {"tech-referrals", "clin-referral"}),
    "text-encoding-loss@sas-boras": ("sas-boras", {"tech-referrals", "clin-referral"}),
    "orphan-queue@sas-boras": ("sas-boras", {"tech-queues", "tech-lab-results", "tech-referrals"}),
    "migration-gap@nal-trollhattan": ("nal-trollhattan", {"tech-migration"}),
}
#: What only the device checks (hardware_checks/) or the load SLOs (load/) can see.
NOT_HERE = {"slow-patient-search": "load SLO", "slow-lab-order": "load SLO"}


def rehearse(reports: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "REHEARSAL_DEBUG": "1"},
    )  # fmt: skip


def quick(data: dict[str, Any]) -> None:
    """Without load and the organisational criteria; coexistence timings a fault costs little with."""
    data.pop("load", None)
    data["criteria"] = [
        c for c in data["criteria"] if c["kind"] != "load_slo" and c.get("aspect") != "organisatorisk"
    ]
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
    device = {name for name, spec in REGISTRY.items() if spec.component in ("printers", "workstations")}
    names = {f.partition("@")[0] for f in TABLE}
    missing = set(REGISTRY) - names - set(NOT_HERE) - device
    assert not missing, f"faults without a row in TABLE (add one): {sorted(missing)}"
    assert not names & (set(NOT_HERE) | device)
    for fault, (site, _) in TABLE.items():
        name, _, at = fault.partition("@")
        assert REGISTRY[name].per_site == bool(at) and (site == (at or None)), fault


def test_each_fault_alone_is_no_go_at_its_site_only(make_plan, tmp_path):
    reports = tmp_path / "reports"
    plan = str(make_plan(quick))
    up = rehearse(reports, "reference", "up", "--plan", plan)
    assert up.returncode == 0, up.stdout + up.stderr
    timings: dict[str, float] = {}
    try:
        problems = []
        for fault, (site, expected) in TABLE.items():
            assert rehearse(reports, "fault", "set", fault).returncode == 0
            try:
                started = time.monotonic()
                done = rehearse(reports, "run", "--plan", plan, "--aspect", "klinisk", "--aspect", "teknisk")
                timings[fault] = round(time.monotonic() - started, 1)
            finally:
                cleared = rehearse(reports, "fault", "clear", fault)
            assert cleared.returncode == 0, cleared.stderr
            found = decision(reports)
            fails = failing(found)
            where = {s or "central" for _, s in fails}
            if done.returncode != 1 or found["decision"] != "NO-GO":
                problems.append(f"{fault}: exit {done.returncode}, {found['decision']}")
            if where != {site or "central"}:
                problems.append(f"{fault}: failures at {sorted(where)}: {fails}")
            others = [(c["id"], c["site"], c["status"]) for c in found["criteria"]
                      if site and c["site"] not in (site, None) and c["status"] != "pass"]  # fmt: skip
            if others:
                problems.append(f"{fault}: another site did not pass: {others}")
            if missing := expected - {c for c, _ in fails}:
                problems.append(f"{fault}: expected {sorted(missing)} to fail too; failed: {fails}")
            if fault.startswith("referral-negation-loss"):
                messages = failure_messages(reports, "clin-referral", site or "")
                shown = [
                    m for m in messages if "skickat" in m and "| mottaget" in m and "saknas i mottaget" in m
                ]
                if not shown:
                    problems.append(
                        f"{fault}: the referral failure does not show sent and received: {messages}"
                    )
        assert not problems, "\n".join(problems) + f"\n(seconds per run: {timings})"
    finally:
        rehearse(reports, "reference", "down")
    print(f"seconds per run: {timings}")
