"""SAO, the Tryton web client GNU Health runs in: the few widgets every GNU Health screen is made of.

SAO draws every screen from the server's view definitions, so its widgets are the same on every
GNU Health screen: a login dialog, the menu tree, one tab per opened action with a toolbar of
titled buttons ("New", "Save", "Open related records" …), a search box ("Search"), list rows,
and modal dialogs for wizards and errors. Locators are by role, label and title, in SAO's and
GNU Health's own (English) words.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect


class Sao:
    """One browser tab on SAO (``base`` is the server, ``database`` the GNU Health database)."""

    def __init__(self, page: Page, base: str, database: str) -> None:
        self.page = page
        self.base = base.rstrip("/")
        self.database = database

    # -- login ----------------------------------------------------------------------------------

    def open_login(self) -> None:
        self.page.goto(f"{self.base}/#{self.database}")
        expect(self.page.get_by_label("User name")).to_be_visible()

    def dialog(self) -> Locator:
        """The modal dialog shown now (login, a wizard, an error)."""
        return self.page.locator(".modal.in .modal-content").last

    def menu(self, name: str) -> Locator:
        return self.page.locator("#menu").get_by_text(name, exact=True).first

    def user_line(self) -> Locator:
        """The navbar entry naming the logged-in user (and their company)."""
        return self.page.locator("#user-preferences")

    # -- tabs, toolbars, lists ------------------------------------------------------------------

    def tab(self) -> Locator:
        """The active tab's content."""
        return self.page.locator("#tabcontent > .tab-pane.active")

    def tool(self, title: str) -> Locator:
        """A toolbar button of the active tab by its title ("New", "Save", "Open related records")."""
        return self.tab().locator("nav.toolbar").get_by_title(title, exact=True).first

    def open_menu_entry(self, *path: str) -> None:
        """Open an action through the menu tree (``"Health", "Patients"``); the new tab becomes active."""
        for name in path[:-1]:
            entry = self.menu(path[-1])
            if not entry.is_visible():
                self.menu(name).click()
        self.menu(path[-1]).click()
        expect(self.tab().get_by_placeholder("Search").first).to_be_visible()

    def search(self, text: str) -> None:
        """Type into the active list's search box and run it."""
        box = self.tab().get_by_placeholder("Search").first
        box.fill(text)
        box.press("Enter")

    def rows(self) -> Locator:
        return self.tab().locator("table.tree.table tbody tr")

    def count(self) -> int:
        """How many records the active list holds, once SAO has loaded it (its toolbar's "_/N")."""
        badge = self.tab().locator("nav.toolbar .badge").first
        expect(badge).to_have_text(re.compile(r"^\s*(_|\d+)\s*/\s*\d+\s*$"))
        return int(badge.inner_text().split("/")[1])

    def table(self) -> list[dict[str, str]]:
        """The active list as rows of {column heading: cell text} (SAO's own headings), once loaded."""
        head = self.tab().locator("table.tree.table thead th")
        expect(head.first).to_be_attached()
        expect(self.rows().filter(has=self.page.locator("td"))).to_have_count(self.count())
        names = [t.strip() for t in head.all_inner_texts()]
        found = []
        for row in self.rows().all():
            cells = [t.strip() for t in row.locator("td").all_inner_texts()]
            if any(cells):
                found.append({n: c for n, c in zip(names, cells, strict=False) if n})
        return found

    def relate(self, name: str, opens: Locator | None = None) -> None:
        """Open related records of the current record ("Lab: New order", "Lab: Results").

        SAO may first ask whether to save the record: after a wizard has written to the server
        (an order requested), the form can count as modified though nobody typed in it. Nothing
        of ours is unsaved there, so the answer is "No" (go on without saving); ``opens`` is what
        the entry shows once it has run (a dialog, or a new tab's list), waited for either way.
        """
        tabs = self.page.locator("#tablist > li")
        before = tabs.count()
        self.tool("Open related records").click()
        self.page.get_by_role("menuitem", name=name, exact=True).click()
        ask = self.page.get_by_role("dialog").filter(has_text="This record has been modified")
        shown = opens if opens is not None else tabs.nth(before)
        expect(shown.or_(ask).first).to_be_visible()
        if ask.count() and ask.first.is_visible():
            ask.first.get_by_role("button", name="No", exact=True).click()
            expect(shown.first).to_be_visible()

    def wait_idle(self) -> None:
        """Until SAO has no request in flight (its spinner is hidden)."""
        expect(self.page.locator("#processing")).to_be_hidden()

    def error_text(self) -> str:
        """The words of an error or warning dialog shown now ("" when none)."""
        shown = self.page.locator(".modal.in .modal-body")
        return " ".join(t.strip() for t in shown.all_inner_texts() if t.strip())


def exact(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")
