"""Where a criterion can apply: a site on the legacy EHR has no new-EHR workflows, a site without
label printers no label-printer readiness.

A per-site criterion that cannot have results at a site would otherwise stay *pending* there for
ever and keep the decision NO-GO. The plan says where each criterion applies:

- ``criteria[].system``: only at sites whose ``sites[].system`` is this EHR; default ``new``
  for aspect ``klinisk`` (the clinical workflows rehearsed are the new EHR's), else ``any``;
- a per-site ``load_slo`` criterion: only at sites with simulated users (:func:`rehearsal.load.load_sites`);
- the device kinds it is about: for ``device_readiness`` the kinds it counts
  (:meth:`rehearsal.plan.Plan.device_criterion`), for others ``criteria[].device_kinds``;
  the site needs at least one device of one of them;
- the local routines its scenarios rehearse (the feature files' ``@system:``, ``@lab_route:`` and
  ``@route:`` tags, :mod:`rehearsal.workflows.routines`): where none of its scenarios applies
  (no unit on the legacy EHR to refer to), nor does the criterion. A missing endpoint
  (``@needs:``) does not make it not applicable: a plan that forgot one stays pending;
- the plan's web UI adapter (``environment.adapters.web_ui``): a criterion of the clinical
  features that needs something the adapter declares it cannot do (``cannot``, e.g. no
  referrals: :data:`rehearsal.pages.web_ui.NEEDS`) applies nowhere, with the adapter's reason.

:func:`reason` says why not (in the plan's language), or None. The go/no-go decision shows such
a line as ``not_applicable`` with that reason, and the per-site tests are not generated there;
a line that does get results is judged on them, whatever the plan says.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from rehearsal import adapters, content
from rehearsal.pages import web_ui
from rehearsal.plan import Criterion, Plan, Site
from rehearsal.workflows import routines

_TEXT: dict[str, dict[str, Any]] = {
    "sv": {
        "legacy": "{site} arbetar ännu i det äldre journalsystemet (system: legacy); kriteriet gäller "
        "den nya journalen",
        "new": "{site} arbetar i den nya journalen (system: new); kriteriet gäller det äldre journalsystemet",
        "devices": "{site} har inga {kinds} i planen",
        "web_ui": "webbklienten (adapters.web_ui: {adapter}) kan inte det som kriteriet kräver: {why}",
        "no_site": "ingen plats i planen där kriteriet gäller: {why}",
        "no_load": "{site} har inga simulerade användare i lastprofilen (inga användare i den nya journalen "
        "med en roll i load.mix)",
        "or": " eller ",
        "kinds": {
            "document": "dokumentskrivare",
            "wristband": "armbandsskrivare",
            "label": "etikettskrivare",
            "workstation": "arbetsstationer",
        },
    },
    "en": {
        "legacy": "{site} still works in the legacy EHR (system: legacy); the criterion is about the new EHR",
        "new": "{site} works in the new EHR (system: new); the criterion is about the legacy EHR",
        "devices": "{site} has no {kinds} in the plan",
        "web_ui": "the web UI (adapters.web_ui: {adapter}) cannot do what the criterion needs: {why}",
        "no_site": "no site of the plan where the criterion applies: {why}",
        "no_load": "{site} has no simulated users in the load profile (no user on the new EHR with a role "
        "in load.mix)",
        "or": " or ",
        "kinds": {
            "document": "document printers",
            "wristband": "wristband printers",
            "label": "label printers",
            "workstation": "workstations",
        },
    },
}
NEVER = ("run_complete",)
"""Kinds that apply wherever the run is: the run itself."""


def kinds_at(site: Site) -> set[str]:
    """The kinds of checked device the site has in the plan."""
    found = {p.kind for p in site.printers}
    return found | ({"workstation"} if site.workstations else set())


def reason(plan: Plan, criterion: Criterion, site: Site) -> str | None:
    """Why `criterion` cannot apply at `site` (plan language), or None when it can."""
    if criterion.kind in NEVER:
        return None
    text = _TEXT.get(plan.language, _TEXT["en"])
    needs = criterion.needs_system
    if needs is not None and site.system != needs:
        return text[site.system].format(site=site.id)
    if criterion.kind == "load_slo" and criterion.per_site and plan.load is not None:
        from rehearsal.load import load_sites  # the load's own rule: whose users it simulates

        if site.id not in load_sites(plan):  # a legacy site has no new-EHR users: that is the reason
            return text["legacy" if site.system == "legacy" else "no_load"].format(site=site.id)
    kinds = plan.kinds_of(criterion)
    if kinds and not kinds & kinds_at(site):
        names = [text["kinds"].get(k, k) for k in sorted(kinds)]
        return text["devices"].format(site=site.id, kinds=text["or"].join(names))
    return _web_ui_reason(plan, criterion, text) or _routine_reason(plan, criterion, site)


#: The routine tags that depend on the site; ``needs`` (an endpoint the plan names) does not.
SITE_ROUTINES = ("system", "lab_route", "route")


def _routine_reason(plan: Plan, criterion: Criterion, site: Site) -> str | None:
    """Why none of the criterion's scenarios applies at `site` (their routine tags), or None."""
    scenarios = routine_tags(content.root() / "features").get(criterion.id, [])
    reasons = [routines.not_applicable(plan, site, wanted) for wanted in scenarios]
    if not reasons or not all(reasons):
        return None
    return "; ".join(dict.fromkeys(r for r in reasons if r))


@functools.cache
def routine_tags(features: Path) -> dict[str, list[dict[str, list[str]]]]:
    """Per criterion id, the site routine tags of each of its scenarios (feature and scenario tags)."""
    from pytest_bdd.feature import get_features  # pytest-bdd's own parser, as the scenarios use

    found: dict[str, list[dict[str, list[str]]]] = {}
    for feature in get_features(sorted(str(p) for p in features.rglob("*.feature"))):
        for scenario in feature.scenarios.values():
            tags = [t.partition(":") for t in (*feature.tags, *scenario.tags)]
            wanted = {name: [v for n, sep, v in tags if sep and n == name] for name in SITE_ROUTINES}
            for criterion_id in {v for n, sep, v in tags if sep and n == "criterion"}:
                found.setdefault(criterion_id, []).append(wanted)
    return found


def _web_ui_reason(plan: Plan, criterion: Criterion, text: dict[str, Any]) -> str | None:
    """Why the plan's web UI adapter cannot serve `criterion` (what it declared it cannot do), or None."""
    if criterion.id not in web_ui.NEEDS:
        return None
    adapter = plan.environment.adapter("web_ui")
    why = web_ui.missing(adapter, criterion.id, plan.language)
    name = adapters.chosen(plan.environment.adapters, "web_ui")
    return text["web_ui"].format(adapter=name, why=why) if why else None


def region_reason(plan: Plan, criterion: Criterion) -> str | None:
    """Why a region-wide `criterion` applies nowhere (no plan site qualifies), or None."""
    reasons = [reason(plan, criterion, site) for site in plan.sites]
    if not reasons or not all(reasons):
        return None
    text = _TEXT.get(plan.language, _TEXT["en"])
    return text["no_site"].format(why="; ".join(dict.fromkeys(r for r in reasons if r)))


def applicable_sites(plan: Plan, criterion: Criterion | None, sites: list[Site]) -> list[Site]:
    """The sites of `sites` where `criterion` applies (all of them without a criterion)."""
    if criterion is None:
        return list(sites)
    return [s for s in sites if reason(plan, criterion, s) is None]
