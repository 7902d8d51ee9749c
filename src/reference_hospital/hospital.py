"""The reference hospital as one object: every component of the plan on loopback, and its faults.

``Hospital(plan, faults, workdir)`` builds the components the plan asks for — the new
EHR (FHIR API + web UI) where ``environment.fhir_base``/``web_base`` point, and, when the
plan names their endpoints, the HSA/KiV directory, the legacy EHR, the lab system, the
coexistence bridge, and the plan's devices (devices.py: IPP and ZPL printers, SNMP agents,
workstation facts) — then ``start()``:

1. claims every port first, so a taken port fails in one line naming the component
   and its port before anything runs;
2. serves the EHR (the bridge and the lab read from it), then starts the components in
   order (directory, migration, legacy, lab, bridge, devices, then any added to
   :data:`COMPONENT_FACTORIES`), each declaring the faults it implements;
3. applies the start-up faults and waits until every component's health check passes;
   until then ``/_reference/health`` answers 503, so its first 200 means everything is up.

A component is anything with the small :class:`Component` interface; a new simulator
(ZPL printers, SNMP, workstations) is a ``"module:function"`` line in
:data:`COMPONENT_FACTORIES` whose function returns the components the plan needs.

The admin endpoints under ``/_reference`` (health, faults, per-component state) are not
part of the systems under test; they are how ``rehearse fault …`` reaches a running
hospital and how tests look inside the simulators.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from reference_hospital.ehr import Ehr
from reference_hospital.faults import (
    PRINTER_PAPER_OUT,
    REGISTRY,
    SLOW_PATIENT_SEARCH,
    Fault,
    FaultBoard,
    known_faults,
    parse_fault,
)
from reference_hospital.service import Service
from reference_hospital.sockets import bind_socket  # re-exported: the servers' shared plumbing
from rehearsal.errors import TargetError, UsageError
from rehearsal.plan import Plan

log = logging.getLogger("reference_hospital")

ADMIN_PATH = "/_reference"
START_TIMEOUT_S = 15.0
#: Faults the new EHR (ehr.py, webui.py) looks up itself.
EHR_FAULTS: tuple[str, ...] = (SLOW_PATIENT_SEARCH,)

#: Where the hospital's components come from, in start order: ``"module:function"``, the
#: function taking the Hospital and returning the components its plan asks for (maybe none).
COMPONENT_FACTORIES: list[str] = [
    "reference_hospital.directory:components",
    "reference_hospital.migration:components",
    "reference_hospital.legacy:components",
    "reference_hospital.lab:components",
    "reference_hospital.bridge:components",
    "reference_hospital.hospital:device_components",
]

T = TypeVar("T")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_address(plan: Plan) -> tuple[str, int]:
    """Host and port the EHR binds, from the plan; UsageError if they are not ours to bind."""
    env = plan.environment
    fhir, web = urlsplit(env.fhir_base), urlsplit(env.web_base)
    for label, parts, url in (("fhir_base", fhir, env.fhir_base), ("web_base", web, env.web_base)):
        if parts.scheme != "http":
            raise UsageError(f"environment.{label} {url}: the reference hospital serves plain http only")
        if not _is_loopback(parts.hostname or ""):
            raise UsageError(
                f"environment.{label} {url}: the reference hospital only listens on loopback "
                "(127.0.0.1, ::1 or localhost)"
            )
    fhir_at = (fhir.hostname, fhir.port or 80)
    web_at = (web.hostname, web.port or 80)
    if fhir_at != web_at:
        raise UsageError(
            f"environment.fhir_base ({env.fhir_base}) and web_base ({env.web_base}) must share host and port "
            "for the reference hospital (one server serves both)"
        )
    paths = [fhir.path.rstrip("/"), web.path.rstrip("/")]
    if paths[0] == paths[1]:
        raise UsageError(
            f"environment.fhir_base and web_base need different paths, both are {paths[0] or '/'!r}"
        )
    if any(p == ADMIN_PATH or p.startswith(ADMIN_PATH + "/") for p in paths):
        raise UsageError(f"environment paths must not use {ADMIN_PATH}, the reference hospital's admin path")
    host = "127.0.0.1" if fhir_at[0] == "localhost" else str(fhir_at[0])
    return host, int(fhir_at[1])


def endpoint_address(field: str, url: str, schemes: tuple[str, ...]) -> tuple[str, int]:
    """Host and port a component binds for ``environment.<field>``; UsageError unless loopback and ours."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise UsageError(
            f"environment.{field} {url}: the reference hospital serves {' or '.join(schemes)} here"
        )
    host = parts.hostname or ""
    if not _is_loopback(host):
        raise UsageError(
            f"environment.{field} {url}: the reference hospital only listens on loopback "
            "(127.0.0.1, ::1 or localhost)"
        )
    if not parts.port:
        raise UsageError(f"environment.{field} {url}: needs an explicit port")
    return ("127.0.0.1" if host == "localhost" else host), parts.port


