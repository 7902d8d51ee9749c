"""Every result carries its run and node id, including a test skipped by its marker.

Reruns select by the ``nodeid`` label and ``rehearse report`` of a killed run settles it only
when every planned node id has a result; a skip mark stops a test before any fixture runs,
so a label set by a fixture was missing exactly there (a plan without load: ``[no-load]``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_test_skipped_by_its_marker_has_its_nodeid_label(make_plan, tmp_path: Path) -> None:
    plan = make_plan(lambda data: data.pop("load"))
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "load" / "test_slos.py"), "-p", "no:cacheprovider",
         "--rootdir", str(ROOT), "--rehearsal-plan", str(plan), "--rehearsal-run-id", "label-test",
         "--alluredir", str(results), "-q"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = [json.loads(p.read_text(encoding="utf-8")) for p in results.glob("*-result.json")]
    assert [r["status"] for r in found] == ["skipped"]
    labels = {label["name"]: label["value"] for label in found[0]["labels"]}
    assert labels["nodeid"] == "load/test_slos.py::test_load_slo[no-load]"
    assert labels["run"] == "label-test"
