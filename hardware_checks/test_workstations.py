"""Arbetsstationer redo per plats: one result per plan workstation, its facts file against the baseline.

A failed result lists one finding per broken baseline rule; a facts file that is missing
or malformed fails with a message naming the file and the field, and the sweep goes on.
Results feed the criterion ``tech-workstations`` (per site: ready / workstations).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rehearsal.hardware import DeviceReport
from rehearsal.plan import Plan
from rehearsal.pytest_plugin import parametrize_devices

DESCRIPTION = {
    "sv": (
        "Arbetsstationens faktafil (från insamlingsskripten i collectors/) jämförs med planens baslinje: "
        "OS-version, minne, ledigt disk, skärm, webbläsare, Citrix Workspace, kringutrustning för rollen, "
        "svarstid och TLS-förtroende mot journalsystemet och klockans avvikelse. Ett fynd per brutet krav."
    ),
    "en": (
        "The workstation's facts file (from the collectors in collectors/) is compared with the plan's "
        "baseline: OS version, RAM, free disk, display, browsers, Citrix Workspace, peripherals for its "
        "role, latency and TLS trust towards the EHR, and clock skew. One finding per broken rule."
    ),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_devices(metafunc, lambda site: site.workstations, "workstations")


def test_workstation_ready(
    site: str,
    device: str,
    plan: Plan,
    hardware_reports: dict[tuple[str, str], DeviceReport],
    judge_device: Callable[..., None],
) -> None:
    report = hardware_reports[(site, device)]
    lang = plan.language if plan.language in DESCRIPTION else "en"
    where = f" ({report.device.location})" if report.device.location else ""
    title = f"Arbetsstation {device}{where} redo" if lang == "sv" else f"Workstation {device}{where} ready"
    judge_device(report, title, DESCRIPTION[lang], "workstation")
