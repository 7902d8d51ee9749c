"""The step screenshots of a run, by the step's status, and their sizes (read from the JPEG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VIEWPORT = (1280, 720)
"""pytest-playwright's default viewport, which a rehearsal keeps."""


def picture_sizes(run_dir: Path) -> dict[str, set[tuple[int, int]]]:
    """(width, height) of the step screenshots in the run's results, by the step's status."""
    folder = run_dir / "allure-results"
    found: dict[str, set[tuple[int, int]]] = {}

    def walk(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            for attachment in step.get("attachments", []):
                if attachment.get("type", "").startswith("image/jp"):
                    size = jpeg_size(folder / attachment["source"])
                    found.setdefault(step.get("status", ""), set()).add(size)
            walk(step.get("steps", []))

    for path in folder.glob("*-result.json"):
        walk(json.loads(path.read_text(encoding="utf-8")).get("steps", []))
    return found


def jpeg_size(path: Path) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    data, at = path.read_bytes(), 2
    while at + 9 <= len(data):
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(data[at + 5 : at + 7], "big")
        at += 2 + length
    raise AssertionError(f"{path.name}: no start-of-frame segment")
