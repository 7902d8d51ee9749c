"""Reading a file the operator named, in bounded time and memory.

A path in a plan or a collector's drop folder may be a FIFO (``open`` blocks until someone
writes), a device, or a file far larger than any plan or facts file: each would hang or
exhaust the run. :func:`read_bounded` opens without blocking, refuses anything that is not
a regular file, and reads at most one byte more than the limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegularFile(OSError):
    """The path is a FIFO, a device, a socket or a folder."""


class TooLarge(OSError):
    """The file holds more than the limit; ``limit`` is that many bytes."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(f"larger than {limit // (1024 * 1024)} MiB")
        self.limit = limit


def read_bounded(path: Path, limit: int) -> bytes:
    """The file's bytes; NotRegularFile, TooLarge or the OSError of opening it otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of blocking
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise NotRegularFile(f"not a regular file: {path}")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(path, limit)
    return data
