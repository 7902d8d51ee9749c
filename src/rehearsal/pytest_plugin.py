"""The pytest plugin: turns a pytest session into a rehearsal of one plan.

Inert unless ``--rehearsal-plan`` is given, so the harness's own tests run beside it.
When active it loads the plan, parametrises per-site scenarios over the plan's sites,
labels every result (docs/design.md, Evidence conventions), renders Gherkin steps as
Allure steps with a screenshot after each step that used the browser, and narrows the
session to a site, an aspect or a rerun's selection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import allure
import pytest
from pytest_bdd.scenario import scenario_wrapper_template_registry

from rehearsal import applicability, attest, evidence, ids, patient_gate, redact, silence
from rehearsal.attest import Attestation
from rehearsal.errors import UsageError
from rehearsal.parts import Part
from rehearsal.plan import ASPECTS, LoadedPlan, Plan, PlanError, Printer, Site, load_plan
from rehearsal.run import PLANNED_FILE

LOADED_PLAN = pytest.StashKey[LoadedPlan]()
OPEN_STEPS = pytest.StashKey[list[Any]]()
WEB_PAGE = pytest.StashKey[Any]()
PART = pytest.StashKey[Part]()
VALUE_TAGS = ("aspect", "criterion", "severity")
#: Tests whose browser page showed someone who is not a test patient: no screenshot, no trace kept.
_FOREIGN_ON_SCREEN: set[str] = set()
SCENARIOS_COLLECTED = pytest.StashKey[bool]()
CONTENT_ASPECT = {"hardware_checks": "teknisk", "load": "teknisk"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rehearsal", "go-live rehearsal")
    group.addoption("--rehearsal-plan", metavar="PLAN", help="rehearsal plan (YAML); activates the plugin")
    group.addoption("--rehearsal-run-dir", metavar="DIR", help="run folder for evidence files")
    group.addoption("--rehearsal-run-id", metavar="ID", default="", help="run id, recorded as a label")
    group.addoption(
        "--rehearsal-site", metavar="SITE", action="append", default=[], help="only these plan sites"
    )
    group.addoption(
        "--rehearsal-aspect",
        metavar="ASPECT",
        action="append",
        default=[],
        choices=ASPECTS,
        help="only these aspects",
    )
    group.addoption(
        "--rehearsal-only", metavar="FILE", help="node ids or keys (id@site) to run, one a line (a rerun's)"
    )
    group.addoption(
        "--rehearsal-attestations",
        metavar="FILE",
        action="append",
        default=[],
        help="attestations to take into account (YAML list or JSON lines; repeatable)",
    )
    group.addoption(
        "--rehearsal-interactive", action="store_true", help="ask for each missing attestation (needs -s)"
    )
    group.addoption(
        "--rehearsal-part",
        metavar="PART",
        help="one session of a run with --jobs (rehearsal.parts): first:SITE,…, sites:SITE,… or last",
    )
    group.addoption(
        "--rehearsal-probe",
        metavar="NAME",
        help="run as this site probe of the plan: its sites' devices only, every result labelled with it",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in (
        ("aspect(name)", "organisatorisk | klinisk | teknisk"),
        ("criterion(id)", "the go/no-go criterion a scenario feeds"),
        ("severity(level)", "blocker | critical | normal | minor"),
        ("per_site", "run the scenario once per plan site"),
        ("rehearsal_id(id)", "the stable id of the test (a scenario's @id tag; rehearsal.ids)"),
        ("slow", "end-to-end tests that start processes"),
    ):
        config.addinivalue_line("markers", f"{name}: {text}")
    config.pluginmanager.import_plugin("rehearsal.browser")  # after pytest-playwright: overrides it
    path = config.getoption("--rehearsal-plan", None)
    if not path:
        return
    try:
        loaded = load_plan(path)
        for site_id in config.getoption("--rehearsal-site"):
            loaded.plan.site(site_id)
        if config.getoption("--rehearsal-probe"):
            loaded.plan.probe(config.getoption("--rehearsal-probe"))
        if config.getoption("--rehearsal-part"):
            config.stash[PART] = Part.parse(config.getoption("--rehearsal-part"))
    except PlanError as exc:
        raise pytest.UsageError(str(exc)) from None
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[LOADED_PLAN] = loaded
    patient_gate.only(t.personnummer for t in loaded.plan.test_identities)
    silence.enable(loaded.plan.environment)  # a component that times out is not waited for again


def pytest_unconfigure(config: pytest.Config) -> None:
    if LOADED_PLAN in config.stash:
        patient_gate.reopen()
        silence.reset()


def loaded_plan_for(config: pytest.Config) -> LoadedPlan | None:
    return config.stash.get(LOADED_PLAN, None)


def plan_for(config: pytest.Config) -> Plan | None:
    """The plan of this session, or None when the plugin is inactive (collect nothing then)."""
    loaded = loaded_plan_for(config)
    return loaded.plan if loaded else None


def sites_in_scope(config: pytest.Config) -> list[Site]:
    plan = plan_for(config)
    if plan is None:
        return []
    wanted = config.getoption("--rehearsal-site")
    return [s for s in plan.sites if not wanted or s.id in wanted]


def parametrize_devices(
    metafunc: pytest.Metafunc, devices_of: Callable[[Site], Iterable[Any]], what: str
) -> None:
    """One case per (site, device) of the sites in scope, id ``site/device``.

    Plan ids, not addresses: the id stays the same when a printer's URI changes, so history and
    a rerun's selection find the device again; each case carries its stable id
    (``printer:<device>``, ``workstation:<device>``). No devices in scope: one skipped case saying so.
    """
    if "device" not in metafunc.fixturenames:
        return
    plan = plan_for(metafunc.config)
    if plan is None:
        metafunc.parametrize(("site", "device"), [])
        return
    cases = [
        (s.id, d.id, "printer" if isinstance(d, Printer) else "workstation")
        for s in sites_in_scope(metafunc.config)
        for d in devices_of(s)
        if _device_applies(plan, s, d, metafunc.config.getoption("--rehearsal-probe"))
    ]
    if not cases:
        skip = pytest.mark.skip(
            reason=f"no {what} to check here at the sites in scope (criterion not applicable, or a probe's)"
        )
        metafunc.parametrize(("site", "device"), [pytest.param(None, None, marks=skip, id=f"no-{what}")])
        return
    params = [
        pytest.param(s, d, id=f"{s}/{d}", marks=pytest.mark.rehearsal_id(ids.device_id(kind, d)))
        for s, d, kind in cases
    ]
    metafunc.parametrize(("site", "device"), params)


def _device_applies(plan: Plan, site: Site, device: Any, probe: str | None = None) -> bool:
    """Does the criterion this device feeds apply at its site (rehearsal.applicability), and is it
    this session's to check (a site the plan gives to a probe is checked by that probe only)?"""
    covering = plan.probe_of(site.id)
    if (covering.id if covering else None) != probe:
        return False
    criterion = plan.device_criterion(device.kind if isinstance(device, Printer) else "workstation")
    return criterion is None or applicability.reason(plan, criterion, site) is None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Rehearsal content needs a plan; without one it is not collected at all."""
    if plan_for(config) is None and collection_path.name in ("scenarios", "load", "hardware_checks"):
        return True
    return None


@pytest.fixture(scope="session")
def loaded_plan(pytestconfig: pytest.Config) -> LoadedPlan:
    loaded = loaded_plan_for(pytestconfig)
    if loaded is None:
        pytest.skip("no rehearsal plan (--rehearsal-plan)")
    return loaded


@pytest.fixture(scope="session")
def plan(loaded_plan: LoadedPlan) -> Plan:
    return loaded_plan.plan


@pytest.fixture(scope="session")
def rehearsal_run_dir(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = pytestconfig.getoption("--rehearsal-run-dir")
    return Path(given) if given else tmp_path_factory.mktemp("rehearsal-run")


@pytest.fixture
def attestation(request: pytest.FixtureRequest, rehearsal_run_dir: Path) -> Callable[..., Attestation]:
    """`attestation(item, site, question)`: the person's word on a step, or pending without it."""
    config = request.config

    def require(item: str, site: Site | None, question: str) -> Attestation:
        site_id = site.id if site else None
        evidence.tag(attestation=item)
        files = [Path(f) for f in config.getoption("--rehearsal-attestations")]
        found = attest.lookup(attest.read([*files, rehearsal_run_dir / attest.FILE]), item, site_id)
        if found is None and config.getoption("--rehearsal-interactive"):
            found = _ask(rehearsal_run_dir, item, site_id, question)
        where = f" --site {site_id}" if site_id else ""
        if found is None:
            pytest.skip(f"{attest.PENDING}: {question} (rehearse attest {item}{where} --by NAMN --ok|--fail)")
        evidence.attach_json("Intygande", asdict(found))
        assert found.ok, f"{question}: underkänt av {found.by} {found.at}" + (
            f": {found.note}" if found.note else ""
        )
        return found

    return require


