"""Components that did not answer earlier in this run: later calls to them fail at once.

A target that accepts connections and never answers (a hung server, a firewall that lets
the handshake through) costs a full timeout at every call. Seventy scenarios asking one
dead FHIR server would wait seventy times for the same news, and the run would take
(number of calls × timeout) instead of a bound the test lead can read off the plan. So the
first call to time out records the component (host:port, named by its plan field); every
later call in the same process raises :class:`Silent` at once, saying what timed out,
where, and how long it was given.

The registry is per process and off until :func:`enable` (the pytest plugin enables it for
a rehearsal session): long-lived processes such as the reference hospital, or the
harness's own tests, must see a component again once a fault is cleared.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from rehearsal.errors import TargetError

#: The plan's environment fields that name a component by address (``environment.FIELD``).
FIELDS = ("fhir_base", "web_base", "legacy_base", "lab_mllp", "bridge_base", "bridge_mllp", "directory")
DEFAULT_PORTS = {"http": 80, "https": 443, "ldap": 389, "ldaps": 636, "ipp": 631, "ipps": 631}

Address = tuple[str, int]


class Silent(TargetError):
    """Not asked: the component timed out earlier in this run."""


@dataclass(frozen=True)
class Timeout:
    """One component's first timeout in this run."""

    address: Address
    fields: tuple[str, ...]
    seconds: float
    what: str
    at: float  # time.monotonic() when it was recorded

    @property
    def where(self) -> str:
        return describe(self.address, self.fields)


_lock = threading.Lock()
_enabled = False
_fields: dict[Address, tuple[str, ...]] = {}
_silent: dict[Address, Timeout] = {}


def address_of(url: str) -> Address | None:
    """``scheme://host:port/…`` → (host, port); None for a path (an LDIF file) or no host."""
    if "://" not in url:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.hostname, port or DEFAULT_PORTS.get(parts.scheme, 0)


def describe(address: Address, fields: tuple[str, ...] = ()) -> str:
    """``environment.fhir_base, environment.web_base (127.0.0.1:18080)``; the address alone if unnamed."""
    host_port = f"{address[0]}:{address[1]}"
    return f"{', '.join(fields)} ({host_port})" if fields else host_port


def enable(environment: object | None = None) -> None:
    """Switch the registry on for this process; ``environment`` (the plan's) names the addresses."""
    global _enabled
    with _lock:
        _enabled = True
        for name in FIELDS:
            value = getattr(environment, name, None) if environment is not None else None
            address = address_of(value) if isinstance(value, str) else None
            if address is not None:
                known = _fields.get(address, ())
                if f"environment.{name}" not in known:
                    _fields[address] = (*known, f"environment.{name}")


def reset() -> None:
    """Off and empty (tests; a process that starts another run)."""
    global _enabled
    with _lock:
        _enabled = False
        _fields.clear()
        _silent.clear()


def where(url: str) -> str:
    """The component at ``url`` as a message names it: plan field(s) and host:port."""
    address = address_of(url)
    if address is None:
        return url
    with _lock:
        return describe(address, _fields.get(address, ()))


def check(url: str) -> None:
    """Raise :class:`Silent` when the component at ``url`` timed out earlier in this run."""
    address = address_of(url)
    if address is None:
        return
    with _lock:
        found = _silent.get(address) if _enabled else None
    if found is not None:
        ago = time.monotonic() - found.at
        raise Silent(
            f"{found.where}: not asked again: no answer within {found.seconds:g} s "
            f"earlier in this run ({found.what}, {ago:.0f} s ago)"
        )


def timed_out(url: str, seconds: float, what: str, wait: str = "no answer") -> str:
    """Record that the component at ``url`` did not answer; the one-line message for this failure.

    ``what`` is the call (``GET http://…/metadata``), ``wait`` what did not come in time
    (``no answer``, ``no connection``, ``no acknowledgement``).
    """
    address = address_of(url)
    if address is None:
        return f"{url}: {what}: {wait} within {seconds:g} s"
    with _lock:
        fields = _fields.get(address, ())
        if _enabled and address not in _silent:
            _silent[address] = Timeout(address, fields, seconds, what, time.monotonic())
    return f"{describe(address, fields)}: {what}: {wait} within {seconds:g} s"


def silent() -> list[Timeout]:
    """Every component that timed out in this run, first first."""
    with _lock:
        return sorted(_silent.values(), key=lambda t: t.at)
