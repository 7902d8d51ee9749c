"""The small JSONPath subset the monitoring probe reads an engine's JSON with (no dependency).

Every integration engine shows its queues in its own JSON (Mirth's channel statistics, a
Rhapsody or Cloverleaf REST face, a home-grown status page), so the plan says where to look.
Supported, and nothing else (a plan using more fails at its line):

====================  ===================================================================
``$``                 the document (every path starts with it)
``.name``             a member (letters, digits, ``_`` and ``-``)
``['name']``          a member with any other characters
``[3]``, ``[-1]``     an array element
``[*]``               every element of an array (or every value of an object)
``[?(@.a.b=='x')]``   the elements whose member path equals a string (``'…'``) or number
====================  ===================================================================

    path = parse("$.channels[?(@.name=='catch-all')].queued")   # ValueError naming the problem
    values(path, document) -> list                              # every value found, in order
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)")
_QUOTED = re.compile(r"\['((?:[^'\\]|\\.)*)'\]")
_INDEX = re.compile(r"\[(-?[0-9]+)\]")
_STAR = re.compile(r"\[\*\]|\.\*")
_FILTER = re.compile(
    r"\[\?\(@((?:\.[A-Za-z_][A-Za-z0-9_-]*)+)\s*==\s*(?:'((?:[^'\\]|\\.)*)'|(-?[0-9]+(?:\.[0-9]+)?))\)\]"
)


@dataclass(frozen=True)
class Step:
    kind: str  # member | index | all | filter
    key: Any = None
    where: tuple[str, ...] = ()  # filter: the member path under @
    equals: Any = None


def parse(path: str) -> tuple[Step, ...]:
    """The steps of ``path``; ValueError saying where it leaves the subset."""
    if not path.startswith("$"):
        raise ValueError(f"JSON path {path!r} must start with $")
    steps: list[Step] = []
    at = 1
    while at < len(path):
        rest = path[at:]
        if m := _STAR.match(rest):
            steps.append(Step("all"))
        elif m := _NAME.match(rest):
            steps.append(Step("member", m.group(1)))
        elif m := _QUOTED.match(rest):
            steps.append(Step("member", re.sub(r"\\(.)", r"\1", m.group(1))))
        elif m := _INDEX.match(rest):
            steps.append(Step("index", int(m.group(1))))
        elif m := _FILTER.match(rest):
            text, number = m.group(2), m.group(3)
            equals: Any = re.sub(r"\\(.)", r"\1", text) if text is not None else float(number)
            steps.append(Step("filter", where=tuple(m.group(1)[1:].split(".")), equals=equals))
        else:
            raise ValueError(
                f"JSON path {path!r}: {rest[:20]!r} is outside the supported subset "
                "($, .name, ['name'], [n], [*], [?(@.name=='value')])"
            )
        at += m.end()
    return tuple(steps)


def values(steps: tuple[Step, ...], document: Any) -> list[Any]:
    """Every value the path reaches in ``document`` (missing members are simply not there)."""
    found = [document]
    for step in steps:
        found = [v for node in found for v in _apply(step, node)]
    return found


def _apply(step: Step, node: Any) -> list[Any]:
    if step.kind == "member":
        return [node[step.key]] if isinstance(node, dict) and step.key in node else []
    if step.kind == "index":
        if isinstance(node, list) and -len(node) <= step.key < len(node):
            return [node[step.key]]
        return []
    items = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
    if step.kind == "all":
        return items
    return [item for item in items if _equal(_member(item, step.where), step.equals)]


def _member(node: Any, where: tuple[str, ...]) -> Any:
    for key in where:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _equal(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, float):
        return isinstance(value, int | float) and not isinstance(value, bool) and float(value) == wanted
    return value == wanted
