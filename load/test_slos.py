"""Svarstider under last: the plan's load profile runs once, each path's SLOs are one result each.

Locust runs in its own process (rehearsal.load); this module only turns its figures into
evidence for the plan's ``load_slo`` criterion: one test per load path and SLO, ids like
``patient-search-p95`` and ``patient-search-error-ratio``, stable across runs and reruns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from rehearsal import evidence
from rehearsal.errors import RehearsalError
from rehearsal.load import LoadResult, SloVerdict, evaluate, guard, run_load
from rehearsal.plan import Criterion, LoadedPlan, LoadPath, Plan
from rehearsal.pytest_plugin import plan_for

SLOS = ("p95", "error_ratio")
TITLES = {
    "sv": {"p95": "Svarstid {path} p95 ≤ {limit:g} ms", "error_ratio": "Felandel {path} ≤ {limit:g} %"},
    "en": {
        "p95": "Response time {path} p95 ≤ {limit:g} ms",
        "error_ratio": "Error ratio {path} ≤ {limit:g} %",
    },
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "load_path" not in metafunc.fixturenames:
        return
    plan = plan_for(metafunc.config)
    if plan is not None and plan.load is None:
        skip = pytest.mark.skip(reason="the plan has no load section")
        metafunc.parametrize(("load_path", "slo"), [pytest.param(None, None, marks=skip, id="no-load")])
        return
    paths = plan.load.paths if plan is not None and plan.load is not None else []
    cases = [(p, slo) for p in paths for slo in SLOS]
    metafunc.parametrize(
        ("load_path", "slo"), cases, ids=[f"{p.id}-{slo.replace('_', '-')}" for p, slo in cases]
    )


@dataclass
class LoadOutcome:
    """The one load run of this session: its figures and verdicts, or why it did not run."""

    result: LoadResult | None = None
    verdicts: dict[tuple[str, str], SloVerdict] = field(default_factory=dict)
    refused: str | None = None


@pytest.fixture(scope="session")
def load_outcome(
    plan: Plan, loaded_plan: LoadedPlan, rehearsal_run_dir: Path, request: pytest.FixtureRequest
) -> LoadOutcome:
    """Run the load once; a refused or broken run becomes every SLO test's failure message."""
    assert plan.load is not None
    try:
        guard(plan)
        result = run_load(loaded_plan.path, plan, rehearsal_run_dir / "load")
    except RehearsalError as exc:
        return LoadOutcome(refused=str(exc))
    if result.interrupted:
        request.session.shouldstop = "interrupted during the load run"
    verdicts = {(v.path_id, v.slo): v for v in evaluate(plan.load, result)}
    return LoadOutcome(result=result, verdicts=verdicts)


def _load_criterion(plan: Plan) -> Criterion | None:
    return next((c for c in plan.criteria if c.kind == "load_slo"), None)


def _title(plan: Plan, path: LoadPath, slo: str) -> str:
    name = path.title
    if len(name) > 1 and name[1].islower():  # "Patientsökning" -> "patientsökning", keep "FHIR-…"
        name = name[0].lower() + name[1:]
    limit = path.p95_ms if slo == "p95" else path.max_error_ratio * 100
    return TITLES[plan.language][slo].format(path=name, limit=limit)


def test_load_slo(load_path: LoadPath, slo: str, plan: Plan, load_outcome: LoadOutcome) -> None:
    criterion = _load_criterion(plan)
    evidence.tag(
        aspect="teknisk",
        criterion=criterion.id if criterion else None,
        severity=criterion.severity if criterion else None,
    )
    evidence.title(_title(plan, load_path, slo))
    profile = plan.load
    evidence.describe(
        f"Locust kör planens lastprofil ({profile.users} användare, {profile.duration_s:g} s) mot "
        f"{plan.environment.fhir_base}. Alla anrop på vägen '{load_path.id}' räknas: p95 ska vara "
        f"≤ {load_path.p95_ms:g} ms och högst {load_path.max_error_ratio * 100:g} % får misslyckas, "
        "där ett svar utan den sökta patienten räknas som fel."
    )
    if load_outcome.refused is not None:
        pytest.fail(load_outcome.refused, pytrace=False)
    result = load_outcome.result
    assert result is not None
    verdict = load_outcome.verdicts[(load_path.id, slo)]
    stats = result.paths.get(load_path.id)
    evidence.attach_json(
        "Lastsiffror",
        {
            "verdict": asdict(verdict),
            "path": asdict(stats) | {"error_ratio": stats.error_ratio} if stats else None,
            "run": {k: v for k, v in result.figures().items() if k != "paths"},
            "profile": profile.model_dump(),
        },
    )
    if result.html_report.is_file():
        evidence.attach_file("Locust-rapport", result.html_report)
    if not verdict.passed:
        pytest.fail(verdict.message, pytrace=False)
