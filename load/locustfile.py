"""Locust load for a rehearsal: the plan's clinicians on the plan's load paths, test patients only.

Run by the harness (``rehearse load``, ``rehearse run``), or on its own by anyone who
knows Locust::

    REHEARSAL_PLAN=plans/demo.yaml locust -f load/locustfile.py --headless -u 10 -r 10 -t 30s

``--host`` defaults to the plan's ``environment.fhir_base``. The plan's safety rules hold
here too: a production plan, or a host outside ``environment.allowed_hosts``, stops
Locust (exit 2) before the first request, on a master and on every worker.

One user class per role of the plan's users (``Clinician_läkare``, …), weighted by
``load.mix``; each logs in as one of that role's plan users and runs the plan's paths with
the role's weights (a referral only when another unit on the new EHR can take it). A plan
without users gets one anonymous ``Clinician``. With ``per_site: true`` on the plan's
``load_slo`` criterion each request is named ``<path>@<site>`` after the user's site, so each
site's simulated users are judged on their own.
``REHEARSAL_THINK_TIME`` sets the pause between one user's tasks in seconds, ``MIN-MAX``
or one number (default ``0.2-0.8``; ``0`` = none).
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import re
import sys
from collections import Counter
from pathlib import Path

from flows import FLOWS, login, tasks_for
from locust import FastHttpUser, between, constant, events

from rehearsal import redact
from rehearsal.errors import RehearsalError
from rehearsal.load import (
    ENV_PLAN,
    ENV_WORKER_COUNTS,
    RoleMix,
    check,
    name_requests_by_site,
    not_here,
    per_site,
    referral_receivers,
    restart_run_clock,
)
from rehearsal.plan import Plan, load_plan


def _plan() -> Plan:
    path = os.environ.get(ENV_PLAN)
    if not path:
        sys.exit(f"{ENV_PLAN} is not set: point it at a plan, e.g. {ENV_PLAN}=plans/demo.yaml")
    try:
        plan = load_plan(Path(path)).plan
    except RehearsalError as exc:
        sys.exit(str(exc))
    if plan.load is None:
        sys.exit(f"{path}: the plan has no load section, so there is nothing to run")
    redact.register_plan(plan)  # the server's words in failure messages reach Locust's CSV, log and HTML
    return plan


def _think_time(spec: str):  # -> Locust wait_time function
    try:
        low, _, high = spec.partition("-")
        low_s, high_s = float(low), float(high or low)
    except ValueError:
        sys.exit(f"REHEARSAL_THINK_TIME must be seconds as MIN-MAX or one number, got {spec!r}")
    return constant(low_s) if low_s == high_s else between(low_s, high_s)


PLAN = _plan()
PER_SITE = per_site(PLAN)
try:
    MIX: list[RoleMix] = check(PLAN)  # the guard on the plan's own host, and who works
    ROLE_TASKS = [tasks_for(m.path_weights, login_first=bool(m.accounts)) for m in MIX]
except (RehearsalError, ValueError) as exc:
    logging.error("%s", exc)
    sys.exit(2)


class Clinician(FastHttpUser):
    """A clinician working through the plan's load paths; one subclass per role below."""

    abstract = True
    host = PLAN.environment.fhir_base
    wait_time = _think_time(os.environ.get("REHEARSAL_THINK_TIME", "0.2-0.8"))
    connection_timeout = PLAN.environment.timeouts.connect
    network_timeout = PLAN.environment.timeouts.read
    max_redirects = 0  # a redirect is an answer (a failure of its path), never followed: it could lead
    # the user's Authorization header to another host (the guard checked only --host)
    plan = PLAN
    identities = PLAN.test_identities
    role: str | None = None
    accounts: tuple = ()
    _next_account: itertools.count

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.account = self.accounts[next(self._next_account) % len(self.accounts)] if self.accounts else None
        site_id = self.account.site_id if self.account else None
        self.receivers = referral_receivers(PLAN, site_id)
        self.site_id = site_id if PER_SITE else None  # its requests are named path@site
        if self.site_id:
            name_requests_by_site(self.client, self.site_id)
        cannot = {FLOWS[p].__name__ for p in not_here(PLAN, site_id) if p in FLOWS}
        self.tasks = [t for t in self.tasks if getattr(t, "__name__", "") not in cannot] or self.tasks
        self.requester: dict | None = None
        self.orders: dict[str, str] = {}  # order id -> patient id, the latest this user placed

    def on_start(self) -> None:
        """A clinician logs in before working (counted under ``login``)."""
        if self.account is not None:
            login(self)


def _class_name(role: str | None) -> str:
    if role is None:
        return "Clinician"
    return "Clinician_" + (re.sub(r"\W", "_", role) or "role")


for _mix, _tasks in zip(MIX, ROLE_TASKS, strict=True):
    _cls = type(
        _class_name(_mix.role),
        (Clinician,),
        {
            "__doc__": f"A {_mix.role or 'anonymous clinician'} ({len(_mix.accounts)} plan user(s)).",
            "abstract": False,
            "weight": _mix.weight,
            "tasks": _tasks,
            "role": _mix.role,
            "accounts": _mix.accounts,
            "_next_account": itertools.count(),
            "__module__": __name__,
        },
    )
    globals()[_cls.__name__] = _cls  # Locust finds user classes among the module's names
del _mix, _tasks, _cls


events.init.add_listener(restart_run_clock)  # --run-time counts from now, not from before the imports


@events.init.add_listener
def _refuse_unsafe_target(environment, **_kwargs) -> None:
    """Stop before any request when the --host would point load at the wrong place."""
    try:
        check(PLAN, environment.host or Clinician.host)
    except RehearsalError as exc:
        logging.error("%s", exc)
        sys.exit(2)


@events.init.add_listener
def _count_own_requests(environment, **_kwargs) -> None:
    """On a worker, tally the requests it sends itself (the harness checks the master's sums against it)."""
    folder = os.environ.get(ENV_WORKER_COUNTS)
    from locust.runners import WorkerRunner

    if not folder or not isinstance(environment.runner, WorkerRunner):
        return
    requests: Counter[str] = Counter()
    failures: Counter[str] = Counter()

    def on_request(name: str, exception: BaseException | None = None, **_kw) -> None:
        requests[name] += 1
        if exception is not None:
            failures[name] += 1

    def write(**_kw) -> None:
        target = Path(folder) / f"worker-{os.getpid()}.json"
        data = {"pid": os.getpid(), "requests": dict(requests), "failures": dict(failures)}
        target.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    environment.events.request.add_listener(on_request)
    environment.events.test_stop.add_listener(write)
    environment.events.quitting.add_listener(write)


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


# The plan, pydantic and the harness's modules stay for the whole run: keep them out of the
# garbage collector's sweeps, which every request's garbage would otherwise make longer.
gc.collect()
gc.freeze()
