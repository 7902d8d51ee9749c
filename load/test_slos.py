"""Svarstider under last: the plan's load profile runs once, each path's SLOs are one result each.

Locust runs in its own processes (rehearsal.load); this module only turns its figures into
evidence for the plan's ``load_slo`` criterion: one test per load path and SLO, ids like
``patient-search-p95``, ``patient-search-p99``, ``patient-search-error-ratio`` and
``patient-search-min-rps``, stable across runs and reruns. With ``per_site: true`` on the
``load_slo`` criterion, one per site, path and SLO (``sas-boras/patient-search-p95``): each
site's simulated users judged on their own, at the sites that have some
(:func:`rehearsal.load.load_sites`); a path none of them can do is not judged there. Each result carries the
figures (JSON) and the path's response time over the run (SVG); the path's p95 result also
carries Locust's HTML report (about 1 MB, so once per path rather than on every SLO).
An interrupted load run still gives every SLO its result, failed and marked incomplete,
before the session stops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from rehearsal import evidence
from rehearsal.errors import RehearsalError
from rehearsal.load import (
    LoadResult,
    SloVerdict,
    check,
    evaluate,
    load_criterion,
    load_sites,
    per_site,
    region_paths,
    request_name,
    run_load,
    slos_of,
    workers_from_env,
)
from rehearsal.plan import LoadedPlan, LoadPath, Plan, Site
from rehearsal.pytest_plugin import plan_for, sites_in_scope

TITLES = {
    "sv": {
        "p95": "Svarstid {path} p95 ≤ {limit:g} ms",
        "p99": "Svarstid {path} p99 ≤ {limit:g} ms",
        "error_ratio": "Felandel {path} ≤ {limit:g} %",
        "min_rps": "Genomströmning {path} ≥ {limit:g} anrop/s",
    },
    "en": {
        "p95": "Response time {path} p95 ≤ {limit:g} ms",
        "p99": "Response time {path} p99 ≤ {limit:g} ms",
        "error_ratio": "Error ratio {path} ≤ {limit:g} %",
        "min_rps": "Throughput {path} ≥ {limit:g} requests/s",
    },
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "load_path" not in metafunc.fixturenames:
        return
    plan = plan_for(metafunc.config)
    if plan is not None and plan.load is None:
        skip = pytest.mark.skip(reason="the plan has no load section")
        no_load = pytest.param(None, None, None, marks=skip, id="no-load")
        metafunc.parametrize(("load_site", "load_path", "slo"), [no_load])
        return
    paths = plan.load.paths if plan is not None and plan.load is not None else []
    criterion = load_criterion(plan) if plan is not None else None
    if plan is not None and criterion is None:  # nothing would judge it: the load does not run
        skip = pytest.mark.skip(reason="the plan has no load_slo criterion: the load does not run")
        no_line = pytest.param(None, None, None, marks=skip, id="no-load-criterion")
        metafunc.parametrize(("load_site", "load_path", "slo"), [no_line])
        return
    mark = pytest.mark.criterion(criterion.id if criterion else None)  # what rehearsal.selection reads
    if plan is not None and per_site(plan):
        at = load_sites(plan)
        places = [(s, at[s.id]) for s in sites_in_scope(metafunc.config) if s.id in at]
    else:
        places = [(None, region_paths(plan) if plan is not None else [p.id for p in paths])]
    cases = [
        pytest.param(
            site, p, slo, marks=mark, id=(f"{site.id}/" if site else "") + f"{p.id}-{slo.replace('_', '-')}"
        )
        for site, ids in places
        for p in paths
        if p.id in ids
        for slo, _ in slos_of(p)
    ]
    metafunc.parametrize(("load_site", "load_path", "slo"), cases)


@dataclass
class LoadOutcome:
    """The one load run of this session: its figures and verdicts, or why it did not run."""

    result: LoadResult | None = None
    verdicts: dict[tuple[str | None, str, str], SloVerdict] = field(default_factory=dict)
    refused: str | None = None
    reported: int = 0  # SLO results written so far; an interrupted run stops the session after the last
    html_attached: bool = False  # Locust's report is in a result already


@pytest.fixture(scope="session")
def load_outcome(plan: Plan, loaded_plan: LoadedPlan, rehearsal_run_dir: Path) -> LoadOutcome:
    """Run the load once; a refused or broken run becomes every SLO test's failure message."""
    assert plan.load is not None
    try:
        check(plan)
        result = run_load(
            loaded_plan.path, plan, rehearsal_run_dir / "load", workers_from_env(plan.load.workers)
        )
    except RehearsalError as exc:
        return LoadOutcome(refused=str(exc))
    judged = evaluate(plan.load, result, load_sites(plan)) if per_site(plan) else None
    judged = judged if judged is not None else evaluate(plan.load, result, paths=region_paths(plan))
    verdicts = {(v.site, v.path_id, v.slo): v for v in judged}
    return LoadOutcome(result=result, verdicts=verdicts)


