"""The patient screen: who the patient is, the lab-order form and the patient's lab orders."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect


class PatientPage:
    """``/patients/{id}``: h1 = name, the personnummer, "Analys" + "Beställ", table "Labbeställningar"."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.name = page.get_by_role("heading", level=1)
        self.test = page.get_by_label("Analys")
        self.order_button = page.get_by_role("button", name="Beställ", exact=True)
        self.notice: Locator = page.get_by_role("status")
        self.error: Locator = page.get_by_role("alert")
        self.orders_table = page.get_by_role("table", name="Labbeställningar")

    def expect_patient(self, name: str, personnummer: str | None = None) -> PatientPage:
        expect(self.name).to_have_text(name)
        if personnummer is not None:
            expect(self.page.get_by_text(personnummer, exact=True)).to_be_visible()
        return self

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
        rows = self.orders_table.locator("tbody tr")
        return [
            cells[0]
            for cells in (row.get_by_role("cell").all_inner_texts() for row in rows.all())
            if len(cells) > 1
        ]
