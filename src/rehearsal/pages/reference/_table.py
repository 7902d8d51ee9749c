"""Reading a results table the way a person reads it: one dict per row, keyed by column heading."""

from __future__ import annotations

from playwright.sync_api import Locator


def rows(table: Locator) -> list[dict[str, str]]:
    """Rows of a table as {column heading: cell text}; the "nothing here" placeholder row is skipped.

    Cell text is the text as stored (``text_content``), not as laid out, so a referral's
    line breaks and spaces come back exactly.
    """
    headings, body = table.evaluate(_READ)  # one round-trip, not one per row
    headings = [(h or "").strip() for h in headings]
    return [dict(zip(headings, cells, strict=True)) for cells in body if len(cells) == len(headings)]


#: The table's headings and each body row's cells, read in the page at once.
_READ = """table => [
  Array.from(table.querySelectorAll(':scope > thead th'), th => th.textContent),
  Array.from(table.querySelectorAll(':scope > tbody > tr'),
             tr => Array.from(tr.querySelectorAll(':scope > td'), td => td.textContent)),
]"""
