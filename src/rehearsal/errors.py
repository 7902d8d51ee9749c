"""The harness's exception family and exit codes.

    RehearsalError
     ├── UsageError        the user can fix it (bad plan, unknown run, refused target): exit 2, one line
     └── TargetError       the environment under test could not be reached before anything ran: exit 2

Anything else escaping the CLI is an internal error: exit 2 with a one-line summary
(the traceback only with REHEARSAL_DEBUG=1).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    GO = 0
    NO_GO = 1
    ERROR = 2


class RehearsalError(Exception):
    """Base of every error the harness raises on purpose."""


class UsageError(RehearsalError):
    """Something the user can correct; printed as one line without a traceback."""


class TargetError(RehearsalError):
    """The target environment (or the reference hospital) is not reachable or refused us."""
