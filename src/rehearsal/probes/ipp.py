"""IPP readiness probe: what a printer's Get-Printer-Attributes answer says about printing.

The wire (encoding, decoding, httpx, the total deadline, the request-id and version checks)
is :mod:`rehearsal.probes.ipp_client`, the project's one IPP client; this module turns its
answer into a verdict. Why our own client: pyipp reads supplies from ``marker-*`` only and
stops at the first odd attribute a vendor firmware sends; a rehearsal sweeps hundreds of
printers and must come back with one record per printer whatever each one answers.

    get_printer_attributes(uri, timeout)  -> dict[str, list]      raises ProbeError (ipp_client)
    probe_printer(uri, timeout)           -> PrinterReadiness     never raises for the wire
    probe_all(uris, timeout, concurrency) -> list[PrinterReadiness]

ipps:// printers are asked without certificate checks (``insecure_tls=True``, the default:
self-signed printer certificates); ``insecure_tls=False`` or an ``ssl_context`` checks them.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from rehearsal.devtext import clean
from rehearsal.probes import ProbeError, ProtocolError
from rehearsal.probes.ipp_client import (
    IPP_STATUS,
    IppReply,
    IppStatusError,
    MalformedReply,
    decode_response,
    get_printer_attributes,
)

READINESS_ATTRIBUTES = (
    "printer-name",
    "printer-state",
    "printer-state-reasons",
    "printer-state-message",
    "printer-is-accepting-jobs",
    "printer-make-and-model",
    "media-ready",
    "document-format-supported",
    "printer-supply",
    "printer-supply-description",
)
STATES: dict[int, State] = {3: "idle", 4: "processing", 5: "stopped"}
# printer-state-reasons that stop a printer from printing, with the sentence the report shows.
BLOCKING_REASONS = {
    "media-empty": "paper out",
    "media-needed": "paper needed for a waiting job",
    "media-jam": "paper jam",
    "cover-open": "cover open",
    "door-open": "door open",
    "interlock-open": "interlock open",
    "input-tray-missing": "input tray missing",
    "output-tray-missing": "output tray missing",
    "output-area-full": "output tray full",
    "marker-supply-empty": "ink or toner empty",
    "toner-empty": "toner empty",
    "marker-waste-full": "waste toner container full",
    "spool-area-full": "spool area full",
    "paused": "printer paused",
    "moving-to-paused": "printer is pausing",
    "offline": "printer offline",
    "shutdown": "printer shut down",
    "stopped-partly": "printer partly stopped",
    "fuser-over-temp": "fuser over temperature",
}
WARNING_REASONS = {
    "media-low": "paper low",
    "toner-low": "toner low",
    "marker-supply-low": "ink or toner low",
    "marker-waste-almost-full": "waste toner container almost full",
}
State = Literal["idle", "processing", "stopped", "unknown"]


# --- readiness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PrinterReadiness:
    """What one printer said (or why it said nothing); ``ready`` is the verdict a check asserts."""

    uri: str
    reachable: bool = False
    state: State = "unknown"
    reasons: tuple[str, ...] = ()  # printer-state-reasons without -report/-warning/-error, no "none"
    error_reasons: tuple[str, ...] = ()  # those the printer reported with the -error suffix
    accepting_jobs: bool | None = None
    media_ready: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    make_and_model: str = ""
    name: str = ""
    state_message: str = ""
    missing_formats: tuple[str, ...] = ()
    error: str | None = None  # "unreachable: …", "timeout: …", "bad reply: …", "ipp error: …"
    elapsed_s: float = 0.0

    @property
    def problems(self) -> list[str]:
        """Why the printer is not ready, one plain sentence each; empty when it is ready."""
        if self.error:
            return [self.error]
        found: list[str] = []
        if self.state == "stopped":
            detail = f" ({self.state_message})" if self.state_message else ""
            found.append(f"stopped: printer-state is stopped{detail}")
        elif self.state == "unknown":
            found.append("printer-state not reported")
        if self.accepting_jobs is None:
            found.append("printer-is-accepting-jobs not reported")
        elif not self.accepting_jobs:
            found.append("not accepting jobs")
        for reason in self.reasons:
            if reason in BLOCKING_REASONS:
                found.append(f"{reason}: {BLOCKING_REASONS[reason]}")
            elif reason in self.error_reasons:
                found.append(f"{reason}: reported as an error by the printer")
        found.extend(f"document format {f} not supported" for f in self.missing_formats)
        return found

    @property
    def warnings(self) -> list[str]:
        """Reasons worth reading that do not stop printing (paper low, toner low, …)."""
        return [
            f"{r}: {WARNING_REASONS.get(r, 'reported by the printer')}"
            for r in self.reasons
            if r not in BLOCKING_REASONS and r not in self.error_reasons
        ]

    @property
    def ready(self) -> bool:
        return self.reachable and not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the verdict, for evidence attachments."""
        return {**asdict(self), "ready": self.ready, "problems": self.problems, "warnings": self.warnings}


