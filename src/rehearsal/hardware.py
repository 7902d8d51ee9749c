"""The hardware sweep: every device of a plan, probed concurrently, judged, tabled per site.

The plan's inventory (printers over IPP, SNMP and ZPL; workstations by their facts files)
becomes a list of :class:`Device`; :func:`sweep` probes them all on one event loop and
returns one :class:`DeviceReport` each — never an exception for what a device does. A
report says ready or not and why: the probe's own problems, then EHR compatibility (the
plan's approved models and required capabilities per kind), then supply thresholds.

Each kind is asked only what decides its readiness (one IPP Get-Printer-Attributes, one
SNMP GET, one ZPL ``~HS``; more only when the plan judges model, capabilities or supply
levels), over one connection per device. Bounded concurrency, without letting dead devices
stall the sweep: at most ``concurrency`` probes are *active*; a probe that has not finished within the current
hold time (an RTO, as TCP computes it: smoothed answer time + 4 × its deviation, from the
devices that did answer) gives its slot to the next device and goes on waiting, up to its
own timeout, among at most ``max_open`` waiting ones. So 1,000 silent devices cost about
one timeout period, not 1,000 / concurrency of them.

    inventory(plan, plan_dir, sites)  -> list[Device]
    sweep(devices, config)            -> list[DeviceReport]     (async)
    run_sweep(devices, config)        -> list[DeviceReport]     (from sync code, own loop/thread)
    readiness_table(plan, reports)    -> dict; render_table(...) -> str (Markdown)
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rehearsal.devtext import clean, md_cell
from rehearsal.pdf import simple_pdf
from rehearsal.plan import (
    Baseline,
    Criterion,
    DeviceModels,
    Plan,
    Printer,
    Site,
    SupplyThresholds,
    Workstation,
)
from rehearsal.probes import ProbeError, ProtocolError, ipp, ipp_client, snmp, zpl
from rehearsal.probes.workstation import check_workstation

KINDS = ("document", "wristband", "label", "workstation")
CHECKS_FOLDER = "hardware_checks"
#: The criterion each device kind feeds (plans/README.md); else the plan's first device_readiness one.
CRITERIA = {
    "document": "tech-printers",
    "wristband": "tech-wristband-printers",
    "label": "tech-label-printers",
    "workstation": "tech-workstations",
}
KIND_NAMES = {
    "sv": {
        "document": "dokumentskrivare",
        "wristband": "armbandsskrivare",
        "label": "etikettskrivare",
        "workstation": "arbetsstationer",
    },
    "en": {
        "document": "document printers",
        "wristband": "wristband printers",
        "label": "label printers",
        "workstation": "workstations",
    },
}
FORMATS = {
    "application/pdf": "pdf",
    "application/vnd.hp-pcl": "pcl",
    "application/postscript": "ps",
    "image/pwg-raster": "pwg-raster",
    "image/urf": "urf",
    "application/vnd.zebra-zpl": "zpl",
}
IPP_ATTRIBUTES = (*ipp.READINESS_ATTRIBUTES, "printer-resolution-supported")
LINE_LIMIT = 1000  # characters of one problem line (device text in it is cut at devtext.LIMIT)


@dataclass(frozen=True)
class Device:
    """One device of the inventory and how it is asked."""

    site: str
    id: str
    kind: str  # document | wristband | label | workstation
    protocol: str  # ipp | ipp+snmp | snmp | zpl | facts
    address: str  # printer URI, or the facts file of a workstation
    location: str = ""
    snmp: tuple[str, int, str] | None = None  # host, port, community
    role: str = ""


@dataclass(frozen=True)
class DeviceReport:
    device: Device
    ready: bool
    reachable: bool
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    make_and_model: str = ""
    capabilities: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    test_print: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = self.device
        return {
            "site": d.site, "device": d.id, "kind": d.kind, "protocol": d.protocol, "address": d.address,
            "location": d.location, "ready": self.ready, "reachable": self.reachable,
            "problems": list(self.problems), "warnings": list(self.warnings),
            "make_and_model": self.make_and_model, "capabilities": list(self.capabilities),
            "elapsed_s": self.elapsed_s, "test_print": self.test_print,
            "details": {k: v.as_dict() if hasattr(v, "as_dict") else v for k, v in self.details.items()},
        }  # fmt: skip


@dataclass(frozen=True)
class SweepConfig:
    timeout: float = 2.0
    concurrency: int = 128
    max_open: int = 4096
    supplies: SupplyThresholds = SupplyThresholds()
    device_models: dict[str, DeviceModels] = field(default_factory=dict)
    baseline: Baseline | None = None
    test_print: bool = False
    rehearsal: str = ""

    @classmethod
    def from_plan(cls, plan: Plan, **overrides: Any) -> SweepConfig:
        values: dict[str, Any] = {
            "timeout": plan.environment.timeouts.device,
            "supplies": plan.supplies,
            "device_models": dict(plan.device_models),
            "baseline": plan.baseline,
            "test_print": plan.test_print,
            "rehearsal": plan.rehearsal,
        }
        return cls(**(values | overrides))


# --- inventory ------------------------------------------------------------------------------


def facts_path(plan: Plan, plan_dir: Path, site: Site, workstation: Workstation) -> Path:
    """A workstation's facts file: its own ``facts``, else ``<workstation_facts>/<site>/<id>.json``."""
    if workstation.facts:
        given = Path(workstation.facts)
    else:
        given = Path(plan.workstation_facts or "workstations") / site.id / f"{workstation.id}.json"
    return given if given.is_absolute() else Path(os.path.normpath(plan_dir / given))