def _ask(run_dir: Path, item: str, site: str | None, question: str) -> Attestation | None:
    where = f" [{site}]" if site else ""
    answer = input(f"\n{question}{where}\n  intyga? (j = ja, n = nej, Enter = hoppa över): ").strip().lower()
    if answer not in ("j", "n"):
        return None
    by = input("  ditt namn: ").strip()
    note = input("  anteckning (valfri): ").strip()
    return attest.record(
        run_dir, attest.Attestation(item=item, site=site, by=by, ok=answer == "j", note=note)
    )


@pytest.fixture
def web(page: Any, plan: Plan, request: pytest.FixtureRequest) -> Any:
    """The browser page on the target's web UI; steps after which it is screenshotted."""
    from playwright.sync_api import expect

    from rehearsal.browser import guard_hosts

    t = plan.environment.timeouts
    silence.check(plan.environment.web_base)  # timed out earlier in this run: fail now, not after a wait
    hosts = plan.environment.allowed_hosts  # a request elsewhere is aborted and named in the evidence
    guard_hosts(page.context, hosts, lambda line: evidence.attach_text("Stoppad förfrågan", line))
    page.set_default_timeout(t.read * 1000)
    page.set_default_navigation_timeout((t.connect + t.read) * 1000)
    expect.set_options(timeout=(t.connect + t.read) * 1000)  # often after a navigation; else 5 s
    request.node.stash[WEB_PAGE] = page
    return page


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("per_site") is None:
        return
    if "site" not in metafunc.fixturenames:
        metafunc.fixturenames.append("site")
    sites = sites_in_scope(metafunc.config)
    plan = plan_for(metafunc.config)
    criterion_id = _marker_value(metafunc.definition, "criterion")
    criterion = plan.criterion(criterion_id) if plan and criterion_id else None
    applies = applicability.applicable_sites(plan, criterion, sites) if plan else sites
    if sites and not applies and plan and criterion:  # not generated where it cannot apply
        why = "; ".join(dict.fromkeys(r for s in sites if (r := applicability.reason(plan, criterion, s))))
        skip = pytest.mark.skip(reason=f"{criterion.id}: {why}")
        metafunc.parametrize("site", [pytest.param(None, marks=skip, id="not-applicable")])
        return
    metafunc.parametrize("site", applies, ids=[s.id for s in applies])


