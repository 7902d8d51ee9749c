"""The plan model: the demo plan loads; every broken plan gets `file:line: field: message`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rehearsal.plan import PlanError, load_plan

ROOT = Path(__file__).resolve().parents[1]
BROKEN = sorted((ROOT / "tests/data/broken_plans").glob("*.yaml"))
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<field>[^:]+): (?P<message>.+)$")

# what each broken plan must be blamed for: (line, field)
EXPECTED = {
    "bad_hsa_id": (33, "sites.1.hsa_id"),
    "bad_personnummer": (56, "test_identities.1.personnummer"),
    "bad_phone": (26, "sites.0.command_centre.support.phone"),
    "bad_printer_uri": (37, "sites.1.printers.0.uri"),
    "bad_threshold": (83, "criteria.2.threshold"),
    "bad_url": (10, "environment.fhir_base"),
    "bad_yaml": (3, "(yaml)"),
    "duplicate_site_id": (15, "sites"),
    "missing_site_name": (16, "sites.0.name"),
    "not_a_mapping": (1, "(plan)"),
    "tab_indent": (2, "(yaml)"),
    "typo_site_field": (18, "sites.0.hsaid"),
    "typo_top_level": (15, "sitez"),
    "unknown_criterion_kind": (94, "criteria.4.kind"),
    "wrong_kind": (9, "environment.kind"),
    "wrong_type_users": (60, "load.users"),
}


def test_demo_plan_loads():
    loaded = load_plan(ROOT / "plans/demo.yaml")
    assert len(loaded.plan.sites) >= 2
    assert all(site.printers for site in loaded.plan.sites)
    assert len(loaded.sha256) == 64


def test_every_broken_plan_has_an_expectation():
    assert {p.stem for p in BROKEN} == set(EXPECTED)
    assert len(BROKEN) >= 10


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_plan_is_blamed_on_the_right_line_and_field(path: Path):
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    parsed = [LINE.match(p) for p in caught.value.problems]
    assert all(parsed), caught.value.problems
    line, field = EXPECTED[path.stem]
    assert any(int(m["line"]) == line and m["field"] == field for m in parsed), caught.value.problems


def test_typo_suggests_the_field_meant():
    with pytest.raises(PlanError) as caught:
        load_plan(ROOT / "tests/data/broken_plans/typo_top_level.yaml")
    assert "did you mean 'sites'?" in str(caught.value)


@pytest.mark.parametrize("path", BROKEN[:4] + [ROOT / "no/such/plan.yaml"], ids=lambda p: Path(p).stem)
def test_cli_plan_check_exits_2_without_traceback(path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "plan", "check", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert all(LINE.match(line) or "cannot read plan" in line for line in done.stderr.splitlines())
    assert done.stderr.strip()


def test_cli_plan_check_ok_exits_0():
    done = subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", "plan", "check", str(ROOT / "plans/demo.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
