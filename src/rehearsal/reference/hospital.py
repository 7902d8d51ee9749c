"""The reference hospital as one object: EHR (FHIR API + web UI) on loopback, printers, faults.

``Hospital(plan, faults, workdir)`` binds where the plan's ``environment.fhir_base`` and
``web_base`` point, starts one simulated printer per plan printer, applies the faults,
and only then serves HTTP, so the first answer on ``/_reference/health`` means
everything is up. Start-up order is chosen so the common mistakes fail fast and in one
line: a non-loopback target or a taken port is refused before any printer is started.

The admin endpoints under ``/_reference`` (health, faults) are not part of the EHR under
test; they are how ``rehearse fault …`` reaches a running hospital.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from rehearsal.errors import TargetError, UsageError
from rehearsal.plan import Plan
from rehearsal.reference.ehr import Ehr, FhirApi
from rehearsal.reference.faults import (
    PRINTER_PAPER_OUT,
    Fault,
    FaultBoard,
    known_faults,
    parse_fault,
)
from rehearsal.reference.webui import WebUI

log = logging.getLogger("rehearsal.reference")

ADMIN_PATH = "/_reference"
START_TIMEOUT_S = 15.0


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


def _bind(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise TargetError(
                f"cannot listen on {host}:{port} for {what}: port {port} is already in use"
            ) from None
        raise TargetError(f"cannot listen on {host}:{port} for {what}: {exc.strerror or exc}") from None
    return sock


class Hospital:
    """The reference hospital for one plan; ``start()``/``stop()`` or ``with Hospital(...) as h:``."""

    def __init__(
        self,
        plan: Plan,
        faults: Iterable[Fault | str],
        workdir: Path | str,
        *,
        access_log: bool = False,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.workdir = Path(workdir)
        self.host, self.port = listen_address(plan)
        self.initial_faults = [f if isinstance(f, Fault) else parse_fault(f, plan) for f in faults]
        self.board = FaultBoard()
        self.access_log = access_log
        self._environ = environ
        self.ehr: Ehr | None = None
        self._fleet: Any = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

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

    # -- life cycle ----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Bind, seed, start printers, apply faults, serve; on any failure undo what was started."""
        if self._thread is not None:
            raise UsageError("this reference hospital is already started")
        self._sock = _bind(self.host, self.port, f"the reference EHR ({self.fhir_base})")
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            database = self.workdir / "ehr.sqlite"
            for stale in (database, database.with_suffix(".sqlite-journal")):
                stale.unlink(missing_ok=True)
            self.ehr = Ehr(self.plan, database, self.board, self._environ)
            self.ehr.seed()
            self._start_printers()
            self.board.on(PRINTER_PAPER_OUT, self._paper_out, self._paper_back)
            for fault in self.initial_faults:
                self.board.activate(fault)
            self._serve(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("reference hospital up: %s (web %s)", self.fhir_base, self.web_base)

    def stop(self) -> None:
        """Stop serving, stop printers (and their D-Bus), close the database; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._fleet is not None:
            try:
                self._fleet.stop()
            finally:
                self._fleet = None
        if self.ehr is not None:
            self.ehr.close()
            self.ehr = None

    def __enter__(self) -> Hospital:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

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

    # -- parts ---------------------------------------------------------------------------------

    def _start_printers(self) -> None:
        """One simulated IPP printer per loopback plan printer (the fleet skips real devices)."""
        if not self.printers:
            return
        from rehearsal.reference.printers import PrinterFleet

        fleet = PrinterFleet(self.printers, self.workdir)
        self._fleet = fleet
        fleet.start()

    def _site_printers(self, fault: Fault) -> list[str]:
        """The site's printers this hospital simulates; printers on other hosts cannot be faulted."""
        running = set(self._fleet.running) if self._fleet is not None else set()
        return [p.id for p in self.plan.site(fault.site or "").printers if p.id in running]

    def _paper_out(self, fault: Fault) -> None:
        for printer_id in self._site_printers(fault):
            self._fleet.set_paper_out(printer_id, True)

    def _paper_back(self, fault: Fault) -> None:
        for printer_id in self._site_printers(fault):
            self._fleet.set_paper_out(printer_id, False)

    def app(self) -> Starlette:
        """The one ASGI app: FHIR API, web UI and admin endpoints, each at its own path."""
        assert self.ehr is not None
        fhir_path = urlsplit(self.fhir_base).path.rstrip("/")
        web_path = urlsplit(self.web_base).path.rstrip("/")
        mounts: list[tuple[str, list[BaseRoute]]] = [
            (fhir_path, list(FhirApi(self.ehr, self.fhir_base).routes())),
            (web_path, list(WebUI(self.ehr, web_path).routes())),
            (ADMIN_PATH, self._admin_routes()),
        ]
        mounts.sort(key=lambda m: len(m[0]), reverse=True)  # the most specific path first
        return Starlette(routes=[Mount(path, routes=routes) for path, routes in mounts])

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
        return [
            Route("/health", self._health, methods=["GET"]),
            Route("/faults", self._faults, methods=["GET", "POST", "DELETE"]),
        ]

    async def _health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "up",
                "pid": os.getpid(),
                "rehearsal": self.plan.rehearsal,
                "fhir_base": self.fhir_base,
                "web_base": self.web_base,
                "printers": list(self._fleet.running) if self._fleet is not None else [],
                "faults": self.board.names(),
                "known_faults": known_faults(),
            }
        )

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
