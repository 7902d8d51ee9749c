"""Steps shared by every aspect, the local routines and the central gate.

Steps stay a few lines; mechanism lives in src/rehearsal/ (workflows/, reconcile, guard).

- Routine tags from the feature files (``@system:new``, ``@lab_route:bridge``,
  ``@route:new-to-legacy``, ``@needs:bridge_base`` — see rehearsal.workflows.routines)
  become markers; a scenario that does not apply at a site is not collected for it.
- ``@last`` scenarios (the test-identity guard) run after every other scenario.
- ``@traffic`` scenarios check the technical test traffic; when the session has one, the
  traffic of every site in scope starts with the first clinical or technical scenario, so
  its waits (the lab, the bridge) overlap the clinical scenarios instead of adding to them.
- A per-site scenario whose central system does not answer is blocked (skipped with the
  reason), and one that writes never runs against production (rehearsal.workflows.gate).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rehearsal.adapters.lab import Exchange, LabLink
from rehearsal.adapters.monitoring import Monitoring
from rehearsal.adapters.records import Records
from rehearsal.clients.coexistence import BridgeClient, LegacyClient
from rehearsal.clients.fhir import FhirClient
from rehearsal.errors import TargetError
from rehearsal.plan import LoadedPlan, Plan, Site
from rehearsal.pytest_plugin import aspect_of, plan_for, sites_in_scope
from rehearsal.workflows import gate, routines
from rehearsal.workflows.traffic import Traffic
from rehearsal.workflows.window import Window, shared_window

SCENARIOS = Path(__file__).resolve().parent
TRAFFIC_SITES = pytest.StashKey[set[str]]()


def pytest_configure(config: pytest.Config) -> None:
    for name, text in (
        ("system(name)", "local routine: the site works in this EHR (new | legacy)"),
        ("lab_route(name)", "local routine: the site's lab orders go this way (bridge | direct)"),
        ("route(name)", "coexistence route the scenario crosses (new-to-legacy | legacy-to-new)"),
        ("needs(field)", "the plan must name environment.FIELD; a per-site scenario waits for it to answer"),
        ("writes", "the scenario writes to the target (never against production)"),
        ("last", "runs after every other scenario (the test-identity guard)"),
        ("traffic", "checks the technical test traffic (started at the session's first scenario)"),
    ):
        config.addinivalue_line("markers", f"{name}: {text}")


@pytest.hookimpl(tryfirst=True)  # before pytest-bdd's own: a non-editable install loads it first
def pytest_bdd_apply_tag(tag: str, function: Any) -> bool | None:
    name, sep, value = tag.partition(":")
    if sep and name in routines.TAGS:
        getattr(pytest.mark, name)(value)(function)
        return True
    return None


def _site(item: pytest.Item) -> Site | None:
    callspec = getattr(item, "callspec", None)
    site = callspec.params.get("site") if callspec else None
    return site if isinstance(site, Site) else None


def _wanted(item: pytest.Item) -> dict[str, list[str]]:
    return {name: [str(m.args[0]) for m in item.iter_markers(name) if m.args] for name in routines.TAGS}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop scenarios that do not apply at their site (the plan's routines); move ``@last`` ones last."""
    plan = plan_for(config)
    if plan is None:
        return
    keep, drop = [], []
    for item in items:
        ours = SCENARIOS in item.path.parents
        reason = routines.not_applicable(plan, _site(item), _wanted(item)) if ours else None
        (drop if reason else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    last = [i for i in keep if i.get_closest_marker("last")]
    rest = [i for i in keep if not i.get_closest_marker("last")]
    ours_at = [n for n, i in enumerate(rest) if SCENARIOS in i.path.parents]
    at = ours_at[-1] + 1 if ours_at else len(rest)
    items[:] = rest[:at] + last + rest[at:]


def _traffic_sites(session: pytest.Session) -> set[str]:
    """The sites whose test traffic this session checks, from what it runs after every deselection
    (a session of a run with ``--jobs`` has some sites' scenarios only: it sends only their traffic)."""
    if TRAFFIC_SITES not in session.stash:  # the items are final once a test runs: read them once
        traffic = (i for i in session.items if i.get_closest_marker("traffic"))
        session.stash[TRAFFIC_SITES] = {s.id for i in traffic if (s := _site(i)) is not None}
    return session.stash[TRAFFIC_SITES]


@pytest.fixture(scope="session")
def window(plan: Plan, rehearsal_run_dir: Path) -> Window:
    """When this rehearsal began, on the target's clocks (taken before the first scenario writes);
    the run's sessions side by side (``--jobs``) share the first one taken."""
    return shared_window(plan, rehearsal_run_dir)


@pytest.fixture(autouse=True)
def _central_gate(request: pytest.FixtureRequest, plan: Plan, loaded_plan: LoadedPlan) -> None:
    item = request.node
    if aspect_of(item) not in ("klinisk", "teknisk"):
        return
    request.getfixturevalue("window")
    sends = bool(_traffic_sites(request.session)) and gate.write_refusal(plan) is None
    if sends:  # its waits then overlap the clinical scenarios
        request.getfixturevalue("traffic").start()
    site = _site(item)
    if item.get_closest_marker("writes") and (why := gate.write_refusal(plan)):
        pytest.skip(why)
    if site is not None and (why := gate.blocked(plan, _wanted(item)["needs"], loaded_plan.path.parent)):
        pytest.skip(why)


@pytest.fixture(scope="session")
def traffic(plan: Plan, request: pytest.FixtureRequest, window: Window) -> Iterator[Traffic]:
    """The technical test traffic of the sites this session checks, started at first use (see
    workflows.traffic)."""
    checked = _traffic_sites(request.session)
    sent = Traffic(plan, [s for s in sites_in_scope(request.config) if s.id in checked])
    yield sent
    sent.close()


@pytest.fixture(scope="session")
def web_sessions() -> dict[str, list[Any]]:
    """Each site's logged-in web session (cookies), kept between its clinical scenarios."""
    return {}


@pytest.fixture
def ctx() -> dict[str, Any]:
    """What one scenario's steps hand to each other."""
    return {}


@pytest.fixture
def fhir(plan: Plan) -> Iterator[FhirClient]:
    with FhirClient(plan.environment) as client:
        yield client


@pytest.fixture
def legacy(plan: Plan) -> Iterator[LegacyClient]:
    with LegacyClient.for_plan(plan) as client:
        yield client


@pytest.fixture
def monitoring(plan: Plan) -> Iterator[Monitoring]:
    """The integration monitoring the plan names (``environment.adapters.monitoring``)."""
    monitor: Monitoring = plan.environment.adapter("monitoring")(plan)
    yield monitor
    monitor.close()


@pytest.fixture(scope="session")
def lab_exchange(plan: Plan) -> Exchange:
    """The lab link's test message and what came back, once per run (``environment.adapters.lab``):
    the heartbeat and the result-text scenario judge the same exchange, so the lab gets one order."""
    made = plan.environment.adapter("lab")
    if getattr(made, "writes", False) and (why := gate.write_refusal(plan)):
        pytest.skip(why)  # a real order is a write: never to a production lab
    try:
        link: LabLink = made(plan)
    except TargetError as exc:  # e.g. the results listener cannot bind: the scenario's one-line failure
        return Exchange("labbsystemet", "", "", error=str(exc))
    try:
        site = next((s for s in plan.sites if s.system == "new" and s.users), plan.sites[0])
        return link.exchange(site)
    finally:
        link.close()


@pytest.fixture
def records(plan: Plan) -> Iterator[Records]:
    """The other side's records (NPÖ-like) as the plan reaches them (``environment.adapters.records``)."""
    made: Records = plan.environment.adapter("records")(plan)
    yield made
    made.close()


@pytest.fixture
def bridge(plan: Plan) -> Iterator[BridgeClient]:
    with BridgeClient.for_plan(plan) as client:
        yield client