_bind = bind_socket  # the name older callers use


# -- components ----------------------------------------------------------------------------------


class Component:
    """One part of the hospital with its own port(s). Subclasses override what they need.

    ``bind`` claims ports (nothing runs yet), ``start`` makes it serve, ``health`` answers
    ``{"ok": bool, …}`` quickly and without side effects, ``stop`` undoes everything and
    may be called twice or after a failed start. ``faults`` lists the registry names it
    implements; ``register`` declares them on the board (override it to add effects).
    ``admin_routes`` are mounted under ``/_reference/<name>`` for tests and operators.
    """

    name = "component"
    faults: tuple[str, ...] = ()

    def describe(self) -> str:
        """Name and address for messages: ``lab (mllp://127.0.0.1:18082)``."""
        return self.name

    def bind(self) -> None:
        return None

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"ok": True}

    def register(self, board: FaultBoard) -> None:
        for name in self.faults:
            board.handle(name)

    def admin_routes(self) -> list[BaseRoute]:
        return []


class LoopThread:
    """An asyncio event loop of its own in a daemon thread, for one component's servers and tasks.

    Components keep their asyncio work (MLLP servers, uvicorn, pollers, timers) on their
    own loop so that one busy or broken component never stalls another, and so ``stop``
    can cancel everything it started.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # made by start()
        self._thread: threading.Thread | None = None
        self._started = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the loop and wait for its result (from another thread)."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TargetError(f"{self.name}: no answer from its event loop within {timeout:g} s") from None

    @property
    def running(self) -> bool:
        return self._started

    def stop(self, timeout: float = 5.0) -> None:
        if not self._started or self._thread is None:
            return

        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            try:
                self.submit(_cancel_all()).result(timeout)
            except (concurrent.futures.TimeoutError, RuntimeError):
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
        self._started = False


async def serve_http(app: Any, sock: socket.socket, what: str, timeout: float = 10.0) -> uvicorn.Server:
    """Serve an ASGI app on an already bound socket, from the running loop; returns when it accepts."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="none",
        http="h11",
        timeout_graceful_shutdown=2,
        server_header=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + timeout
    while not server.started:
        if task.done():
            exc = task.exception() if not task.cancelled() else None
            raise TargetError(f"{what} stopped while starting: {exc or 'cancelled'}")
        if time.monotonic() > deadline:
            raise TargetError(f"{what} did not start within {timeout:g} s")
        await asyncio.sleep(0.01)
    server._rehearsal_task = task  # type: ignore[attr-defined]  # for stop_http
    return server


async def stop_http(server: uvicorn.Server | None) -> None:
    if server is None:
        return
    server.should_exit = True
    task = getattr(server, "_rehearsal_task", None)
    if task is not None:
        try:
            await asyncio.wait_for(task, 5)
        except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down anyway
            task.cancel()


class PrinterComponent(Component):
    """The plan's loopback IPP printers, one real ``ippeveprinter`` each (see printers.py)."""

    name = "printers"
    faults = (PRINTER_PAPER_OUT,)

    def __init__(self, hospital: Hospital) -> None:
        self.hospital = hospital
        self.fleet: Any = None

    def describe(self) -> str:
        return f"printers ({_listed([p.uri for p in self.hospital.printers])})"

    def start(self) -> None:
        if not self.hospital.printers:
            return  # nothing to simulate; printer-paper-out is still accepted (and changes nothing)
        from reference_hospital.printers import PrinterFleet

        fleet = PrinterFleet(self.hospital.printers, self.hospital.workdir)
        self.fleet = fleet
        fleet.start()

    def stop(self) -> None:
        if self.fleet is not None:
            try:
                self.fleet.stop()
            finally:
                self.fleet = None

    def health(self) -> dict[str, Any]:
        running = list(self.fleet.running) if self.fleet is not None else []
        return {"ok": self.fleet is not None or not self.hospital.printers, "running": running}

    def register(self, board: FaultBoard) -> None:
        board.on(PRINTER_PAPER_OUT, self._paper_out, self._paper_back)

    def _site_printers(self, fault: Fault) -> list[str]:
        """The site's printers this hospital simulates; printers on other hosts cannot be faulted."""
        running = set(self.fleet.running) if self.fleet is not None else set()
        return [p.id for p in self.hospital.plan.site(fault.site or "").printers if p.id in running]

    def _paper_out(self, fault: Fault) -> None:
        for printer_id in self._site_printers(fault):
            self.fleet.set_paper_out(printer_id, True)

    def _paper_back(self, fault: Fault) -> None:
        for printer_id in self._site_printers(fault):
            self.fleet.set_paper_out(printer_id, False)


