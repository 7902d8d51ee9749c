"""Where a rehearsal's content is: features/, scenarios/, load/, hardware_checks/ and plans/.

Content is what a test lead reads and changes, so it is plain folders beside the code, not
modules inside the package. In a checkout (or an editable install) those are the
repository's; a non-editable ``pip install .`` carries a copy to ``<prefix>/share/
golive-rehearsal`` (``[tool.setuptools.data-files]`` in pyproject.toml), with the
``package.json`` from which the Allure report tool is installed there (``npm ci``).
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

#: Where a non-editable install puts the content (the install scheme's data folder).
INSTALLED = Path(sysconfig.get_path("data")) / "share" / "golive-rehearsal"
#: The repository this module was loaded from, when it was (``src/rehearsal/content.py``).
CHECKOUT = Path(__file__).resolve().parents[2]


def _has_content(folder: Path) -> bool:
    return (folder / "features").is_dir() and (folder / "scenarios").is_dir()


def root() -> Path:
    """The content folder: ``REHEARSAL_CONTENT``; else the nearest parent of the working
    directory holding content (a test lead's own copy); else the checkout this package runs
    from; else the installed copy."""
    given = os.environ.get("REHEARSAL_CONTENT")
    if given:
        return Path(given).resolve()
    for folder in (Path.cwd(), *Path.cwd().parents):
        if _has_content(folder):
            return folder
    if _has_content(CHECKOUT):
        return CHECKOUT
    return INSTALLED if _has_content(INSTALLED) else CHECKOUT


def is_installed_copy(folder: Path) -> bool:
    """True for the copy a non-editable install made: not a place to write reports into."""
    return folder.resolve() == INSTALLED.resolve()
