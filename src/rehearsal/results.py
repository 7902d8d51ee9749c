"""Reading the Allure results of a run chain, and merging reruns into one view.

A rehearsal run writes one ``*-result.json`` per test into ``<run>/allure-results``; a
rerun writes only what it repeated into its own folder. The go/no-go must look at the
chain as one: for every test (keyed by its stable id and site, :mod:`rehearsal.ids`, so a
renamed title is still the same test; a result from before ids by Allure's ``historyId``)
the newest result counts and the older ones are kept as retries, as the Allure report shows them.

Runs can be killed mid-write, so reading is tolerant: a truncated or garbled file is
skipped with a :class:`ResultWarning` naming the file, never a crash.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal import ids

STATUSES = ("passed", "failed", "broken", "skipped", "unknown")
FAILED = ("failed", "broken")


class ResultWarning(UserWarning):
    """A result file that could not be read; the rest of the folder still counts."""


@dataclass(frozen=True)
class TestResult:
    """One Allure test result, reduced to what the decision and the report need."""

    __test__ = False  # not a pytest test class, despite the name

    uuid: str
    history_id: str
    name: str
    full_name: str
    nodeid: str
    status: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    start: int | None = None
    stop: int | None = None
    message: str = ""
    attachments: tuple[tuple[str, str], ...] = ()
    results_dir: Path = field(default=Path("."), compare=False)
    tags: tuple[str, ...] = ()
    """Every Allure ``tag`` label (``labels`` keeps the first of a name only): a runbook step's tags."""

    @property
    def site(self) -> str | None:
        return self.labels.get("site") or None

    @property
    def criterion(self) -> str | None:
        return self.labels.get("criterion") or None

    @property
    def aspect(self) -> str | None:
        return self.labels.get("aspect") or None

    @property
    def device(self) -> str | None:
        return self.labels.get("device") or None

    @property
    def rehearsal_id(self) -> str | None:
        """The stable id (``klin-lab-order-01``, ``printer:sas-akut-dok1``); None before ids."""
        return self.labels.get(ids.LABEL) or None

    @property
    def key(self) -> str:
        """What this result is across runs and waves: ``id@site``; before ids, Allure's historyId."""
        return ids.key(self.rehearsal_id, self.site) if self.rehearsal_id else self.history_id

    @property
    def selector(self) -> str:
        """What a rerun names to run this test again: its key, or its node id for a result from before ids."""
        return ids.key(self.rehearsal_id, self.site) if self.rehearsal_id else self.nodeid

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    @property
    def finished_at(self) -> int:
        """Sort key for "which result is newer": stop, else start, else 0."""
        return self.stop if self.stop is not None else (self.start if self.start is not None else 0)


@dataclass(frozen=True)
class MergedResult:
    """The newest result of one test across the chain, with earlier attempts (oldest first)."""

    latest: TestResult
    retries: tuple[TestResult, ...] = ()

    @property
    def status(self) -> str:
        return self.latest.status

    @property
    def rerun_fixed(self) -> bool:
        """Passed now after an earlier failure: worth saying in the scorecard."""
        return self.latest.status == "passed" and any(r.failed for r in self.retries)


def read_results(results_dir: str | Path) -> list[TestResult]:
    """All readable ``*-result.json`` of one folder, oldest first; bad files are skipped with a warning."""
    folder = Path(results_dir)
    if not folder.is_dir():
        warnings.warn(f"{folder}: no allure-results folder; nothing read", ResultWarning, stacklevel=2)
        return []
    results: list[TestResult] = []
    for path in sorted(folder.glob("*-result.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            results.append(_from_json(data, folder))
        except (OSError, ValueError, TypeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(
                f"{path}: not a readable Allure result ({reason}); skipped", ResultWarning, stacklevel=2
            )
    results.sort(key=lambda r: (r.finished_at, r.uuid))
    return results


def merge(dirs_oldest_first: Iterable[str | Path]) -> list[MergedResult]:
    """One entry per test (its :attr:`TestResult.key`) across the folders: the latest stop wins,
    earlier ones become retries.

    A result from before ids joins the test with an id whose Allure historyId it shares (a run
    made before the upgrade, rerun after it). Ties on the stop time go to the later folder (a
    rerun beats its parent), then to file order.
    """
    read = [(index, r) for index, folder in enumerate(dirs_oldest_first) for r in read_results(folder)]
    by_history = {r.history_id: r.key for _, r in read if r.rehearsal_id}
    groups: dict[str, list[tuple[int, int, int, TestResult]]] = {}
    for seq, (index, result) in enumerate(read):
        group = result.key if result.rehearsal_id else by_history.get(result.history_id, result.key)
        groups.setdefault(group, []).append((result.finished_at, index, seq, result))
    merged = []
    for attempts in groups.values():
        attempts.sort(key=lambda a: a[:3])
        ordered = [a[3] for a in attempts]
        merged.append(MergedResult(latest=ordered[-1], retries=tuple(ordered[:-1])))
    merged.sort(key=lambda m: (m.latest.site or "", m.latest.full_name, m.latest.name, m.latest.history_id))
    return merged


def failed_nodeids(merged: Iterable[MergedResult]) -> list[str]:
    """Pytest node ids whose latest result failed or broke (as they were named when they ran)."""
    seen: dict[str, None] = {}
    for item in merged:
        if item.latest.failed and item.latest.nodeid:
            seen.setdefault(item.latest.nodeid, None)
    return list(seen)


def failed_selectors(merged: Iterable[MergedResult]) -> list[str]:
    """Keys (node ids, before ids) of the tests whose latest result failed: what ``rehearse rerun`` runs."""
    seen: dict[str, None] = {}
    for item in merged:
        if item.latest.failed and item.latest.selector:
            seen.setdefault(item.latest.selector, None)
    return list(seen)


def _from_json(data: dict[str, Any], folder: Path) -> TestResult:
    labels: dict[str, str] = {}
    for label in data.get("labels") or []:
        if isinstance(label, dict) and isinstance(label.get("name"), str) and label.get("value") is not None:
            labels.setdefault(label["name"], str(label["value"]))
    uuid = str(data.get("uuid") or "")
    if not uuid:
        raise ValueError("no uuid")
    status = data.get("status")
    details = data["statusDetails"] if isinstance(data.get("statusDetails"), dict) else {}
    attachments = tuple(
        (str(a.get("name") or a.get("source")), str(a["source"]))
        for a in _all_attachments(data)
        if isinstance(a, dict) and a.get("source")
    )
    return TestResult(
        uuid=uuid,
        history_id=str(data.get("historyId") or data.get("testCaseId") or uuid),
        name=str(data.get("name") or data.get("fullName") or uuid),
        full_name=str(data.get("fullName") or ""),
        nodeid=labels.get("nodeid", ""),
        status=status if status in STATUSES else "unknown",
        labels=labels,
        start=_int(data.get("start")),
        stop=_int(data.get("stop")),
        message=str(details.get("message") or ""),
        attachments=attachments,
        results_dir=folder,
        tags=tuple(
            str(label["value"])
            for label in data.get("labels") or []
            if isinstance(label, dict) and label.get("name") == "tag" and label.get("value") is not None
        ),
    )


def _all_attachments(node: dict[str, Any]) -> Iterable[Any]:
    """Attachments of the test and of its (nested) steps, in document order."""
    yield from node.get("attachments") or []
    for step in node.get("steps") or []:
        if isinstance(step, dict):
            yield from _all_attachments(step)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
