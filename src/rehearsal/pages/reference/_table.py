"""Reading a results table the way a person reads it: one dict per row, keyed by column heading."""

from __future__ import annotations

from playwright.sync_api import Locator


def rows(table: Locator) -> list[dict[str, str]]:
    """Rows of a table as {column heading: cell text}; the "nothing here" placeholder row is skipped.

    Cell text is the text as stored (``text_content``), not as laid out, so a referral's
    line breaks and spaces come back exactly.
    """
    headings = [(h or "").strip() for h in table.locator("thead th").all_text_contents()]
    found = []
    for row in table.locator("tbody tr").all():
        cells = row.locator("td").all_text_contents()
        if len(cells) == len(headings):
            found.append(dict(zip(headings, cells, strict=True)))
    return found
