"""The reference hospital's own process: ``python -m reference_hospital.serve --plan P --state-dir D``.

:mod:`reference_hospital.control` starts this detached and talks to it over its admin
endpoints. It runs until SIGTERM or SIGINT, then stops the EHR and the printers (and
their private D-Bus). If it cannot start, the *last line* of its output is a one-line
reason, which is what ``control.up`` shows the user; exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from reference_hospital.hospital import Hospital
from rehearsal.errors import RehearsalError
from rehearsal.plan import load_plan

_POLLS = ("_lastUpdated=", "?_count=", "/api/referrals?since=")


def _not_a_poll(record: logging.LogRecord) -> bool:
    """Drop the access-log lines of the bridge's and the lab's polls (their cursor searches)."""
    text = record.getMessage()
    return not ("GET " in text and any(mark in text for mark in _POLLS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reference_hospital.serve",
        description="Run the reference hospital of a plan in the foreground (`rehearse reference up` does).",
    )
    parser.add_argument("--plan", required=True, help="rehearsal plan (YAML)")
    parser.add_argument("--state-dir", required=True, help="folder for the database, printers and log")
    parser.add_argument("--fault", action="append", default=[], help="fault to start with (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The bridge and the lab poll the EHR several times a second: keep their calls out of the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").addFilter(_not_a_poll)

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    hospital: Hospital | None = None
    error: str | None = None
    try:
        loaded = load_plan(args.plan)
        hospital = Hospital(
            loaded.plan,
            args.fault,
            Path(args.state_dir) / "hospital",
            access_log=True,
            plan_dir=loaded.path.parent,
        )
        hospital.start()
        parts = ", ".join(c.describe() for c in hospital.components) or "none"
        faults = ", ".join(hospital.board.names()) or "none"
        print(
            f"reference hospital ready in {hospital.started_in_s:.2f} s: fhir {hospital.fhir_base}, "
            f"web {hospital.web_base}, components {parts}, faults {faults}",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        print("reference hospital stopping", flush=True)
    except RehearsalError as exc:
        error = " | ".join(str(exc).splitlines())
    finally:
        if hospital is not None:
            hospital.stop()
    if error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    print("reference hospital stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
