"""Selection below site and aspect: what feeds chosen go/no-go criteria, or carries chosen tags.

``rehearse run --criterion tech-fhir`` runs only the tests whose ``criterion`` is that one (a
scenario by its ``@criterion:`` tag, a device check by the criterion of its device kind, a load
SLO by the plan's ``load_slo`` criterion); ``--tag writes`` only the scenarios carrying that
Gherkin tag (``@writes``; written without the ``@``, ``NAME`` or ``NAME:VALUE``; every test also
carries ``criterion:ID``, so ``--tag criterion:tech-fhir`` is ``--criterion tech-fhir``). Each
option narrows (within one option any value will do), after ``--site`` and ``--aspect``.

Without any of them the plan's criteria still select: a test feeding a criterion the plan does
not have is not run at all, so trimming the plan's criteria trims what runs. A criterion of kind
``findings`` is fed by the criteria of its aspect (all when it has none); ``run_complete`` by
nothing (the run itself).

The same selection says which entry points of the environment the run uses
(:func:`endpoints_used`), so the preflight (:mod:`rehearsal.preflight`) knows nothing of a
``web_base`` that no selected test would reach; and the decision of a narrowed run is taken
on the selected criteria (:func:`narrowed`), so ``--criterion tech-fhir`` is GO when FHIR is.

A pytest plugin too (``-p rehearsal.selection``, added by :mod:`rehearsal.runner`): its
options and its collection hook are active only with a rehearsal plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from rehearsal.errors import UsageError
from rehearsal.plan import Criterion, LoadedPlan, Plan

if TYPE_CHECKING:
    from rehearsal.run import Run

CRITERION_TAG = "criterion"
ASPECT_USES: dict[str | None, tuple[str, ...]] = {
    "organisatorisk": (),
    "teknisk": ("fhir_base",),
    "klinisk": ("fhir_base", "web_base"),
    None: ("fhir_base", "web_base"),
}
"""The entry points the shipped content of an aspect reaches (besides its ``@needs:`` tags, which the
central gate asks itself): technical scenarios and the session's window (the target's clock) the
FHIR API, clinical ones the web UI too; the organisational ones only the plan and attestations.
A criterion with no aspect may be fed from anywhere: both."""
KIND_USES: dict[str, tuple[str, ...]] = {
    "device_readiness": (),  # every device is asked itself (the hardware sweep)
    "load_slo": ("fhir_base",),  # Locust's --host
    "run_complete": (),
    "findings": (),  # through the criteria it is fed by
    "runbook": (),  # people's records and the results of the criteria its steps name
}
ALWAYS_KINDS = ("run_complete",)
"""Kept in a narrowed decision whatever was selected: the run itself must have finished."""


@dataclass(frozen=True)
class Selection:
    """The criteria and tags a run was narrowed to (empty: not narrowed below site/aspect)."""

    criteria: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.criteria or self.tags)

    @classmethod
    def of(cls, plan: Plan, criteria: Iterable[str] = (), tags: Iterable[str] = ()) -> Selection:
        """Checked against the plan: an unknown criterion is a usage error naming the known ones."""
        chosen = tuple(dict.fromkeys(c.strip() for c in criteria))
        known = [c.id for c in plan.criteria]
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise UsageError(
                f"--criterion {unknown[0]}: the plan has no such criterion (criteria: {', '.join(known)})"
            )
        wanted = tuple(dict.fromkeys(t.strip().lstrip("@") for t in tags))
        empty = next((t for t in wanted if not t or t.endswith(":")), None)
        if empty is not None:
            raise UsageError(f"--tag {empty!r}: a tag is NAME or NAME:VALUE (written without @)")
        for tag in wanted:
            name, sep, value = tag.partition(":")
            if name == CRITERION_TAG and sep and value not in known:
                raise UsageError(
                    f"--tag {tag}: the plan has no criterion {value!r} (criteria: {', '.join(known)})"
                )
        return cls(chosen, wanted)

    @classmethod
    def recorded(cls, run: Run) -> Selection:
        """What a run was narrowed to (run.json), for its rerun and its report."""
        return cls(tuple(run.criteria or ()), tuple(run.tags or ()))

    def fed(self, plan: Plan) -> set[str] | None:
        """The ids of the criteria whose tests this selection runs; None when not narrowed by criterion."""
        chosen = list(self.criteria)
        named = [t.partition(":")[2] for t in self.tags if t.startswith(f"{CRITERION_TAG}:")]
        if not chosen and self.tags and len(named) == len(self.tags):
            chosen = named  # every tag names a criterion: the same as --criterion
        if not chosen:
            return None
        return {f for c in chosen if (criterion := plan.criterion(c)) for f in fed_by(plan, criterion)}


EVERYTHING = Selection()
"""Not narrowed below site and aspect."""


def fed_by(plan: Plan, criterion: Criterion) -> set[str]:
    """The criteria whose results decide `criterion`: itself, the criteria of its aspect for
    ``findings``, none for ``run_complete``."""
    if criterion.kind == "run_complete":
        return set()
    if criterion.kind == "findings":
        return {
            c.id
            for c in plan.criteria
            if c.kind not in ("findings", "run_complete")
            and (criterion.aspect is None or aspect_of(c) == criterion.aspect)
        }
    return {criterion.id}


def aspect_of(criterion: Criterion) -> str | None:
    """The aspect of the content that feeds a criterion: its own, or teknisk for device checks and load."""
    if criterion.aspect is not None:
        return criterion.aspect
    return "teknisk" if criterion.kind in ("device_readiness", "load_slo") else None


def in_scope(plan: Plan, chosen: Selection, aspects: Sequence[str] = ()) -> list[Criterion]:
    """The plan criteria a run with this selection (and ``--aspect``s) may feed."""
    fed = chosen.fed(plan)
    found = []
    for c in plan.criteria:
        if fed is not None and c.id not in fed:
            continue
        if aspects and (aspect_of(c) or "") not in aspects and aspect_of(c) is not None:
            continue
        found.append(c)
    return found


def endpoints_used(plan: Plan, chosen: Selection, aspects: Sequence[str] = ()) -> list[str]:
    """The ``environment`` fields (``fhir_base``, ``web_base``) the selected tests reach, in that order.

    By the kind of criterion (device checks ask the devices, the load asks ``fhir_base``) and else
    by its aspect (:data:`ASPECT_USES`). A tag selection that names no criterion could select any
    scenario of the aspects in scope, so it counts them all.
    """
    used: set[str] = set()
    for c in in_scope(plan, chosen, aspects):
        used |= set(KIND_USES.get(c.kind, ASPECT_USES.get(aspect_of(c), ASPECT_USES[None])))
    return [f for f in ("fhir_base", "web_base") if f in used]


def narrowed(loaded: LoadedPlan, chosen: Selection, reported: Iterable[str] = ()) -> LoadedPlan:
    """The plan a narrowed run is decided on: the selected criteria (those fed by ``--criterion``,
    else those with a result in ``reported``) and ``run_complete``. Not narrowed: the plan as it is."""
    if not chosen:
        return loaded
    fed = chosen.fed(loaded.plan)
    wanted = (set(fed) | set(chosen.criteria)) if fed is not None else set(reported)
    kept = [c for c in loaded.plan.criteria if c.id in wanted or c.kind in ALWAYS_KINDS]
    update: dict[str, Any] = {"criteria": kept}
    if not any(c.kind == "runbook" for c in kept):  # the runbook names criteria left out: not this run's
        update["runbook"] = None
    plan = loaded.plan.model_copy(update=update)
    return LoadedPlan(plan=plan, path=loaded.path, sha256=loaded.sha256)


def narrowed_for(run: Run, loaded: LoadedPlan) -> LoadedPlan:
    """The plan a run (chain) is decided on: narrowed as the run was (run.json); for a tag selection
    to the criteria its results fed."""
    chosen = Selection.recorded(run)
    if not chosen:
        return loaded
    reported: set[str] = set()
    if chosen.fed(loaded.plan) is None:
        from rehearsal.results import merge
        from rehearsal.run import chain

        merged = merge([r.results_dir for r in chain(run)])
        reported = {m.latest.criterion for m in merged if m.latest.criterion}
    return narrowed(loaded, chosen, reported)


# --- which criterion and tags a collected test has ---------------------------------------------


def criterion_of(plan: Plan, item: pytest.Item) -> str | None:
    """The criterion a test feeds: its ``criterion`` marker (a scenario's tag, a load SLO's), else
    for a device check the criterion of its device's kind (:meth:`Plan.device_criterion`)."""
    marker = item.get_closest_marker(CRITERION_TAG)
    if marker and marker.args and marker.args[0]:
        return str(marker.args[0])
    params = item.callspec.params if hasattr(item, "callspec") else {}
    site_id, device_id = params.get("site"), params.get("device")
    if isinstance(site_id, str) and isinstance(device_id, str):
        site = next((s for s in plan.sites if s.id == site_id), None)
        if site is not None:
            kind = next(
                (p.kind for p in site.printers if p.id == device_id),
                "workstation" if any(w.id == device_id for w in site.workstations) else None,
            )
            criterion = plan.device_criterion(kind) if kind else None
            return criterion.id if criterion else None
    return None