def printer_device(site: Site, printer: Printer) -> Device:
    scheme = urlsplit(printer.uri).scheme
    access = None
    if printer.snmp is not None or scheme == "snmp":
        parts = urlsplit(printer.uri)
        community = printer.snmp.community if printer.snmp else (parts.username or "public")
        host = (printer.snmp.host if printer.snmp else None) or parts.hostname or "127.0.0.1"
        port = printer.snmp.port if printer.snmp else (parts.port or 161)
        access = (host, port, community)
    if scheme in ("ipp", "ipps"):
        protocol = "ipp+snmp" if access else "ipp"
    elif scheme == "snmp":
        protocol = "snmp"
    else:
        protocol = "zpl+snmp" if access else "zpl"
    return Device(site.id, printer.id, printer.kind, protocol, printer.uri, printer.location, access)


def inventory(plan: Plan, plan_dir: Path | None = None, sites: Iterable[str] | None = None) -> list[Device]:
    """Every device of the plan at the given sites (all when None), printers first, in plan order."""
    wanted = set(sites) if sites else None
    devices: list[Device] = []
    for site in plan.sites:
        if wanted is not None and site.id not in wanted:
            continue
        devices += [printer_device(site, p) for p in site.printers]
        for ws in site.workstations:
            path = facts_path(plan, plan_dir or Path.cwd(), site, ws)
            devices.append(
                Device(site.id, ws.id, "workstation", "facts", str(path), ws.location, role=ws.role)
            )
    return devices


def criterion_for(plan: Plan, kind: str) -> Criterion | None:
    """The plan criterion a device kind feeds: the one listing it in ``device_kinds``, else its
    documented id, else the first device_readiness one (Plan.device_criterion, which go/no-go
    also uses to tell where a readiness line applies)."""
    return plan.device_criterion(kind)


# --- judging --------------------------------------------------------------------------------


def compatibility(
    kind: str, make_and_model: str, capabilities: Sequence[str], models: DeviceModels | None
) -> list[str]:
    """Problems against the plan's approved models and required capabilities for this kind."""
    if models is None:
        return []
    found = []
    names = KIND_NAMES["en"][kind]
    if models.approved:
        if not make_and_model:
            found.append(
                f"not approved: make and model not reported, cannot confirm it is approved for {names}"
            )
        elif not any(fnmatch.fnmatchcase(make_and_model.lower(), p.lower()) for p in models.approved):
            found.append(
                f"not approved: {make_and_model!r} is not an approved model for {names} "
                f"(approved: {', '.join(models.approved)})"
            )
    have = {c.lower() for c in capabilities}
    for need in models.capabilities:
        options = [o.strip().lower() for o in need.split("|")]
        if not have & set(options):
            has = ", ".join(sorted(have)) or "nothing reported"
            found.append(f"not compatible: needs {' or '.join(options)} (device has: {has})")
    return found


