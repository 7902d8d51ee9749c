"""Writing into the reports folder: whole files or nothing, and one line when the folder refuses.

A full disk, a read-only mount or a folder without write permission must not cost a run what
it already recorded, nor leave half-written or temporary files behind, nor end in an internal
error without a path. Files the CLI writes into a run folder go through :func:`write_atomic`
(a temporary file beside the target, renamed over it, removed on any failure), and
:func:`folder_error` turns the ``OSError`` of any other write into a
:class:`ReportsFolderError`: the path, and what to do about it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from rehearsal.errors import UsageError

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}
#: errnos by which a folder refuses a write (as opposed to a bug or a missing file)
REFUSALS = frozenset(_FULL | _READ_ONLY)


class ReportsFolderError(UsageError):
    """The reports folder cannot take a write: full, read-only, or not what it should be."""


def advice(exc: OSError) -> str:
    """What the operator can do about a failed write, in a few words."""
    if exc.errno in _FULL:
        return "free space there or choose another reports folder (--reports DIR)"
    if exc.errno in _READ_ONLY:
        return "make it writable or choose another reports folder (--reports DIR)"
    return "check that folder or choose another reports folder (--reports DIR)"


def folder_error(exc: OSError, path: Path | str | None = None) -> ReportsFolderError:
    """``PATH: No space left on device; free space there or …`` for the OSError of a write."""
    where = exc.filename if exc.filename is not None else path
    reason = exc.strerror or str(exc)
    return ReportsFolderError(f"{where}: {reason}; {advice(exc)}")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace `path` by `data` in one step; on failure the old file is intact and no temporary is left.

    Raises :class:`ReportsFolderError` naming `path` when the folder refuses the write.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as out:
            out.write(raw)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise folder_error(exc, path) from None
