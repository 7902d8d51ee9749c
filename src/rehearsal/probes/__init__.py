"""Device probes: one module per protocol, async, bounded by explicit timeouts.

Every probe answers with a frozen readiness record and never raises for what a device
does wrong on the wire; the low-level operations raise one family, so a caller can catch
at the level it needs::

    ProbeError            (a RehearsalError: one line, naming the device address)
     ├── Unreachable      no connection (refused, no route, name not found)
     ├── ProbeTimeout     no complete answer within the timeout
     └── ProtocolError    an answer, but not one we can use (bad HTTP, malformed IPP, error status)

``kind`` is the short prefix used in readiness problems ("unreachable: connection refused
at 127.0.0.1:18631").

Modules: ``ipp`` (Get-Printer-Attributes), ``snmp`` (Printer-MIB over SNMP v2c), ``zpl``
(Zebra ``~HS``/``~HQES``/``~HI``), ``network`` (TCP latency, TLS trust, clock skew) and
``workstation`` (facts files against the baseline). ``rehearsal.hardware`` sweeps them all.
"""

from __future__ import annotations

from rehearsal.errors import RehearsalError


class ProbeError(RehearsalError):
    """A device could not be asked, or its answer could not be used."""

    kind = "probe failed"


class Unreachable(ProbeError):
    kind = "unreachable"


class ProbeTimeout(ProbeError):
    kind = "timeout"


class ProtocolError(ProbeError):
    kind = "bad reply"


__all__ = ["ProbeError", "ProbeTimeout", "ProtocolError", "Unreachable"]
MODULES = ("ipp", "snmp", "zpl", "network", "workstation")
