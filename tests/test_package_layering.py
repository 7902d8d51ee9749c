"""The harness and the reference hospital are two packages with a one-way seam.

The reference hospital is our test bench, not the product: it may use the harness's public
modules (plan, identities, clients), but the harness reaches it only where `rehearse demo`,
`reference` and `fault` start it, inside those commands' functions. Read from the source with
`ast`, so a new module-level import fails here and not in a user's non-editable install.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
HARNESS, HOSPITAL = "rehearsal", "reference_hospital"
#: The harness modules allowed to start the reference hospital (inside a function only).
STARTERS = {"rehearsal.cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, at module level?, line) for every import in the file, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top, node.lineno))
            # `from reference_hospital import control` imports the submodule too
            found += [(f"{node.module}.{alias.name}", id(node) in top, node.lineno) for alias in node.names]
    return found


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / package).rglob("*.py"))}


def test_the_harness_imports_the_reference_hospital_only_where_it_starts_it() -> None:
    offending = []
    for name, path in _modules(HARNESS).items():
        for module, at_top, line in _imports(path):
            if module.split(".")[0] != HOSPITAL:
                continue
            if at_top or name not in STARTERS:
                offending.append(f"{path.relative_to(SRC)}:{line}: imports {module}")
    assert not offending, "\n".join(offending)
    # the seam exists: the starter does reach it (else this test guards nothing)
    assert any(m.startswith(HOSPITAL) for m, _, _ in _imports(_modules(HARNESS)["rehearsal.cli"]))


def test_the_reference_hospital_uses_only_public_names_of_the_harness() -> None:
    private = []
    for path in _modules(HOSPITAL).values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == HARNESS:
                private += [
                    f"{path.relative_to(SRC)}:{node.lineno}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
    assert not private, "\n".join(private)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (depth-first, colours), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize(
    "package, lazy_too",
    # the hospital's `ehr` <-> `ehr_faults` <-> `fhir_api` circle hid in lazy imports: count those there
    [(HARNESS, False), (HOSPITAL, True)],
)
def test_no_import_cycle_inside_either_package(package: str, lazy_too: bool) -> None:
    modules = _modules(package)
    graph = {
        name: {
            m
            for m, at_top, _ in _imports(path)
            if m in modules and m != name and m != package and (at_top or lazy_too)
        }
        for name, path in modules.items()
    }
    assert graph, package
    cycle = _cycle(graph)
    assert cycle is None, f"{package}: import cycle " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
