"""The results screen: the lab results filed on one patient."""

from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from rehearsal.pages.reference._table import rows


class ResultsPage:
    """``/patients/{id}/results``: h1 "Provsvar – NAME"; tables "Provsvar" and "Svarsrapporter"."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.heading = page.get_by_role("heading", level=1)
        self.table = page.get_by_role("table", name="Provsvar")
        self.reports_table = page.get_by_role("table", name="Svarsrapporter")

    def wait(self) -> ResultsPage:
        expect(self.heading).to_contain_text("Provsvar")
        return self

    def results(self) -> list[dict[str, str]]:
        """One row per value: Analys, Resultat, Enhet, Referensintervall, Status, Svarstid, Beställning."""
        expect(self.table).to_be_visible()
        return rows(self.table)

    def reports(self) -> list[dict[str, str]]:
        expect(self.reports_table).to_be_visible()
        return rows(self.reports_table)

    def wait_for_result(self, analysis: str, timeout_s: float = 30.0) -> dict[str, str]:
        """Reload until a result for ``analysis`` (e.g. "P-CRP") is shown; results come when the lab answers.

        Fails with what the page did show when none arrived in time.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            found = [r for r in self.results() if analysis in r["Analys"]]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no result for {analysis} within {timeout_s:g} s; shown: {self.results()}"
                )
            time.sleep(0.5)
            self.page.reload()
            self.wait()
