""" "During this rehearsal": the moment it began, on each target system's own clock.

Checks such as "no message of the site in the catch-all queue" or "every patient touched
is a test identity" look at what happened during the run, not at what earlier runs left
behind (a rerun after a fix must not fail on the backlog of the run it repeats). The
start is read from the target's clocks — the FHIR server's and the integration monitoring's
(the bridge's clock, an engine's counters) — so a skewed workstation clock neither hides nor
adds anything; when a system does not answer, the local clock (a second early) stands in.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rehearsal.adapters import monitoring
from rehearsal.adapters.monitoring import Reading
from rehearsal.clients.fhir import FhirClient, fhir_instant
from rehearsal.errors import TargetError
from rehearsal.plan import Plan


@dataclass(frozen=True)
class Window:
    """When this rehearsal began: FHIR instant (new EHR clock), the monitoring's mark, local time.

    ``monitoring`` is what the plan's monitoring adapter marked (the reference bridge's clock,
    an engine's counters: :mod:`rehearsal.adapters.monitoring`); the local instant when it did
    not answer.
    """

    fhir_since: str
    monitoring: object
    local_since: datetime

    @property
    def bridge_since(self) -> str:
        """The reference bridge's clock at the start (its mark), else the local instant."""
        return self.monitoring if isinstance(self.monitoring, str) else fhir_instant(self.local_since)


def open_window(plan: Plan) -> Window:
    local = datetime.now(UTC) - timedelta(seconds=1)
    fhir_since = fhir_instant(local)
    mark: object = fhir_since
    try:
        with FhirClient(plan.environment) as fhir:
            fhir_since = fhir_instant(fhir.server_time() - timedelta(milliseconds=1))
    except TargetError:
        pass
    try:
        monitor = monitoring.for_plan(plan)
        if monitor is not None:
            try:
                mark = monitor.mark() or mark
            finally:
                monitor.close()
    except TargetError:
        pass
    return Window(fhir_since=fhir_since, monitoring=mark, local_since=local)


WINDOW_FILE = "window.json"  # in the run folder: the first session's window, for the run's others


def shared_window(plan: Plan, run_dir: Path) -> Window:
    """The run's window: the one a session of this run already took (``--jobs`` runs sessions side
    by side, then the region-wide one), else one opened now and kept for the others.

    The first to write it wins (a hard link cannot replace a file), so every session of a run
    looks from the same moment, and the test-identity guard, run last in a session of its own,
    still sees what the first scenario wrote. A mark that cannot be written down (a third-party
    monitoring adapter's own object) is not shared: that session keeps its own window.
    """
    path = Path(run_dir) / WINDOW_FILE
    if (found := _read(path)) is not None:
        return found
    window = open_window(plan)
    try:
        text = json.dumps(_encode(window), default=repr)  # a reading's raw answer as its repr
    except TypeError:
        return window
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.link(tmp, path)
    except FileExistsError:
        return _read(path) or window
    except OSError:
        return window  # a folder that refuses the file: this session's own window still holds
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return window


def _encode(window: Window) -> dict[str, Any]:
    mark = window.monitoring
    if isinstance(mark, dict) and all(isinstance(v, Reading | str) for v in mark.values()):
        encoded: Any = {"readings": {k: asdict(v) if isinstance(v, Reading) else v for k, v in mark.items()}}
    elif isinstance(mark, str):
        encoded = {"text": mark}
    else:
        raise TypeError(f"a {type(mark).__name__} mark")
    local = window.local_since.isoformat()
    return {"fhir_since": window.fhir_since, "monitoring": encoded, "local_since": local}


def _read(path: Path) -> Window | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        mark = data["monitoring"]
        monitoring_mark: object = (
            mark["text"]
            if "text" in mark
            else {k: Reading(**v) if isinstance(v, dict) else str(v) for k, v in mark["readings"].items()}
        )
        return Window(str(data["fhir_since"]), monitoring_mark, datetime.fromisoformat(data["local_since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet, or not one this harness wrote: this session takes its own