def ipp_supplies(attrs: dict[str, list[Any]]) -> list[tuple[str, float]]:
    """(description, percent) from IPP ``printer-supply`` (key=value;… strings), when levels are known."""
    found = []
    descriptions = [d for d in attrs.get("printer-supply-description", []) if isinstance(d, str)]
    for i, raw in enumerate(attrs.get("printer-supply", [])):
        if not isinstance(raw, str):
            continue
        fields = dict(p.split("=", 1) for p in raw.split(";") if "=" in p)
        try:
            level, top = int(fields.get("level", "-1")), int(fields.get("maxcapacity", "100"))
        except ValueError:
            continue
        if level < 0 or top <= 0 or fields.get("class") == "receptacleThatIsFilled":
            continue
        name = descriptions[i] if i < len(descriptions) else fields.get("type", f"supply {i + 1}")
        found.append((clean(name) or f"supply {i + 1}", round(100.0 * level / top, 1)))
    return found


def supply_verdict(
    supplies: Iterable[tuple[str, float]], thresholds: SupplyThresholds
) -> tuple[list[str], list[str]]:
    """Low is a warning unless the plan's ``fail_below`` says more; empty stops the printer either way."""
    problems, warnings = [], []
    for name, pct in supplies:
        if pct <= 0:
            problems.append(f"supply: {name} is empty")
        elif thresholds.fail_below is not None and pct < thresholds.fail_below:
            problems.append(
                f"supply: {name} at {pct:g} % (plan requires at least {thresholds.fail_below:g} %)"
            )
        elif pct < thresholds.warn_below:
            warnings.append(f"supply: {name} at {pct:g} %")
    return problems, warnings


# --- probes per protocol -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Lazy:
    """A probe's record, turned into JSON only when a report is written (a sweep of 10,000 skips it)."""

    record: Any
    extra: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return self.record.as_dict() | self.extra


@dataclass
class _Found:
    reachable: bool = True
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    make_and_model: str = ""
    capabilities: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0  # the probe's own time, without waiting for a place in a queue


async def _ipp(device: Device, config: SweepConfig) -> _Found:
    started = time.monotonic()
    try:
        attrs = await ipp.get_printer_attributes(device.address, config.timeout, IPP_ATTRIBUTES)
    except ProbeError as exc:
        error = clean(f"{exc.kind}: {exc}", LINE_LIMIT)
        found = _Found(isinstance(exc, ProtocolError), [error], details={"ipp": {"error": error}})
        found.elapsed = time.monotonic() - started
        return found
    readiness = ipp.readiness_from_attributes(device.address, attrs, (), time.monotonic() - started)
    caps = [FORMATS[f] for f in readiness.formats if f in FORMATS]
    for res in attrs.get("printer-resolution-supported", []):
        if isinstance(res, tuple) and len(res) == 3 and res[2] == 3:  # dots per inch
            caps.append(f"{res[0]}dpi")
    supplies = ipp_supplies(attrs)
    problems, warnings = supply_verdict(supplies, config.supplies)
    return _Found(
        True,
        readiness.problems + problems,
        readiness.warnings + warnings,
        readiness.make_and_model,
        list(dict.fromkeys(caps)),
        {"ipp": _Lazy(readiness, {"supplies": supplies})},
        time.monotonic() - started,
    )


def _judges(config: SweepConfig, kind: str) -> tuple[bool, bool]:
    """Whether the plan judges this kind's (model, capabilities): only then are they asked for."""
    models = config.device_models.get(kind)
    return (bool(models and models.approved), bool(models and models.capabilities))


async def _snmp(device: Device, config: SweepConfig, session: snmp.Session) -> _Found:
    assert device.snmp is not None
    host, port, community = device.snmp
    # the tables only when the plan needs them: supply levels against fail_below, or the languages
    # an SNMP-only printer speaks (an IPP one says its formats); else the one GET that decides
    detail = config.supplies.fail_below is not None or (
        device.protocol == "snmp" and _judges(config, device.kind)[1]
    )
    r = await snmp.probe_snmp(
        host, port, community, config.timeout, session=session,
        warn_below=config.supplies.warn_below, fail_below=config.supplies.fail_below, detail=detail,
    )  # fmt: skip
    found = _Found(r.reachable, r.problems, r.warnings, r.make_and_model, list(r.capabilities))
    found.details, found.elapsed = {"snmp": r}, r.elapsed_s
    return found