def _title(plan: Plan, path: LoadPath, slo: str) -> str:
    name = path.title
    if len(name) > 1 and name[1].islower():  # "Patientsökning" -> "patientsökning", keep "FHIR-…"
        name = name[0].lower() + name[1:]
    limit = dict(slos_of(path))[slo]
    return TITLES[plan.language][slo].format(path=name, limit=limit * 100 if slo == "error_ratio" else limit)


def _description(plan: Plan, path: LoadPath, site: Site | None) -> str:
    profile = plan.load
    assert profile is not None
    limits = [f"p95 ≤ {path.p95_ms:g} ms"]
    if path.p99_ms is not None:
        limits.append(f"p99 ≤ {path.p99_ms:g} ms")
    limits.append(f"högst {path.max_error_ratio * 100:g} % fel")
    if path.min_rps is not None:
        limits.append(f"minst {path.min_rps:g} anrop/s")
    return (
        f"Locust kör planens lastprofil ({profile.users} användare, {profile.duration_s:g} s) mot "
        f"{plan.environment.fhir_base}. Alla anrop på vägen '{path.id}' "
        + (f"från användarna på {site.name} " if site else "")
        + f"räknas: {', '.join(limits)}. "
        "Ett svar som inte håller affärskontrollen (t.ex. en sökning utan den sökta patienten, "
        "ett provsvar på fel patient) räknas som fel."
    )


def test_load_slo(
    load_site: Site | None,
    load_path: LoadPath,
    slo: str,
    plan: Plan,
    load_outcome: LoadOutcome,
    request: pytest.FixtureRequest,
) -> None:
    criterion = load_criterion(plan)
    evidence.tag(
        aspect="teknisk",
        criterion=criterion.id if criterion else None,
        severity=criterion.severity if criterion else None,
        site=load_site.id if load_site else None,
    )
    evidence.title(_title(plan, load_path, slo) + (f" – {load_site.name}" if load_site else ""))
    evidence.describe(_description(plan, load_path, load_site))
    if load_outcome.refused is not None:
        pytest.fail(load_outcome.refused, pytrace=False)
    result = load_outcome.result
    assert result is not None
    load_outcome.reported += 1
    if result.interrupted and load_outcome.reported >= len(load_outcome.verdicts):
        request.session.shouldstop = "interrupted during the load run"  # after every SLO has its result
    site_id = load_site.id if load_site else None
    verdict = load_outcome.verdicts[(site_id, load_path.id, slo)]
    stats = result.paths.get(request_name(load_path.id, site_id))
    evidence.attach_json(
        "Lastsiffror",
        {
            "verdict": asdict(verdict),
            "path": asdict(stats) | {"error_ratio": stats.error_ratio} if stats else None,
            "run": {k: v for k, v in result.figures().items() if k != "paths"}
            | {"locust_report": str(result.html_report)},
            "profile": plan.load.model_dump() if plan.load else None,
        },
    )
    # ~1 MB, the same for every path and site: on the run's first SLO result only (its path is in
    # every result's figures above); each copy cost ~0.7 s through the redacting writer
    if not load_outcome.html_attached and result.html_report.is_file():
        load_outcome.html_attached = True
        evidence.attach_file("Locust-rapport", result.html_report)
    chart = result.charts.get(request_name(load_path.id, site_id))
    if chart is not None and chart.is_file():
        evidence.attach_file(f"Svarstid över tid – {request_name(load_path.id, site_id)}", chart)
    if not verdict.passed:
        pytest.fail(verdict.message, pytrace=False)
