"""Load: runs Locust in its own process from the plan's load profile and holds each path to its SLO.

Locust is never imported here. It patches the process for gevent, so it runs as
``python -m locust`` in a subprocess with ``load/locustfile.py``, and this module reads
what it wrote (``--json-file``) afterwards. Locust has no per-path limits of its own, so
the SLOs (p95 and error ratio per load path, from the plan) are evaluated here from the
raw response-time histogram of each request name; the request name is the plan path id.

    guard(plan)                          refuse production and hosts outside allowed_hosts
    run_load(plan_path, plan, out_dir)   -> LoadResult (per-path figures, report paths, complete?)
    evaluate(profile, result)            -> [SloVerdict] (one per path and SLO)

A run that is interrupted (Ctrl+C) or overruns its time still yields what Locust wrote,
marked incomplete; SLOs of an incomplete run do not pass.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from rehearsal.errors import RehearsalError, UsageError
from rehearsal.plan import LoadProfile, Plan

LOCUSTFILE = Path(__file__).resolve().parents[2] / "load" / "locustfile.py"
MARGIN_S = 30.0  # start-up and shutdown time allowed beyond the plan's duration
STOP_GRACE_S = 10.0  # after SIGINT, how long Locust gets to write its report before SIGKILL

JSON_NAME = "stats.json"
HTML_NAME = "report.html"
CSV_PREFIX = "locust"
LOG_NAME = "locust.log"


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
            "locust_exit_code": self.exit_code,
            "paths": {pid: {**asdict(s), "error_ratio": s.error_ratio} for pid, s in self.paths.items()},
        }


@dataclass(frozen=True)
class SloVerdict:
    """One SLO of one load path, judged: what was allowed, what was measured, and in words."""

    path_id: str
    path_title: str
    slo: Literal["p95", "error_ratio"]
    limit: float
    actual: float | None
    passed: bool
    message: str


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


# --- run ---------------------------------------------------------------------------------


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def locust_command(plan: Plan, out_dir: Path, workers: int = 0, locustfile: Path = LOCUSTFILE) -> list[str]:
    """The Locust command line for a plan: headless, loopback only, reports into out_dir."""
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
        "--exit-code-on-error", "1",
    ]  # fmt: skip
    if workers > 0:
        port = _free_loopback_port()
        cmd += [
            "--processes", str(workers),
            "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(port),
            "--master-host", "127.0.0.1",
            "--master-port", str(port),
        ]  # fmt: skip
    return cmd


def run_seconds(profile: LoadProfile) -> int:
    """Locust's --run-time takes whole seconds; a fraction is rounded up, never down."""
    return max(1, math.ceil(profile.duration_s))


def _profile(plan: Plan) -> LoadProfile:
    if plan.load is None:
        raise UsageError(f"plan {plan.rehearsal!r} has no load section: nothing to run")
    return plan.load


def run_load(
    plan_path: Path,
    plan: Plan,
    out_dir: Path,
    workers: int = 0,
    *,
    locustfile: Path = LOCUSTFILE,
    margin_s: float = MARGIN_S,
) -> LoadResult:
    """Run the plan's load profile with Locust in a subprocess and read back per-path figures.

    The guard runs first, so a refused plan sends nothing. The run is bounded by the plan's
    duration plus ``margin_s``; on overrun or Ctrl+C Locust gets SIGINT (it then writes its
    report and statistics), then SIGKILL after a grace period. What it wrote is still read,
    and the result is marked incomplete. The HTML report always exists afterwards.
    """
    guard(plan)
    profile = _profile(plan)
    if workers < 0:
        raise UsageError(f"workers must be 0 (one process) or more, got {workers}")
    if not locustfile.is_file():
        raise UsageError(f"locustfile not found: {locustfile}")
    out_dir = Path(out_dir).resolve()  # Locust runs in it; its paths must not depend on cwd
    out_dir.mkdir(parents=True, exist_ok=True)
    json_file, html_file, log_file = out_dir / JSON_NAME, out_dir / HTML_NAME, out_dir / LOG_NAME
    for stale in (json_file, html_file, *out_dir.glob(f"{CSV_PREFIX}_*.csv")):
        stale.unlink(missing_ok=True)

    cmd = locust_command(plan, out_dir, workers, locustfile)
    env = {**os.environ, "REHEARSAL_PLAN": str(Path(plan_path).resolve()), "PYTHONUNBUFFERED": "1"}
    planned = float(run_seconds(profile))
    interrupted = overran = False
    started = time.monotonic()
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=out_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl+C reaches us only; we decide how Locust stops
        )
        try:
            try:
                proc.wait(timeout=planned + margin_s)
            except subprocess.TimeoutExpired:
                overran = True
                _stop(proc)
        except KeyboardInterrupt:
            interrupted = True
            _stop(proc)
    elapsed = time.monotonic() - started

    paths = _read_json(json_file) if json_file.is_file() else None
    if paths is None and (interrupted or overran):  # killed before its JSON: the periodic CSV is next best
        paths = _read_csv(out_dir / f"{CSV_PREFIX}_stats.csv")
    if paths is None:
        raise LoadError(
            f"locust exited with code {proc.returncode} and wrote no statistics: {_last_line(log_file)} "
            f"(log: {log_file})"
        )
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
        exit_code=proc.returncode,
        interrupted=interrupted,
        overran=overran,
        html_written_by=written_by,
        command=tuple(cmd),
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (Locust writes HTML and JSON), then SIGKILL the whole group if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # also reaps --processes workers left behind
    except ProcessLookupError:
        pass
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


