"""Load: runs Locust in its own processes from the plan's load profile and holds each path to its SLOs.

Locust is never imported here. It patches the process for gevent, so it runs as
``python -m locust`` in a subprocess (a master and ``workers`` worker processes when
asked) with ``load/locustfile.py``, and this module reads what it wrote afterwards
(``--json-file``, the CSV history). Locust has no per-path limits of its own, so the SLOs
(p95, p99, error ratio and minimum throughput per load path, from the plan) are
evaluated here from the raw response-time histogram of each request name; the request
name is the plan path id.

    guard(plan, host)                    refuse production and hosts outside allowed_hosts
    user_mix(plan)                       -> [RoleMix] (who the simulated users are, what they do)
    run_load(plan_path, plan, out_dir)   -> LoadResult (per-path figures, reports, chart, complete?)
    evaluate(profile, result, sites)     -> [SloVerdict] (one per path and SLO, per site when asked)
    load_sites(plan)                     -> {site: [path ids]} (whose simulated users do what)
    load_plan_only(plan)                 the plan narrowed to its load criteria (`rehearse load`)
    execute_load(reports, loaded, …)     `rehearse load`: load/ alone as a normal run

A run that is interrupted (Ctrl+C) or overruns its time still yields what Locust wrote,
marked incomplete; SLOs of an incomplete run do not pass.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from rehearsal import content
from rehearsal.errors import RehearsalError, UsageError
from rehearsal.identities import PERSONNUMMER_OID, SAMORDNINGSNUMMER_OID, personnummer_tokens
from rehearsal.lifetime import die_with_parent
from rehearsal.plan import Criterion, LoadedPlan, LoadPath, LoadProfile, Plan

if TYPE_CHECKING:
    from rehearsal.runner import Outcome

LOCUSTFILE = content.root() / "load" / "locustfile.py"
CONTENT_FOLDER = "load"
MARGIN_S = 45.0  # start-up (workers connecting) and shutdown time allowed beyond the plan's duration
STOP_GRACE_S = 15.0  # after SIGINT, how long Locust gets to write its report before SIGKILL
WORKERS_MAX_WAIT_S = 30  # how long the master waits for its workers before giving up
DEFAULT_MASTER_PORT = 5557  # Locust's own default, for a master other machines connect to

JSON_NAME = "stats.json"
HTML_NAME = "report.html"
CSV_PREFIX = "locust"
HISTORY_CSV = f"{CSV_PREFIX}_stats_history.csv"
LOG_NAME = "locust.log"
WORKERS_DIR = "workers"
PATIENTS_NAME = "patients.json"
CHARTS_DIR = "charts"

#: Environment variables the harness passes to Locust (and people running it by hand may set).
ENV_PLAN = "REHEARSAL_PLAN"
ENV_WORKER_COUNTS = "REHEARSAL_WORKER_COUNTS"  # folder where each worker writes its own request counts
ENV_WORKERS = "REHEARSAL_LOAD_WORKERS"  # `rehearse load --workers N` → the pytest session
ENV_REMOTE_WORKERS = "REHEARSAL_REMOTE_WORKERS"  # workers on other machines the master also waits for
ENV_PATIENT_IDS = "REHEARSAL_PATIENT_IDS"  # JSON file: personnummer -> server id, looked up before the load
ENV_ROLES = "REHEARSAL_ROLES"  # JSON file: HSA-id -> requester (PractitionerRole at the site), likewise
ROLES_NAME = "roles.json"

Slo = Literal["p95", "p99", "error_ratio", "min_rps"]
SLOS: tuple[Slo, ...] = ("p95", "p99", "error_ratio", "min_rps")
SITE_SEP = "@"
"""Per-site load (``per_site: true`` on the ``load_slo`` criterion): a request is named
``<path>@<site>`` after the site of the plan user the simulated clinician logs in as."""
NEEDS_RECEIVERS = ("create-referral",)
"""Paths that need another unit on the new EHR to send to: not applicable at a site without one."""


class LoadError(RehearsalError):
    """Locust could not run at all (bad locustfile, crash before writing statistics)."""


@dataclass(frozen=True)
class PathStats:
    """Figures of one load path (Locust request name) over the whole run."""

    path_id: str
    num_requests: int
    num_failures: int
    p95_ms: float
    p99_ms: float
    rps: float
    avg_ms: float = 0.0
    max_ms: float = 0.0
    top_error: str | None = None

    @property
    def error_ratio(self) -> float:
        return self.num_failures / self.num_requests if self.num_requests else 0.0


@dataclass(frozen=True)
class LoadResult:
    """What one Locust run produced; ``complete`` is False when it was interrupted or overran."""

    paths: Mapping[str, PathStats]
    out_dir: Path
    html_report: Path
    json_file: Path
    log_file: Path
    planned_s: float
    elapsed_s: float
    exit_code: int | None
    interrupted: bool = False
    overran: bool = False
    html_written_by: Literal["locust", "rehearsal"] = "locust"
    command: tuple[str, ...] = field(default=(), repr=False)
    measured_s: float = 0.0
    """Seconds between the first request and the last one (the span throughput is measured over)."""
    workers: int = 0
    worker_counts: tuple[Mapping[str, Any], ...] = ()
    """Each worker's own count of the requests it sent (``{"pid", "requests": {path: n}, …}``)."""
    charts: Mapping[str, Path] = field(default_factory=dict)
    """Path id → response time over time (SVG), from Locust's stats history."""

    @property
    def complete(self) -> bool:
        return not (self.interrupted or self.overran)

    def figures(self) -> dict[str, Any]:
        """JSON-ready summary for evidence attachments."""
        return {
            "complete": self.complete,
            "interrupted": self.interrupted,
            "overran": self.overran,
            "planned_s": self.planned_s,
            "elapsed_s": round(self.elapsed_s, 2),
            "measured_s": round(self.measured_s, 2),
            "locust_exit_code": self.exit_code,
            "workers": self.workers,
            "worker_counts": list(self.worker_counts),
            "paths": {pid: {**asdict(s), "error_ratio": s.error_ratio} for pid, s in self.paths.items()},
        }