def printer_components(hospital: Hospital) -> list[Component]:
    return [PrinterComponent(hospital)]


class DeviceComponent(Component):
    """Every simulated device of the plan (devices.DeviceFleet): IPP and ZPL printers, SNMP agents,
    workstation facts files; its device faults (``printer-offline@SITE`` …) switch them per site."""

    name = "devices"

    def __init__(self, hospital: Hospital, fleet_class: Any) -> None:
        from reference_hospital.devices import FAULTS as DEVICE_FAULTS

        self.hospital = hospital
        self.fleet = fleet_class(hospital.plan, hospital.workdir, plan_dir=hospital.plan_dir)
        self.faults = tuple(name for name in DEVICE_FAULTS if name in REGISTRY)

    def describe(self) -> str:
        return f"devices ({_listed([p.uri for s in self.hospital.plan.sites for p in s.printers])})"

    def ports(self) -> list[int]:
        """Each printer's port; a print server's port once however many queues it serves."""
        from reference_hospital.print_server import served

        found, queues = [], set()
        for site in self.hospital.plan.sites:
            for printer in site.printers:
                parts = urlsplit(printer.uri)
                if served(printer):
                    queues.add(parts.port)
                elif parts.scheme in ("ipp", "tcp") and parts.port and _is_loopback(parts.hostname or ""):
                    found.append(parts.port)
        return found + sorted(p for p in queues if p)

    def start(self) -> None:
        self.fleet.start()

    def stop(self) -> None:
        self.fleet.stop()

    def health(self) -> dict[str, Any]:
        return {"ok": bool(self.fleet._started) or not self.hospital.plan.sites, **self.fleet.health}

    def register(self, board: FaultBoard) -> None:
        for name in self.faults:
            board.on(
                name,
                lambda fault, name=name: self.fleet.set_fault(name, fault.site or ""),
                lambda fault, name=name: self.fleet.clear_fault(name, fault.site or ""),
            )

    def admin_routes(self) -> list[BaseRoute]:
        return [Route("/printed", self._printed, methods=["GET"])]

    async def _printed(self, request: Request) -> Response:
        """What each simulated ZPL printer took (``printed``, and ``queued`` while in error); ``?printer=ID``.

        The printer's own record, so a clinical scenario can ask the printer, not the EHR, whether
        a wristband or label arrived (``/_reference/devices/printed``).
        """
        wanted = request.query_params.get("printer")
        zpl = getattr(self.fleet, "zpl", None)
        ids = [p for p in getattr(self.fleet, "zpl_ids", []) if wanted in (None, p)]
        if wanted is not None and not ids:
            return JSONResponse({"error": f"no simulated ZPL printer {wanted!r}"}, 404)
        return JSONResponse(
            {p: {"printed": zpl.printed(p), "queued": list(zpl.printers[p].queued)} for p in ids}
        )


def device_components(hospital: Hospital) -> list[Component]:
    """The hardware simulators (devices.py) when present, else the IPP printers alone."""
    try:
        from reference_hospital.devices import DeviceFleet
    except ImportError:
        return printer_components(hospital)
    return [DeviceComponent(hospital, DeviceFleet)]


def _factory(spec: str) -> Callable[[Hospital], list[Component]]:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def _claimed_ports(hospital: Hospital, components: list[Component]) -> None:
    """Two endpoints of one plan on one port would fight at start: refuse the plan instead."""
    seen: dict[int, str] = {hospital.port: "environment.fhir_base/web_base (the EHR)"}
    for component in components:
        for port in getattr(component, "ports", lambda: [])():
            if port in seen:
                raise UsageError(f"{component.describe()} and {seen[port]} both want port {port}")
            seen[port] = component.describe()


# -- the hospital --------------------------------------------------------------------------------


