"""Attestations: steps that only a person can confirm, recorded with who and when.

Some of a rehearsal is people, not systems: the downtime routine was practised, the
message reached the ward, the test incident was escalated in time. Such a step asks for
an attestation; without one the scenario is *pending* (never passed), and the go/no-go
shows it as outstanding. Attestations are kept per run (``attestations.jsonl``) and
read along the run chain, so a rerun sees what was attested for its parent; a file of
attestations (YAML list) can also be supplied up front.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rehearsal.errors import UsageError

if TYPE_CHECKING:
    from rehearsal.results import MergedResult

FILE = "attestations.jsonl"
PENDING = "väntar på intygande"


@dataclass(frozen=True)
class Attestation:
    item: str
    by: str
    ok: bool
    site: str | None = None
    note: str = ""
    at: str = ""

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.item, self.site)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(run_dir: Path, attestation: Attestation) -> Attestation:
    if not attestation.by.strip():
        raise UsageError("an attestation needs the name of who attests (--by NAME)")
    stamped = attestation if attestation.at else Attestation(**{**asdict(attestation), "at": now()})
    line = json.dumps(asdict(stamped), ensure_ascii=False) + "\n"
    with (run_dir / FILE).open("a", encoding="utf-8") as out:
        out.write(line)
        out.flush()
        os.fsync(out.fileno())
    return stamped


def _from_mapping(data: object, where: str) -> Attestation:
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping with item, by, ok")
    try:
        return Attestation(
            item=str(data["item"]),
            by=str(data["by"]),
            ok=bool(data["ok"]),
            site=str(data["site"]) if data.get("site") else None,
            note=str(data.get("note") or ""),
            at=str(data.get("at") or ""),
        )
    except KeyError as exc:
        raise UsageError(f"{where}: attestation lacks {exc.args[0]!r}") from None


def read(paths: Iterable[Path]) -> dict[tuple[str, str | None], Attestation]:
    """Every attestation in these files, the latest per (item, site) winning.

    A .yaml/.yml file holds a list; anything else is one JSON object per line (a torn
    last line from an interrupted write is skipped, the rest kept).
    """
    found: dict[tuple[str, str | None], Attestation] = {}
    for path in paths:
        if not path.exists():
            continue
        if path.suffix in (".yaml", ".yml"):
            try:
                items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            except yaml.YAMLError as exc:
                raise UsageError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
            if not isinstance(items, list):
                raise UsageError(f"{path}: expected a list of attestations")
            entries = [_from_mapping(d, f"{path}: entry {i + 1}") for i, d in enumerate(items)]
        else:
            entries = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    entries.append(_from_mapping(json.loads(line), f"{path}:{n}"))
                except (ValueError, UsageError):
                    continue
        for entry in entries:
            found[entry.key] = entry
    return found


def lookup(
    found: dict[tuple[str, str | None], Attestation], item: str, site: str | None
) -> Attestation | None:
    """An attestation for this site, or one for the item region-wide."""
    return found.get((item, site)) or found.get((item, None))


@dataclass(frozen=True)
class Seen:
    """An attestation as a report saw it. ``counted`` once the chain's result for that step took it
    in; one made after its step ran (in the console, by ``rehearse attest``) waits for the rerun
    that repeats the step, and the go/no-go says so instead of hiding it until then."""

    attestation: Attestation
    counted: bool

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.attestation), "counted": self.counted}


def seen(files: Iterable[Path], merged: Iterable[MergedResult]) -> list[Seen]:
    """Every attestation of these files (latest per item and site), and whether it counted yet."""
    waiting = {
        (str(m.latest.labels["attestation"]), m.latest.site)
        for m in merged
        if m.latest.status == "skipped" and m.latest.labels.get("attestation")
    }
    return [
        Seen(a, counted=not any(item == a.item and a.site in (None, site) for item, site in waiting))
        for a in sorted(read(files).values(), key=lambda a: a.at)
    ]
