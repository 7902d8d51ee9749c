"""The patient search screen: find a patient by personnummer (or reservnummer)."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from rehearsal import patient_gate
from rehearsal.pages.reference.patient import PatientPage


class PatientSearchPage:
    """``/patients``: field "Personnummer", button "Sök"; a hit opens the patient, a miss shows an alert."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.personnummer = page.get_by_label("Personnummer")
        self.submit = page.get_by_role("button", name="Sök", exact=True)
        self.error: Locator = page.get_by_role("alert")

    def open(self) -> PatientSearchPage:
        self.page.goto(f"{self.base_url}/patients")
        expect(self.page.get_by_role("heading", name="Sök patient")).to_be_visible()
        return self

    def signed_in_as(self) -> str:
        """The header line naming who is logged in, their role and site ("Inloggad som …")."""
        banner = self.page.get_by_text(re.compile(r"^Inloggad som "))
        expect(banner).to_be_visible()
        return banner.inner_text()

    def search(self, personnummer: str) -> PatientPage:
        """Search and open the patient; fails if the search found nobody."""
        self._search(personnummer)
        expect(self.page, f"no patient page for {personnummer}").to_have_url(
            re.compile(re.escape(f"{self.base_url}/patients/") + r"[^/?]+(\?.*)?$")
        )
        return PatientPage(self.page, self.base_url)

    def search_expecting_none(self, personnummer: str) -> str:
        """Search for someone who must not be found; returns the message shown."""
        self._search(personnummer)
        expect(self.error).to_be_visible()
        return self.error.inner_text()

    def _search(self, personnummer: str) -> None:
        self.personnummer.fill(patient_gate.check(personnummer, "söka efter"))
        self.submit.click()
