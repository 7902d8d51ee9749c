"""The registration screen: a known test patient by personnummer, or an unknown one under a reservnummer."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from rehearsal import patient_gate
from rehearsal.pages.reference.patient import PatientPage


class RegistrationPage:
    """``/register``: "Känd patient" (Personnummer, Telefon, "Registrera") and "Okänd patient"
    (Kön, Uppskattat födelsedatum, "Registrera okänd patient")."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        known = page.get_by_role("form", name="Känd patient")
        unknown = page.get_by_role("form", name="Okänd patient")
        self.personnummer = known.get_by_label("Personnummer")
        self.phone = known.get_by_label("Telefon (valfritt)")
        self.register_button = known.get_by_role("button", name="Registrera", exact=True)
        self.sex = unknown.get_by_label("Kön")
        self.birth_date = unknown.get_by_label("Uppskattat födelsedatum")
        self.register_unknown_button = unknown.get_by_role("button", name="Registrera okänd patient")
        self.notice: Locator = page.get_by_role("status")
        self.error: Locator = page.get_by_role("alert")

    def open(self) -> RegistrationPage:
        self.page.goto(f"{self.base_url}/register")
        expect(self.page.get_by_role("heading", name="Registrera patient")).to_be_visible()
        return self

    def register_known(self, personnummer: str, phone: str = "") -> PatientPage:
        """Register a test patient of the plan; lands on the patient page."""
        self.personnummer.fill(patient_gate.check(personnummer, "registrera"))
        self.phone.fill(phone)
        self.register_button.click()
        expect(self.notice).to_contain_text("Patienten är registrerad")
        return PatientPage(self.page, self.base_url)

    def register_known_expecting_refusal(self, personnummer: str) -> str:
        """Try to register a number the EHR must refuse (not a valid identity); returns the refusal shown."""
        self.personnummer.fill(patient_gate.check(personnummer, "registrera"))
        self.register_button.click()
        expect(self.error).to_be_visible()
        return self.error.inner_text()

    def register_unknown(self, sex: str = "Okänt", birth_date: str = "1980-01-01") -> tuple[PatientPage, str]:
        """Register an unidentified patient ("Kvinna", "Man" or "Okänt"); returns page and reservnummer."""
        self.sex.select_option(label=sex)
        self.birth_date.fill(birth_date)
        self.register_unknown_button.click()
        expect(self.notice).to_contain_text("reservnummer")
        number = re.search(r"\d{8}[KMX]\d{3}", self.notice.inner_text())
        assert number, f"no reservnummer in {self.notice.inner_text()!r}"
        patient_gate.admit(number.group(0))  # the run made it: its own patient from now on
        return PatientPage(self.page, self.base_url), number.group(0)
