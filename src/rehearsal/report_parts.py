"""The Allure report in parts: one single-file report per site, so each is a page a browser opens.

One single-file report of a whole region does not work: at 10,000 results over 20 sites
Allure 3 refuses it ("too large to be generated in the single file mode") after 7 minutes
and 5.8 GB, and the 289 MB page of a smaller region does not open usefully. So the report is
``allure-report/<part>/index.html`` per plan site and one ``central`` part for the region-wide
results, with ``allure-report/index.html`` linking them (:mod:`rehearsal.report`):

- each part is generated from its own results only (with the fixtures and attachments they
  hold), staged as hard links: Allure's time and memory grow with the part, not the region;
- an attachment larger than :data:`INLINE_MAX` (a Locust HTML report, a Playwright trace, a
  full-page screenshot of a long page) is kept beside the page in ``<part>/evidence/`` and the
  report names its path (a ``text/uri-list`` attachment) instead of embedding it;
- a part whose inputs are the same as when it was built (the same result files, the same
  settings) is not generated again: its folder is taken from the report it was built for
  (this run's earlier report, or its parent's), so a rerun after a one-site fix rebuilds
  that site only. Its Allure history is then the one it was built with.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal.gonogo import CENTRAL
from rehearsal.plan import Plan

INLINE_MAX = 256 * 1024
"""Attachments up to this size can be embedded in the page; larger ones are kept beside it."""
EMBED_BUDGET = 20 * 1024 * 1024
"""What one page embeds at most (27 MB as base64), smallest attachments first; the rest is kept
beside it. With ~11 MB of Allure's own data for 500 results the page stays under 50 MB."""
EVIDENCE_DIR = "evidence"
INPUTS_FILE = ".inputs.json"
"""In each part's folder: the digest of what it was built from, and the run it was built for."""


@dataclass(frozen=True)
class Part:
    """One page of the report: a plan site, or the region-wide results (``central``)."""

    id: str
    name: str
    site: str | None
    hsa_id: str | None = None


def central_part(plan: Plan) -> str:
    """The central part's id: ``central``, or ``central-region`` if a plan site is called ``central``."""
    return CENTRAL if CENTRAL not in {s.id for s in plan.sites} else "central-region"


def parts(plan: Plan, central_name: str) -> list[Part]:
    """Every plan site, then the central part."""
    return [Part(s.id, s.name, s.id, s.hsa_id) for s in plan.sites] + [
        Part(central_part(plan), central_name, None)
    ]


def part_of(site: str | None, plan_sites: Iterable[str], central: str) -> str:
    """The part a result with this ``site`` label is shown in: its site's, else the central one."""
    return site if site is not None and site in set(plan_sites) else central


@dataclass
class PartInputs:
    """The files one part is generated from, across the run chain (oldest folder first)."""

    results: list[Path] = field(default_factory=list)
    containers: list[Path] = field(default_factory=list)

    def digest(self, settings: str) -> str:
        """Changes when any file is added, removed, rewritten or touched, or the settings change."""
        h = hashlib.sha256(settings.encode("utf-8"))
        for path in [*self.results, *self.containers]:
            try:
                st = path.stat()
            except OSError:
                continue
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


def collect(results_dirs: Sequence[Path], plan: Plan, central: str) -> dict[str, PartInputs]:
    """Sort the chain's result and container files into parts, reading each file once.

    A result goes to its site's part (:func:`part_of`); a container (a fixture) goes to every
    part one of its tests is in. An unreadable file is left out here: the decision has
    warned about it already.
    """
    sites = {s.id for s in plan.sites}
    out: dict[str, PartInputs] = {}
    where: dict[str, set[str]] = {}
    for folder in results_dirs:
        for path in sorted(Path(folder).glob("*-result.json")):
            data = _read(path)
            if data is None:
                continue
            site = next(
                (
                    lb.get("value")
                    for lb in data.get("labels") or []
                    if isinstance(lb, dict) and lb.get("name") == "site"
                ),
                None,
            )
            part = part_of(site if isinstance(site, str) else None, sites, central)
            out.setdefault(part, PartInputs()).results.append(path)
            if isinstance(data.get("uuid"), str):
                where.setdefault(data["uuid"], set()).add(part)
    for folder in results_dirs:
        for path in sorted(Path(folder).glob("*-container.json")):
            data = _read(path)
            children = data.get("children") if data else None
            if not isinstance(children, list):
                continue
            for part in sorted({p for c in children if isinstance(c, str) for p in where.get(c, ())}):
                out[part].containers.append(path)
    return out


