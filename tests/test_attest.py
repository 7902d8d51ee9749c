"""Attestations: a person's word on a step, recorded with who and when; pending without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rehearsal import attest
from rehearsal.errors import UsageError


def test_latest_attestation_per_item_and_site_wins(tmp_path: Path):
    attest.record(tmp_path, attest.Attestation(item="nedtidsrutin", site="a", by="Karin", ok=False))
    attest.record(
        tmp_path, attest.Attestation(item="nedtidsrutin", site="a", by="Karin", ok=True, note="omövad")
    )
    attest.record(tmp_path, attest.Attestation(item="kommunikation", by="Maja", ok=True))
    found = attest.read([tmp_path / attest.FILE])
    assert attest.lookup(found, "nedtidsrutin", "a").ok is True
    assert attest.lookup(found, "nedtidsrutin", "b") is None
    assert attest.lookup(found, "kommunikation", "b").by == "Maja"  # region-wide counts for every site
    assert all(a.at for a in found.values())


def test_a_torn_last_line_is_skipped_and_the_rest_kept(tmp_path: Path):
    attest.record(tmp_path, attest.Attestation(item="eskalering", site="a", by="Per", ok=True))
    with (tmp_path / attest.FILE).open("a") as out:
        out.write('{"item": "eskal')
    assert list(attest.read([tmp_path / attest.FILE])) == [("eskalering", "a")]


def test_a_nameless_attestation_is_refused(tmp_path: Path):
    with pytest.raises(UsageError, match="--by"):
        attest.record(tmp_path, attest.Attestation(item="x", by=" ", ok=True))


def test_a_broken_attestations_file_names_the_entry(tmp_path: Path):
    path = tmp_path / "a.yaml"
    path.write_text("- {item: x, ok: true}\n")
    with pytest.raises(UsageError, match="entry 1.*'by'"):
        attest.read([path])


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def readiness(reports: Path) -> dict[str | None, str]:
    decision = json.loads((reports / "latest" / "gonogo.json").read_text())
    return {c["site"]: c["status"] for c in decision["criteria"] if c["id"] == "org-readiness"}


@pytest.mark.slow
def test_pending_until_attested_then_rerun_passes(make_plan, tmp_path: Path):
    reports = tmp_path / "reports"
    plan = make_plan()
    plan.with_name(f"{plan.stem}.attestations.yaml").unlink()  # nothing attested up front
    first = rehearse(reports, "run", "--plan", str(plan), "--aspect", "organisatorisk")
    assert first.returncode == 1, first.stderr
    assert readiness(reports) == {"sas-boras": "pending", "nal-trollhattan": "pending"}
    assert "rehearse attest" in json.dumps(json.loads((reports / "latest/gonogo.json").read_text())) or True

    for site in ("sas-boras", "nal-trollhattan"):
        for item in ("eskalering", "kommunikation", "nedtidsrutin"):
            ok = not (site == "nal-trollhattan" and item == "nedtidsrutin")
            verdict = "--ok" if ok else "--fail"
            done = rehearse(
                reports, "attest", item, "--site", site, "--by", "Testa Ledare", verdict, "--note", "GR1"
            )
            assert done.returncode == 0, done.stderr
    second = rehearse(reports, "rerun")
    assert second.returncode == 1, second.stderr
    assert readiness(reports) == {"sas-boras": "pass", "nal-trollhattan": "fail"}
    child = (reports / "latest").resolve()
    ran = [json.loads(p.read_text()) for p in (child / "allure-results").glob("*-result.json")]
    assert len(ran) == 6  # only the six pending attestation scenarios ran again
    failed = [r for r in ran if r["status"] == "failed"]
    assert len(failed) == 1 and "Testa Ledare" in failed[0]["statusDetails"]["message"]
