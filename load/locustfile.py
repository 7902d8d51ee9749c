"""Locust load for a rehearsal: the plan's load paths, with the plan's test patients only.

Run by the harness (``rehearse run``), or on its own by anyone who knows Locust::

    REHEARSAL_PLAN=plans/demo.yaml locust -f load/locustfile.py --host http://127.0.0.1:18080/fhir

``--host`` defaults to the plan's ``environment.fhir_base``. The plan's safety rules hold
here too: a production plan, or a host outside ``environment.allowed_hosts``, stops
Locust before the first request. ``REHEARSAL_THINK_TIME`` sets the pause between one
user's requests in seconds, ``MIN-MAX`` or one number (default ``0.5-1.5``; ``0`` = none).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from flows import WEIGHTS, tasks_for
from locust import FastHttpUser, between, constant, events

from rehearsal.errors import RehearsalError
from rehearsal.load import guard
from rehearsal.plan import Plan, load_plan


def _plan() -> Plan:
    path = os.environ.get("REHEARSAL_PLAN")
    if not path:
        sys.exit("REHEARSAL_PLAN is not set: point it at a plan, e.g. REHEARSAL_PLAN=plans/demo.yaml")
    try:
        plan = load_plan(Path(path)).plan
    except RehearsalError as exc:
        sys.exit(str(exc))
    if plan.load is None:
        sys.exit(f"{path}: the plan has no load section, so there is nothing to run")
    return plan


def _think_time(spec: str):  # -> Locust wait_time function
    try:
        low, _, high = spec.partition("-")
        low_s, high_s = float(low), float(high or low)
    except ValueError:
        sys.exit(f"REHEARSAL_THINK_TIME must be seconds as MIN-MAX or one number, got {spec!r}")
    return constant(low_s) if low_s == high_s else between(low_s, high_s)


PLAN = _plan()
try:
    CLINICIAN_TASKS = tasks_for([p.id for p in PLAN.load.paths], WEIGHTS)
except ValueError as exc:
    sys.exit(str(exc))


class Clinician(FastHttpUser):
    """A clinician at any site, working through the plan's load paths."""

    host = PLAN.environment.fhir_base
    tasks = CLINICIAN_TASKS
    wait_time = _think_time(os.environ.get("REHEARSAL_THINK_TIME", "0.5-1.5"))
    connection_timeout = PLAN.environment.timeouts.connect
    network_timeout = PLAN.environment.timeouts.read
    identities = PLAN.test_identities


@events.init.add_listener
def _refuse_unsafe_target(environment, **_kwargs) -> None:
    """Stop before any request when the plan or the --host would point load at the wrong place."""
    try:
        guard(PLAN, environment.host or Clinician.host)
    except RehearsalError as exc:
        logging.error("%s", exc)
        sys.exit(2)


@events.quitting.add_listener
def _html_report_always(environment, **_kwargs) -> None:
    """Locust skips --html when the run ends by SIGTERM (and in some --run-time cases): write it here."""
    options = environment.parsed_options
    html_file = getattr(options, "html_file", None) if options else None
    if not html_file or os.path.exists(html_file):
        return
    from locust.html import get_html_report

    Path(html_file).parent.mkdir(parents=True, exist_ok=True)
    Path(html_file).write_text(get_html_report(environment, show_download_link=False), encoding="utf-8")
