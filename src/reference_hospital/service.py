"""What every simulator and server of the reference hospital is: started, then always stopped.

Why: the hospital, its EHR server, its print server and its device fleets each run processes
or threads that must not outlive a test or a demo, so each is used as ``with X(...) as x:``
and each ``stop()`` is safe to call twice or after a failed start. The ``with`` half of that
is the same for all of them, written once here.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Service:
    """``with`` runs ``start()`` and returns the service; leaving it, however, runs ``stop()``."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


__all__ = ["Service"]