@dataclass(frozen=True)
class SloVerdict:
    """One SLO of one load path, judged: what was allowed, what was measured, and in words."""

    path_id: str
    path_title: str
    slo: Slo
    limit: float
    actual: float | None
    passed: bool
    message: str
    site: str | None = None
    """The site whose simulated users were judged (per-site load), or None for all of them."""


# --- who works: roles, accounts, referral receivers ---------------------------------------


@dataclass(frozen=True)
class Account:
    """A plan user the simulated clinicians log in as (the password stays in its env var)."""

    hsa_id: str
    name: str
    role: str
    site_id: str
    password_env: str
    site_hsa_id: str = ""
    """The HSA-id of the site's Organization: how the login tells the user's role there from others."""


@dataclass(frozen=True)
class Receiver:
    """A unit on the new EHR a referral can be sent to, by its HSA-id."""

    hsa_id: str
    name: str
    site_id: str


@dataclass(frozen=True)
class RoleMix:
    """One kind of simulated clinician: its role (None = anonymous), share of users, accounts, work."""

    role: str | None
    weight: int
    accounts: tuple[Account, ...]
    path_weights: Mapping[str, int]


def accounts(plan: Plan) -> list[Account]:
    """The plan's users at sites on the new EHR (those at legacy sites cannot log in to it)."""
    seen: set[str] = set()
    found = []
    for site in plan.sites:
        if site.system != "new":
            continue
        for user in site.users:
            if user.hsa_id not in seen:
                seen.add(user.hsa_id)
                found.append(
                    Account(user.hsa_id, user.name, user.role, site.id, user.password_env, site.hsa_id)
                )
    return found


def referral_receivers(plan: Plan, site_id: str | None) -> list[Receiver]:
    """Units on the new EHR other than the sender's site: where a load referral may go.

    Units still on the legacy EHR are left out so the load stays on the EHR under test and
    never floods the coexistence bridge.
    """
    found = []
    for site in plan.sites:
        if site.system != "new" or site.id == site_id:
            continue
        found.append(Receiver(site.hsa_id, site.name, site.id))
        found += [
            Receiver(u.hsa_id, u.name, site.id) for u in site.units if (u.system or site.system) == "new"
        ]
    return found


def _path_weight(path: LoadPath, role: str | None) -> int:
    return path.weights.get(role, path.weight) if role is not None else path.weight


def _int_weights(mix: Mapping[str, float]) -> dict[str, int]:
    """Locust wants whole-number class weights: keep the ratios of the plan's (maybe fractional) mix."""
    if all(float(w).is_integer() for w in mix.values()):
        return {r: int(w) for r, w in mix.items()}
    return {r: round(w * 100) for r, w in mix.items()}


def user_mix(plan: Plan) -> list[RoleMix]:
    """The simulated clinicians of the plan's load profile, one entry per role with a share.

    Roles are the roles of the plan's users (sites on the new EHR); ``load.mix`` gives each
    role its share, default equal. A plan without users gets one anonymous kind of user.
    Raises UsageError naming what is wrong (an unknown role, a role with nothing to do, a
    ``login`` path without users), before anything is sent.
    """
    profile = _profile(plan)
    people = accounts(plan)
    roles = list(dict.fromkeys(a.role for a in people))
    unknown_weights = sorted({r for p in profile.paths for r in p.weights} - set(roles))
    if unknown_weights:
        raise UsageError(
            f"load.paths weights name roles no plan user has: {', '.join(unknown_weights)} "
            f"(roles: {', '.join(roles) or 'none, the plan has no users on the new EHR'})"
        )
    if not people:
        if profile.mix:
            raise UsageError("load.mix names roles, but the plan has no users on the new EHR (sites[].users)")
        if any(p.id == "login" for p in profile.paths):
            raise UsageError("load path 'login' needs users to log in as (sites[].users); the plan has none")
        weights = {p.id: p.weight for p in profile.paths}
        if not any(weights.values()):
            raise UsageError("load.paths: every path has weight 0; the users would have nothing to do")
        return [RoleMix(None, 1, (), weights)]
    unknown = sorted(set(profile.mix) - set(roles))
    if unknown:
        raise UsageError(
            f"load.mix names roles no plan user on the new EHR has: {', '.join(unknown)} "
            f"(roles: {', '.join(roles)})"
        )
    shares = _int_weights(profile.mix) if profile.mix else dict.fromkeys(roles, 1)
    mix = []
    for role in roles:
        if not shares.get(role):
            continue
        weights = {p.id: _path_weight(p, role) for p in profile.paths}
        if not any(weights.values()):
            raise UsageError(
                f"load: role {role!r} has weight 0 on every path; give it work or leave it out of mix"
            )
        mix.append(RoleMix(role, shares[role], tuple(a for a in people if a.role == role), weights))
    return mix


