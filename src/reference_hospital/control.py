"""Start, stop and poke the reference hospital as a detached process, for the CLI and for test fixtures.

One state folder holds at most one hospital: ``reference.json`` (pid, plan, admin URL,
start time, faults) and ``reference.log`` (its output). ``up`` returns only when the
hospital answers ``/_reference/health`` — EHR and printers up, start-up faults applied —
and a start that fails is reported with the last line of the log. ``running(...)`` is the
context manager ``rehearse demo`` and fixtures use: whatever happens inside, the
hospital is stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from reference_hospital.faults import REGISTRY, not_implemented, parse_fault
from reference_hospital.hospital import ADMIN_PATH, Hospital, listen_address
from rehearsal.errors import TargetError, UsageError
from rehearsal.lifetime import die_with_parent
from rehearsal.plan import LoadedPlan

STATE_FILE = "reference.json"
LOG_FILE = "reference.log"
STOP_GRACE_S = 10.0
_HTTP_TIMEOUT = httpx.Timeout(5.0, connect=2.0)

# Children started by this process, so they can be reaped (a zombie still "exists" for kill -0).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE


def _is_ours(pid: int) -> bool:
    """True while `pid` is a live reference-hospital process (not a zombie, not a recycled pid)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"reference_hospital.serve" in cmdline


def status(state_dir: Path) -> dict[str, Any] | None:
    """The state of the hospital running for this folder, or None (a stale state file is removed)."""
    path = _state_path(state_dir)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None
    if not isinstance(state, dict) or not _is_ours(int(state.get("pid", 0))):
        path.unlink(missing_ok=True)
        return None
    return state


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    path = _state_path(state_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def up(
    loaded: LoadedPlan, faults: list[str], state_dir: Path, timeout: float = 30, *, with_parent: bool = False
) -> dict[str, Any]:
    """Start the plan's reference hospital detached; return its state once it answers health checks.

    `with_parent`: the hospital gets SIGTERM (and stops its printers and directory) when the
    calling thread ends, ``kill -9`` included: ``rehearse demo`` leaves nothing running. Without
    it (``rehearse reference up``) the hospital outlives the command, as asked.
    """
    state_dir = Path(state_dir)
    running_state = status(state_dir)
    if running_state is not None:
        raise UsageError(
            f"a reference hospital is already running for {state_dir} (pid {running_state['pid']}, "
            f"plan {running_state['plan']}); stop it first"
        )
    host, port = listen_address(loaded.plan)  # refuses non-loopback targets before anything starts
    checked = [str(parse_fault(f, loaded.plan)) for f in faults or []]
    planned = Hospital(loaded.plan, [], state_dir / "hospital", plan_dir=Path(loaded.path).parent)
    works = set(planned.implemented_faults())  # also refuses two endpoints on one port, before anything runs
    for fault in checked:
        if fault.split("@")[0] not in works:
            raise UsageError(not_implemented(fault.split("@")[0]))
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / LOG_FILE
    plan_path = Path(loaded.path).resolve()
    command = [sys.executable, "-m", "reference_hospital.serve", "--plan", str(plan_path)]
    command += ["--state-dir", str(state_dir.resolve())]
    for fault in checked:
        command += ["--fault", fault]
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM) if with_parent else None,
        )
    _children[child.pid] = child
    admin_url = f"http://{f'[{host}]' if ':' in host else host}:{port}{ADMIN_PATH}"
    try:
        health = _wait_healthy(child, admin_url, log_path, timeout)
    except BaseException:
        _kill_group(child.pid)
        child.wait(timeout=STOP_GRACE_S)
        _children.pop(child.pid, None)
        raise
    state = {
        "pid": child.pid,
        "plan": str(plan_path),
        "admin_url": admin_url,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "faults": health.get("faults", checked),
        "fhir_base": loaded.plan.environment.fhir_base,
        "web_base": loaded.plan.environment.web_base,
        "log": str(log_path),
    }
    _write_state(state_dir, state)
    return state


def _wait_healthy(
    child: subprocess.Popen[bytes], admin_url: str, log: Path, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=httpx.Timeout(1.0)) as client:
        while True:
            code = child.poll()
            if code is not None:
                raise TargetError(f"the reference hospital did not start (exit {code}): {_last_line(log)}")
            try:
                answer = client.get(f"{admin_url}/health")
                if answer.status_code == 200 and answer.json().get("pid") == child.pid:
                    return answer.json()
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TargetError(
                    f"the reference hospital did not answer {admin_url}/health within {timeout:g} s "
                    f"(last log line: {_last_line(log)})"
                )
            time.sleep(0.1)


