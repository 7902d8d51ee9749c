"""Endpoint probes, stdlib only: TCP connect latency, TLS trust and expiry, clock skew from HTTP ``Date``.

The same three measurements the Linux collector makes from a workstation (collectors/),
for the harness's own vantage point. Each returns a frozen record and never raises for
what the network does; the time limit is an explicit argument.

    tcp_latency(host, port, timeout)               -> Latency
    tls_check(host, port, timeout, cafile=None)    -> TlsCheck
    clock_skew(url, timeout)                       -> ClockSkew
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Latency:
    address: str
    ms: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class TlsCheck:
    address: str
    trusted: bool = False
    days_left: float | None = None
    subject: str = ""
    error: str | None = None


@dataclass(frozen=True)
class ClockSkew:
    url: str
    skew_s: float | None = None  # local clock minus the server's Date header (±1 s resolution)
    error: str | None = None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"{type(exc).__name__}: {exc}"


async def tcp_latency(host: str, port: int, timeout: float) -> Latency:
    """Time to complete a TCP handshake (what a user feels on every new connection)."""
    where = f"{host}:{port}"
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        return Latency(where, error=f"{_reason(exc)} at {where}")
    ms = (time.perf_counter() - started) * 1000
    writer.close()
    return Latency(where, ms=round(ms, 2))


async def tls_check(host: str, port: int, timeout: float, cafile: str | None = None) -> TlsCheck:
    """Whether the certificate verifies (chain and name) against ``cafile`` or the system store."""
    where = f"{host}:{port}"
    context = ssl.create_default_context(cafile=cafile)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    except (OSError, TimeoutError) as exc:
        return TlsCheck(where, error=f"{_reason(exc)} at {where}")
    cert = writer.get_extra_info("peercert") or {}
    writer.close()
    days = None
    if cert.get("notAfter"):
        days = round((ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) / 86400, 1)
    subject = ", ".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)
    return TlsCheck(where, trusted=True, days_left=days, subject=subject)


async def clock_skew(url: str, timeout: float) -> ClockSkew:
    """Local clock minus the server's HTTP ``Date`` (HEAD request; TLS unverified: only the time counts)."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    context = None
    if secure:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
            writer.write(
                f"HEAD {parts.path or '/'} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            head = await reader.read(16384)
            before_close = time.time()
            writer.close()
    except (OSError, TimeoutError) as exc:
        return ClockSkew(url, error=f"{_reason(exc)} at {host}:{port}")
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "date":
            try:
                server = parsedate_to_datetime(value.strip())
            except (TypeError, ValueError):
                break
            local = datetime.fromtimestamp(before_close, UTC)
            return ClockSkew(url, skew_s=round((local - server).total_seconds(), 1))
    return ClockSkew(url, error="no usable Date header in the answer")


__all__ = ["ClockSkew", "Latency", "TlsCheck", "clock_skew", "tcp_latency", "tls_check"]
