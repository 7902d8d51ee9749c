"""The new EHR on its own: its ASGI routes, and a small server for tests and tools.

:func:`ehr_routes` is the one place that knows how the FHIR API and the web UI share a
host and port: each is mounted at the path of its base URL (most specific first), and
``[base]`` itself (``/fhir`` without a slash, where FHIR clients POST transactions) gets
its own route, because a mount only sees what is below it. The hospital adds its admin
mount through ``extra``.

:class:`EhrServer` runs just the EHR of a plan on loopback (no printers, no other
components) with a :class:`FaultBoard` the caller can switch: what the EHR's own tests
use, and a quick way to poke the EHR by hand::

    with EhrServer(plan, workdir, environ={"REHEARSAL_PASSWORD": "x"}) as server:
        httpx.get(server.fhir_base + "/metadata")
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from reference_hospital.ehr import Ehr
from reference_hospital.faults import FaultBoard
from reference_hospital.fhir_api import FhirApi
from reference_hospital.service import Service
from reference_hospital.webui import WebUI
from rehearsal.errors import TargetError, UsageError
from rehearsal.plan import Plan


def ehr_routes(ehr: Ehr, extra: list[tuple[str, list[BaseRoute]]] | None = None) -> list[BaseRoute]:
    """The FHIR API and web UI of ``ehr`` (plus ``extra`` mounts), each at its own path."""
    env = ehr.plan.environment
    fhir_path = urlsplit(env.fhir_base).path.rstrip("/")
    web_path = urlsplit(env.web_base).path.rstrip("/")
    api = FhirApi(ehr, env.fhir_base)
    mounts: list[tuple[str, list[BaseRoute]]] = [
        (fhir_path, list(api.routes())),
        (web_path, list(WebUI(ehr, web_path).routes())),
        *(extra or []),
    ]
    mounts.sort(key=lambda m: len(m[0]), reverse=True)  # the most specific path first
    base: list[BaseRoute] = [api.base_route(fhir_path)] if fhir_path else []
    return base + [Mount(path, routes=routes) for path, routes in mounts]


class EhrServer(Service):
    """The EHR of a plan served on the plan's ``fhir_base`` host and port, in a thread.

    ``test_identities_only=False`` turns the test-identity guard off (for loading foreign
    example data only). ``board`` is the fault board; switch faults with
    ``server.board.activate(Fault(name, site))``.
    """

    def __init__(
        self,
        plan: Plan,
        workdir: Path | str,
        *,
        environ: dict[str, str] | None = None,
        test_identities_only: bool = True,
        seed: bool = True,
    ) -> None:
        parts = urlsplit(plan.environment.fhir_base)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1") or not parts.port:
            raise UsageError(
                f"EhrServer serves loopback with an explicit port only, not {plan.environment.fhir_base}"
            )
        self.plan = plan
        self.host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
        self.port = parts.port
        self.workdir = Path(workdir)
        self.board = FaultBoard()
        self._environ = environ
        self._guard = test_identities_only
        self._seed = seed
        self.ehr: Ehr | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def fhir_base(self) -> str:
        return self.plan.environment.fhir_base

    @property
    def web_base(self) -> str:
        return self.plan.environment.web_base

    def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        database = self.workdir / "ehr.sqlite"
        database.unlink(missing_ok=True)
        self.ehr = Ehr(self.plan, database, self.board, self._environ, test_identities_only=self._guard)
        if self._seed:
            self.ehr.seed()
        # proto IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on such sockets, and without it
        # every answer written in two parts waits ~40 ms for a delayed ACK.
        sock = socket.socket(
            socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            self.ehr.close()
            raise TargetError(
                f"cannot listen on {self.host}:{self.port} for the EHR: {exc.strerror}"
            ) from None
        config = uvicorn.Config(
            Starlette(routes=ehr_routes(self.ehr)),
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="ehr-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise TargetError(f"the EHR on {self.host}:{self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._server = None
        if self.ehr is not None:
            self.ehr.close()
            self.ehr = None
