"""#13 on the reference hospital: a plan with a site on the legacy EHR and a site without label
printers, rehearsed from the CLI (``rehearse demo``), ends GO; its go/no-go shows the lines
that do not apply there with their reason, and none pending."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.slow

LEGACY, NO_LABELS = "nal-trollhattan", "sas-boras"


def real_plan(data: dict[str, Any]) -> None:
    sites = {s["id"]: s for s in data["sites"]}
    sites[LEGACY]["system"] = "legacy"
    sites[NO_LABELS]["printers"] = [p for p in sites[NO_LABELS]["printers"] if p["kind"] != "label"]
    # the load's mix has doctors: with NÄL's doctor on the legacy EHR, Borås gets one of its own
    sites[NO_LABELS]["users"].append(
        {"hsa_id": "SE2321000131-P000000000103", "name": "Cecilia Ceder", "role": "läkare",
         "password_env": "REHEARSAL_PASSWORD"}
    )  # fmt: skip
    data["load"]["duration_s"] = 4
    # Load referrals go to another site on the new EHR (rehearsal.load.referral_receivers); with
    # one site live there is none, so this wave's load profile has no referral path.
    data["load"]["paths"] = [p for p in data["load"]["paths"] if p["id"] != "create-referral"]


def test_legacy_site_and_site_without_label_printers_is_go_with_not_applicable_lines(make_plan, tmp_path):
    reports = tmp_path / "reports"
    env = {**os.environ, "REHEARSAL_PASSWORD": "Repetition-13-lösen"}
    plan = make_plan(real_plan)
    done = subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), "demo", "--plan", str(plan)],
        capture_output=True, text=True, timeout=400, env=env,
    )  # fmt: skip
    run = (reports / "latest").resolve()
    decision = json.loads((run / "gonogo.json").read_text(encoding="utf-8"))
    status = {(c["id"], c["site"]): c["status"] for c in decision["criteria"]}
    blocking = {k: v for k, v in status.items() if v not in ("pass", "not_applicable")}
    assert done.returncode == 0 and not blocking, (blocking, done.stdout[-3000:], done.stderr[-3000:])
    assert decision["decision"] == "GO" and decision["headline"] == "GO"

    na = {(c["id"], c["site"]): c["details"] for c in decision["criteria"] if c["status"] == "not_applicable"}
    assert na[("tech-label-printers", NO_LABELS)] == "sas-boras har inga etikettskrivare i planen"
    legacy = {cid for cid, site in na if site == LEGACY}
    assert {"clin-lab-order", "clin-registration", "clin-printing", "clin-referral", "tech-login"} <= legacy
    assert all("äldre journalsystemet (system: legacy)" in na[(cid, LEGACY)] for cid in legacy)
    assert set(na) == {("tech-label-printers", NO_LABELS)} | {(cid, LEGACY) for cid in legacy}
    # what the legacy site still has to show ran there and passed: command centre, devices, HSA/KiV
    for cid in ("org-roster", "tech-printers", "tech-label-printers", "tech-workstations", "tech-directory"):
        assert status[(cid, LEGACY)] == "pass", cid
    assert status[("clin-printing", NO_LABELS)] == "pass"  # its wristband printer
    # nothing was even attempted where it cannot apply
    ran = [json.loads(p.read_text(encoding="utf-8")) for p in (run / "allure-results").glob("*-result.json")]
    where = {
        (labels.get("criterion"), labels.get("site"))
        for r in ran
        for labels in [{lab["name"]: lab["value"] for lab in r.get("labels", [])}]
    }
    assert not set(na) & where
    assert "Ej tillämplig" in (run / "gonogo.md").read_text(encoding="utf-8")
    assert "N/A" in done.stdout