@pytest.hookimpl(tryfirst=True)  # before pytest-bdd's own, whatever order the plugins were installed in
def pytest_bdd_apply_tag(tag: str, function: Any) -> bool | None:
    """`@criterion:tech-fhir` style tags become markers with a value; `@id:…` the stable id."""
    name, sep, value = tag.partition(":")
    if sep and name == ids.TAG:
        pytest.mark.rehearsal_id(value)(function)
        return True
    if sep and name in VALUE_TAGS:
        getattr(pytest.mark, name)(value)(function)
        return True
    return None


def scenario_of(item: pytest.Item) -> Any:
    """The pytest-bdd scenario behind a test item, or None for plain check modules."""
    function = getattr(item, "obj", None)
    return scenario_wrapper_template_registry.get(function) if callable(function) else None


def aspect_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("aspect")
    if marker and marker.args:
        return str(marker.args[0])
    scenario = scenario_of(item)
    parts = Path(scenario.feature.filename).parts if scenario else item.path.parts
    for part in reversed(parts):
        if part in ASPECTS:
            return part
        if part in CONTENT_ASPECT:
            return CONTENT_ASPECT[part]
    return None


def pytest_itemcollected(item: pytest.Item) -> None:
    if scenario_of(item) is not None:
        item.config.stash[SCENARIOS_COLLECTED] = True


