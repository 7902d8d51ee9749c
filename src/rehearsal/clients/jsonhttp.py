"""A JSON-over-HTTP client with the plan's timeouts, for the coexistence systems' plain APIs.

The legacy EHR and the bridge speak plain JSON, not FHIR. Every failure becomes one
:class:`HttpError` (a TargetError) naming method, URL and status, so a scenario's message
says what was asked of whom.
"""

from __future__ import annotations

from typing import Any

import httpx

from rehearsal import silence
from rehearsal.errors import TargetError
from rehearsal.plan import Timeouts


class HttpError(TargetError):
    """No answer, or an error status (``status``; None when there was no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class JsonClient:
    def __init__(self, base: str, timeouts: Timeouts) -> None:
        self.base = base.rstrip("/")
        self._connect_s, self._read_s = timeouts.connect, timeouts.read
        self._http = httpx.Client(
            base_url=self.base, timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect)
        )

    def __enter__(self) -> JsonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer whatever its status (transport problems still raise HttpError)."""
        url = f"{self.base}{path}"
        silence.check(self.base)  # a system that timed out earlier in this run is not waited for again
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.ConnectTimeout:
            raise HttpError(
                silence.timed_out(self.base, self._connect_s, f"{method} {url}", "no connection")
            ) from None
        except httpx.TimeoutException:
            raise HttpError(silence.timed_out(self.base, self._read_s, f"{method} {url}")) from None
        except httpx.TransportError as exc:
            raise HttpError(f"{method} {url}: {exc.__class__.__name__}: {exc}") from None

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """JSON of a 2xx answer; HttpError otherwise, with the server's own ``error`` text."""
        response = self.response(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("error") or response.text[:200]
            except (ValueError, AttributeError):
                detail = response.text[:200]
            raise HttpError(
                f"{method} {self.base}{path}: HTTP {response.status_code}: {detail}", response.status_code
            )
        try:
            return response.json()
        except ValueError:
            raise HttpError(f"{method} {self.base}{path}: reply is not JSON") from None

    def text(self, path: str) -> str:
        response = self.response("GET", path)
        if response.status_code >= 400:
            raise HttpError(f"GET {self.base}{path}: HTTP {response.status_code}", response.status_code)
        return response.content.decode("utf-8")
