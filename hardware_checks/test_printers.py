"""Skrivare redo per plats: one result per plan printer (document: IPP/SNMP; wristband, label: ZPL).

Each result carries the site, the device and the criterion of its kind as labels
(rehearsal.hardware.CRITERIA: tech-printers, tech-wristband-printers, tech-label-printers),
so a site's scorecard line counts ready devices / devices per kind. Test ids are
``<site>/<printer>`` and stay stable across runs, so a rerun probes only what failed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rehearsal.hardware import DeviceReport
from rehearsal.plan import Plan
from rehearsal.pytest_plugin import parametrize_devices

TITLES = {
    "sv": {"document": "Skrivare", "wristband": "Armbandsskrivare", "label": "Etikettskrivare"},
    "en": {"document": "Printer", "wristband": "Wristband printer", "label": "Label printer"},
}
HOW = {
    "sv": {
        "ipp": "IPP Get-Printer-Attributes: printer-state, printer-state-reasons (utan "
        "-report/-warning/-error), printer-is-accepting-jobs, media-ready, format och utskriftsmaterial",
        "snmp": "SNMP v2c GET: modell, hrDeviceStatus, hrPrinterStatus och felbitarna i "
        "hrPrinterDetectedErrorState (tabellerna för förbrukningsmaterial, larm och språk "
        "när planen kräver dem)",
        "zpl": "ZPL ~HS (papper slut, pausad, skrivhuvud öppet, färgband slut; tystnad = ej redo), "
        "och ~HI (modell och upplösning) när planen bedömer modellen",
    },
    "en": {
        "ipp": "IPP Get-Printer-Attributes: printer-state, printer-state-reasons (suffixes stripped), "
        "printer-is-accepting-jobs, media-ready, formats and supplies",
        "snmp": "SNMP v2c GET: model, hrDeviceStatus, hrPrinterStatus and the hrPrinterDetectedErrorState "
        "bits (the supply, alert and language tables when the plan needs them)",
        "zpl": "ZPL ~HS (paper out, paused, head open, ribbon out; silence = not ready), "
        "and ~HI (model and resolution) when the plan judges the model",
    },
}
DESCRIPTION = {
    "sv": (
        "Frågas med {how} (tidsgräns {timeout:g} s). Redo betyder: den svarar, inget hindrar utskrift, "
        "modellen är godkänd och har de förmågor planen kräver för sin sort, och förbrukningsmaterialet "
        "ligger över planens gräns. Varningar (lite papper, lite toner) hindrar inte."
    ),
    "en": (
        "Asked with {how} (timeout {timeout:g} s). Ready means: it answers, nothing stops printing, the "
        "model is approved and has the capabilities the plan requires for its kind, and supplies are above "
        "the plan's threshold. Warnings (paper low, toner low) do not count."
    ),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_devices(metafunc, lambda site: site.printers, "printers")


def test_printer_ready(
    site: str,
    device: str,
    plan: Plan,
    hardware_reports: dict[tuple[str, str], DeviceReport],
    judge_device: Callable[..., None],
) -> None:
    report = hardware_reports[(site, device)]
    kind, lang = report.device.kind, plan.language if plan.language in TITLES else "en"
    where = f" ({report.device.location})" if report.device.location else ""
    how = "; ".join(HOW[lang][p] for p in report.device.protocol.split("+"))
    noun = {"document": "printer", "wristband": "wristband printer", "label": "label printer"}[kind]
    ready = "redo" if lang == "sv" else "ready"
    judge_device(
        report,
        f"{TITLES[lang][kind]} {device}{where} {ready}",
        DESCRIPTION[lang].format(how=how, timeout=plan.environment.timeouts.device),
        noun,
    )