def _check_scenario_ids(config: pytest.Config) -> None:
    """Every scenario of the features folder has its own stable id, or collection stops (one line)."""
    if not config.stash.get(SCENARIOS_COLLECTED, False):
        return
    features = config.rootpath / str(config.getini("bdd_features_base_dir") or "features")
    problem = ids.check_features(features, config.rootpath)
    if problem:
        raise pytest.UsageError(problem)


def _selected(item: pytest.Item, only: set[str] | None) -> bool:
    """In a rerun's selection by node id, or by key (its id alone: a result that named no site)."""
    if only is None or item.nodeid in only:
        return True
    return ids.item_key(item) in only or ids.item_id(item) in only


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if plan_for(config) is None:
        return
    _check_scenario_ids(config)
    only_file = config.getoption("--rehearsal-only")
    only = set(Path(only_file).read_text(encoding="utf-8").split("\n")) - {""} if only_file else None
    aspects = set(config.getoption("--rehearsal-aspect"))
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    part = config.stash.get(PART, None)
    for item in items:
        selected = _selected(item, only) and (not aspects or aspect_of(item) in aspects)
        selected = selected and (part is None or part.keeps(item))
        (keep if selected else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    run_dir = config.getoption("--rehearsal-run-dir")
    if run_dir and part is None:  # what this run means to do, so an interrupted run knows what it did not
        planned = Path(run_dir) / PLANNED_FILE
        planned.write_text("".join(f"{item.nodeid}\n" for item in keep), encoding="utf-8")
        keys = Path(run_dir) / ids.PLANNED_KEYS_FILE  # the same tests by key: a renamed title is still found
        keys.write_text("".join(f"{ids.item_key(item)}\n" for item in keep), encoding="utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Every result says which run and node it is and its stable id, a test skipped by its marker too.

    A skip mark stops the test before any fixture runs, so these labels cannot wait for one:
    without ``nodeid`` a skipped result is invisible to reruns and to the check that every
    planned test has its result (``rehearse report`` of a killed run).
    """
    plan = plan_for(item.config)
    if plan is not None:
        evidence.tag(
            rehearsal=plan.rehearsal,
            run=item.config.getoption("--rehearsal-run-id") or None,
            nodeid=item.nodeid,
            rehearsal_id=ids.item_id(item),
            probe=item.config.getoption("--rehearsal-probe"),
        )
    yield


@pytest.fixture(autouse=True)
def _rehearsal_labels(request: pytest.FixtureRequest) -> None:
    plan = plan_for(request.config)
    if plan is None:
        return
    item = request.node
    if scenario_of(item) is None:
        return  # plain check modules label themselves (device, criterion) as they run
    criterion_id = _marker_value(item, "criterion")
    criterion = plan.criterion(criterion_id) if criterion_id else None
    site = item.callspec.params.get("site") if hasattr(item, "callspec") else None
    evidence.tag(
        aspect=aspect_of(item),
        criterion=criterion_id,
        severity=_marker_value(item, "severity") or (criterion.severity if criterion else None),
        site=site.id if isinstance(site, Site) else None,
    )


def _marker_value(item: pytest.Item, name: str) -> str | None:
    marker = item.get_closest_marker(name)
    return str(marker.args[0]) if marker and marker.args else None


def pytest_bdd_before_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    site = getattr(request.node, "callspec", None)
    site = site.params.get("site") if site else None
    suffix = f" – {site.name}" if isinstance(site, Site) else ""
    evidence.title(f"{scenario.name}{suffix}")
    allure.dynamic.feature(feature.name)
    if scenario.description or feature.description:
        evidence.describe(scenario.description or feature.description)
    request.node.stash[OPEN_STEPS] = []


def pytest_bdd_before_step(request: pytest.FixtureRequest, step: Any) -> None:
    ctx = allure.step(f"{step.keyword} {step.name}")
    ctx.__enter__()
    request.node.stash.setdefault(OPEN_STEPS, []).append(ctx)


def _close_step(request: pytest.FixtureRequest, step: Any, exc: BaseException | None) -> None:
    page = request.node.stash.get(WEB_PAGE, None)
    if page is not None:
        _screenshot(request.node, page, step.name, failed=exc is not None)
    stack = request.node.stash.get(OPEN_STEPS, [])
    if stack:
        ctx = stack.pop()
        ctx.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)


#: Each step's picture: what a person at the screen sees, as JPEG (cheaper for Chromium to encode
#: than PNG; text and fields stay readable at this quality), the text caret as it is (hiding it
#: costs a style change and a relayout per picture, ~15 % of one). A failed step's picture is the
#: whole page: the failure's evidence may sit below the fold. Whole pages for every step cost a
#: site ~5 s of a ~17 s browser run (session 9, 59 steps: 97 ms against 58 ms median).
SCREENSHOT: dict[str, Any] = {"type": "jpeg", "quality": 80, "caret": "initial"}


def _screenshot(item: pytest.Item, page: Any, step_name: str, *, failed: bool = False) -> None:
    """A screenshot of the step, unless the page shows a patient who is not one of the run's own.

    The gate reads everything the picture or the trace could show (frames, field values, CSS
    generated content, attributes), before the picture and again after it, so a page that
    changes in between is not kept either. Refused: no picture, the test's trace is dropped
    at teardown, and one masked line says why. A failed step also keeps the page's DOM as text
    (what a trace's snapshots would have shown of it; text, so the report never renders it).
    """
    name = patient_gate.mask_all(step_name)
    try:
        seen = patient_gate.foreign_on_page(page)
        shot = page.screenshot(**SCREENSHOT, full_page=failed) if seen.clean else b""
        dom = page.content() if seen.clean and failed else ""
        if seen.clean:
            seen = patient_gate.foreign_on_page(page)
        if not seen.clean:
            _FOREIGN_ON_SCREEN.add(item.nodeid)
            evidence.attach_text(f"Ingen skärmbild: {name}", seen.reason())
            return
        evidence.attach_jpeg(f"Skärmbild: {name}", shot)
        if dom:
            evidence.attach_text(f"Sidans DOM vid felet: {name}", patient_gate.mask_all(dom))
    except Exception as shot_error:  # a dead page must not hide the step's own result
        said = str(shot_error).splitlines()[0] if str(shot_error) else ""
        evidence.attach_text("Skärmbild saknas", patient_gate.mask_all(said))


def pytest_bdd_after_step(request: pytest.FixtureRequest, step: Any, **_: Any) -> None:
    _close_step(request, step, None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """A failed browser scenario's Playwright trace (``--tracing retain-on-failure``) goes into its result.

    pytest-playwright names the kept files on the teardown report; the Allure result is still
    open then (it closes at logfinish), so the trace lands beside the step screenshots.
    """
    if report.when != "teardown":
        return
    for name, value in report.user_properties:
        path = Path(str(value))
        if name != "playwright_trace" or not path.is_file():
            continue
        if report.nodeid in _FOREIGN_ON_SCREEN:  # its DOM snapshots hold what the screenshot would have
            path.unlink()
            continue
        redact.file(path)  # fill values, snapshots, request bodies: the copy in playwright/ as well
        evidence.attach_file("Playwright-spår (trace.zip: npx playwright show-trace)", path)


def pytest_sessionstart(session: pytest.Session) -> None:
    """From the first result on, nothing is written with a secret in it (docs/design.md, Secrets)."""
    loaded = loaded_plan_for(session.config)
    if loaded is None:
        return
    redact.register_plan(loaded.plan)
    evidence.redact_results()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Any Playwright output not handed over at teardown (an interrupted test) is redacted too."""
    run_dir = session.config.getoption("--rehearsal-run-dir", None)
    if loaded_plan_for(session.config) is None or not run_dir:
        return
    for path in sorted((Path(run_dir) / "playwright").rglob("*")):
        if path.is_file() and not path.is_symlink():
            redact.file(path)


def pytest_bdd_step_error(
    request: pytest.FixtureRequest, step: Any, exception: BaseException, **_: Any
) -> None:
    _close_step(request, step, exception)
