"""A non-editable install runs a rehearsal from any folder: the content travels with it.

`pip install .` (not editable) into a new virtual environment, `npm ci` of the Allure tool in
the installed content folder, then the reference hospital and a narrowed run from a folder
that holds nothing of the repository. To keep this to seconds, the new environment takes its
third-party dependencies from the project's `.venv` through a `.pth` line (they are not what
is tested) while golive-rehearsal itself, its reference hospital and its content are the
installed copies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "deps-from-dev-venv.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    source = tmp_path_factory.mktemp("source") / "golive-rehearsal"  # a copy: no build/ in the repo
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv*", "node_modules", "reports", "build", "*.egg-info"),
        symlinks=True,
    )
    pip = _run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            ".",
        ],
        cwd=source,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    share = venv / "share" / "golive-rehearsal"
    npm = _run(
        ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=share,
        env=dict(os.environ),
    )
    assert npm.returncode == 0, npm.stderr[-2000:]
    return venv


def test_the_installed_package_is_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = _run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import rehearsal, reference_hospital, rehearsal.content as c;"
            "print(rehearsal.__file__); print(reference_hospital.__file__); print(c.root())",
        ],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
    )
    code, hospital, content = where.stdout.splitlines()
    assert code.startswith(str(installed)) and hospital.startswith(str(installed)), where.stdout
    assert content == str(installed / "share" / "golive-rehearsal")
    assert (Path(content) / "features" / "klinisk").is_dir() and (
        Path(content) / "plans" / "demo.yaml"
    ).is_file()
    version = _run(
        [str(installed / "bin" / "rehearse"), "--version"], cwd=tmp_path, env={"PATH": os.environ["PATH"]}
    )
    assert version.returncode == 0 and version.stdout.startswith("rehearse "), version


def test_a_run_from_another_folder_with_the_installed_content_ends_go(
    installed: Path, make_plan, tmp_path
) -> None:
    def organisational_only(data: dict) -> None:  # a plan whose decision a short run can take
        data["criteria"] = [
            c for c in data["criteria"] if c.get("aspect") == "organisatorisk" and c["kind"] != "runbook"
        ]
        data.pop("runbook", None)

    plan = make_plan(organisational_only)  # the demo plan on free ports, beside its attestations
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("REHEARSAL_CONTENT", "REHEARSAL_PLAN")}
    env.update(PATH=f"{installed / 'bin'}:{os.environ['PATH']}", REHEARSAL_PASSWORD="demo-secret")
    rehearse = str(installed / "bin" / "rehearse")
    up = _run([rehearse, "reference", "up", "--plan", str(plan)], cwd=elsewhere, env=env)
    assert up.returncode == 0, up.stderr
    try:
        run = _run(
            [rehearse, "run", "--plan", str(plan), "--aspect", "organisatorisk"],
            cwd=elsewhere,
            env=env,
        )
    finally:
        _run([rehearse, "reference", "down"], cwd=elsewhere, env=env)
    decided = [p.read_text(encoding="utf-8") for p in (elsewhere / "reports").glob("*/*/gonogo.md")]
    assert run.returncode == 0, run.stdout + run.stderr[-3000:] + "".join(decided)[-3000:]
    assert run.stdout.startswith("GO"), run.stdout
    reports = elsewhere / "reports"  # not in the installed copy
    assert list(reports.glob("*/*/gonogo.html")) and list(reports.glob("*/*/allure-report/index.html"))
    # the content can only have come from the installed copy: the other test shows c.root() is it
    # from a folder like this one, and nothing of the repository is on this run's path
    assert list(reports.glob("*/*/allure-results/*-result.json"))
