"""Fixtures for the harness's own tests: plans on free ports, a private reports folder."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _move_port(url: str, port: int) -> str:
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    return f"{scheme}://{host.rsplit(':', 1)[0]}:{port}" + (f"/{path}" if path else "")


@pytest.fixture
def make_plan(tmp_path: Path) -> Callable[..., Path]:
    """Write a copy of the demo plan on free ports; `edit(data)` may change it further."""

    def make(edit: Callable[[dict[str, Any]], None] | None = None, name: str = "plan.yaml") -> Path:
        data = yaml.safe_load(DEMO_PLAN.read_text(encoding="utf-8"))
        env = data["environment"]
        ehr = free_port()
        env["fhir_base"] = _move_port(env["fhir_base"], ehr)
        env["web_base"] = _move_port(env["web_base"], ehr)
        for site in data["sites"]:
            for printer in site.get("printers", []):
                printer["uri"] = _move_port(printer["uri"], free_port())
        if edit:
            edit(data)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        attestations = DEMO_PLAN.with_name("demo.attestations.yaml")
        path.with_name(f"{path.stem}.attestations.yaml").write_bytes(attestations.read_bytes())
        return path

    return make
