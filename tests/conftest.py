"""Fixtures for the harness's own tests: plans on free ports, a private reports folder, and how
the suite is spread over pytest-xdist workers (see ``pytest_collection_modifyitems``)."""

from __future__ import annotations

import errno
import os
import random
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rehearsal.browser import debian_chromium

# pytest loads this file as ``conftest``; test modules import it as ``conftest`` or ``tests.conftest``.
# One module under both names, so the whole process keeps one record of the ports it handed out.
sys.modules.setdefault("conftest", sys.modules[__name__])
sys.modules.setdefault("tests.conftest", sys.modules[__name__])

ROOT = Path(__file__).resolve().parents[1]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # A pytest that a test starts in this repository (a rehearsal's session, a plugin test) reads
    # pyproject's addopts too: it runs in one process, not on workers of its own.
    os.environ["PYTEST_ADDOPTS"] = f"{os.environ.get('PYTEST_ADDOPTS', '')} -n 0".strip()


_ISSUED: set[int] = set()
#: Where test servers listen: below Linux's ephemeral range (ip_local_port_range, 32768–60999),
#: where the kernel picks the source port of every outgoing connection and of ``bind(0)``.
PORTS = range(10_000, 32_768)


def _worker() -> tuple[int, int]:
    """(this xdist worker's index, how many there are); (0, 1) outside xdist."""
    name, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not name.startswith("gw") or not count:
        return 0, 1
    return int(name[2:]), max(int(count), 1)


def free_port(*, ipv6: bool = False) -> int:
    """A loopback port free now and not handed out before in this process, from this xdist
    worker's own slice of PORTS (worker i of n takes the i-th n-th), so two workers never plan
    a hospital on the same port. ``ipv6``: free on ::1 too (ippeveprinter binds both).

    Not ``bind(0)`` filtered by worker: Linux hands ``bind(0)`` odd ports only (even ones are
    kept for ``connect``), so a worker that wanted even ports waited forever.
    """
    index, count = _worker()
    span = len(PORTS) // count
    first = PORTS.start + index * span
    for _ in range(4 * span):
        port = first + random.randrange(span)
        if port in _ISSUED or not _free(port, ipv6):
            continue
        _ISSUED.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {first}–{first + span - 1} (worker {index} of {count})")


def _free(port: int, ipv6: bool) -> bool:
    try:
        with socket.socket() as v4:
            v4.bind(("127.0.0.1", port))
    except OSError:
        return False
    if not ipv6:
        return True
    try:
        with socket.socket(socket.AF_INET6) as v6:
            v6.bind(("::1", port))
    except OSError as exc:
        return exc.errno == errno.EADDRNOTAVAIL  # no ::1 on this machine: v4 is all there is
    return True


_LOOPBACK_URL = re.compile(r"(://(?:127\.0\.0\.1|localhost)):(\d+)")


def _move_ports(node: Any, moved: dict[int, int]) -> Any:
    """Every loopback port of the plan (in URLs and `port:` fields) to a free one, the same
    port always to the same new one (so components that share a port still do)."""

    def new(port: int) -> int:
        return moved.setdefault(port, free_port())

    if isinstance(node, dict):
        return {
            k: new(v) if k == "port" and isinstance(v, int) else _move_ports(v, moved)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_move_ports(v, moved) for v in node]
    if isinstance(node, str):
        return _LOOPBACK_URL.sub(lambda m: f"{m.group(1)}:{new(int(m.group(2)))}", node)
    return node


def plan_copy(
    folder: Path, edit: Callable[[dict[str, Any]], None] | None = None, name: str = "plan.yaml"
) -> Path:
    """A copy of the demo plan on free ports in ``folder`` (with its attestations); ``edit(data)``
    may change it further. For module- and session-scoped fixtures; tests use ``make_plan``."""
    data = _move_ports(yaml.safe_load(DEMO_PLAN.read_text(encoding="utf-8")), {})
    if edit:
        edit(data)
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    attestations = DEMO_PLAN.with_name("demo.attestations.yaml")
    path.with_name(f"{path.stem}.attestations.yaml").write_bytes(attestations.read_bytes())
    return path