def _strings(values: Iterable[Any]) -> tuple[str, ...]:
    """The text values, each cleaned (keywords and media names come from the printer too)."""
    return tuple(text for v in values if isinstance(v, str) and (text := clean(v)))


def _strip_severity(reason: str) -> str:
    for suffix in ("-report", "-warning", "-error"):
        if reason.endswith(suffix):
            return reason[: -len(suffix)]
    return reason


def readiness_from_attributes(
    uri: str, attrs: dict[str, list[Any]], required_formats: Sequence[str] = (), elapsed_s: float = 0.0
) -> PrinterReadiness:
    """Build the readiness record from a Get-Printer-Attributes answer (pure; odd values → unknown)."""

    def first(name: str) -> Any:
        values = attrs.get(name) or [None]
        return values[0]

    def text(name: str) -> str:  # the printer chose it: one clean line (rehearsal.devtext)
        value = first(name)
        return clean(value) if isinstance(value, str) else ""

    state_value = first("printer-state")
    raw_reasons = _strings(attrs.get("printer-state-reasons", []))
    reasons = tuple(dict.fromkeys(_strip_severity(r) for r in raw_reasons if r != "none"))
    accepting = first("printer-is-accepting-jobs")
    formats = _strings(attrs.get("document-format-supported", []))
    return PrinterReadiness(
        uri=uri,
        reachable=True,
        state=STATES.get(state_value, "unknown") if isinstance(state_value, int) else "unknown",
        reasons=reasons,
        error_reasons=tuple(dict.fromkeys(r[: -len("-error")] for r in raw_reasons if r.endswith("-error"))),
        accepting_jobs=accepting if isinstance(accepting, bool) else None,
        media_ready=_strings(attrs.get("media-ready", [])),
        formats=formats,
        make_and_model=text("printer-make-and-model"),
        name=text("printer-name"),
        state_message=text("printer-state-message"),
        missing_formats=tuple(f for f in required_formats if f not in formats),
        elapsed_s=round(elapsed_s, 4),
    )


async def probe_printer(
    uri: str,
    timeout: float,
    *,
    required_formats: Sequence[str] = (),
    insecure_tls: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> PrinterReadiness:
    """Readiness of one printer. Never raises for network or protocol trouble: it is recorded.

    ``insecure_tls`` and ``ssl_context`` are :class:`~rehearsal.probes.ipp_client.IppSession`'s.
    """
    started = time.monotonic()
    try:
        attrs = await get_printer_attributes(
            uri, timeout, READINESS_ATTRIBUTES, insecure_tls=insecure_tls, ssl_context=ssl_context
        )
    except ProbeError as exc:
        return PrinterReadiness(  # reachable: something answered, even if unusable
            uri=uri,
            reachable=isinstance(exc, ProtocolError),
            error=clean(f"{exc.kind}: {exc}", 1000),
            elapsed_s=round(time.monotonic() - started, 4),
        )
    except Exception as exc:  # one odd device must not end a sweep of hundreds
        return PrinterReadiness(
            uri=uri,
            error=f"probe failed: {type(exc).__name__}: {exc}",
            elapsed_s=round(time.monotonic() - started, 4),
        )
    return readiness_from_attributes(uri, attrs, required_formats, time.monotonic() - started)


async def probe_all(
    uris: Iterable[str],
    timeout: float,
    concurrency: int = 50,
    *,
    required_formats: Sequence[str] = (),
) -> list[PrinterReadiness]:
    """Probe many printers, at most ``concurrency`` at a time; results in the order of ``uris``."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)

    async def one(uri: str) -> PrinterReadiness:
        async with gate:
            return await probe_printer(uri, timeout, required_formats=required_formats)

    return list(await asyncio.gather(*(one(u) for u in uris)))


__all__ = [  # the wire names are ipp_client's, here too for callers of the probe
    "IPP_STATUS",
    "IppReply",
    "IppStatusError",
    "MalformedReply",
    "PrinterReadiness",
    "decode_response",
    "get_printer_attributes",
    "probe_all",
    "probe_printer",
    "readiness_from_attributes",
]
