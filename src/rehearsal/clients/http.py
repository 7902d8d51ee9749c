"""The one HTTP layer of the harness: hosts, origin, credentials and a total deadline, once.

Every HTTP caller (the FHIR client, the legacy and bridge JSON clients, the central gate,
the load's set-up, the printer witness) sends through :class:`GuardedClient`, so the rules
a security review asks about hold in one place instead of in each client:

- **Hosts.** Nothing is sent to a host outside ``environment.allowed_hosts``. The check is
  in the transport, the last step before a connection, so no path, link or redirect gets
  round it.
- **Origin.** A client is made for one plan field and talks to that origin (scheme, host,
  port) only. A redirect or an absolute link (a FHIR Bundle ``next``) to another origin is
  refused with one line naming the link, never followed; a redirect within the origin is.
- **Credentials.** Basic auth or a bearer token is attached per request, and only to the
  origin it was configured for. The process environment is not trusted (``trust_env``
  off): no proxy from ``HTTP_PROXY`` and no ``.netrc`` password slips in.
- **Time.** Every call has one total deadline, ``connect + read`` of the plan's timeouts,
  over the connection, the request and every byte of the answer (and any redirect within
  the origin). httpx's own read timeout is per read: a server dripping one byte a second
  would keep a call alive for ever. Here the socket layer gives each read only what is
  left of the deadline. The first timeout of a component is recorded in
  :mod:`rehearsal.silence`, so later calls to it fail at once.
- **Size.** An answer over :data:`MAX_REPLY_BYTES` is cut off.

Exceptions (each one line: method, URL, what happened, which plan field)::

    TargetError
     └── HttpError        no usable answer (``status`` None) or, raised by callers, an error status
          └── HostRefused not sent at all: a host outside allowed_hosts, or another origin

The answer is returned whatever its status; callers decide what a 4xx means to them.
"""

from __future__ import annotations

import contextvars
import functools
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import httpcore
import httpx

from rehearsal import silence
from rehearsal.errors import TargetError
from rehearsal.plan import Timeouts

MAX_REPLY_BYTES = 64 * 1024 * 1024  # a flooding server is cut off here, whatever its Content-Length says
MAX_REDIRECTS = 5  # within the origin only
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
TOTAL_FIELD = "environment.timeouts: connect + read"

__all__ = [
    "GuardedClient",
    "HostRefused",
    "HttpError",
    "MAX_REPLY_BYTES",
    "Origin",
]


class HttpError(TargetError):
    """No usable answer, or an error status (``status``; None when there was no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HostRefused(HttpError):
    """Not sent: the host is outside ``environment.allowed_hosts``, or the URL is another origin."""


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port: where one client may send, and where its credentials may go."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str | httpx.URL) -> Origin:
        parts = urlsplit(str(url))
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError:
            port = None
        return cls(scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme, 0))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


# --- the total deadline, enforced at the socket ------------------------------------------


@dataclass
class _Budget:
    """What one call may still spend: until ``deadline`` (monotonic), ``bytes_left`` of answer."""

    deadline: float
    bytes_left: int
    cut: str | None = None  # "time" or "size" once the budget, not the server, ended the call

    def timeout(self, wanted: float | None) -> float:
        """The socket timeout for the next operation: the plan's per-operation one, or what is left."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.cut = "time"
            raise httpcore.ReadTimeout("total deadline reached")
        if wanted is None or left < wanted:
            self.cut = "time"  # if this operation times out, it is the deadline that ended it
            return left
        self.cut = None
        return wanted


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "rehearsal_http_budget", default=None
)


