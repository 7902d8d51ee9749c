"""Skrivare redo per plats: one result per plan printer, fed to the plan's device_readiness criterion.

All printers of the session are probed once, concurrently (one ``asyncio.run`` for the
whole fleet, bounded by the plan's device timeout); each test then reports on its own
printer, so a site's scorecard line counts ready devices / devices. Test ids are
``<site>/<printer>`` and stay stable across runs, so a rerun selects exactly the printers
that failed and probes only those.

Which printers are checked is decided by :data:`CHECKS`: today document printers with
``ipp://`` or ``ipps://`` URIs (IPP Get-Printer-Attributes). A ZPL or SNMP check is one
more entry there with its own ``applies`` and ``probe_all``; the tests stay as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest

from rehearsal import evidence
from rehearsal.plan import Criterion, Plan, Printer, Site
from rehearsal.probes import ipp
from rehearsal.pytest_plugin import plan_for, sites_in_scope

CONCURRENCY = 50


class Readiness(Protocol):
    """What every device probe returns (see rehearsal.probes.ipp.PrinterReadiness)."""

    @property
    def ready(self) -> bool: ...

    @property
    def problems(self) -> list[str]: ...

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DeviceCheck:
    """How one kind of device is probed: which plan printers it covers and the sweep to run."""

    name: str
    applies: Callable[[Printer], bool]
    probe_all: Callable[[Sequence[str], float], Awaitable[Sequence[Readiness]]]
    description: dict[str, str]


def _ipp_document(printer: Printer) -> bool:
    return printer.kind == "document" and urlsplit(printer.uri).scheme in ("ipp", "ipps")


CHECKS: tuple[DeviceCheck, ...] = (
    DeviceCheck(
        name="ipp",
        applies=_ipp_document,
        probe_all=lambda uris, timeout: ipp.probe_all(uris, timeout, CONCURRENCY),
        description={
            "sv": (
                "Skrivaren frågas med IPP Get-Printer-Attributes (tidsgräns {timeout:g} s). Redo betyder: "
                "den svarar, printer-state är idle eller processing, den tar emot jobb och "
                "printer-state-reasons har inget som stoppar utskrift (papper slut, pappersstopp, "
                "lucka öppen, toner slut, pausad …). Varningar som lite papper hindrar inte."
            ),
            "en": (
                "The printer is asked with IPP Get-Printer-Attributes (timeout {timeout:g} s). Ready means: "
                "it answers, printer-state is idle or processing, it accepts jobs and printer-state-reasons "
                "has nothing that stops printing (paper out, jam, cover open, toner empty, paused …). "
                "Warnings such as paper low do not count."
            ),
        },
    ),
)
TITLES = {"sv": "Skrivare {printer}{where} redo", "en": "Printer {printer}{where} ready"}


def check_for(printer: Printer) -> DeviceCheck | None:
    return next((c for c in CHECKS if c.applies(printer)), None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per (site, printer), id ``site/printer``.

    The parameters are the plan ids, not the plan objects: Allure derives a result's
    history from the parameter values, so a result keeps its identity (history, retries
    in a rerun) when a printer's location or URI changes in the plan.
    """
    if "device" not in metafunc.fixturenames:
        return
    if plan_for(metafunc.config) is None:
        metafunc.parametrize(("site", "device"), [])
        return
    cases = [(s.id, p.id) for s in sites_in_scope(metafunc.config) for p in s.printers if check_for(p)]
    if not cases:
        skip = pytest.mark.skip(reason="no printers with an automated check at the sites in scope")
        metafunc.parametrize(("site", "device"), [pytest.param(None, None, marks=skip, id="no-printers")])
        return
    metafunc.parametrize(("site", "device"), cases, ids=[f"{s}/{p}" for s, p in cases])


def plan_printer(plan: Plan, site_id: str, printer_id: str) -> tuple[Site, Printer]:
    site = plan.site(site_id)
    return site, next(p for p in site.printers if p.id == printer_id)


@pytest.fixture(scope="session")
def printer_readiness(plan: Plan, request: pytest.FixtureRequest) -> dict[str, Readiness]:
    """Probe every printer this session tests (after reruns and filters narrowed it), once."""
    wanted: dict[str, Printer] = {}
    for item in request.session.items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        module = getattr(item, "module", None)
        if module is not None and module.__name__ == __name__ and params.get("device"):
            _, printer = plan_printer(plan, params["site"], params["device"])
            wanted[printer.id] = printer
    timeout = plan.environment.timeouts.device
    by_check = [(c, [p for p in wanted.values() if check_for(p) is c]) for c in CHECKS]

    async def sweep() -> dict[str, Readiness]:
        results = await asyncio.gather(*(c.probe_all([p.uri for p in ps], timeout) for c, ps in by_check))
        return {
            p.id: r
            for (_, ps), rs in zip(by_check, results, strict=True)
            for p, r in zip(ps, rs, strict=True)
        }

    # In a thread of its own: a Playwright session earlier in the run leaves an event loop
    # running in this one, and asyncio.run refuses to start inside it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="printer-sweep") as pool:
        return pool.submit(asyncio.run, sweep()).result()


def device_criterion(plan: Plan, printer: Printer) -> Criterion | None:
    """The criterion a printer's result feeds: the plan's device_readiness criterion."""
    return next((c for c in plan.criteria if c.kind == "device_readiness"), None)


def test_printer_ready(site: str, device: str, plan: Plan, printer_readiness: dict[str, Readiness]) -> None:
    _, printer = plan_printer(plan, site, device)
    criterion = device_criterion(plan, printer)
    evidence.tag(
        aspect="teknisk",
        site=site,
        device=printer.id,
        criterion=criterion.id if criterion else None,
        severity=criterion.severity if criterion else None,
    )
    where = f" ({printer.location})" if printer.location else ""
    evidence.title(TITLES[plan.language].format(printer=printer.id, where=where))
    check = check_for(printer)
    assert check is not None
    evidence.describe(check.description[plan.language].format(timeout=plan.environment.timeouts.device))
    readiness = printer_readiness[printer.id]
    evidence.attach_json(
        "Skrivarstatus" if plan.language == "sv" else "Printer readiness",
        {"site": site, "printer": printer.id, "kind": printer.kind, "check": check.name}
        | readiness.as_dict(),
    )
    if not readiness.ready:
        problems = "; ".join(readiness.problems) or "not ready"
        pytest.fail(f"{site}: printer {printer.id} at {printer.uri} not ready: {problems}", pytrace=False)