def stage(
    inputs: PartInputs,
    into: Path,
    evidence: Path,
    inline_max: int = INLINE_MAX,
    budget: int = EMBED_BUDGET,
) -> int:
    """Hard-link the part's files into `into` for Allure, embedding its attachments smallest
    first while each is at most `inline_max` and together at most `budget` bytes; the others
    go to `evidence` and the staged result names them there. Returns the attachments moved."""
    into.mkdir(parents=True)
    files = [
        (path, data) for path in [*inputs.results, *inputs.containers] if (data := _read(path)) is not None
    ]
    sizes: dict[tuple[Path, str], int] = {}
    for path, data in files:
        for attachment in _each_attachment(data):
            key = (path.parent, attachment["source"])
            with contextlib.suppress(OSError):  # a missing one: Allure says so, as it would have
                sizes.setdefault(key, (key[0] / key[1]).stat().st_size)
    embedded: set[tuple[Path, str]] = set()
    total = 0
    for key, size in sorted(sizes.items(), key=lambda kv: kv[1]):
        if size > inline_max or total + size > budget:
            break
        embedded.add(key)
        total += size
    moved = 0
    for path, data in files:
        changed = False
        for attachment in _each_attachment(data):
            key = (path.parent, attachment["source"])
            if key not in sizes:
                continue
            name = attachment["source"]
            if key in embedded:
                _link(path.parent / name, into / name)
                continue
            evidence.mkdir(parents=True, exist_ok=True)
            _link(path.parent / name, evidence / name)
            stub = f"{name}.uri"
            (into / stub).write_text(f"{EVIDENCE_DIR}/{name}\n", encoding="utf-8")
            label = attachment.get("name") or name
            attachment["name"] = f"{label} ({EVIDENCE_DIR}/{name}, {sizes[key] / 1e6:.1f} MB)"
            attachment["source"], attachment["type"] = stub, "text/uri-list"
            changed, moved = True, moved + 1
        if changed:
            (into / path.name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        else:
            _link(path, into / path.name)
    return moved


def _each_attachment(node: Any) -> Iterator[dict[str, Any]]:
    """Every attachment of a result or container, its steps' included, with a plain file name."""
    if not isinstance(node, dict):
        return
    for attachment in node.get("attachments") or []:
        name = attachment.get("source") if isinstance(attachment, dict) else None
        if isinstance(name, str) and name and "/" not in name and not name.startswith("."):
            yield attachment
    for value in node.values():
        if isinstance(value, list):
            for item in value:
                yield from _each_attachment(item)


def build_key(settings: str, allure_version: str) -> str:
    """What besides its files decides a part's page: its Allure config, what is embedded, Allure's version."""
    return f"{settings}\0{INLINE_MAX}\0{EMBED_BUDGET}\0{allure_version}"


def built_from(folder: Path) -> dict[str, Any]:
    """What a part's folder says it was built from (``{}`` when it says nothing readable)."""
    data = _read(folder / INPUTS_FILE)
    return data or {}


def reusable(candidates: Sequence[Path], part: str, digest: str) -> Path | None:
    """The first earlier report folder whose part `part` was built from exactly these inputs."""
    for report in candidates:
        folder = report / part
        if (folder / "index.html").is_file() and built_from(folder).get("digest") == digest:
            return folder
    return None


def copy_tree(source: Path, target: Path) -> None:
    """Hard links where the file system allows them, copies elsewhere."""
    shutil.copytree(source, target, copy_function=_link)


def _link(source: Path | str, target: Path | str) -> None:
    try:
        os.link(source, target)
    except OSError:
        with contextlib.suppress(shutil.SameFileError):
            shutil.copy2(source, target)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
