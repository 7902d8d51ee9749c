"""A reports folder that is full, read-only, or has something odd at ``latest``: one line naming the
path and what to do, exit 2, no ``*.tmp`` left behind, nothing already written lost.

Full and read-only are real: a tmpfs of a few hundred KiB (or remounted read-only) under
tmp_path, unmounted afterwards; skipped, saying why, where mounting is not permitted.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rehearsal.plan import load_plan
from rehearsal.report import build_evidence
from rehearsal.run import create_run, finish_run
from tests.test_report import add_result

ENV = {**os.environ, "REHEARSAL_PASSWORD": "reports-folder-test"}


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rehearsal", "--reports", str(reports), *args],
        capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def contents(folder: Path) -> dict[str, str]:
    """Every file under the folder with the hash of its bytes (symlinks by their target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """`tmpfs(name, options)` mounts a tmpfs at tmp_path/name; all unmounted at the end."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path) -> None:
    """Write into the folder until its filesystem has no byte left."""
    with open(folder / "filler", "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    with open(folder / "filler-small", "wb", buffering=0) as out:  # the last partial block
        try:
            while True:
                out.write(b"\0")
        except OSError:
            pass


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_latest_that_is_not_a_link_is_refused_before_a_run_is_made(make_plan, tmp_path, kind):
    reports = tmp_path / "reports"
    reports.mkdir()
    latest = reports / "latest"
    if kind == "folder":
        latest.mkdir()
        (latest / "notes.txt").write_text("mine", encoding="utf-8")
    else:
        latest.write_text("mine", encoding="utf-8")
    before = contents(reports)
    plan = make_plan()
    line = one_line(rehearse(reports, "run", "--plan", str(plan), "--aspect", "organisatorisk"))
    assert f"{latest}: is a {kind}" in line and "move it away" in line
    line = one_line(rehearse(reports, "report"))
    assert f"{latest}: is a {kind}" in line
    assert contents(reports) == before  # no half-made run, nothing of the operator's touched
    assert not list(reports.rglob("*.tmp"))


def test_dangling_latest_says_where_it_points_and_a_new_run_replaces_it(make_plan, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "latest").symlink_to("demo-gr1/20260101T000000Z-dead")
    line = one_line(rehearse(reports, "report"))
    assert f"{reports / 'latest'}: points to demo-gr1/20260101T000000Z-dead, which is gone" in line
    assert "no run yet" not in line
    done = rehearse(reports, "run", "--plan", str(make_plan()), "--aspect", "organisatorisk")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert (reports / "latest" / "run.json").is_file()


def test_read_only_reports_folder_names_the_path(make_plan, tmpfs):
    reports = tmpfs("ro", "ro,size=256k")
    line = one_line(rehearse(reports, "run", "--plan", str(make_plan()), "--aspect", "organisatorisk"))
    assert str(reports) in line and "Read-only file system" in line and "make it writable" in line
    assert not list(reports.iterdir())


@pytest.fixture
def reported_run(tmpfs, make_plan):
    """A finished run with results and its gonogo files, in a tmpfs of its own."""
    reports = tmpfs("reports", "size=512k")
    loaded = load_plan(make_plan())
    run = create_run(reports, loaded)
    add_result(run, "Labbeställning", "failed", 2_000, criterion="tech-integrations", message="NAK")
    add_result(run, "Inloggning", "passed", 1_000, criterion="klin-login", aspect="klinisk")
    run = finish_run(run, complete=True)
    build_evidence(run, loaded.plan)
    return reports, run


def test_full_disk_report_names_the_path_and_loses_nothing(reported_run):
    reports, run = reported_run
    fill(reports)
    before = {k: v for k, v in contents(reports).items() if not k.startswith("filler")}
    line = one_line(rehearse(reports, "report", str(run.dir)))
    assert "No space left on device" in line and "free space there" in line, line
    assert str(reports) in line
    after = {k: v for k, v in contents(reports).items() if not k.startswith("filler")}
    history = [k for k in before if k.endswith(".jsonl")]
    assert {k: after.get(k) for k in before if k not in history} == {
        k: v for k, v in before.items() if k not in history
    }  # results, run.json, gonogo.* as they were
    for name in history:  # the wave history is appended to: what it held is still its start
        assert (reports / name).read_bytes().startswith(b"{")
    assert not list(reports.rglob("*.tmp")), list(reports.rglob("*.tmp"))


def test_full_disk_run_leaves_no_half_made_run(reported_run, make_plan):
    reports, run = reported_run
    fill(reports)
    before = {k: v for k, v in contents(reports).items() if not k.startswith("filler")}
    line = one_line(rehearse(reports, "run", "--plan", str(make_plan()), "--aspect", "organisatorisk"))
    assert "No space left on device" in line and str(reports) in line
    after = {k: v for k, v in contents(reports).items() if not k.startswith("filler")}
    assert after == before
    assert sorted(p.name for p in run.dir.parent.iterdir() if p.name != "history") == [run.id]
