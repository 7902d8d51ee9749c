"""Broken plans, generated: whatever the file holds, loading ends in PlanError lines, never a traceback."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rehearsal.plan import PlanError, load_plan

DEMO = yaml.safe_load((Path(__file__).resolve().parents[1] / "plans/demo.yaml").read_text(encoding="utf-8"))
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LINE = re.compile(r"^[^\n]+:\d+: [^:\n]+: .+$")
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.dates().map(str), st.just("19121212-1212"), st.just("SE2321000131-X1"),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def paths(node: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


ALL_PATHS = [p for p in paths(DEMO) if p]


def mutate(data: object, path: tuple, value: object, delete: bool) -> object:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def check(tmp: Path, text: str | bytes) -> None:
    plan = tmp / "plan.yaml"
    plan.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        load_plan(plan)
    except PlanError as exc:
        assert exc.problems and all(LINE.match(p) for p in exc.problems), exc.problems


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(ALL_PATHS), value=values, delete=st.booleans())
def test_a_field_changed_or_removed_is_a_plan_error_or_a_valid_plan(tmp_path, path, value, delete):
    check(tmp_path, yaml.dump(mutate(DEMO, path, value, delete), Dumper=DUMPER, allow_unicode=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200)), cut=st.integers(0, 4000))
def test_any_text_or_a_truncated_plan_is_a_plan_error(tmp_path, text, cut):
    demo = (Path(__file__).resolve().parents[1] / "plans/demo.yaml").read_bytes()
    check(tmp_path, demo[:cut] + (text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text))
