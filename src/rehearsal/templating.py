"""The harness's pages from Jinja2 templates (``rehearsal/templates/``): escaping is the template's.

The Python side builds a plain view (dicts of strings and numbers) and a template lays it
out, so no page is glued together from strings with an escape call beside every value:

- ``*.html`` and ``*.svg``: autoescaped (``select_autoescape``), every value is text unless a
  template marks it otherwise; a name like ``<script>`` from the target is shown, never run.
- ``*.md``: every value printed becomes one line of plain characters (``devtext.clean``: no
  control characters or line breaks, so a value cannot start a new list item or table row),
  and the ``cell`` filter escapes ``|`` for a table cell (``devtext.md_cell``).

    render("gonogo.html", **view) -> str
"""

from __future__ import annotations

import sys
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from rehearsal import devtext
from rehearsal.svg import num

_LOADER = PackageLoader("rehearsal", "templates")
_OPTIONS: dict[str, Any] = {
    "loader": _LOADER,
    "trim_blocks": True,
    "lstrip_blocks": True,
    "keep_trailing_newline": True,
    "undefined": StrictUndefined,
}


def _one_line(value: Any) -> str:
    """Markdown: what a template prints is one line however long (the pack's own text is not cut)."""
    return devtext.clean(str(value), limit=sys.maxsize)


def _md_cell(value: Any) -> str:
    return devtext.md_cell(str(value), limit=sys.maxsize)


_MARKUP = Environment(autoescape=select_autoescape(("html", "svg")), **_OPTIONS)
_MARKUP.filters["num"] = num
_MARKDOWN = Environment(autoescape=False, finalize=_one_line, **_OPTIONS)
_MARKDOWN.filters["cell"] = _md_cell


def render(name: str, **view: Any) -> str:
    """Render the template ``name`` with the view; ``.md`` templates as Markdown, others escaped."""
    env = _MARKDOWN if name.endswith(".md") else _MARKUP
    return env.get_template(name).render(**view)


__all__ = ["render"]
