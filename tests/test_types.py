"""The harness type-checks: mypy (pinned, with the pydantic plugin, settings in pyproject's
``[tool.mypy]``) finds no error in ``src/rehearsal``. A newcomer's change that hands a
``Runbook | None`` where a ``Runbook`` is needed fails here, not on the rehearsal day."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_harness_type_checks(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy"), "src/rehearsal"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0 and "Success: no issues found" in done.stdout, done.stdout + done.stderr
