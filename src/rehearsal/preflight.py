"""Before a run: is the target there at all?

A rehearsal against an environment that is down would fail every check and look like a
NO-GO on everything; the test lead needs "the target is unreachable" instead (exit 2),
said once, naming the endpoint and the plan field it came from. The same holds for an
endpoint on a host the plan does not allow: refused before the first connection.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from rehearsal.errors import TargetError
from rehearsal.plan import Plan

DEFAULT_PORTS = {"http": 80, "https": 443}


ENTRY_POINTS = ("fhir_base", "web_base")


def endpoints(plan: Plan, fields: Iterable[str] = ENTRY_POINTS) -> dict[str, str]:
    """The plan fields naming the environment's main entry points (those of ``fields``)."""
    return {f"environment.{f}": getattr(plan.environment, f) for f in ENTRY_POINTS if f in fields}


def check_hosts(plan: Plan) -> None:
    """Every HTTP endpoint of the plan is on a host in ``environment.allowed_hosts``, or nothing runs.

    The HTTP layer refuses every request to another host anyway (rehearsal.clients.http);
    said here once, before any connection, the test lead gets one line instead of a run of
    refusals.
    """
    env = plan.environment
    for field in ("fhir_base", "web_base", "legacy_base", "bridge_base"):
        url = getattr(env, field)
        if url and not env.host_allowed(url):
            raise TargetError(
                f"environment.{field} ({url}): host {urlsplit(url).hostname!r} is not in "
                f"environment.allowed_hosts ({', '.join(env.allowed_hosts)}): nothing is sent to it"
            )


def check_reachable(plan: Plan, fields: Iterable[str] = ENTRY_POINTS) -> None:
    """Each entry point of ``fields`` accepts a connection (the ones the run's selection uses:
    :func:`rehearsal.selection.endpoints_used`; one it never uses is not asked)."""
    check_hosts(plan)
    timeout = plan.environment.timeouts.connect
    seen: set[tuple[str, int]] = set()
    for field, url in endpoints(plan, fields).items():
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
        if (host, port) in seen:
            continue
        seen.add((host, port))
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except TimeoutError:
            raise TargetError(f"{host}:{port} ({field}): no answer within {timeout:g} s") from None
        except OSError as exc:
            hint = (
                " (for the reference hospital: rehearse reference up --plan PLAN)"
                if host in ("127.0.0.1", "localhost", "::1")
                else ""
            )
            raise TargetError(f"{host}:{port} ({field}): {exc.strerror or exc}{hint}") from None