# --- per site: whose users do what, and their requests by name ---------------------------


def load_criterion(plan: Plan) -> Criterion | None:
    """The plan's ``load_slo`` criterion (the first), which the SLO results feed."""
    return next((c for c in plan.criteria if c.kind == "load_slo"), None)


def per_site(plan: Plan) -> bool:
    """Are the simulated users judged per site (``per_site: true`` on the load_slo criterion)?"""
    criterion = load_criterion(plan)
    return bool(plan.load is not None and criterion is not None and criterion.per_site)


def request_name(path_id: str, site_id: str | None = None) -> str:
    """The Locust request name of a path's requests: the path id, with ``@site`` when per site."""
    return f"{path_id}{SITE_SEP}{site_id}" if site_id else path_id


def split_name(name: str) -> tuple[str, str | None]:
    """``open-chart@sas-boras`` → (``open-chart``, ``sas-boras``); a plain path id → (id, None)."""
    path_id, sep, site_id = name.partition(SITE_SEP)
    return path_id, (site_id or None) if sep else None


def name_requests_by_site(client: Any, site_id: str) -> None:
    """Every request this Locust client sends is named ``<path>@<site>`` (its statistics per site).

    The flows name requests by path (``name="login"``) and stay as they are; Locust's HTTP
    clients send every GET and POST through ``request``, which is wrapped here.
    """
    plain = client.request

    def request(method: str, url: str, name: str | None = None, **kwargs: Any) -> Any:
        return plain(method, url, name=request_name(name or url, site_id), **kwargs)

    client.request = request


def not_here(plan: Plan, site_id: str | None) -> set[str]:
    """Path ids a simulated user of this site cannot do: a referral with no other new-EHR unit to go to."""
    return set(NEEDS_RECEIVERS) if not referral_receivers(plan, site_id) else set()


def load_sites(plan: Plan) -> dict[str, list[str]]:
    """Each site with simulated users (its plan users on the new EHR, in the mix) → the path ids they
    run: weight above 0 for one of their roles, and a referral only with another unit to send to."""
    profile = _profile(plan)
    try:
        mix = user_mix(plan)
    except UsageError:  # said by the load itself (every SLO fails with it); judge every path at every site
        mix = [RoleMix(a.role, 1, (a,), {p.id: 1 for p in profile.paths}) for a in accounts(plan)]
    found: dict[str, list[str]] = {}
    for site in plan.sites:
        roles = [m for m in mix if any(a.site_id == site.id for a in m.accounts)]
        if not roles:
            continue
        skip = not_here(plan, site.id)
        found[site.id] = [
            p.id for p in profile.paths if p.id not in skip and any(m.path_weights.get(p.id) for m in roles)
        ]
    return found


def region_paths(plan: Plan) -> list[str]:
    """The path ids judged for all simulated users together: every path, but a referral only when
    some user has another unit on the new EHR to send it to."""
    profile = _profile(plan)
    people = accounts(plan)
    can_refer = not people or any(not not_here(plan, a.site_id) for a in people)
    return [p.id for p in profile.paths if can_refer or p.id not in NEEDS_RECEIVERS]


# --- guard -------------------------------------------------------------------------------


def guard(plan: Plan, host: str | None = None) -> None:
    """Refuse to send load to production or to a host the plan does not allow; before any request.

    ``host`` is the URL Locust will actually be pointed at (``--host``); it defaults to the
    plan's ``fhir_base``. Raises UsageError with one line.
    """
    env = plan.environment
    if env.kind == "production":
        raise UsageError(
            f"load refused: environment {env.name!r} is kind 'production'; "
            "load is only sent to test environments"
        )
    url = host or env.fhir_base
    hostname = urlsplit(url).hostname
    if not hostname or hostname not in env.allowed_hosts:
        raise UsageError(
            f"load refused: host {hostname or url!r} of {url} is not in environment.allowed_hosts "
            f"({', '.join(env.allowed_hosts)})"
        )


def check(plan: Plan, host: str | None = None) -> list[RoleMix]:
    """Everything that can be said before Locust starts: the guard, then the user mix."""
    guard(plan, host)
    return user_mix(plan)


# --- run ---------------------------------------------------------------------------------


