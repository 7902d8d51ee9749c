"""Printing from the EHR: ZPL jobs over raw TCP and IPP Print-Job.

What a ward does on admission is print a wristband and specimen labels (Zebra printers,
ZPL on TCP 9100) and documents (IPP). The EHR sends the job and tells the clinician
whether the printer took it, so a rehearsal can see "printed" per site and printer:

- ZPL (``tcp://host:port``): the job must be one or more ``^XA…^XZ`` formats. After the
  job the printer is asked ``~HS``; an answer that says paper out, head open, ribbon out
  or paused means the job will not come out (not accepted). No answer within a short
  wait leaves ``confirmed`` None: raw TCP has no receipt, and some printers are silent.
- IPP (``ipp://`` or ``ipps://``): a Print-Job request (RFC 8011 §4.2.1) through the
  project's one IPP client, :mod:`rehearsal.probes.ipp_client`; accepted when the printer
  answers successful-ok, with its job-id. Documents are :func:`rehearsal.pdf.simple_pdf`.

Every function has a timeout and never raises for what the printer or network does;
the result says what happened (``reason`` is a short code the web UI translates).

    send_zpl(uri, zpl, timeout)                    -> PrintResult
    send_ipp(uri, document, timeout, …)            -> PrintResult
    wristband_zpl(…), specimen_label_zpl(…), simple_pdf(title, lines) -> the jobs
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from rehearsal.pdf import simple_pdf
from rehearsal.probes import ProbeError, ProbeTimeout, ProtocolError, Unreachable
from rehearsal.probes.ipp_client import HttpStatusError, IppSession, IppStatusError, Refused

ZPL_PORT = 9100
#: How long to wait for the ``~HS`` answer after a job (a silent printer costs this much).
STATUS_WAIT_S = 0.5
_JOB = re.compile(rb"^\s*(\^XA.*?\^XZ\s*)+$", re.S)


@dataclass(frozen=True)
class PrintResult:
    """What became of one print job.

    ``reason`` (when not accepted): ``refused``, ``timeout``, ``unreachable``, ``paper-out``,
    ``head-open``, ``ribbon-out``, ``paused``, ``http-error``, ``ipp-error``, ``bad-reply``
    or ``bad-uri``. ``confirmed`` is True when the printer said it is fine after the job,
    False when it said it is not, None when it said nothing (raw TCP without a status).
    """

    uri: str
    accepted: bool
    detail: str
    reason: str = ""
    job_id: int | None = None
    sent_bytes: int = 0
    confirmed: bool | None = None


# -- ZPL ----------------------------------------------------------------------------------------


def _tcp_address(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    if parts.scheme != "tcp" or not parts.hostname:
        raise ValueError(f"not a raw-TCP printer URI (tcp://host:port): {uri!r}")
    return parts.hostname, parts.port or ZPL_PORT


def parse_host_status(reply: bytes) -> list[str]:
    """Problems a ``~HS`` reply reports (empty when ready); ValueError if it is not three frames.

    Line 1 field 2 is paper out and field 3 paused; line 2 field 3 head open, field 4 ribbon out.
    """
    frames = re.findall(rb"\x02([^\x02\x03]*)\x03", reply)
    if len(frames) < 3:
        raise ValueError(f"~HS answer has {len(frames)} of 3 frames")
    first, second = (f.decode("ascii", "replace").split(",") for f in frames[:2])
    if len(first) < 3 or len(second) < 4:
        raise ValueError("~HS answer has too few fields")
    problems = []
    for flag, name in (
        (first[1], "paper-out"),
        (first[2], "paused"),
        (second[2], "head-open"),
        (second[3], "ribbon-out"),
    ):
        if flag.strip() == "1":
            problems.append(name)
    return problems


async def _read_status(reader: asyncio.StreamReader, wait: float) -> bytes:
    reply = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while reply.count(b"\x03") < 3:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(1024), left)
        except TimeoutError:
            break
        if not chunk:
            break
        reply += chunk
    return reply


async def send_zpl(
    uri: str, zpl: str | bytes, timeout: float, status_wait: float = STATUS_WAIT_S
) -> PrintResult:
    """Send one ZPL job to a raw-TCP printer, then ask ``~HS``; never raises for the wire."""
    data = zpl.encode("utf-8") if isinstance(zpl, str) else zpl
    if not _JOB.match(data):
        raise ValueError("a ZPL job is one or more ^XA…^XZ formats")
    try:
        host, port = _tcp_address(uri)
    except ValueError as exc:
        return PrintResult(uri, False, str(exc), "bad-uri")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return PrintResult(uri, False, f"no connection to {host}:{port} within {timeout:g} s", "timeout")
    except ConnectionRefusedError:
        return PrintResult(uri, False, f"{host}:{port} refused the connection", "refused")
    except OSError as exc:
        return PrintResult(uri, False, f"{host}:{port}: {exc.strerror or exc}", "unreachable")
    try:
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), timeout)
            if status_wait > 0:
                writer.write(b"~HS")
                await asyncio.wait_for(writer.drain(), timeout)
                reply = await _read_status(reader, min(status_wait, timeout))
            else:
                reply = b""
        except TimeoutError:
            return PrintResult(uri, False, f"{host}:{port} took no data within {timeout:g} s", "timeout")
        except OSError as exc:
            return PrintResult(uri, False, f"{host}:{port}: {exc.strerror or exc}", "unreachable")
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), timeout)
        except (TimeoutError, OSError):
            pass
    if not reply:
        return PrintResult(uri, True, f"sent {len(data)} bytes; no status answer", sent_bytes=len(data))
    try:
        problems = parse_host_status(reply)
    except ValueError as exc:
        return PrintResult(
            uri, True, f"sent {len(data)} bytes; unreadable status ({exc})", sent_bytes=len(data)
        )
    if problems:
        return PrintResult(
            uri,
            False,
            f"printer reports {', '.join(problems)}",
            problems[0],
            sent_bytes=len(data),
            confirmed=False,
        )
    return PrintResult(
        uri, True, f"sent {len(data)} bytes; printer ready", sent_bytes=len(data), confirmed=True
    )


def zpl_text(value: str) -> str:
    """Field data that cannot break a ZPL format: ``^`` and ``~`` start commands, so they go."""
    return value.replace("^", " ").replace("~", " ").replace("\n", " ").strip()


def wristband_zpl(
    name: str, identity_label: str, identity: str, birth_date: str, site: str, barcode: str
) -> str:
    """A patient wristband (UTF-8, ^CI28): name, identity, birth date, site and a Code 128 barcode."""
    return (
        "^XA^CI28^PW812^LL203\n"
        f"^FO30,20^A0N,42,42^FD{zpl_text(name)}^FS\n"
        f"^FO30,70^A0N,30,30^FD{zpl_text(identity_label)} {zpl_text(identity)}^FS\n"
        f"^FO30,105^A0N,26,26^FDFödd {zpl_text(birth_date)}  {zpl_text(site)}^FS\n"
        f"^FO480,20^BY2^BCN,110,N,N,N^FD{zpl_text(barcode)}^FS\n"
        "^XZ\n"
    )


def specimen_label_zpl(
    name: str, identity: str, analysis: str, order_id: str, ordered: str, site: str
) -> str:
    """A specimen tube label: patient, identity, analysis, the order id as Code 128, when and where."""
    return (
        "^XA^CI28^PW406^LL203\n"
        f"^FO15,10^A0N,28,28^FD{zpl_text(name)}^FS\n"
        f"^FO15,42^A0N,24,24^FD{zpl_text(identity)}^FS\n"
        f"^FO15,70^A0N,24,24^FD{zpl_text(analysis)}^FS\n"
        f"^FO15,98^BY1^BCN,60,N,N,N^FD{zpl_text(order_id)}^FS\n"
        f"^FO15,165^A0N,20,20^FD{zpl_text(ordered)} {zpl_text(site)}^FS\n"
        "^XZ\n"
    )


# -- IPP ----------------------------------------------------------------------------------------

_SCHEMES = ("ipp", "ipps")
#: How the project's one IPP client's failures read in a PrintResult (the web UI translates them).
_REASONS = (
    (IppStatusError, "ipp-error"),
    (HttpStatusError, "http-error"),
    (ProtocolError, "bad-reply"),
    (ProbeTimeout, "timeout"),
    (Refused, "refused"),
    (Unreachable, "unreachable"),
)


async def send_ipp(
    uri: str,
    document: bytes,
    timeout: float,
    *,
    document_format: str = "application/pdf",
    job_name: str = "Referenssjukhuset",
    user: str = "rehearsal",
) -> PrintResult:
    """IPP Print-Job of one document; accepted when the printer answers successful-ok (with a job-id).

    Sent by :class:`rehearsal.probes.ipp_client.IppSession`, within ``timeout`` in all.
    ``ipps`` printers are reached without certificate checks (``insecure_tls``: hospital
    printers carry self-signed certificates; the job content is test data).
    """
    if urlsplit(uri).scheme not in _SCHEMES:
        return PrintResult(uri, False, f"not an IPP printer URI (ipp://host:port/path): {uri!r}", "bad-uri")
    try:
        async with IppSession(uri, timeout, user=user, language="sv") as printer:
            job = await printer.print_job(document, document_format=document_format, job_name=job_name)
    except ProbeError as exc:
        reason = next((r for kind, r in _REASONS if isinstance(exc, kind)), "bad-uri")
        taken = len(document) if reason == "ipp-error" else 0  # sent, and refused by the printer
        return PrintResult(uri, False, str(exc), reason, sent_bytes=taken)
    return PrintResult(
        uri, True, f"job {job.id} accepted", job_id=job.id, sent_bytes=len(document), confirmed=True
    )


__all__ = [
    "PrintResult",
    "parse_host_status",
    "send_ipp",
    "send_zpl",
    "simple_pdf",
    "specimen_label_zpl",
    "wristband_zpl",
    "zpl_text",
]