class Hospital(Service):
    """The reference hospital for one plan; ``start()``/``stop()`` or ``with Hospital(...) as h:``."""

    def __init__(
        self,
        plan: Plan,
        faults: Iterable[Fault | str],
        workdir: Path | str,
        *,
        access_log: bool = False,
        environ: dict[str, str] | None = None,
        plan_dir: Path | str | None = None,
    ) -> None:
        self.plan = plan
        self.workdir = Path(workdir)
        #: where relative paths of the plan (an LDIF directory export) are resolved
        self.plan_dir = Path(plan_dir) if plan_dir is not None else None
        self.host, self.port = listen_address(plan)
        self.initial_faults = [f if isinstance(f, Fault) else parse_fault(f, plan) for f in faults]
        self.board = FaultBoard()
        self.access_log = access_log
        self._environ = environ
        self.ehr: Ehr | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.components: list[Component] = []
        for spec in COMPONENT_FACTORIES:
            self.components.extend(_factory(spec)(self))
        _claimed_ports(self, self.components)
        self.started_in_s: float | None = None

    # -- addresses -----------------------------------------------------------------------------

    @property
    def fhir_base(self) -> str:
        return self.plan.environment.fhir_base

    @property
    def web_base(self) -> str:
        return self.plan.environment.web_base

    @property
    def admin_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{ADMIN_PATH}"

    @property
    def printers(self) -> list[Any]:
        return [p for site in self.plan.sites for p in site.printers]

    def component(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise UsageError(
            f"this reference hospital has no component {name!r} "
            f"(it has: {', '.join(c.name for c in self.components) or 'only the EHR'})"
        )

    @property
    def _fleet(self) -> Any:
        """The IPP PrinterFleet, whichever component runs it."""
        for component in self.components:
            if isinstance(component, PrinterComponent):
                return component.fleet
            if isinstance(component, DeviceComponent):
                return component.fleet.ipp if component.fleet._started else None
        return None

    def _ipp_printers(self) -> list[str]:
        """The IPP printers running: ippeveprinters and print-server queues."""
        running = list(self._fleet.running) if self._fleet is not None else []
        for component in self.components:
            queues = getattr(getattr(component, "fleet", None), "queues", None)
            if isinstance(component, DeviceComponent) and queues is not None:
                running += queues.running
        return running

    def implemented_faults(self) -> list[str]:
        """Faults this hospital can produce for its plan (what ``start`` will declare)."""
        names = set(EHR_FAULTS)
        try:
            from reference_hospital.ehr_faults import EHR_FAULT_NAMES

            names.update(EHR_FAULT_NAMES)
        except ImportError:  # an EHR without faults of its own
            pass
        for component in self.components:
            names.update(component.faults)
        return sorted(names)

    # -- life cycle ----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Claim ports, seed, start each component, apply faults, serve; on any failure undo it all."""
        if self._thread is not None:
            raise UsageError("this reference hospital is already started")
        began = time.monotonic()
        self._sock = bind_socket(self.host, self.port, f"the reference EHR ({self.fhir_base})")
        try:
            for component in self.components:
                component.bind()
            self.workdir.mkdir(parents=True, exist_ok=True)
            database = self.workdir / "ehr.sqlite"
            for stale in (database, database.with_suffix(".sqlite-journal")):
                stale.unlink(missing_ok=True)
            self.ehr = Ehr(self.plan, database, self.board, self._environ)
            self.ehr.seed()
            for name in EHR_FAULTS:
                self.board.handle(name)
            self._serve(timeout)  # the EHR first: the bridge and the lab read from it as soon as they run
            for component in self.components:
                self._start_component(component)
                component.register(self.board)
            for fault in self.initial_faults:
                self.board.activate(fault)
            self._await_health(timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in_s = round(time.monotonic() - began, 3)
        log.info(
            "reference hospital up in %.2f s: %s (web %s), components: %s",
            self.started_in_s, self.fhir_base, self.web_base,
            ", ".join(c.describe() for c in self.components) or "EHR only",
        )  # fmt: skip

    def _start_component(self, component: Component) -> None:
        try:
            component.start()
        except (TargetError, UsageError):
            raise
        except Exception as exc:  # a simulator's own failure, in one line naming it
            raise TargetError(
                f"{component.describe()} did not start: {exc.__class__.__name__}: {exc}"
            ) from exc

    def _await_health(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for component in self.components:
            while True:
                state = self._health_of(component)
                if state.get("ok"):
                    break
                if time.monotonic() > deadline:
                    raise TargetError(
                        f"{component.describe()} is not healthy after start: {state.get('error', state)}"
                    )
                time.sleep(0.05)

    @staticmethod
    def _health_of(component: Component) -> dict[str, Any]:
        try:
            return component.health()
        except Exception as exc:  # noqa: BLE001 - a health check must answer, not raise
            return {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}

    def stop(self) -> None:
        """Stop serving, stop every component (reverse order), close the database; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:  # keep stopping the others
                log.exception("stopping %s failed", component.describe())
        if self.ehr is not None:
            self.ehr.close()
            self.ehr = None

    # -- faults --------------------------------------------------------------------------------

    def set_fault(self, text: str) -> list[str]:
        """Switch a fault on (``name`` or ``name@SITE``); returns the active fault names."""
        self.board.activate(parse_fault(text, self.plan))
        return self.board.names()

    def clear_fault(self, text: str | None = None) -> list[str]:
        """Switch one fault off, or all of them when ``text`` is None; returns the active names."""
        if text is None:
            self.board.clear_all()
        else:
            self.board.deactivate(parse_fault(text, self.plan))
        return self.board.names()

    # -- serving -------------------------------------------------------------------------------

    def app(self) -> Starlette:
        """The EHR's ASGI app: FHIR API, web UI and admin endpoints, each at its own path."""
        assert self.ehr is not None
        from reference_hospital.ehr_server import ehr_routes

        return Starlette(routes=ehr_routes(self.ehr, extra=[(ADMIN_PATH, self._admin_routes())]))

    def _serve(self, timeout: float) -> None:
        config = uvicorn.Config(
            self.app(),
            log_level="info" if self.access_log else "warning",
            access_log=self.access_log,
            lifespan="off",
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=3,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        sock = self._sock
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="reference-ehr", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise TargetError(
                    f"the reference EHR on {self.host}:{self.port} stopped while starting (see log)"
                )
            if time.monotonic() > deadline:
                raise TargetError(
                    f"the reference EHR on {self.host}:{self.port} did not start within {timeout:g} s"
                )
            time.sleep(0.02)

    # -- admin ---------------------------------------------------------------------------------

    def _admin_routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/health", self._health, methods=["GET"]),
            Route("/faults", self._faults, methods=["GET", "POST", "DELETE"]),
        ]
        for component in self.components:
            extra = component.admin_routes()
            if extra:
                routes.append(Mount(f"/{component.name}", routes=extra))
        return routes

    def health(self) -> dict[str, Any]:
        """Every component's health (``ok`` and details), the active and the available faults."""
        components: dict[str, Any] = {"ehr": {"ok": self._server is not None and self._server.started,
                                              "url": self.fhir_base}}  # fmt: skip
        for component in self.components:
            components[component.name] = {"address": component.describe(), **self._health_of(component)}
        return {
            "status": "up" if all(c.get("ok") for c in components.values()) else "degraded",
            "pid": os.getpid(),
            "rehearsal": self.plan.rehearsal,
            "fhir_base": self.fhir_base,
            "web_base": self.web_base,
            "started_in_s": self.started_in_s,
            "printers": self._ipp_printers(),
            "components": components,
            "faults": self.board.names(),
            "implemented_faults": self.board.handled(),
            "known_faults": known_faults(),
        }

    async def _health(self, request: Request) -> Response:
        """503 while the hospital is still starting (the EHR serves first), then every component's health."""
        from starlette.concurrency import run_in_threadpool

        if self.started_in_s is None:
            return JSONResponse({"status": "starting", "pid": os.getpid()}, 503)
        return JSONResponse(await run_in_threadpool(self.health))

    async def _faults(self, request: Request) -> Response:
        """GET lists active faults; POST {"fault": NAME} sets one; DELETE ?fault=NAME clears one (or all)."""
        from starlette.concurrency import run_in_threadpool

        try:
            if request.method == "POST":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if not isinstance(body, dict) or not isinstance(body.get("fault"), str):
                    return JSONResponse({"error": 'send {"fault": "NAME[@SITE]"}'}, 400)
                names = await run_in_threadpool(self.set_fault, body["fault"])
            elif request.method == "DELETE":
                names = await run_in_threadpool(self.clear_fault, request.query_params.get("fault"))
            else:
                names = self.board.names()
        except UsageError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        except Exception as exc:  # e.g. a printer that would not change state
            log.exception("fault change failed")
            return JSONResponse({"error": f"the fault could not be changed: {exc}"}, 502)
        return JSONResponse(names)


def _listed(uris: list[str], most: int = 3) -> str:
    """A few addresses for a one-line message (a region has hundreds): the first, then how many."""
    if not uris:
        return "none in the plan"
    shown = ", ".join(uris[:most])
    return shown if len(uris) <= most else f"{shown} … {len(uris)} in all"
