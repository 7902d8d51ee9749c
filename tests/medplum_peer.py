"""Medplum's FHIR server (tests/medplum/server.mjs) on loopback, as the third-party FHIR peer.

Why: the FHIR tests (test_thirdparty_fhir.py and the adapter tests for migration, records and
referrals) judge the harness against a FHIR server that is not ours. Starting one (ready when
it says ``listening PORT``, ~1 s, or a one-line failure with its log) and stopping every one
started, even when a later one fails to start, is the same for each of them:

    with medplum_servers(tmp_path_factory, "new", "legacy") as (new_base, legacy_base):
        ...  # http://127.0.0.1:<port>/fhir/R4 each

Test-only: nothing in ``src/`` uses it.
"""

from __future__ import annotations

import selectors
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import ROOT, free_port
from rehearsal.lifetime import end_process

SERVER = ROOT / "tests" / "medplum" / "server.mjs"


def start_medplum(log: Path) -> tuple[subprocess.Popen[str], str]:
    """One Medplum on a free port, its stderr in ``log``; returns the process and its FHIR base URL."""
    if not (ROOT / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.fail("Medplum is not installed: run scripts/setup.sh (npm ci installs it from package.json)")
    port = free_port()
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            ["node", "--experimental-websocket", str(SERVER), str(port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    with selectors.DefaultSelector() as sel:  # ready when it says so (~1 s), or it failed to start
        sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        line = proc.stdout.readline() if sel.select(timeout=30) else ""  # type: ignore[union-attr]
    if line.strip() != f"listening {port}":
        proc.kill()
        proc.wait()
        pytest.fail(f"Medplum did not start: {line!r} {log.read_text(encoding='utf-8')[-500:]}")
    return proc, f"http://127.0.0.1:{port}/fhir/R4"


@contextmanager
def medplum_servers(tmp_path_factory: pytest.TempPathFactory, *names: str) -> Iterator[list[str]]:
    """One Medplum per name (its log in a temporary folder of that name); yields their base URLs."""
    started: list[subprocess.Popen[str]] = []
    bases: list[str] = []
    try:
        for name in names:
            proc, base = start_medplum(tmp_path_factory.mktemp(name) / "server.log")
            started.append(proc)
            bases.append(base)
        yield bases
    finally:
        for proc in started:
            end_process(proc, 5.0)  # SIGTERM, then SIGKILL after 5 s


__all__ = ["medplum_servers", "start_medplum"]
