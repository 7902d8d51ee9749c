"""Referrals: writing one for a patient, and receiving and answering one at the receiving unit."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from rehearsal import patient_gate
from rehearsal.pages.reference._table import rows


class ReferralPage:
    """``/patients/{id}/referrals``: "Mottagare", "Frågeställning", "Skicka remiss"; "Skickade remisser"."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.receiver = page.get_by_label("Mottagare")
        self.question = page.get_by_label("Frågeställning")
        self.send_button = page.get_by_role("button", name="Skicka remiss")
        self.notice: Locator = page.get_by_role("status")
        self.table = page.get_by_role("table", name="Skickade remisser")

    def wait(self) -> ReferralPage:
        expect(self.page.get_by_role("heading", level=1)).to_contain_text("Remisser")
        return self

    def send(self, receiver: str, question: str) -> ReferralPage:
        """Send a referral to a unit (its site id or name) with the question exactly as given."""
        self.receiver.select_option(receiver)
        self.question.fill(question)
        self.send_button.click()
        expect(self.notice).to_contain_text("Remissen är skickad")
        return self

    def sent(self) -> list[dict[str, str]]:
        """Referrals of this patient: Skickad, Mottagare, Frågeställning, Status, Svar (texts as stored)."""
        expect(self.table).to_be_visible()
        return rows(self.table)

    def answer_to(self, question: str) -> str:
        """The answer shown for the referral with this question ("" while unanswered), after a reload."""
        self.page.reload()
        matching = [r for r in self.sent() if r["Frågeställning"] == question]
        assert matching, f"no referral with the question {question!r} is listed"
        return matching[-1]["Svar"]


class ReferralInboxPage:
    """``/referrals``: referrals to the user's unit, table "Inkomna remisser", a link "Öppna" per row."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.table = page.get_by_role("table", name="Inkomna remisser")

    def open(self) -> ReferralInboxPage:
        self.page.goto(f"{self.base_url}/referrals")
        expect(self.page.get_by_role("heading", name="Inkomna remisser")).to_be_visible()
        return self

    def referrals(self) -> list[dict[str, str]]:
        """Inkommen, Patient, Personnummer, Från, Frågeställning, Status."""
        expect(self.table).to_be_visible()
        return rows(self.table)

    def open_referral(self, patient: str, question: str | None = None) -> ReferralAnswerPage:
        """Open the newest referral for this patient (name or personnummer), with this question if given."""
        patient_gate.check(patient, "öppna remiss för")
        candidates = self.table.locator("tbody tr").filter(has_text=patient)
        if question is not None:
            candidates = candidates.filter(has=self.page.get_by_text(question, exact=True))
        expect(candidates.last, f"no referral for {patient} in the inbox").to_be_visible()
        candidates.last.get_by_role("link", name="Öppna").click()
        return ReferralAnswerPage(self.page, self.base_url).wait()


class ReferralAnswerPage:
    """``/referrals/{id}``: the question, "Kvittera", "Svar" + "Skicka svar", and the answer once given."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.question_text = page.get_by_role("region", name="Frågeställning").locator("p")
        self.answer_field = page.get_by_label("Svar", exact=True)
        self.notice: Locator = page.get_by_role("status")

    def wait(self) -> ReferralAnswerPage:
        expect(self.page.get_by_role("heading", name="Remiss", exact=True)).to_be_visible()
        return self

    def question(self) -> str:
        """The referral's question exactly as stored (line breaks and spaces included)."""
        return self.question_text.text_content() or ""

    def status(self) -> str:
        return (
            self.page.locator("dt", has_text="Status").locator("xpath=following-sibling::dd[1]").inner_text()
        )

    def acknowledge(self) -> ReferralAnswerPage:
        """Confirm receipt ("Kvittera"): the sender sees it as received."""
        self.page.get_by_role("button", name="Kvittera").click()
        expect(self.notice).to_contain_text("Remissen är kvitterad")
        return self

    def answer(self, text: str) -> ReferralAnswerPage:
        """Answer the referral with ``text`` exactly as given."""
        self.answer_field.fill(text)
        self.page.get_by_role("button", name="Skicka svar").click()
        expect(self.notice).to_contain_text("Svaret är skickat")
        return self

    def answer_text(self) -> str:
        return self.page.get_by_role("region", name="Remissvar").locator("p").text_content() or ""
