"""Stable ids: what a result *is*, independent of its title and of where its code lives.

pytest-bdd builds a scenario's node id from its Swedish title
(``test_en_användare_beställer_ett_labbprov…[sas-boras]``), so fixing a typo in a title would
orphan the item's history, its place in "what changed" and a rerun's selection. Like
Inferno's test ids, every result instead carries an id chosen once that never changes:

- a scenario: its ``@id:`` tag in the feature file (``@id:klin-lab-order-01``: the aspect's
  prefix ``org``/``klin``/``tek``, a short slug, a number), required on every scenario and
  unique across ``features/`` (:func:`check_features`: collection stops with one line naming
  the file and line otherwise);
- a device check: ``printer:<device>`` or ``workstation:<device>`` (the plan's device id);
- a load SLO: ``slo:<path>-<slo>`` (``slo:patient-search-p95``; judged per site, the key adds it);
- any other test: its node id (named in code, never from a title).

The id is the Allure label ``rehearsal_id``; with the site it makes the **key** ``id@site``
(just ``id`` for a central item) that merging, history, "what changed" and reruns go by.
A result written before ids existed has no label and keeps its old key (Allure's historyId,
the node id for a rerun), so an existing reports folder still reads.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TAG = "id"
"""The feature tag: ``@id:klin-lab-order-01``."""
MARKER = "rehearsal_id"
"""The pytest marker (and Allure label) that carries the id."""
LABEL = "rehearsal_id"
PLANNED_KEYS_FILE = "planned-keys.txt"
"""Beside ``planned.txt`` (node ids) in the run folder: the key of every planned test, same order."""
PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+")
EXAMPLE = "@id:klin-lab-order-01"


def key(rehearsal_id: str, site: str | None) -> str:
    """``id@site``, or the id alone for an item that is not per site."""
    return f"{rehearsal_id}@{site}" if site else rehearsal_id


def id_of_key(item_key: str) -> str:
    """The id part of a key (the key itself when it names no site)."""
    return item_key.rpartition("@")[0] or item_key


def device_id(kind: str, device: str) -> str:
    """``printer:sas-akut-dok1``: the plan's device id, which a changed URI or title leaves alone."""
    return f"{kind}:{device}"


def item_id(item: Any) -> str:
    """The stable id of a collected test item (see the module docstring for where it comes from)."""
    marker = item.get_closest_marker(MARKER)
    if marker is not None and marker.args:
        return str(marker.args[0])
    params = item.callspec.params if hasattr(item, "callspec") else {}
    path, slo = params.get("load_path"), params.get("slo")
    if path is not None and slo:
        return f"slo:{path.id}-{str(slo).replace('_', '-')}"
    return str(item.nodeid)


def item_site(item: Any) -> str | None:
    """The plan site a test item runs for: its ``site`` (or a load SLO's ``load_site``) parameter, if any."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    site = params.get("site", params.get("load_site"))
    if site is None:
        return None
    return str(getattr(site, "id", site))


def item_key(item: Any) -> str:
    return key(item_id(item), item_site(item))


def allure_test_case_id(rehearsal_id: str) -> str:
    """Allure's test case id for a stable id: Allure 3 keys a test's history and retries on it."""
    return hashlib.md5(f"{LABEL}={rehearsal_id}".encode()).hexdigest()


def tag_value(tags: Iterable[str]) -> list[str]:
    """The values of the ``id:`` tags among pytest-bdd tag names (without the ``@``)."""
    return [value for name, sep, value in (t.partition(":") for t in tags) if sep and name == TAG]


def check_features(features_dir: Path, shown_from: Path | None = None) -> str | None:
    """One line naming the first problem with the scenario ids under `features_dir`, or None.

    Every scenario needs exactly one ``@id:`` tag of the form ``aspect-slug-NN``, no two
    scenarios may share one, and a feature-level ``@id`` (which every scenario would inherit)
    is refused. Files are named relative to `shown_from` (the content root) where they can be.
    """
    from pytest_bdd.feature import get_features  # pytest-bdd's own parser; only where features are read

    files = sorted(str(p) for p in Path(features_dir).rglob("*.feature"))
    seen: dict[str, str] = {}
    problems: list[str] = []

    def where(filename: str, line: int) -> str:
        path = Path(filename)
        if shown_from is not None and path.is_relative_to(shown_from):
            path = path.relative_to(shown_from)
        return f"{path}:{line}"

    for feature in sorted(get_features(files), key=lambda f: f.filename):
        if tag_value(feature.tags):
            problems.append(
                f"{where(feature.filename, feature.line_number)}: an @id tag belongs on each scenario, "
                "not on the feature"
            )
        for scenario in sorted(feature.scenarios.values(), key=lambda s: s.line_number):
            at = where(feature.filename, scenario.line_number)
            found = tag_value(scenario.tags)
            if not found:
                problems.append(
                    f"{at}: scenario {scenario.name!r} has no stable id; tag it once, e.g. {EXAMPLE}, "
                    "and never change it"
                )
                continue
            if len(found) > 1:
                problems.append(f"{at}: scenario {scenario.name!r} has {len(found)} @id tags; give it one")
                continue
            value = found[0]
            if not PATTERN.fullmatch(value):
                problems.append(
                    f"{at}: @id:{value} is not a stable id (lower-case words joined by '-', e.g. {EXAMPLE})"
                )
            elif value in seen:
                problems.append(f"{at}: @id:{value} is already the id of the scenario at {seen[value]}")
            else:
                seen[value] = at
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more