#: The criteria a test about processes and records keeps (not one about content): two browser
#: scenarios at each site (lab order, registration), the API and device checks, the load's SLOs
#: where the plan has a load, the run itself. Half the demo's browser time, and the stops and kills
#: still land in each kind of moment (the browser open, results coming, the load running, the report).
FEW_CRITERIA = ("clin-lab-order", "clin-registration", "tech-", "load-slo", "run-complete")


def few_criteria(data: dict[str, Any]) -> None:
    """Keep only :data:`FEW_CRITERIA` (and the runbook's steps that name none of the others go too)."""
    data["criteria"] = [c for c in data["criteria"] if c["id"].startswith(FEW_CRITERIA)]
    data.pop("runbook", None)


@pytest.fixture
def make_plan(tmp_path: Path) -> Callable[..., Path]:
    """Write a copy of the demo plan on free ports; `edit(data)` may change it further."""

    def make(edit: Callable[[dict[str, Any]], None] | None = None, name: str = "plan.yaml") -> Path:
        return plan_copy(tmp_path, edit, name)

    return make


# --- spreading the suite over pytest-xdist workers (pyproject's addopts: -n auto, --dist loadgroup) --

#: Workers for the whole suite: one per core. The long tests are whole rehearsals (a hospital,
#: Chromium, Locust) that keep a core busy; 4 workers on 2 cores made each take twice as long and
#: pushed the ones that judge time (load SLOs, bounded waits, the runbook clock) past their bounds.
WORKERS = max(1, len(os.sched_getaffinity(0)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: WORKERS for the suite or a folder of it; none for a run of a few named files
    or tests (a worker's start costs more than it saves there). ``-n N`` on the command line wins."""
    named = config.args_source == pytest.Config.ArgsSource.ARGS and all(".py" in arg for arg in config.args)
    return 0 if named and len(config.args) <= 3 else WORKERS


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with a module as the unit of work: a module's tests run on one worker,
    so its module fixtures (a hospital, a printer fleet) start once, as in a serial run; a test
    that names an ``xdist_group`` is a unit of its own (or with its group), so the long ones a
    module holds — the fault table's rows — go to whichever worker is free."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModuleUnits(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # xdist's mark of a named group
                return super()._split_scope(nodeid)
            return nodeid.split("::", 1)[0]

    return ModuleUnits(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist workers, the slow tests (those that start the reference hospital) first: units are
    handed out in collection order, and a long one taken last keeps the whole suite waiting on one
    worker while the others idle. The order within each group is kept (stable sort)."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# --- a browser for the harness's own browser tests ------------------------------------------------

CHROMIUM = os.environ.get("REHEARSAL_CHROMIUM") or debian_chromium(headless=True) or "/usr/bin/chromium"
RESOLVER_RULES = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost"


@pytest.fixture(scope="module")
def chromium() -> Any:
    """Debian's Chromium (its headless shell where installed, as a rehearsal uses), headless, no DNS
    look-ups leaving the machine (see STACK.md).

    Our own Playwright, closed at the end of the module: pytest-playwright's session-wide one
    (its ``page`` fixture) keeps an event loop marked running in the main thread for the rest of
    the worker's session, and every later ``sync_playwright()`` or ``asyncio.run`` there fails.
    """
    from playwright.sync_api import sync_playwright

    launch: dict[str, Any] = {"headless": True, "args": ["--headless", "--no-sandbox", RESOLVER_RULES]}
    if Path(CHROMIUM).exists() and not os.environ.get("PLAYWRIGHT_BROWSERS_PATH"):
        launch["executable_path"] = CHROMIUM
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch)
        yield browser
        browser.close()