def tags_of(item: pytest.Item, criterion: str | None) -> set[str]:
    """The Gherkin tags of a scenario (its own and its feature's, without @) and ``criterion:ID``."""
    from rehearsal.pytest_plugin import scenario_of

    scenario = scenario_of(item)
    tags: set[str] = set()
    if scenario is not None:
        tags |= set(getattr(scenario, "tags", ()) or ())
        tags |= set(getattr(getattr(scenario, "feature", None), "tags", ()) or ())
    if criterion:
        tags.add(f"{CRITERION_TAG}:{criterion}")
    return tags


def keeps(plan: Plan, chosen: Selection, item: pytest.Item, fed: set[str] | None = None) -> bool:
    """Does the run keep this test: its criterion is the plan's (and in ``fed``, the criteria
    ``--criterion`` chose, when given), and it carries one of the chosen tags (if any)."""
    criterion = criterion_of(plan, item)
    if criterion is not None and plan.criterion(criterion) is None:
        return False  # the plan does not have the line it would feed: nothing runs for it
    params = item.callspec.params if hasattr(item, "callspec") else {}
    if criterion is None and params.get("device"):
        return False  # a device no device_readiness criterion of the plan counts
    if fed is not None and criterion not in fed:
        return False
    return not chosen.tags or bool(set(chosen.tags) & tags_of(item, criterion))


