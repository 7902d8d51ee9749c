"""Waivers: failures (or lines still without results) the go/no-go panel accepted as known
risks, by whom and until when.

A waiver names a criterion (and optionally one site), a reason, who accepted it, the date
it was accepted and its expiry. It lives in the plan (``waivers:``) or in a separate YAML
file (``waivers_file:``, relative to the plan) so the panel can accept a risk late without
touching the plan the run was made with; ``rehearse report`` reads both every time.

A waiver counts from its date through its expiry (inclusive). It never turns a failure
into a pass: a failed or pending line it covers becomes ``waived`` and the decision says
"GO with N waivers" when it rests on them. Once expired it stops counting and the line
blocks again. A line that is not applicable needs no waiver.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import TypeAdapter, ValidationError

from rehearsal.plan import Plan, PlanError, Waiver, _line_of

State = Literal["valid", "expired", "not_yet_valid"]
CENTRAL = "central"


def state(waiver: Waiver, today: date) -> State:
    """Whether the waiver counts on `today` (from its date through its expiry, inclusive)."""
    if today > waiver.expiry:
        return "expired"
    if today < waiver.date:
        return "not_yet_valid"
    return "valid"


def covers(waiver: Waiver, criterion: str, site: str | None) -> bool:
    """Does the waiver name this criterion at this site? A waiver without a site covers every site."""
    return waiver.criterion == criterion and (waiver.site is None or waiver.site == (site or CENTRAL))


def covering(waivers: Iterable[Waiver], criterion: str, site: str | None, today: date) -> Waiver | None:
    """The first waiver valid today that covers the criterion at the site, if any."""
    return next((w for w in waivers if covers(w, criterion, site) and state(w, today) == "valid"), None)


def load_waivers(plan: Plan, plan_path: str | Path | None = None) -> tuple[Waiver, ...]:
    """The plan's waivers followed by those of its ``waivers_file``.

    Raises PlanError with ``file:line: field: message`` for every problem in the file (a
    missing file, bad YAML, a waiver naming a criterion or site the plan does not have).
    """
    waivers = list(plan.waivers)
    if not plan.waivers_file:
        return tuple(waivers)
    base = Path(plan_path).parent if plan_path else Path.cwd()
    path = base / plan.waivers_file
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise PlanError([f"{path}: cannot read waivers_file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise PlanError([f"{path}:1: (file): not UTF-8 text ({exc.reason})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlanError([f"{path}:{mark.line + 1 if mark else 1}: (yaml): {problem}"]) from None
    if isinstance(data, dict) and set(data) == {"waivers"}:  # `waivers:` as in the plan, also accepted
        data = data["waivers"]
        root = next((v for k, v in root.value if k.value == "waivers"), root) if root else root
    if data is None:
        return tuple(waivers)
    if not isinstance(data, list):
        raise PlanError([f"{path}:1: (waivers): expected a list of waivers, got {type(data).__name__}"])
    try:
        from_file = TypeAdapter(list[Waiver]).validate_python(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "required field is missing"
            elif err["type"] == "extra_forbidden":
                message = f"unknown field (known: {', '.join(Waiver.model_fields)})"
            field = ".".join(str(p) for p in loc) or "(waivers)"
            problems.append(f"{path}:{_line_of(root, loc)}: {field}: {message}")
        raise PlanError(problems) from None
    criteria = {c.id for c in plan.criteria}
    sites = {s.id for s in plan.sites} | {CENTRAL}
    problems = []
    for i, waiver in enumerate(from_file):
        if waiver.criterion not in criteria:
            line = _line_of(root, (i, "criterion"))
            problems.append(f"{path}:{line}: {i}.criterion: no criterion {waiver.criterion!r} in the plan")
        if waiver.site is not None and waiver.site not in sites:
            line = _line_of(root, (i, "site"))
            problems.append(f"{path}:{line}: {i}.site: no site {waiver.site!r} in the plan")
    if problems:
        raise PlanError(problems)
    return tuple(waivers + from_file)
