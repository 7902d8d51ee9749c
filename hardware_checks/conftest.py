"""One hardware sweep per session, shared by the device checks (see README.md in this folder).

Every device this session tests (after site filters and a rerun's selection narrowed it)
is probed once, concurrently (rehearsal.hardware); each test then reports on its own
device. The per-site readiness table is attached to the session set-up of every device
result and written to the run folder as hardware-readiness.{json,md}.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rehearsal import evidence
from rehearsal.hardware import (
    DeviceReport,
    SweepConfig,
    criterion_for,
    inventory,
    readiness_table,
    render_table,
    run_sweep,
)
from rehearsal.plan import LoadedPlan, Plan

CHECK_MODULES = ("test_printers", "test_workstations")


@pytest.fixture(scope="session")
def hardware_reports(
    loaded_plan: LoadedPlan, request: pytest.FixtureRequest, rehearsal_run_dir: Path
) -> dict[tuple[str, str], DeviceReport]:
    plan = loaded_plan.plan
    wanted = set()
    for item in request.session.items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        module = getattr(getattr(item, "module", None), "__name__", "")
        if module.rsplit(".", 1)[-1] in CHECK_MODULES and params.get("device"):
            wanted.add((params["site"], params["device"]))
    devices = [d for d in inventory(plan, loaded_plan.path.resolve().parent) if (d.site, d.id) in wanted]
    reports = run_sweep(devices, SweepConfig.from_plan(plan))
    table = readiness_table(plan, reports)
    text = render_table(table, plan.language)
    rehearsal_run_dir.mkdir(parents=True, exist_ok=True)
    (rehearsal_run_dir / "hardware-readiness.json").write_text(
        json.dumps(table, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (rehearsal_run_dir / "hardware-readiness.md").write_text(text, encoding="utf-8")
    evidence.attach_text("Redo per plats" if plan.language == "sv" else "Readiness per site", text)
    return {(r.device.site, r.device.id): r for r in reports}


@pytest.fixture
def judge_device(plan: Plan) -> Callable[[DeviceReport, str, str, str], None]:
    """Label, describe and judge one device result: the body every device check shares."""

    def judge(report: DeviceReport, title: str, description: str, noun: str) -> None:
        device = report.device
        criterion = criterion_for(plan, device.kind)
        evidence.tag(
            aspect="teknisk",
            site=device.site,
            device=device.id,
            criterion=criterion.id if criterion else None,
            severity=criterion.severity if criterion else None,
        )
        evidence.title(title)
        evidence.describe(description)
        name = "Enhetsstatus" if plan.language == "sv" else "Device readiness"
        evidence.attach_json(name, report.as_dict())
        for warning in report.warnings:
            with evidence.step(("Varning: " if plan.language == "sv" else "Warning: ") + warning):
                pass
        if not report.ready:
            problems = "; ".join(report.problems) or "not ready"
            where = f"{device.site}: {noun} {device.id} at {device.address}"
            pytest.fail(f"{where} not ready: {problems}", pytrace=False)

    return judge