def _free_port(host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range, which the master can still have when it binds.

    A port the OS hands out for port 0 is in the ephemeral range, where every outgoing
    connection (Locust's own, by the thousand) may take it in the second before the master
    binds; below that range only a deliberate bind can.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20000, max(20001, low))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # crowded: take the OS's choice
        sock.bind((host, 0))
        return sock.getsockname()[1]


def master_address(profile: LoadProfile) -> tuple[str, int, str]:
    """(bind host, port, host workers on this machine connect to) from ``load.master_bind``.

    Loopback without a port gets a free port; another address without a port gets
    Locust's default 5557, so workers on other machines know where to connect.
    """
    text = profile.master_bind.strip()
    host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host or (port_text and not port_text.isdigit()):
        raise UsageError(f"load.master_bind must be HOST or HOST:PORT, got {text!r}")
    loopback = host in ("127.0.0.1", "localhost")
    if port_text:
        port = int(port_text)
    else:
        port = _free_port("127.0.0.1") if loopback else DEFAULT_MASTER_PORT
    if not 0 < port < 65536:
        raise UsageError(f"load.master_bind: port {port} out of range")
    connect = "127.0.0.1" if loopback or host in ("0.0.0.0", "*", "") else host
    return host, port, connect


def remote_workers() -> int:
    text = os.environ.get(ENV_REMOTE_WORKERS, "0").strip() or "0"
    if not text.isdigit():
        raise UsageError(f"{ENV_REMOTE_WORKERS} must be a whole number of workers, got {text!r}")
    return int(text)


def locust_command(
    plan: Plan,
    out_dir: Path,
    workers: int = 0,
    locustfile: Path = LOCUSTFILE,
    master: tuple[str, int, str] | None = None,
) -> list[str]:
    """The Locust command line for a plan: headless, web UI on loopback, reports into out_dir.

    With ``workers`` > 0 this is the master's command (it waits for the workers);
    :func:`worker_command` gives theirs.
    """
    profile = _profile(plan)
    cmd = [
        sys.executable, "-m", "locust",
        "-f", str(locustfile),
        "--headless", "--only-summary",
        "--web-host", "127.0.0.1",
        "-u", str(profile.users),
        "-r", f"{profile.spawn_rate:g}",
        "-t", f"{run_seconds(profile)}s",
        "--host", plan.environment.fhir_base,
        "--json-file", str(out_dir / Path(JSON_NAME).stem),  # Locust appends ".json"
        "--html", str(out_dir / HTML_NAME),
        "--csv", str(out_dir / CSV_PREFIX),
        "--csv-full-history",
        "--exit-code-on-error", "1",
    ]  # fmt: skip
    if workers > 0 or remote_workers() > 0:
        bind, port, _ = master or master_address(profile)
        cmd += [
            "--master",
            "--master-bind-host", bind,
            "--master-bind-port", str(port),
            "--expect-workers", str(workers + remote_workers()),
            "--expect-workers-max-wait", str(WORKERS_MAX_WAIT_S),
        ]  # fmt: skip
    return cmd


def worker_command(plan: Plan, master: tuple[str, int, str], locustfile: Path = LOCUSTFILE) -> list[str]:
    """One worker on this machine, connecting to the master (see load/README.md for other machines)."""
    _, port, connect = master
    return [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--worker",
        "--master-host", connect, "--master-port", str(port),
        "--host", plan.environment.fhir_base,
    ]  # fmt: skip


def resolve_patient_ids(plan: Plan) -> dict[str, str]:
    """Server ids of the plan's test identities, looked up before the load starts (not measured).

    One standard FHIR search for all of them (``identifier=a,b,c``, each personnummer as 12 digits
    and as written: :func:`rehearsal.identities.personnummer_tokens`). Any trouble yields {}:
    the flows then look them up themselves under load. Only called after the guard.
    """
    from rehearsal.clients.http import GuardedClient  # httpx only when asked: the locustfile imports us

    env = plan.environment
    systems = (None, f"urn:oid:{PERSONNUMMER_OID}", f"urn:oid:{SAMORDNINGSNUMMER_OID}")
    wanted = {re.sub(r"\D", "", i.personnummer): i.personnummer for i in plan.test_identities}
    values = ",".join(t for i in plan.test_identities for t in personnummer_tokens(i.personnummer))
    try:  # allowed hosts, this origin only, a total deadline; a timeout is recorded (rehearsal.silence)
        field = "environment.fhir_base"
        with GuardedClient(env.fhir_base, env.timeouts, env.allowed_hosts, field=field) as http:
            answer = http.request("GET", "Patient", params={"identifier": values, "_format": "json"})
        bundle = answer.json() if answer.status_code == 200 else {}
    except (RehearsalError, ValueError):  # HttpError, HostRefused, silence.Silent: the flows look up
        return {}
    found: dict[str, str] = {}
    for entry in (bundle.get("entry") or []) if isinstance(bundle, dict) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if (
            not isinstance(resource, dict)
            or resource.get("resourceType") != "Patient"
            or not resource.get("id")
        ):
            continue
        for ident in resource.get("identifier") or []:
            if isinstance(ident, dict) and ident.get("system") in systems:
                pnr = wanted.get(re.sub(r"\D", "", str(ident.get("value", ""))))
                if pnr:
                    found[pnr] = str(resource["id"])
    return found


def resolve_roles(plan: Plan, env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """HSA-id → requester for each load account: their PractitionerRole at their site (not measured).

    Found the way the technical login check finds it (:func:`rehearsal.workflows.people.role_at_site`:
    the Practitioner by HSA-id, its roles, the role whose Organization carries the site's HSA-id),
    as the user, with the password from ``env``. An account it cannot place is left out: its
    simulated clinicians then look the role up themselves at login, counted under ``login``.
    """
    from rehearsal.clients.fhir import FhirClient  # httpx only when asked: the locustfile imports us
    from rehearsal.workflows.people import role_at_site

    found: dict[str, dict[str, Any]] = {}
    for account in accounts(plan):
        password = env.get(account.password_env)
        site = next(s for s in plan.sites if s.id == account.site_id)
        user = next((u for u in site.users if u.hsa_id == account.hsa_id), None)
        if not password or user is None:
            continue
        try:
            with FhirClient(plan.environment, auth=(account.hsa_id, password)) as fhir:
                role = role_at_site(fhir, site, user)
        except RehearsalError:  # TargetError, HostRefused, silence.Silent: the flows look it up
            continue
        if role.requester is not None:
            found[account.hsa_id] = role.requester
    return found


def restart_run_clock(**_kwargs: object) -> None:
    """Locust's ``init`` listener: bring gevent's cached loop time up to now.

    Locust schedules ``--run-time`` with ``gevent.spawn_later``, which counts from the loop's
    cached time: the moment the hub was made, before the locustfile and the plan were
    imported. On a busy machine that import takes seconds, and a 4 s run stopped ~50 ms after
    its users spawned, with no requests recorded. Imported lazily: the harness's own process
    never loads gevent.
    """
    import gevent

    gevent.get_hub().loop.update_now()


def run_seconds(profile: LoadProfile) -> int:
    """Locust's --run-time takes whole seconds; a fraction is rounded up, never down."""
    return max(1, math.ceil(profile.duration_s))


def _profile(plan: Plan) -> LoadProfile:
    if plan.load is None:
        raise UsageError(f"plan {plan.rehearsal!r} has no load section: nothing to run")
    return plan.load


@contextmanager
def _first_interrupt_only() -> Iterator[None]:
    """Ctrl+C once raises KeyboardInterrupt; more of them (a terminal and the CLI both send one)
    are swallowed while Locust writes its report, so a second one cannot cut that short."""
    seen = 0

    def handler(signum: int, frame: object) -> None:
        nonlocal seen
        seen += 1
        if seen == 1:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_load(
    plan_path: Path,
    plan: Plan,
    out_dir: Path,
    workers: int | None = None,
    *,
    locustfile: Path = LOCUSTFILE,
    margin_s: float = MARGIN_S,
    env: Mapping[str, str] | None = None,
) -> LoadResult:
    """Run the plan's load profile with Locust in subprocesses and read back per-path figures.

    The guard and the user mix are checked first, so a refused plan sends nothing.
    ``workers`` (default: the plan's ``load.workers``) > 0 starts a master bound as the
    plan says (loopback by default) and that many worker processes. The run is bounded
    by the plan's duration plus ``margin_s``; on overrun or Ctrl+C the master gets SIGINT
    (it then writes its report and statistics), and everything left is killed after a
    grace period. What was written is still read, and the result is marked incomplete.
    The HTML report always exists afterwards.
    """
    check(plan)
    profile = _profile(plan)
    workers = profile.workers if workers is None else workers
    if workers < 0:
        raise UsageError(f"workers must be 0 (one process) or more, got {workers}")
    if not locustfile.is_file():
        raise UsageError(f"locustfile not found: {locustfile}")
    out_dir = Path(out_dir).resolve()  # Locust runs in it; its paths must not depend on cwd
    out_dir.mkdir(parents=True, exist_ok=True)
    json_file, html_file, log_file = out_dir / JSON_NAME, out_dir / HTML_NAME, out_dir / LOG_NAME
    counts_dir = out_dir / WORKERS_DIR
    stale_files: tuple[Path, ...] = (json_file, html_file, out_dir / PATIENTS_NAME, out_dir / ROLES_NAME)
    stale_files += tuple(out_dir.glob(f"{CSV_PREFIX}_*.csv"))
    for stale in (*stale_files, *counts_dir.glob("*.json")):
        stale.unlink(missing_ok=True)

    master = master_address(profile) if workers > 0 or remote_workers() > 0 else None
    cmd = locust_command(plan, out_dir, workers, locustfile, master)
    child_env = {
        **os.environ,
        **(env or {}),
        ENV_PLAN: str(Path(plan_path).resolve()),
        "PYTHONUNBUFFERED": "1",
    }
    if master is not None:
        counts_dir.mkdir(exist_ok=True)
        child_env[ENV_WORKER_COUNTS] = str(counts_dir)
    if _needs_patients(profile):  # test data set-up, before the clock starts
        patients = out_dir / PATIENTS_NAME
        patients.write_text(
            json.dumps(resolve_patient_ids(plan), ensure_ascii=False, indent=2), encoding="utf-8"
        )
        child_env[ENV_PATIENT_IDS] = str(patients)
    if accounts(plan):  # each clinician's role at their site, found once here instead of under load
        roles = out_dir / ROLES_NAME
        roles.write_text(json.dumps(resolve_roles(plan, child_env), ensure_ascii=False, indent=2), "utf-8")
        child_env[ENV_ROLES] = str(roles)
    planned = float(run_seconds(profile))
    interrupted = overran = False
    started = time.monotonic()
    procs: list[subprocess.Popen[bytes]] = []
    with open(log_file, "wb") as log, _first_interrupt_only():
        try:
            # Own process group: a Ctrl+C in the terminal reaches us only; we decide how Locust stops.
            procs.append(_spawn(cmd, out_dir, child_env, log, process_group=0))
            for i in range(workers):
                assert master is not None
                with open(out_dir / f"worker-{i + 1}.log", "wb") as worker_log:  # the child keeps its own fd
                    procs.append(
                        _spawn(worker_command(plan, master, locustfile), out_dir, child_env, worker_log,
                               process_group=procs[0].pid)
                    )  # fmt: skip
            try:
                procs[0].wait(timeout=planned + margin_s)
            except subprocess.TimeoutExpired:
                overran = True
                _stop(procs)
        except KeyboardInterrupt:
            interrupted = True
            _stop(procs)
        finally:
            _reap(procs)
    elapsed = time.monotonic() - started
    exit_code = procs[0].returncode if procs else None

    read = _read_json(json_file) if json_file.is_file() else None
    if read is None and (interrupted or overran):  # killed before its JSON: the periodic CSV is next best
        read = _read_csv(out_dir / f"{CSV_PREFIX}_stats.csv")
    if read is None:
        raise LoadError(
            f"locust exited with code {exit_code} and wrote no statistics: "
            f"{_last_line(log_file)} (log: {log_file})"
        )
    paths, measured = read
    paths = _with_top_errors(paths, out_dir / f"{CSV_PREFIX}_failures.csv")
    written_by: Literal["locust", "rehearsal"] = "locust"
    if not html_file.is_file() or html_file.stat().st_size == 0:
        written_by = "rehearsal"
        _write_fallback_html(html_file, plan, paths, interrupted=interrupted, overran=overran)
    return LoadResult(
        paths=paths,
        out_dir=out_dir,
        html_report=html_file,
        json_file=json_file,
        log_file=log_file,
        planned_s=planned,
        elapsed_s=elapsed,
        exit_code=exit_code,
        interrupted=interrupted,
        overran=overran,
        html_written_by=written_by,
        command=tuple(cmd),
        measured_s=measured,
        workers=workers,
        worker_counts=tuple(_read_worker_counts(counts_dir)) if master is not None else (),
        charts=write_charts(profile, out_dir / HISTORY_CSV, out_dir / CHARTS_DIR),
    )


def _needs_patients(profile: LoadProfile) -> bool:
    """Every flow but login and patient search works on a known patient id."""
    return any(p.id not in ("login", "patient-search") for p in profile.paths)


def _spawn(
    cmd: list[str], cwd: Path, env: Mapping[str, str], log: Any, process_group: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=process_group,
        preexec_fn=die_with_parent(signal.SIGKILL),  # a killed session leaves no Locust behind
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT to the master (it stops its workers, writes HTML and JSON); SIGKILL what lingers."""
    if not procs:
        return
    master = procs[0]
    try:
        master.send_signal(signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        master.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        pass


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    """After the master: give workers a moment to take its quit message, then kill the group."""
    if not procs:
        return
    deadline = time.monotonic() + 5
    for proc in procs[1:]:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(procs[0].pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for proc in procs:
        proc.wait()


def _last_line(log_file: Path) -> str:
    try:
        lines = [ln.strip() for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def percentile(response_times: Mapping[float, int], num_requests: int, percent: float) -> float:
    """Locust's own percentile rule over its (bucketed) response-time histogram, in ms."""
    wanted = int(num_requests * percent)
    seen = 0
    for rt in sorted(response_times, reverse=True):
        seen += response_times[rt]
        if num_requests - seen <= wanted:
            return float(rt)
    return 0.0


def _read_json(json_file: Path) -> tuple[dict[str, PathStats], float] | None:
    """Per-path figures and the measured span (first to last request) from Locust's --json-file."""
    try:
        entries = json.loads(json_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entries, list):
        return None
    merged: dict[str, dict[str, Any]] = {}
    # one entry per (name, method); a path is its name; ``path@site`` counts for its path too
    for e, m in ((x, acc) for x in entries for acc in _accumulators(merged, str(x["name"]))):
        m["n"] += int(e.get("num_requests") or 0)
        m["f"] += int(e.get("num_failures") or 0)
        m["total"] += float(e.get("total_response_time") or 0)
        m["max"] = max(m["max"], float(e.get("max_response_time") or 0))
        for rt, count in (e.get("response_times") or {}).items():
            m["hist"][float(rt)] = m["hist"].get(float(rt), 0) + int(count)
        m["start"] = min(m["start"], float(e.get("start_time") or math.inf))
        m["last"] = max(m["last"], float(e.get("last_request_timestamp") or 0))
    starts = [m["start"] for m in merged.values() if math.isfinite(m["start"])]
    lasts = [m["last"] for m in merged.values() if m["last"]]
    span = max(lasts) - min(starts) if starts and lasts else 0.0
    stats: dict[str, PathStats] = {}
    for name, m in merged.items():
        timed = sum(m["hist"].values())
        stats[name] = PathStats(
            path_id=name,
            num_requests=m["n"],
            num_failures=m["f"],
            p95_ms=percentile(m["hist"], timed, 0.95),
            p99_ms=percentile(m["hist"], timed, 0.99),
            rps=round(m["n"] / span, 2) if span > 0 else 0.0,
            avg_ms=round(m["total"] / timed, 1) if timed else 0.0,
            max_ms=m["max"],
        )
    return stats, max(span, 0.0)


def _accumulators(merged: dict[str, dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Where one Locust entry's figures go: its own name, and its path's when it is a site's."""
    path_id, site_id = split_name(name)
    keys = [name, path_id] if site_id else [name]
    empty = {"n": 0, "f": 0, "total": 0.0, "max": 0.0, "hist": {}, "start": math.inf, "last": 0.0}
    return [merged.setdefault(k, {**empty, "hist": {}}) for k in keys]


def _read_csv(stats_csv: Path) -> tuple[dict[str, PathStats], float] | None:
    """Fallback when Locust was killed before writing JSON: its periodic CSV (may lag a little)."""
    try:
        with open(stats_csv, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    stats: dict[str, PathStats] = {}
    span = 0.0
    for row in rows:
        name = row.get("Name", "")
        try:
            count, rps = int(row["Request Count"]), _num(row.get("Requests/s"))
        except (KeyError, ValueError):
            continue
        if name == "Aggregated":
            span = count / rps if rps else 0.0
            continue
        if not name:
            continue
        stats[name] = PathStats(
            path_id=name,
            num_requests=count,
            num_failures=int(_num(row.get("Failure Count"))),
            p95_ms=_num(row.get("95%")),
            p99_ms=_num(row.get("99%")),
            rps=rps,
            avg_ms=_num(row.get("Average Response Time")),
            max_ms=_num(row.get("Max Response Time")),
        )
    return stats, span


def _num(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "", "N/A") else 0.0
    except ValueError:
        return 0.0


def _with_top_errors(paths: dict[str, PathStats], failures_csv: Path) -> dict[str, PathStats]:
    """Name the most frequent failure of each path, so a failed SLO says why."""
    try:
        with open(failures_csv, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return paths
    top: dict[str, tuple[int, str]] = {}
    for row in rows:
        try:
            name, count, error = row["Name"], int(row["Occurrences"]), row["Error"]
        except (KeyError, ValueError):
            continue
        for key in dict.fromkeys((name, split_name(name)[0])):  # a site's failure is its path's too
            if count > top.get(key, (0, ""))[0]:
                top[key] = (count, _plain_error(error))
    return {
        pid: (PathStats(**{**asdict(s), "top_error": top[pid][1]}) if pid in top else s)
        for pid, s in paths.items()
    }


def _plain_error(error: str) -> str:
    """``CatchResponseError('HTTP 401: …')`` → ``HTTP 401: …``: the flow's words, not Locust's wrapper."""
    match = re.fullmatch(r"(?:CatchResponseError|FlowError)\((['\"])(.*)\1\)", error.strip(), re.DOTALL)
    return match.group(2) if match else error


def _read_worker_counts(counts_dir: Path) -> list[dict[str, Any]]:
    """Each worker's own tally (written by the locustfile on the worker), oldest pid first."""
    found = []
    for path in sorted(counts_dir.glob("worker-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            found.append(data)
    return found


def _write_fallback_html(
    html_file: Path, plan: Plan, paths: Mapping[str, PathStats], *, interrupted: bool, overran: bool
) -> None:
    """A plain report with the same figures, for runs where Locust wrote none."""
    why = "avbröts" if interrupted else "överskred sin tid" if overran else "skrev ingen HTML-rapport"
    rows = "".join(
        f"<tr><td>{html.escape(s.path_id)}</td><td>{s.num_requests}</td><td>{s.num_failures}</td>"
        f"<td>{s.p95_ms:g}</td><td>{s.p99_ms:g}</td><td>{s.rps:g}</td></tr>"
        for s in paths.values()
    )
    html_file.write_text(
        "<!doctype html><html lang=sv><meta charset=utf-8>"
        f"<title>Lastrapport {html.escape(plan.rehearsal)}</title>"
        f"<h1>Lastrapport – {html.escape(plan.title)}</h1>"
        f"<p>Locust {why}; siffrorna nedan är det som hann registreras.</p>"
        "<table border=1><tr><th>väg</th><th>anrop</th><th>fel</th><th>p95 ms</th><th>p99 ms</th>"
        f"<th>anrop/s</th></tr>{rows}</table></html>\n",
        encoding="utf-8",
    )


# --- charts ------------------------------------------------------------------------------


def read_history(history_csv: Path) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """Locust's --csv-full-history rows per request name: (seconds since start, {column: value})."""
    try:
        with open(history_csv, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return {}
    series: dict[str, list[tuple[float, dict[str, float]]]] = {}
    t0: float | None = None
    for row in rows:
        try:
            stamp = float(row["Timestamp"])
        except (KeyError, ValueError):
            continue
        t0 = stamp if t0 is None else min(t0, stamp)
        if not _num(row.get("Total Request Count")):
            continue  # before the path's first request Locust writes zeros, not a measurement
        values = {k: _num(v) for k, v in row.items() if k not in ("Timestamp", "Type", "Name") and v != "N/A"}
        series.setdefault(row.get("Name", ""), []).append((stamp, values))
    return {
        name: [(stamp - (t0 or 0.0), values) for stamp, values in points] for name, points in series.items()
    }


def write_charts(profile: LoadProfile, history_csv: Path, charts_dir: Path) -> dict[str, Path]:
    """One SVG per load path: p50/p95/p99 over the run (Locust's rolling window) and its limits."""
    from rehearsal.load_chart import Series, line_chart_svg

    history = read_history(history_csv)
    charts: dict[str, Path] = {}
    for path, name in ((p, n) for p in profile.paths for n in history if split_name(n)[0] == p.id):
        points = history.get(name) or []
        if not points:
            continue
        series = [
            Series(label, [(t, v[col]) for t, v in points if col in v], color)
            for label, col, color in (
                ("p50", "50%", (150, 150, 150)),
                ("p95", "95%", (31, 119, 180)),
                ("p99", "99%", (255, 127, 14)),
            )
        ]
        limits = [("p95", path.p95_ms, (31, 119, 180))]
        if path.p99_ms is not None:
            limits.append(("p99", path.p99_ms, (255, 127, 14)))
        charts_dir.mkdir(parents=True, exist_ok=True)
        target = charts_dir / f"{name}.svg"
        target.write_text(line_chart_svg(series, limits=limits, title=name), encoding="utf-8")
        charts[name] = target
    return charts


# --- evaluate ----------------------------------------------------------------------------


def evaluate(
    profile: LoadProfile,
    result: LoadResult,
    sites: Mapping[str, Sequence[str]] | None = None,
    paths: Sequence[str] | None = None,
) -> list[SloVerdict]:
    """Judge every path of the profile against its SLOs: p95, p99 (if set), error ratio, min_rps (if set).

    ``sites`` (site → its path ids, :func:`load_sites`): each site's simulated users on their own,
    by the requests named ``<path>@<site>``; else all of them together, on ``paths`` (default all).

    A path with no requests fails every SLO. Percentiles of a path whose every request
    failed fail too (a refused connection is fast, not good). Nothing passes on an
    incomplete run; what was measured is still in the message.
    """
    verdicts: list[SloVerdict] = []
    incomplete = ""
    if result.interrupted:
        incomplete = f": run interrupted after {result.elapsed_s:.1f} s of {result.planned_s:g} s"
    elif result.overran:
        incomplete = f": run overran {result.planned_s:g} s and was stopped"
    judged: list[tuple[str | None, LoadPath]] = [
        (site, path)
        for site, ids in (sites.items() if sites is not None else [(None, paths)])
        for path in profile.paths
        if ids is None or path.id in ids
    ]
    for site, path in judged:
        slos = slos_of(path)
        s = result.paths.get(request_name(path.id, site))
        if s is None or s.num_requests == 0:
            why = "no requests recorded" + _login_hint(result, path.id, site)
            why = f"incomplete{incomplete}; {why}" if incomplete else why
            verdicts += [
                SloVerdict(path.id, path.title, slo, limit, None, False, why, site) for slo, limit in slos
            ]
            continue
        top = f" (most common: {s.top_error})" if s.top_error else ""
        for slo, limit in slos:
            if slo in ("p95", "p99"):
                actual = s.p95_ms if slo == "p95" else s.p99_ms
                if s.num_failures >= s.num_requests:
                    ok, msg = False, f"{slo} not measurable: all {s.num_requests} requests failed{top}"
                else:
                    ok = actual <= limit
                    msg = f"{slo} {actual:.0f} ms {'≤' if ok else '>'} {limit:g} ms"
            elif slo == "error_ratio":
                actual = s.error_ratio
                ok = actual <= limit
                msg = (
                    f"error ratio {actual * 100:.2f} % {'≤' if ok else '>'} {limit * 100:g} % "
                    f"({s.num_failures} of {s.num_requests} failed){'' if ok else top}"
                )
            else:  # min_rps: successful requests only; failing fast is not throughput
                good = s.num_requests - s.num_failures
                actual = round(s.rps * good / s.num_requests, 2)
                ok = actual >= limit
                msg = (
                    f"throughput {actual:.2f} req/s {'≥' if ok else '<'} {limit:g} req/s "
                    f"({good} successful requests in {result.measured_s or result.elapsed_s:.1f} s)"
                    f"{top if not ok and good == 0 else ''}"  # nothing got through: say why
                )
            if incomplete:
                msg = f"incomplete{incomplete}; figures so far: {msg}"
            verdicts.append(
                SloVerdict(path.id, path.title, slo, limit, actual, ok and not incomplete, msg, site)
            )
    return verdicts


def slos_of(path: LoadPath) -> list[tuple[Slo, float]]:
    """The SLOs a path is held to, in report order: p95, p99 (if set), error ratio, min_rps (if set)."""
    slos: list[tuple[Slo, float]] = [("p95", path.p95_ms)]
    if path.p99_ms is not None:
        slos.append(("p99", path.p99_ms))
    slos.append(("error_ratio", path.max_error_ratio))
    if path.min_rps is not None:
        slos.append(("min_rps", path.min_rps))
    return slos


def _login_hint(result: LoadResult, path_id: str, site: str | None = None) -> str:
    """When nothing ran because logging in failed, say so on every path."""
    login = result.paths.get(request_name("login", site))
    if path_id == "login" or login is None or not login.num_failures:
        return ""
    return f"; login failed {login.num_failures} of {login.num_requests} times" + (
        f" ({login.top_error})" if login.top_error else ""
    )


# --- `rehearse load` ---------------------------------------------------------------------


def load_plan_only(plan: Plan) -> Plan:
    """The plan narrowed to its load criteria (and run_complete): the decision of a load-only run."""
    kept = [c for c in plan.criteria if c.kind in ("load_slo", "run_complete")]
    return plan.model_copy(update={"criteria": kept, "runbook": None})  # no cutover in a load-only run


def execute_load(
    reports_root: Path,
    loaded: LoadedPlan,
    *,
    workers: int | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Outcome, LoadedPlan]:
    """`rehearse load`: run load/ alone as a normal run (own run folder, Allure results, report).

    Everything that can refuse the load is checked here first, so a refused plan exits
    before a pytest session or Locust is started and before any request.
    Returns the outcome and the plan narrowed to the load criteria (for the decision).
    """
    from rehearsal.runner import execute

    check(loaded.plan)
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be 0 (one process) or more, got {workers}")
    child_env = dict(env or {})
    if workers is not None:
        child_env[ENV_WORKERS] = str(workers)
    outcome = execute(reports_root, loaded, env=child_env, paths=[CONTENT_FOLDER])
    narrowed = LoadedPlan(plan=load_plan_only(loaded.plan), path=loaded.path, sha256=loaded.sha256)
    return outcome, narrowed


def workers_from_env(default: int) -> int:
    """The worker count `rehearse load --workers N` handed to the pytest session, else ``default``."""
    text = os.environ.get(ENV_WORKERS, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise UsageError(f"{ENV_WORKERS} must be a whole number of workers, got {text!r}")
    return int(text)