# --- the pytest plugin ------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rehearsal", "go-live rehearsal")
    group.addoption(
        "--rehearsal-criterion", metavar="ID", action="append", default=[], help="only what feeds it"
    )
    group.addoption(
        "--rehearsal-tag", metavar="TAG", action="append", default=[], help="only tests with the tag"
    )


def _selection(config: pytest.Config, plan: Plan) -> Selection:
    try:
        criteria, tags = config.getoption("--rehearsal-criterion"), config.getoption("--rehearsal-tag")
        return Selection.of(plan, criteria, tags)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    """Before the plugin writes what the run means to do (planned.txt): drop what is not selected."""
    from rehearsal.pytest_plugin import plan_for

    plan = plan_for(config)
    if plan is None:
        return
    chosen = _selection(config, plan)
    fed = chosen.fed(plan) if chosen.criteria else None
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if keeps(plan, chosen, item, fed) else drop).append(item)
    if chosen and not keep and items:
        said = [f"--criterion {c}" for c in chosen.criteria] + [f"--tag {t}" for t in chosen.tags]
        raise pytest.UsageError(f"{' '.join(said)}: selects no test of the plan at the sites in scope")
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def describe(chosen: Selection) -> str:
    """``criterion tech-fhir; tag writes`` for the operator's lines and the report's scope."""
    parts = [f"criterion {', '.join(chosen.criteria)}"] if chosen.criteria else []
    parts += [f"tag {', '.join(chosen.tags)}"] if chosen.tags else []
    return "; ".join(parts)
