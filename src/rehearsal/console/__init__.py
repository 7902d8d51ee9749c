"""The command-centre console: a local web page that follows a run as it happens.

``rehearse console [--run RUN | --plan PLAN] [--bind HOST:PORT]`` serves one page for the
command centre: the sites × aspects grid and the decision as it would stand now, failures
as they land with links to their evidence, the manual steps waiting for an attestation (and
a form that makes the same record as ``rehearse attest``), the incident log (raise,
acknowledge, escalate, resolve, each with who and when) and the runbook. The page follows
the run folder through server-sent events (:mod:`.events`); the console never writes into
the results and never touches the run's processes or lock.

It listens on 127.0.0.1 and a free port unless told otherwise. Bound to any other address
(another loopback address included) it refuses to start without ``REHEARSAL_CONSOLE_TOKEN``,
and then every request must carry that token (:class:`.app.Guard`). No request leaves the
page: script and style come from the console itself, and its CSP allows nothing else.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from rehearsal.errors import ExitCode, UsageError
from rehearsal.plan import LoadedPlan
from rehearsal.run import load_run

from .app import create_app
from .events import Target

DEFAULT_HOST = "127.0.0.1"
TOKEN_ENV = "REHEARSAL_CONSOLE_TOKEN"
MIN_TOKEN = 16
OPEN_HOSTS = {"127.0.0.1", "localhost", "::1"}
"""Addresses served without a token: the loopback the console binds by default."""


def parse_bind(given: str | None) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` (a free port), ``[::1]:PORT`` or ``:PORT`` (the default host)."""
    if not given:
        return DEFAULT_HOST, 0
    text = given.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    host = host or DEFAULT_HOST
    try:
        port = int(port_text) if port_text else 0
    except ValueError:
        raise UsageError(f"--bind {given}: expected HOST:PORT (e.g. 127.0.0.1:8470)") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--bind {given}: port {port} is outside 0–65535")
    return host, port


def _family(host: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise UsageError(f"--bind {host}:{port}: cannot listen there ({exc.strerror or exc})") from None
    sock.set_inheritable(False)
    return sock


def host_headers(host: str, port: int) -> set[str]:
    """The ``Host`` values a browser sends to this loopback address (and to ``localhost``)."""
    names = {"localhost", "127.0.0.1", "[::1]"} if host in OPEN_HOSTS else {host}
    return {f"{name}:{port}" for name in names}


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(reports: Path, run: str | None, plan: LoadedPlan | None, bind: str | None, say=print) -> int:
    """Start the console and serve until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    host, port = parse_bind(bind)
    token = None
    if host not in OPEN_HOSTS:
        token = os.environ.get(TOKEN_ENV, "")
        if len(token) < MIN_TOKEN:
            raise UsageError(
                f"console bound to {host} needs a token: set {TOKEN_ENV} (at least {MIN_TOKEN} characters)"
            )
    if run is not None:
        target = Target(reports, run_dir=load_run(reports, run).dir)
    elif plan is not None:
        target = Target(reports, plan=plan)
    else:
        target = Target(reports, run_dir=None)
        load_run(reports)  # there is a newest run to show (one line if not)
    sock = listen(host, port)
    port = sock.getsockname()[1]
    app = create_app(target, token=token, hosts=None if token else host_headers(host, port))
    how = f" (every request needs {TOKEN_ENV}: open it once with ?token=…)" if token else ""
    say(f"rehearse console: {url(host, port)} following {target.describe()}{how}; Ctrl-C stops it")
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return ExitCode.GO


__all__ = ["parse_bind", "serve"]
