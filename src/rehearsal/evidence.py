"""Evidence: the only module that talks to Allure.

Steps, checks and probes say *what* they found through these functions; how it lands in
the report (labels, parameters, attachments) is decided here, so the go/no-go and the
report can slice every result the same way (see docs/design.md, Evidence conventions).

Nothing reaches ``allure-results`` unredacted (docs/design.md, Secrets): :func:`redact_results`
turns allure-pytest's own file writer into :class:`RedactingFileLogger`, so every result and
container (titles, steps, parameters, failure messages and tracebacks) and every attachment
(text, JSON, zips such as Playwright traces) passes :mod:`rehearsal.redact` on its way to disk,
whoever called ``allure`` — these functions, pytest-bdd or allure-pytest itself.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import allure
import allure_commons
from allure_commons.logger import AllureFileLogger
from attr import asdict

from rehearsal import ids, redact

LABELS = (
    "aspect", "site", "severity", "criterion", "device", "rehearsal", "run", "nodeid", "rehearsal_id",
    "attestation", "probe",
)  # fmt: skip
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


def attach_jpeg(name: str, data: bytes) -> None:
    allure.attach(data, name=name, attachment_type=allure.attachment_type.JPG)


def attach_file(name: str, path: str | Path) -> None:
    """Attach a file by its suffix (.html, .png, .svg, .zip, .json, .txt, .csv)."""
    kinds = {
        ".html": allure.attachment_type.HTML,
        ".png": allure.attachment_type.PNG,
        ".svg": allure.attachment_type.SVG,
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


class RedactingFileLogger(AllureFileLogger):
    """allure-pytest's file writer with :mod:`rehearsal.redact` between every item and the disk.

    Same files, same names, same atomic ``.tmp`` then rename; only the content is redacted
    (results and containers field by field, so the JSON stays valid; attachments as text,
    bytes or zip archives by what they are).
    """

    def _report_item(self, item: Any) -> None:
        indent = 4 if os.environ.get("ALLURE_INDENT_OUTPUT") else None
        filename = item.file_pattern.format(prefix=uuid.uuid4())
        data = redact.json_value(asdict(item, filter=lambda _, v: v or v is False))
        stable = _stable_id(data)
        if stable:  # Allure 3 keys a test's history and retries on it: a renamed title keeps both
            data["testCaseId"] = ids.allure_test_case_id(stable)
        tmp = self._report_dir / f"{filename}.tmp"
        with open(tmp, "w", encoding="utf8") as out:
            json.dump(data, out, indent=indent, ensure_ascii=False)
        os.replace(tmp, self._report_dir / filename)

    @allure_commons.hookimpl
    def report_attached_file(self, source: Any, file_name: str) -> None:
        self._write(file_name, redact.current().bytes_by_kind(Path(source).read_bytes()))

    @allure_commons.hookimpl
    def report_attached_data(self, body: str | bytes, file_name: str) -> None:
        masked = (
            redact.text(body).encode("utf-8")
            if isinstance(body, str)
            else redact.current().bytes_by_kind(body)
        )
        self._write(file_name, masked)

    def _write(self, file_name: str, content: bytes) -> None:
        tmp = self._report_dir / f"{file_name}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, self._report_dir / file_name)


def _stable_id(data: Any) -> str | None:
    labels = data.get("labels") if isinstance(data, dict) else None
    for label in labels or []:
        if isinstance(label, dict) and label.get("name") == ids.LABEL and label.get("value"):
            return str(label["value"])
    return None


def redact_results() -> None:
    """Make allure-pytest's file writer(s) in this process redact what they write (idempotent).

    The writer stays the same registered object (allure-pytest unregisters it at the end of
    the session by that object); it is re-registered so the redacting methods are the hooks.
    """
    manager = allure_commons.plugin_manager
    for plugin in list(manager.get_plugins()):
        if type(plugin) is AllureFileLogger:
            manager.unregister(plugin)
            plugin.__class__ = RedactingFileLogger
            manager.register(plugin)