def _kill_group(pid: int) -> None:
    """SIGKILL the hospital and everything it started (its own session: printers, D-Bus)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _is_ours(pid):
            return True
        time.sleep(0.05)
    return not _is_ours(pid)


def down(state_dir: Path) -> bool:
    """Stop the hospital of this folder (SIGTERM, then SIGKILL after a grace period); False if none ran."""
    state = status(state_dir)
    if state is None:
        return False
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if not _gone(pid, STOP_GRACE_S):
        _kill_group(pid)
        _gone(pid, 5)
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=5)
    _state_path(state_dir).unlink(missing_ok=True)
    return True


def _admin(state_dir: Path, method: str, fault: str) -> list[str]:
    state = status(state_dir)
    if state is None:
        raise UsageError(f"no reference hospital is running for {state_dir}; start one first")
    url = f"{state['admin_url']}/faults"
    try:
        with httpx.Client(timeout=_HTTP_TIMEOUT) as client:
            if method == "POST":
                answer = client.post(url, json={"fault": fault})
            else:
                answer = client.delete(url, params={"fault": fault})
    except httpx.HTTPError as exc:
        raise TargetError(f"the reference hospital at {url} did not answer: {exc}") from exc
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code == 400 and isinstance(body, dict):
        raise UsageError(str(body.get("error")))
    if answer.status_code != 200 or not isinstance(body, list):
        detail = body.get("error") if isinstance(body, dict) else answer.text[:200]
        raise TargetError(f"the reference hospital refused the fault change ({answer.status_code}): {detail}")
    state["faults"] = body
    _write_state(state_dir, state)
    return body


def set_fault(state_dir: Path, fault: str) -> list[str]:
    """Switch a fault on in the running hospital; returns the active faults."""
    return _admin(Path(state_dir), "POST", fault)


def clear_fault(state_dir: Path, fault: str) -> list[str]:
    """Switch a fault off in the running hospital; returns the active faults."""
    return _admin(Path(state_dir), "DELETE", fault)


@contextmanager
def running(
    loaded: LoadedPlan, faults: list[str], state_dir: Path, timeout: float = 30
) -> Iterator[dict[str, Any]]:
    """The hospital for the duration of a ``with`` block; stopped on exit, exceptions and Ctrl-C
    included, and by the kernel if this process is killed outright."""
    state = up(loaded, faults, state_dir, timeout, with_parent=True)
    try:
        yield state
    finally:
        down(state_dir)


def fault_list(state_dir: Path, loaded: LoadedPlan | None = None) -> list[dict[str, Any]]:
    """Every registered fault: usage, where it bites, what it does, which check catches it, and
    whether it works — in the running hospital of ``state_dir`` if there is one, else in a
    hospital built from ``loaded`` (without starting it), else as far as the code knows."""
    active: set[str] = set()
    works: set[str] | None = None
    state = status(Path(state_dir))
    if state is not None:
        try:
            health = httpx.get(f"{state['admin_url']}/health", timeout=_HTTP_TIMEOUT).json()
            works, active = set(health.get("implemented_faults", [])), set(health.get("faults", []))
        except (httpx.HTTPError, ValueError):
            works = None
    if works is None and loaded is not None:
        works = set(Hospital(loaded.plan, [], Path(state_dir) / "hospital").implemented_faults())
    rows = []
    for spec in REGISTRY.values():
        rows.append(
            {
                "fault": spec.usage,
                "component": spec.component,
                "works": None if works is None else spec.name in works,
                "active": sorted(a for a in active if a.split("@")[0] == spec.name),
                "description": spec.description,
                "caught_by": spec.caught_by,
            }
        )
    return rows


def format_fault_list(rows: list[dict[str, Any]]) -> str:
    """The fault list as text for ``rehearse fault list``: one block per fault."""
    lines = []
    for row in rows:
        state = {True: "works", False: "not implemented yet", None: ""}[row["works"]]
        if row["active"]:
            state += f", ON: {', '.join(row['active'])}"
        lines.append(f"{row['fault']:<28} [{row['component']}] {state}".rstrip())
        lines.append(f"    does:      {row['description']}")
        lines.append(f"    caught by: {row['caught_by']}")
    return "\n".join(lines)
