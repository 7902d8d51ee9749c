"""Fixtures for the harness's own tests: plans on free ports, a private reports folder."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"


_ISSUED: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before in this session (the OS may repeat itself)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ISSUED:
            _ISSUED.add(port)
            return port


_LOOPBACK_URL = re.compile(r"(://(?:127\.0\.0\.1|localhost)):(\d+)")


def _move_ports(node: Any, moved: dict[int, int]) -> Any:
    """Every loopback port of the plan (in URLs and `port:` fields) to a free one, the same
    port always to the same new one (so components that share a port still do)."""

    def new(port: int) -> int:
        return moved.setdefault(port, free_port())

    if isinstance(node, dict):
        return {
            k: new(v) if k == "port" and isinstance(v, int) else _move_ports(v, moved)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_move_ports(v, moved) for v in node]
    if isinstance(node, str):
        return _LOOPBACK_URL.sub(lambda m: f"{m.group(1)}:{new(int(m.group(2)))}", node)
    return node


@pytest.fixture
def make_plan(tmp_path: Path) -> Callable[..., Path]:
    """Write a copy of the demo plan on free ports; `edit(data)` may change it further."""

    def make(edit: Callable[[dict[str, Any]], None] | None = None, name: str = "plan.yaml") -> Path:
        data = _move_ports(yaml.safe_load(DEMO_PLAN.read_text(encoding="utf-8")), {})
        if edit:
            edit(data)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        attestations = DEMO_PLAN.with_name("demo.attestations.yaml")
        path.with_name(f"{path.stem}.attestations.yaml").write_bytes(attestations.read_bytes())
        return path

    return make
