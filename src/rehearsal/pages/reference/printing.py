"""The print screen: wristband and specimen label (ZPL) and a document (IPP) to the user's site printers."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect


class PrintPage:
    """``/patients/{id}/print``: one form per print-out, each with its printer list and button.

    Every method returns the sentence the EHR showed. ``expect_accepted=True`` (the default)
    also checks that the printer took the job (role=status); False expects a refusal (role=alert).
    """

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.notice: Locator = page.get_by_role("status")
        self.error: Locator = page.get_by_role("alert")

    def wait(self) -> PrintPage:
        expect(self.page.get_by_role("heading", level=1)).to_contain_text("Utskrift")
        return self

    def print_wristband(self, printer: str | None = None, expect_accepted: bool = True) -> str:
        return self._print("Armbandsskrivare", printer, "Skriv ut armband", expect_accepted)

    def print_specimen_label(
        self, order: str | None = None, printer: str | None = None, expect_accepted: bool = True
    ) -> str:
        """A label for one lab order (its short name, e.g. "P-CRP"; default the newest order)."""
        if order is not None:
            select = self.page.get_by_label("Labbeställning")
            label = next(o for o in select.locator("option").all_inner_texts() if o.startswith(order))
            select.select_option(label=label)
        return self._print("Etikettskrivare", printer, "Skriv ut provetikett", expect_accepted)

    def print_document(self, printer: str | None = None, expect_accepted: bool = True) -> str:
        return self._print("Dokumentskrivare", printer, "Skriv ut patientöversikt", expect_accepted)

    def _print(self, printer_label: str, printer: str | None, button: str, expect_accepted: bool) -> str:
        if printer is not None:
            self.page.get_by_label(printer_label).select_option(printer)
        self.page.get_by_role("button", name=button).click()
        outcome = self.notice if expect_accepted else self.error
        expect(outcome).to_be_visible()
        return outcome.inner_text()
