"""Plans that look runnable but are not: each is refused with ``file:line: field: message``,
exit 2, and not one connection to the target.

Why each case: YAML keeps the last of two equal keys silently (``kind: production`` then
``kind: test`` would rehearse a production system as a test one), PyYAML turns an impossible
date into a bare ValueError, urlsplit checks a port's range only when it is read (later, in
the preflight), port 0 silently means the scheme's default, ``.inf`` lifts the run's time
bound, an unset password makes every login fail against the real target, and a huge plan
ties up the machine for minutes before saying anything.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_http import Listener

from rehearsal.plan import MAX_PLAN_BYTES, PlanError, load_plan
from rehearsal.preflight import check_reachable

LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+): (?P<field>[^:\n]+): (?P<message>.+)$")


def _count_within(listener: Listener, seconds: float) -> int:
    """The count once it is above zero or ``seconds`` have passed (accepting runs in a thread)."""
    deadline = time.monotonic() + seconds
    while not listener.count and time.monotonic() < deadline:
        time.sleep(0.02)
    return listener.count


@pytest.fixture
def listener() -> Iterator[Listener]:
    peer = Listener("127.0.0.1")
    yield peer
    peer.close()


@pytest.fixture
def target_plan(make_plan: Callable[..., Path], listener: Listener) -> Path:
    """The demo plan with every environment endpoint at the counting listener."""

    def at_listener(data: dict[str, Any]) -> None:
        env, at = data["environment"], listener.host_port
        for field in ("fhir_base", "web_base", "legacy_base", "bridge_base"):
            env[field] = f"http://{at}" + ("/fhir" if field == "fhir_base" else "")
        env["lab_mllp"] = env["bridge_mllp"] = f"mllp://{at}"
        env["directory"] = f"ldap://{at}"

    return make_plan(at_listener)


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the plan"
    return text.replace(old, new)


def _line_of(text: str, fragment: str, nth: int = 0) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if fragment in line]
    return lines[nth]


# name → (edit of the plan text, the fragment whose line is blamed, which occurrence, field)
CASES: dict[str, tuple[Callable[[str, int], str], str, int, str]] = {
    "duplicate-kind": (
        lambda t, p: _edit(t, "  kind: test\n", "  kind: production\n  kind: test\n"),
        "  kind: test",
        0,
        "environment.kind",
    ),
    "duplicate-fhir-base": (
        lambda t, p: _edit(t, "  web_base:", f"  fhir_base: http://127.0.0.1:{p}/other\n  web_base:"),
        "  fhir_base:",
        1,
        "environment.fhir_base",
    ),
    "impossible-date": (
        lambda t, p: re.sub(r"(\n  due: )[0-9-]+", r"\g<1>2026-02-30", t, count=1),
        "due: 2026-02-30",
        0,
        "transition.0.due",
    ),
    "port-99999": (
        lambda t, p: _edit(t, f"/127.0.0.1:{p}/fhir", "/127.0.0.1:99999/fhir"),
        "99999",
        0,
        "environment.fhir_base",
    ),
    "port-0": (
        lambda t, p: _edit(t, f"web_base: http://127.0.0.1:{p}\n", "web_base: http://127.0.0.1:0\n"),
        "web_base:",
        0,
        "environment.web_base",
    ),
    "infinite-timeout": (
        lambda t, p: re.sub(r"(\n    read: )[0-9.]+", r"\g<1>.inf", t, count=1),
        "read: .inf",
        0,
        "environment.timeouts.read",
    ),
    "infinite-duration": (
        lambda t, p: re.sub(r"(\n  duration_s: )[0-9.]+", r"\g<1>.inf", t, count=1),
        "duration_s: .inf",
        0,
        "load.duration_s",
    ),
    "unset-password": (
        lambda t, p: t.replace(
            "password_env: REHEARSAL_PASSWORD", "password_env: REHEARSAL_NO_SUCH_PASSWORD", 1
        ),
        "REHEARSAL_NO_SUCH_PASSWORD",
        0,
        "sites.0.users.0.password_env",
    ),
}


def _rehearse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REHEARSAL_PASSWORD": "not-used-here", **(env or {})},
    )


def _prepare(case: str, target_plan: Path, listener: Listener) -> tuple[Path, int, str]:
    edit, fragment, nth, field = CASES[case]
    text = target_plan.read_text(encoding="utf-8")
    assert "transition:" in text and "duration_s:" in text and "timeouts:" in text
    broken = edit(text, int(listener.host_port.rpartition(":")[2]))
    assert broken != text
    path = target_plan.with_name(f"{case}.yaml")
    path.write_text(broken, encoding="utf-8")
    return path, _line_of(broken, fragment, nth), field


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_refuses_with_file_line_and_sends_nothing(
    case: str, target_plan: Path, listener: Listener, tmp_path: Path
) -> None:
    path, line, field = _prepare(case, target_plan, listener)
    done = _rehearse("--reports", str(tmp_path / "reports"), "run", "--plan", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    blamed = [LINE.match(x) for x in done.stderr.splitlines()]
    assert blamed and all(blamed), done.stderr
    assert (blamed[0]["file"], int(blamed[0]["line"]), blamed[0]["field"]) == (str(path), line, field), (
        done.stderr
    )
    assert _count_within(listener, 0.5) == 0
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").rglob("run.json"))


def test_the_listener_counts_what_the_run_would_send_first(target_plan: Path, listener: Listener) -> None:
    """The counterpart: the run's first contact (the preflight) does reach the listener, so
    the zero above is the check refusing, not a listener that cannot count."""
    check_reachable(load_plan(target_plan).plan)
    assert _count_within(listener, 10) >= 1


@pytest.mark.parametrize("case", ["duplicate-kind", "impossible-date", "port-99999", "infinite-timeout"])
def test_plan_check_refuses_the_same(case: str, target_plan: Path, listener: Listener) -> None:
    path, line, field = _prepare(case, target_plan, listener)
    done = _rehearse("plan", "check", str(path))
    assert done.returncode == 2
    first = LINE.match(done.stderr.splitlines()[0])
    assert first and (int(first["line"]), first["field"]) == (line, field), done.stderr


def test_plan_check_notes_an_unset_password_without_failing(target_plan: Path, listener: Listener) -> None:
    """A plan checked at a desk, where the passwords are not, is still a good plan."""
    path, line, field = _prepare("unset-password", target_plan, listener)
    done = _rehearse("plan", "check", str(path))
    assert done.returncode == 0, done.stderr
    assert (
        f"note: {path}:{line}: {field}: environment variable REHEARSAL_NO_SUCH_PASSWORD is not set"
        in done.stderr
    )


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_text("rehearsal: a\nenvironment:\n  kind: production\n  kind: test\n", encoding="utf-8")
    with pytest.raises(PlanError) as refused:
        load_plan(plan)
    assert refused.value.problems == [f"{plan}:4: environment.kind: duplicate key (first given on line 3)"]


def test_a_plan_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    plan = tmp_path / "huge.yaml"
    with plan.open("w", encoding="utf-8") as out:
        out.write("rehearsal: huge\n")
        line = "# " + "x" * 1022 + "\n"
        for _ in range(MAX_PLAN_BYTES // len(line) + 1):
            out.write(line)
    with pytest.raises(PlanError) as refused:
        load_plan(plan)
    assert refused.value.problems == [f"{plan}:1: (file): plan is larger than 8 MiB; split the wave"]


def test_a_fifo_as_plan_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "plan.yaml"
    os.mkfifo(fifo)
    with pytest.raises(PlanError) as refused:
        load_plan(fifo)
    assert refused.value.problems == [f"{fifo}: cannot read plan: not a regular file"]