async def _zpl(device: Device, config: SweepConfig) -> _Found:
    r = await zpl.probe_zpl(
        device.address, config.timeout, identify=any(_judges(config, device.kind)), extended=False
    )
    reachable = r.reachable and not r.error
    found = _Found(reachable, r.problems, r.warnings, r.make_and_model, list(r.capabilities))
    found.details, found.elapsed = {"zpl": r}, r.elapsed_s
    return found


async def _facts(device: Device, config: SweepConfig) -> _Found:
    started = time.monotonic()
    r = await asyncio.to_thread(check_workstation, device.id, device.address, config.baseline, device.role)
    os_facts = (r.facts or {}).get("os", {})
    model = f"{os_facts.get('name', '')} {os_facts.get('version', '')}".strip()
    elapsed = time.monotonic() - started
    return _Found(r.reachable, r.problems, [], model, [], {"workstation": r}, elapsed)


async def probe_device(device: Device, config: SweepConfig, session: snmp.Session | None) -> DeviceReport:
    """Probe one device with every protocol it has, then judge compatibility and supplies."""
    started = time.monotonic()
    parts: list[Awaitable[_Found]] = []
    try:
        if device.protocol.startswith("ipp"):
            parts.append(_ipp(device, config))
        if device.protocol.startswith("zpl"):
            parts.append(_zpl(device, config))
        if "snmp" in device.protocol:
            if session is None:
                raise RuntimeError("an SNMP session is needed for SNMP devices")
            parts.append(_snmp(device, config, session))
        if device.protocol == "facts":
            parts.append(_facts(device, config))
        found = [await parts[0]] if len(parts) == 1 else list(await asyncio.gather(*parts))  # no task for one
    except Exception as exc:  # one odd device must not end a sweep of thousands
        found = [_Found(False, [f"probe failed: {type(exc).__name__}: {exc}"])]
    reachable = any(f.reachable for f in found)
    problems = [p for f in found for p in f.problems]
    warnings = list(dict.fromkeys(w for f in found for w in f.warnings))
    model = next((f.make_and_model for f in found if f.make_and_model), "")
    caps = list(dict.fromkeys(c for f in found for c in f.capabilities))
    if reachable and device.kind != "workstation" and all(f.reachable for f in found):
        problems += compatibility(device.kind, model, caps, config.device_models.get(device.kind))
    details = {k: v for f in found for k, v in f.details.items()}
    printed = None
    if config.test_print and reachable and not problems and device.kind != "workstation":
        printed = await _test_print(device, config)
        if printed.startswith("failed"):
            problems.append(f"test print {printed}")
    return DeviceReport(  # what the device said enters the record here: one clean line each (devtext)
        device=device,
        ready=reachable and not problems,
        reachable=reachable,
        problems=tuple(dict.fromkeys(clean(p, LINE_LIMIT) for p in problems)),
        warnings=tuple(dict.fromkeys(clean(w, LINE_LIMIT) for w in warnings)),
        make_and_model=clean(model),
        capabilities=tuple(clean(c) for c in caps),
        elapsed_s=round(max((f.elapsed for f in found), default=time.monotonic() - started), 4),
        details=details,
        test_print=printed,
    )


# --- test print -------------------------------------------------------------------------------


async def _test_print(device: Device, config: SweepConfig) -> str:
    when = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M")
    try:
        if device.protocol.startswith("zpl"):
            await zpl.print_label(
                device.address,
                zpl.rehearsal_label(device.id, device.site, config.rehearsal, when),
                config.timeout,
            )
            return "sent: test label"
        if device.protocol.startswith("ipp"):
            page = simple_pdf(
                "TESTUTSKRIFT - generalrepetition", [config.rehearsal, f"{device.site}/{device.id}", when]
            )
            async with ipp_client.IppSession(device.address, config.timeout) as printer:
                await printer.print_job(page, job_name=f"rehearsal test {device.id}")
            return "sent: test page"
        return "skipped: no print path over SNMP"
    except ipp_client.IppStatusError as exc:
        return f"failed: Print-Job answered {ipp_client.status_name(exc.status)}"
    except (ProbeError, TimeoutError) as exc:
        return clean(f"failed: {exc or 'timeout'}", LINE_LIMIT)


