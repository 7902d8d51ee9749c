"""Evidence: the only module that talks to Allure.

Steps, checks and probes say *what* they found through these functions; how it lands in
the report (labels, parameters, attachments) is decided here, so the go/no-go and the
report can slice every result the same way (see docs/design.md, Evidence conventions).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import allure

LABELS = ("aspect", "site", "severity", "criterion", "device", "rehearsal", "run", "nodeid", "attestation")
_SEVERITY = {
    "blocker": allure.severity_level.BLOCKER,
    "critical": allure.severity_level.CRITICAL,
    "normal": allure.severity_level.NORMAL,
    "minor": allure.severity_level.MINOR,
}


def tag(**labels: str | None) -> None:
    """Label the running test; `site` also becomes a parameter so sites never merge as retries."""
    for name, value in labels.items():
        if value is None:
            continue
        if name not in LABELS:
            raise ValueError(f"unknown evidence label {name!r}; known: {', '.join(LABELS)}")
        if name == "severity":
            allure.dynamic.severity(_SEVERITY.get(value, allure.severity_level.NORMAL))
            continue
        allure.dynamic.label(name, value)
        if name == "aspect":
            allure.dynamic.epic(value)
        elif name == "site":
            allure.dynamic.parameter("site", value)
            allure.dynamic.tag(f"site:{value}")
        elif name == "device":
            allure.dynamic.parameter("device", value)


def title(text: str) -> None:
    allure.dynamic.title(text)


def describe(text: str) -> None:
    allure.dynamic.description(text)


@contextmanager
def step(text: str) -> Iterator[None]:
    with allure.step(text):
        yield


def attach_json(name: str, data: Any) -> None:
    allure.attach(
        json.dumps(data, ensure_ascii=False, indent=2, default=str),
        name=name,
        attachment_type=allure.attachment_type.JSON,
    )


def attach_text(name: str, text: str) -> None:
    allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


def attach_png(name: str, data: bytes) -> None:
    allure.attach(data, name=name, attachment_type=allure.attachment_type.PNG)


def attach_file(name: str, path: str | Path) -> None:
    """Attach a file by its suffix (.html, .png, .zip, .json, .txt, .csv)."""
    kinds = {
        ".html": allure.attachment_type.HTML,
        ".png": allure.attachment_type.PNG,
        ".json": allure.attachment_type.JSON,
        ".csv": allure.attachment_type.CSV,
        ".txt": allure.attachment_type.TEXT,
        ".zip": None,
    }
    path = Path(path)
    kind = kinds.get(path.suffix.lower())
    if kind is None:
        allure.attach.file(str(path), name=name, extension=path.suffix.lstrip(".") or None)
    else:
        allure.attach.file(str(path), name=name, attachment_type=kind)
