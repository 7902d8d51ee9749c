"""The patient screen: who the patient is, admission, the lab-order form, and the way to the other screens."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from rehearsal.pages.reference._table import rows
from rehearsal.pages.reference.printing import PrintPage
from rehearsal.pages.reference.referral import ReferralPage
from rehearsal.pages.reference.results import ResultsPage


class PatientPage:
    """``/patients/{id}``: h1 = name; "Vårdform" + "Skriv in"; "Analys" + "Beställ"; tables
    "Vårdkontakter" and "Labbeställningar"; links "Provsvar", "Remisser", "Utskrift"."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.name = page.get_by_role("heading", level=1)
        self.test = page.get_by_label("Analys")
        self.order_button = page.get_by_role("button", name="Beställ", exact=True)
        self.care_type = page.get_by_label("Vårdform")
        self.admit_button = page.get_by_role("button", name="Skriv in", exact=True)
        self.notice: Locator = page.get_by_role("status")
        self.error: Locator = page.get_by_role("alert")
        self.orders_table = page.get_by_role("table", name="Labbeställningar")
        self.encounters_table = page.get_by_role("table", name="Vårdkontakter")

    def expect_patient(self, name: str, personnummer: str | None = None) -> PatientPage:
        expect(self.name).to_have_text(name)
        if personnummer is not None:
            expect(self.page.get_by_text(personnummer, exact=True)).to_be_visible()
        return self

    def identity(self) -> str:
        """The patient's personnummer, samordningsnummer or reservnummer as shown."""
        return self.page.locator("dl dd").first.inner_text()

    def admit(self, care_type: str = "Akut") -> PatientPage:
        """Admit the patient at the user's site ("Akut", "Slutenvård" or "Öppenvård")."""
        self.care_type.select_option(label=care_type)
        self.admit_button.click()
        expect(self.notice).to_contain_text("Patienten är inskriven")
        return self

    def encounters(self) -> list[dict[str, str]]:
        """The patient's admissions: Vårdform, Plats, Status, Start."""
        expect(self.encounters_table).to_be_visible()
        return rows(self.encounters_table)

    def order_lab(self, test: str) -> PatientPage:
        """Order one lab test by its short name (e.g. "P-CRP") and wait for the confirmation."""
        self.test.select_option(test)
        self.order_button.click()
        expect(self.notice).to_contain_text(f"Beställning skickad: {test}")
        return self

    def expect_order_listed(self, test: str) -> PatientPage:
        expect(self.orders_table.get_by_role("cell", name=test, exact=True).first).to_be_visible()
        return self

    def orders(self) -> list[str]:
        """Short names of the listed lab orders, oldest first (empty when there are none)."""
        expect(self.orders_table).to_be_visible()
        return [row["Analys"] for row in rows(self.orders_table)]

    # -- the patient's other screens ----------------------------------------------------------

    def open_results(self) -> ResultsPage:
        self.page.get_by_role("link", name="Provsvar", exact=True).click()
        return ResultsPage(self.page, self.base_url).wait()

    def open_referrals(self) -> ReferralPage:
        self.page.get_by_role("link", name="Remisser", exact=True).click()
        return ReferralPage(self.page, self.base_url).wait()

    def open_print(self) -> PrintPage:
        self.page.get_by_role("link", name="Utskrift", exact=True).click()
        return PrintPage(self.page, self.base_url).wait()