# --- the sweep ----------------------------------------------------------------------------------


def _settle(future: asyncio.Future[str], why: str) -> None:
    if not future.done():
        future.set_result(why)


class _Places:
    """A semaphore whose size can change while probes wait for it (the gate's window)."""

    def __init__(self, size: int) -> None:
        self.size, self.taken = size, 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        while self.taken >= self.size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self._wake()  # it may have been handed a place just now: pass it on
                raise
        self.taken += 1

    def release(self) -> None:
        self.taken -= 1
        self._wake()

    def resize(self, size: int) -> None:
        self.size = size
        self._wake()

    def _wake(self) -> None:
        free = self.size - self.taken
        while free > 0 and self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


class Gate:
    """At most ``concurrency`` active probes; one that looks dead gives its slot away and waits on.

    A probe looks dead when ``overtaken`` probes that started after it have finished (devices
    answer in roughly the order they are asked, so a silent one is passed by live ones within
    milliseconds), or, when nothing answers at all, after the hold time: an RTO from the
    answers seen so far (srtt + 4·rttvar, RFC 6298) clamped to [``floor``, ``ceiling``]. It
    keeps waiting up to its own timeout, among at most ``max_open`` waiting ones (file
    descriptors); its slot goes to the next device. Slow-but-alive devices keep their slots:
    a probe released by its hold time that answers after all was not dead, so the hold
    doubles (as TCP backs its RTO off), and halves again for each released one that indeed never
    answers. Without that, on a loaded machine every probe outlived the hold, gave its slot
    away, and ever more probes went in flight exactly when everything was slow, until
    answering devices timed out (false "unreachable" at 10,000).
    Once ``concurrency`` holds in a row have run out with no answer in between (a switched-off
    floor, a firewalled range), the hold drops to ``floor`` until something answers again:
    otherwise each further batch of dead devices would cost a whole hold time.

    The places themselves are a window, as TCP's congestion window: an answer that took longer
    than ``slow`` (a quarter of the timeout in a sweep) halves it, at most once per smoothed
    answer time and not below 8, and each timely answer gives one place back, up to
    ``concurrency``. When answers slow down it is the harness or the peers that are short of
    CPU (on loopback, or a loaded probe machine), and more probes in flight would only queue
    longer, until answering devices time out; on a LAN answers take milliseconds and the
    window stays whole.
    """

    def __init__(
        self, concurrency: int, max_open: int, ceiling: float, floor: float = 0.02, slow: float | None = None
    ):
        if concurrency < 1 or max_open < concurrency:
            raise ValueError(f"need 1 <= concurrency <= max_open, got {concurrency}, {max_open}")
        self.active = _Places(concurrency)
        self.slow = slow if slow is not None else 2 * max(floor, ceiling)
        self.least = min(concurrency, 8)
        self.cuts = 0  # times the window was halved
        self._cut_at = -1e9
        self.open = asyncio.Semaphore(max_open)
        self.floor, self.ceiling = floor, max(floor, ceiling)
        self.overtaken = max(8, concurrency // 4)
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.released = 0
        self.backoff = 1  # doubled by every released probe that answered after all, halved by a dead one
        self.unanswered = 0  # holds run out in a row with no answer in between
        self._concurrency = concurrency
        self._started = 0
        self._holding: dict[int, asyncio.Future[str]] = {}  # start number -> settled to give the slot away

    @property
    def hold(self) -> float:
        if self.unanswered >= self._concurrency:
            return self.floor
        if self.srtt is None:
            return self.ceiling * self.backoff
        return min(self.ceiling, max(self.floor, self.srtt + 4 * self.rttvar)) * self.backoff

    def sample(self, seconds: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, seconds / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - seconds)
            self.srtt = 0.875 * self.srtt + 0.125 * seconds

    def _finished(self, number: int) -> None:
        self._holding.pop(number, None)
        for older in [n for n in self._holding if n < number - self.overtaken]:
            _settle(self._holding.pop(older), "overtaken")

    async def run(self, work: Callable[[], Awaitable[DeviceReport]]) -> DeviceReport:
        async with self.open:
            await self.active.acquire()
            slot = True
            started = time.monotonic()
            self._started += 1
            number = self._started
            loop = asyncio.get_running_loop()
            # one future says what came first: the answer, the hold time, or being overtaken
            first: asyncio.Future[str] = loop.create_future()
            self._holding[number] = first
            task = asyncio.ensure_future(work())
            task.add_done_callback(lambda _: _settle(first, "done"))
            timer = loop.call_later(self.hold, _settle, first, "hold")
            why = ""
            try:
                why = await first
                if why != "done":
                    self.active.release()
                    slot = False
                    self.released += 1
                    if why == "hold":
                        self.unanswered += 1
                report = await task
            finally:
                timer.cancel()
                self._finished(number)
                if slot:
                    self.active.release()
                if not task.done():
                    task.cancel()
            if why == "hold":  # was it dead? An answer after all: the hold was too short (RFC 6298 §5.5)
                self.backoff = min(self.backoff * 2, 64) if report.reachable else max(1, self.backoff // 2)
            if report.reachable:
                self.unanswered = 0
                took = time.monotonic() - started
                self.sample(took)
                self._adjust(took)
            return report

    def _adjust(self, took: float) -> None:
        """Halve the window on a slow answer (once per smoothed answer time), else widen it by one."""
        now = time.monotonic()
        if took > self.slow:
            if now - self._cut_at > (self.srtt or self.slow) and self.active.size > self.least:
                self.active.resize(max(self.least, self.active.size // 2))
                self._cut_at = now
                self.cuts += 1
        elif self.active.size < self._concurrency:
            self.active.resize(self.active.size + 1)


async def sweep(
    devices: Sequence[Device], config: SweepConfig, *, on_report: Callable[[DeviceReport], None] | None = None
) -> list[DeviceReport]:
    """Probe every device (bounded, see :class:`Gate`); reports in the order of ``devices``.

    One connection per device, the probe's own: no separate "is it there" connect first (fired
    at every device at once it overflowed listen backlogs and called answering printers
    unreachable at 10,000). Printers on TCP take a place in the :class:`Gate`; SNMP-only
    printers (one UDP socket for all) are paced per agent by :class:`snmp.Session`, up to
    ``max_open`` waiting at once. A dead device gives its place away within the hold time, so
    1,000 of them add about one timeout to a sweep, not 1,000 / concurrency of them.
    """
    gate = Gate(config.concurrency, config.max_open, ceiling=config.timeout / 8, slow=config.timeout / 4)
    doors = asyncio.Semaphore(config.max_open)
    needs_snmp = any("snmp" in d.protocol for d in devices)
    session = await snmp.Session().open() if needs_snmp else None
    try:

        async def one(device: Device) -> DeviceReport:
            if device.protocol == "snmp":
                async with doors:
                    report = await probe_device(device, config, session)
            else:
                report = await gate.run(lambda: probe_device(device, config, session))
            if on_report is not None:
                on_report(report)
            return report

        return list(await asyncio.gather(*(one(d) for d in devices)))
    finally:
        if session is not None:
            session.close()


def run_sweep(devices: Sequence[Device], config: SweepConfig) -> list[DeviceReport]:
    """:func:`sweep` from synchronous code, on a loop of its own in a thread of its own.

    (A Playwright session earlier in a pytest run leaves an event loop running in the main
    thread, and ``asyncio.run`` refuses to start inside it.)
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hardware-sweep") as pool:
        return pool.submit(asyncio.run, sweep(devices, config)).result()


# --- the per-site table ---------------------------------------------------------------------------


def readiness_table(plan: Plan, reports: Sequence[DeviceReport]) -> dict[str, Any]:
    """Per site and device kind: devices, ready, unreachable, with warnings, the rate and the criterion."""
    sites: dict[str, dict[str, dict[str, Any]]] = {}
    for r in reports:
        row = sites.setdefault(r.device.site, {}).setdefault(
            r.device.kind, {"devices": 0, "ready": 0, "unreachable": 0, "warnings": 0, "not_ready": []}
        )
        row["devices"] += 1
        row["ready"] += r.ready
        row["unreachable"] += not r.reachable
        row["warnings"] += bool(r.warnings)
        if not r.ready:
            row["not_ready"].append({"device": r.device.id, "reason": (r.problems or ("not ready",))[0]})
    for kinds in sites.values():
        for kind, row in kinds.items():
            criterion = criterion_for(plan, kind)
            row["rate"] = round(row["ready"] / row["devices"], 4) if row["devices"] else None
            row["criterion"] = criterion.id if criterion else None
            row["threshold"] = criterion.threshold if criterion else None
            row["meets"] = None if row["threshold"] is None else row["rate"] >= row["threshold"]
    return {"rehearsal": plan.rehearsal, "sites": sites}


def render_table(table: dict[str, Any], language: str = "sv") -> str:
    """The table as Markdown, one line per site and kind, the not-ready devices below it."""
    names = KIND_NAMES.get(language, KIND_NAMES["en"])
    sv = language == "sv"
    head = ["plats", "enheter", "antal", "redo", "ej nåbara", "varningar", "andel", "krav"] if sv else [
        "site", "devices", "count", "ready", "unreachable", "warnings", "rate", "required"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    missing: list[str] = []
    for site, kinds in table["sites"].items():
        for kind in KINDS:
            row = kinds.get(kind)
            if row is None:
                continue
            rate = "–" if row["rate"] is None else f"{row['rate'] * 100:.1f} %"
            need = "–" if row["threshold"] is None else f"≥ {row['threshold'] * 100:g} % ({row['criterion']})"
            mark = "" if row["meets"] in (None, True) else " ✗"
            lines.append(
                f"| {md_cell(site)} | {names[kind]} | {row['devices']} | {row['ready']} | "
                f"{row['unreachable']} | {row['warnings']} | {rate}{mark} | {md_cell(need)} |"
            )
            missing += [
                f"- {md_cell(site)}/{md_cell(n['device'])}: {md_cell(n['reason'], LINE_LIMIT)}"
                for n in row["not_ready"]
            ]
    if missing:
        lines += ["", "Ej redo:" if sv else "Not ready:", *missing]
    return "\n".join(lines) + "\n"


# --- `rehearse hardware` ------------------------------------------------------------------------------


def hardware_plan(plan: Plan, sites: Iterable[str] | None = None) -> Plan:
    """The plan narrowed to its device criteria (and run_complete), and to ``sites`` when given:
    what the decision of a hardware-only run is about."""
    kept = [c for c in plan.criteria if c.kind in ("device_readiness", "run_complete")]
    wanted = set(sites or ())
    in_scope = [s for s in plan.sites if s.id in wanted] if wanted else list(plan.sites)
    return plan.model_copy(update={"criteria": kept, "sites": in_scope, "runbook": None})  # no cutover here


def execute_hardware(
    reports_root: Path,
    loaded: Any,
    *,
    sites: list[str] | None = None,
    rerun: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Any, Any]:
    """Run hardware_checks/ only, as a normal run; with ``rerun`` (a run id or "" for the newest),
    only the devices that failed in that run's chain. Returns (Outcome, the narrowed LoadedPlan)."""
    from rehearsal.plan import LoadedPlan
    from rehearsal.results import failed_nodeids, merge
    from rehearsal.run import chain, load_run
    from rehearsal.runner import execute

    parent, selection = None, None
    if rerun is not None:
        parent = load_run(reports_root, rerun or None)
        merged = merge([r.results_dir for r in chain(parent)])
        selection = [n for n in failed_nodeids(merged) if n.startswith(CHECKS_FOLDER + "/")]
    outcome = execute(
        reports_root, loaded, parent=parent, selection=selection, sites=sites, env=env, paths=[CHECKS_FOLDER]
    )
    scope = sites or (parent.sites if parent is not None and getattr(parent, "sites", None) else None)
    narrowed = LoadedPlan(plan=hardware_plan(loaded.plan, scope), path=loaded.path, sha256=loaded.sha256)
    return outcome, narrowed


__all__ = [
    "CRITERIA",
    "Device",
    "DeviceReport",
    "Gate",
    "SweepConfig",
    "compatibility",
    "criterion_for",
    "execute_hardware",
    "facts_path",
    "hardware_plan",
    "inventory",
    "probe_device",
    "readiness_table",
    "render_table",
    "run_sweep",
    "sweep",
]