class _BoundedStream(httpcore.NetworkStream):
    """A socket stream whose every read and write gets only what is left of the call's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = _BUDGET.get()
        if budget is None:
            return self._inner.read(max_bytes, timeout)
        data = self._inner.read(min(max_bytes, max(budget.bytes_left, 1)), budget.timeout(timeout))
        budget.bytes_left -= len(data)
        if budget.bytes_left < 0:
            budget.cut = "size"
            raise httpcore.ReadError(f"reply larger than {MAX_REPLY_BYTES} bytes")
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        budget = _BUDGET.get()
        self._inner.write(buffer, timeout if budget is None else budget.timeout(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None):
        budget = _BUDGET.get()
        bounded = timeout if budget is None else budget.timeout(timeout)
        return _BoundedStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, each wrapped in :class:`_BoundedStream`; connecting is bounded too."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        budget = _BUDGET.get()
        bounded = timeout if budget is None else budget.timeout(timeout)
        return _BoundedStream(self._inner.connect_tcp(host, port, bounded, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None):
        raise httpcore.ConnectError("unix sockets are not a rehearsal target")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's verifying TLS (certifi's roots), made once for every client of the process.

    Building one reads and parses the whole CA bundle: ~25 ms of CPU. Made per client (twice:
    httpx's transport makes its own), it was a quarter of a rehearsal session's CPU, since the
    gate, the traffic and every step open clients of their own (session 11, py-spy).
    """
    return httpx.create_ssl_context(trust_env=False)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport on bounded sockets, refusing any host outside ``allowed_hosts`` before sending."""

    def __init__(self, allowed_hosts: Iterable[str], field: str) -> None:
        super().__init__(verify=_tls(), trust_env=False)
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=_tls(),
            max_connections=10,
            keepalive_expiry=5.0,
            network_backend=_BoundedBackend(),
        )
        self.allowed = frozenset(h.lower() for h in allowed_hosts)
        self.field = field

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host.lower()
        if host not in self.allowed:
            raise HostRefused(
                f"{request.method} {_shown(request.url)}: refused before sending: host {host!r} is not in "
                f"environment.allowed_hosts ({', '.join(sorted(self.allowed))})"
            )
        return super().handle_request(request)


# --- the client ----------------------------------------------------------------------------


class GuardedClient:
    """One origin (``base``, the plan field ``field``), the plan's timeouts and allowed hosts.

    ``request`` takes a path below ``base`` or an absolute URL (a paging link); the answer
    comes back fully read, whatever its status. ``link`` says where an absolute URL came
    from (``"Bundle link next"``), so a refusal names it.
    """

    def __init__(
        self,
        base: str,
        timeouts: Timeouts,
        allowed_hosts: Iterable[str],
        *,
        field: str | None = None,
        auth: tuple[str, str] | None = None,
        bearer: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base = base.rstrip("/")
        self.origin = Origin.of(self.base)
        self.field = field or silence.where(self.base)
        self.connect_s, self.read_s = timeouts.connect, timeouts.read
        self.total_s = timeouts.connect + timeouts.read
        self._credentials = httpx.BasicAuth(*auth) if auth else None
        self._bearer = bearer
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect),
            headers=dict(headers or {}),
            transport=_GuardedTransport(allowed_hosts, self.field),
            follow_redirects=False,
            trust_env=False,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def url(self, target: str, link: str | None = None) -> str:
        """The absolute URL of ``target`` (a path below the base, or a full URL of this origin).

        A full URL of another origin raises :class:`HostRefused` naming it: nothing is sent.
        """
        if "://" not in target and not target.startswith("//"):
            return f"{self.base}/{target.lstrip('/')}" if target else self.base
        if Origin.of(target) != self.origin:
            what = link or "an absolute URL"
            raise HostRefused(
                f"GET {_shown(target)}: refused: {what} goes to another origin than {self.field} "
                f"({self.origin}); not followed, nothing sent"
            )
        return target

    def request(
        self,
        method: str,
        target: str,
        *,
        params: Any = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        link: str | None = None,
        follow_redirects: bool = True,
    ) -> httpx.Response:
        """One call within the total deadline; redirects within the origin followed (if asked).

        With ``follow_redirects=False`` a 3xx comes back as it is (the gate asks "is it up?",
        and an answer that sends it to a login server elsewhere is an answer).
        """
        url = self.url(target, link)
        silence.check(self.base)  # a component that timed out earlier in this run is not waited for again
        budget = _Budget(time.monotonic() + self.total_s, MAX_REPLY_BYTES)
        token = _BUDGET.set(budget)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                response = self._send(method, url, budget, params, json, content, headers)
                location = response.headers.get("location")
                if not follow_redirects or response.status_code not in REDIRECT_STATUSES or not location:
                    return response
                following = str(response.request.url.join(location))
                if Origin.of(following) != self.origin:
                    raise HostRefused(
                        f"{method} {_shown(response.request.url)}: redirect (HTTP {response.status_code}) to "
                        f"{_shown(following)} refused: another origin than {self.field} ({self.origin}); "
                        "not followed, nothing sent"
                    )
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method, json, content = "GET", None, None
                url, params = following, None
            raise HttpError(
                f"{method} {_shown(url)}: more than {MAX_REDIRECTS} redirects within {self.origin}"
            )
        finally:
            _BUDGET.reset(token)

    def _send(
        self,
        method: str,
        url: str,
        budget: _Budget,
        params: Any,
        json: Any,
        content: bytes | str | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        request = self._http.build_request(
            method, url, params=params, json=json, content=content, headers=headers
        )
        if Origin.of(request.url) == self.origin:  # credentials only where they were configured for
            if self._credentials is not None:
                request = next(self._credentials.auth_flow(request))
            elif self._bearer is not None:
                request.headers["Authorization"] = f"Bearer {self._bearer}"
        shown = f"{method} {_shown(request.url)}"
        try:
            response = self._http.send(request, stream=True)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            if budget.cut == "time":
                raise HttpError(
                    silence.timed_out(self.base, self.total_s, shown, "no complete answer")
                    + f" ({TOTAL_FIELD})"
                ) from None
            if isinstance(exc, httpx.ConnectTimeout):
                raise HttpError(
                    silence.timed_out(self.base, self.connect_s, shown, "no connection")
                ) from None
            raise HttpError(silence.timed_out(self.base, self.read_s, shown)) from None
        except httpx.TransportError as exc:
            if budget.cut == "size":
                raise HttpError(f"{shown}: reply cut off at {MAX_REPLY_BYTES} bytes ({self.field})") from None
            raise HttpError(f"{shown}: {exc.__class__.__name__}: {exc} ({self.field})") from None
        return response


def _shown(url: str | httpx.URL) -> str:
    """A URL fit for a one-line message: no user:password part, no line breaks, clipped."""
    parts = urlsplit(str(url))
    if parts.password is not None or parts.username is not None:
        netloc = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"…@{netloc}")
    text = " ".join(parts.geturl().split())
    return text if len(text) <= 300 else text[:300] + "…"
