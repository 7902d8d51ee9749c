"""The adapter registry: built-ins by name, third parties by entry point, plan errors by line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rehearsal import adapters
from rehearsal.plan import PlanError, load_plan


def _third_party(root: Path) -> Path:
    """A tiny installed distribution (dist-info + module) on a path of its own, as pip would leave it."""
    site = root / "site"
    (site / "acme_witness.py").parent.mkdir(parents=True)
    (site / "acme_witness.py").write_text("class AcmeWitness:\n    kind = 'acme'\n", encoding="utf-8")
    info = site / "acme_witness-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-witness\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[rehearsal.adapters]\nprint_witness:acme = acme_witness:AcmeWitness\nnot-an-interface:x = os:path\n",
        encoding="utf-8",
    )
    return site


def test_an_entry_point_adapter_is_found_and_loaded_without_touching_the_harness(tmp_path: Path) -> None:
    site = _third_party(tmp_path)
    probe = textwrap.dedent(
        """
        from rehearsal import adapters
        print(adapters.available("print_witness"))
        print(adapters.resolve("print_witness", "acme").kind)
        print(adapters.check("not-an-interface", "x") is not None)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert "acme" in out[0]
    assert out[1:] == ["acme", "True"]


def test_an_unknown_adapter_is_one_line_naming_what_is_available() -> None:
    with pytest.raises(adapters.AdapterError) as err:
        adapters.resolve("print_witness", "no-such-adapter")
    assert "no print_witness adapter named 'no-such-adapter'" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(adapters.AdapterError, match="unknown interface 'printer'"):
        adapters.resolve("printer", "x")


def test_a_plan_naming_an_unknown_adapter_fails_at_its_line(make_plan) -> None:
    path = make_plan(lambda data: data["environment"].update(adapters={"web_ui": "nonesuch"}))
    with pytest.raises(PlanError) as err:
        load_plan(path)
    text = str(err.value)
    assert "environment.adapters" in text and "nonesuch" in text
    assert f"{path}:" in text