def _read_json(json_file: Path) -> dict[str, PathStats] | None:
    try:
        entries = json.loads(json_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entries, list):
        return None
    merged: dict[str, dict[str, Any]] = {}
    for e in entries:  # one entry per (name, method); a path is its name
        m = merged.setdefault(
            e["name"],
            {"n": 0, "f": 0, "total": 0.0, "max": 0.0, "hist": {}, "start": math.inf, "last": 0.0},
        )
        m["n"] += int(e.get("num_requests") or 0)
        m["f"] += int(e.get("num_failures") or 0)
        m["total"] += float(e.get("total_response_time") or 0)
        m["max"] = max(m["max"], float(e.get("max_response_time") or 0))
        for rt, count in (e.get("response_times") or {}).items():
            m["hist"][float(rt)] = m["hist"].get(float(rt), 0) + int(count)
        m["start"] = min(m["start"], float(e.get("start_time") or math.inf))
        m["last"] = max(m["last"], float(e.get("last_request_timestamp") or 0))
    stats: dict[str, PathStats] = {}
    for name, m in merged.items():
        timed = sum(m["hist"].values())
        span = m["last"] - m["start"] if math.isfinite(m["start"]) else 0.0
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
    return stats


def _read_csv(stats_csv: Path) -> dict[str, PathStats] | None:
    """Fallback when Locust was killed before writing JSON: its periodic CSV (may lag a little)."""
    try:
        with open(stats_csv, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    stats: dict[str, PathStats] = {}
    for row in rows:
        name = row.get("Name", "")
        if not name or name == "Aggregated":
            continue
        try:
            stats[name] = PathStats(
                path_id=name,
                num_requests=int(row["Request Count"]),
                num_failures=int(row["Failure Count"]),
                p95_ms=_num(row.get("95%")),
                p99_ms=_num(row.get("99%")),
                rps=_num(row.get("Requests/s")),
                avg_ms=_num(row.get("Average Response Time")),
                max_ms=_num(row.get("Max Response Time")),
            )
        except (KeyError, ValueError):
            continue
    return stats


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
        if count > top.get(name, (0, ""))[0]:
            top[name] = (count, error)
    return {
        pid: (PathStats(**{**asdict(s), "top_error": top[pid][1]}) if pid in top else s)
        for pid, s in paths.items()
    }


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


# --- evaluate ----------------------------------------------------------------------------


def evaluate(profile: LoadProfile, result: LoadResult) -> list[SloVerdict]:
    """Judge every path of the profile against its p95 and error-ratio limits.

    A path with no requests fails both. p95 of a path whose every request failed fails
    too (a refused connection is fast, not good). Nothing passes on an incomplete run.
    """
    verdicts: list[SloVerdict] = []
    incomplete = ""
    if result.interrupted:
        incomplete = f"; run interrupted after {result.elapsed_s:.1f} s of {result.planned_s:g} s"
    elif result.overran:
        incomplete = f"; run overran {result.planned_s:g} s and was stopped"
    for path in profile.paths:
        s = result.paths.get(path.id)
        limit_pct = path.max_error_ratio * 100
        if s is None or s.num_requests == 0:
            for slo, limit in (("p95", path.p95_ms), ("error_ratio", path.max_error_ratio)):
                verdicts.append(
                    SloVerdict(
                        path.id, path.title, slo, limit, None, False, "no requests recorded" + incomplete
                    )
                )
            continue
        why = f" (most common: {s.top_error})" if s.top_error else ""
        if s.num_failures >= s.num_requests:
            p95_ok, p95_msg = False, f"p95 not measurable: all {s.num_requests} requests failed{why}"
        else:
            p95_ok = s.p95_ms <= path.p95_ms
            p95_msg = f"p95 {s.p95_ms:.0f} ms {'≤' if p95_ok else '>'} {path.p95_ms:g} ms"
        verdicts.append(
            SloVerdict(path.id, path.title, "p95", path.p95_ms, s.p95_ms, p95_ok and not incomplete,
                       p95_msg + incomplete)
        )  # fmt: skip
        err_ok = s.error_ratio <= path.max_error_ratio
        err_msg = (
            f"error ratio {s.error_ratio * 100:.2f} % {'≤' if err_ok else '>'} {limit_pct:g} % "
            f"({s.num_failures} of {s.num_requests} failed){'' if err_ok else why}"
        )
        verdicts.append(
            SloVerdict(path.id, path.title, "error_ratio", path.max_error_ratio, s.error_ratio,
                       err_ok and not incomplete, err_msg + incomplete)
        )  # fmt: skip
    return verdicts
