"""The login screen: HSA-id and password."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from rehearsal.pages.reference.search import PatientSearchPage


class LoginPage:
    """``/login``: fields "HSA-id" and "Lösenord", button "Logga in", errors as role=alert."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.hsa_id = page.get_by_label("HSA-id")
        self.password = page.get_by_label("Lösenord")
        self.submit = page.get_by_role("button", name="Logga in")
        self.error: Locator = page.get_by_role("alert")

    def open(self) -> LoginPage:
        self.page.goto(f"{self.base_url}/login")
        expect(self.page.get_by_role("heading", name="Logga in")).to_be_visible()
        return self

    def login(self, hsa_id: str, password: str) -> PatientSearchPage:
        """Log in and land on patient search; fails with the page's own error text if refused."""
        self._submit(hsa_id, password)
        expect(self.page, "login was refused or did not reach patient search").to_have_url(
            re.compile(re.escape(f"{self.base_url}/patients") + r"(\?.*)?$")
        )
        return PatientSearchPage(self.page, self.base_url)

    def login_expecting_error(self, hsa_id: str, password: str) -> str:
        """Try to log in with bad credentials; returns the error shown (and checks we stayed out)."""
        self._submit(hsa_id, password)
        expect(self.error).to_be_visible()
        expect(self.page.get_by_role("button", name="Logga ut")).to_have_count(0)
        return self.error.inner_text()

    def login_expecting_no_access(self, hsa_id: str, password: str) -> str:
        """Log in as someone whose role gives no access: the right password, then "Ingen behörighet".

        Returns the message shown; checks that no session was opened.
        """
        self._submit(hsa_id, password)
        expect(self.page.get_by_role("heading", name="Ingen behörighet")).to_be_visible()
        expect(self.page.get_by_role("button", name="Logga ut")).to_have_count(0)
        return self.error.inner_text()

    def _submit(self, hsa_id: str, password: str) -> None:
        self.hsa_id.fill(hsa_id)
        self.password.fill(password)
        self.submit.click()
