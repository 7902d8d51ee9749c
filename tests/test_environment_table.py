"""Every REHEARSAL_* variable the harness reads is in the README's one table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READS = ("src", "scenarios", "load", "hardware_checks", "collectors")
#: names that only the plan makes special (password_env values of the demo plan)
PLAN_NAMED = {"REHEARSAL_PASSWORD"}


def _used() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in READS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name in re.findall(r"\bREHEARSAL_[A-Z][A-Z0-9_]*\b", path.read_text(encoding="utf-8")):
                found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_every_environment_variable_is_documented_in_one_table() -> None:
    readme = ROOT.joinpath("README.md").read_text(encoding="utf-8")
    table = readme.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(REHEARSAL_[A-Z0-9_]+)`", table))
    used = _used()
    assert len(used) >= 10, used  # the scan finds them (else this guards nothing)
    missing = {name: where for name, where in used.items() if name not in documented | PLAN_NAMED}
    assert not missing, f"not in the README's table: {missing}"
    stale = documented - set(used) - PLAN_NAMED
    assert not stale, f"in the README's table but read nowhere: {sorted(stale)}"
