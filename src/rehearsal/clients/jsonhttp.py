"""A JSON-over-HTTP client with the plan's timeouts, for the coexistence systems' plain APIs.

The legacy EHR and the bridge speak plain JSON, not FHIR. Requests go through the
harness's one HTTP layer (:mod:`rehearsal.clients.http`: allowed hosts, one origin, a
total deadline per call). Every failure becomes one :class:`HttpError` (a TargetError)
naming method, URL and status, so a scenario's message says what was asked of whom.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

import httpx

from rehearsal.clients.http import GuardedClient, HostRefused, HttpError
from rehearsal.plan import Timeouts

__all__ = ["HostRefused", "HttpError", "JsonClient"]


class JsonClient:
    """One coexistence system at ``base``; ``allowed_hosts`` defaults to the base's own host only."""

    def __init__(
        self,
        base: str,
        timeouts: Timeouts,
        allowed_hosts: Iterable[str] | None = None,
        *,
        field: str | None = None,
    ) -> None:
        self.base = base.rstrip("/")
        hosts = list(allowed_hosts) if allowed_hosts is not None else [httpx.URL(self.base).host]
        self._http = GuardedClient(self.base, timeouts, hosts, field=field)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer whatever its status (transport problems still raise HttpError)."""
        return self._http.request(method, path, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """JSON of a 2xx answer; HttpError otherwise, with the server's own ``error`` text."""
        response = self.response(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("error") or response.text[:200]
            except (ValueError, AttributeError):
                detail = response.text[:200]
            detail = " ".join(str(detail).split())[:200]  # one line, whatever the server put in it
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
