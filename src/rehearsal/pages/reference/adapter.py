"""The reference hospital's web UI as a ``web_ui`` adapter: its screens behind the typed interfaces.

The screens' page objects (one module each, beside this one) hold the locators; this module maps
their tables (Swedish headings) to the records of :mod:`rehearsal.pages.web_ui` and says which of
the hospital's words mean what. It can do everything, so it declares nothing it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from rehearsal.pages.reference._table import rows
from rehearsal.pages.reference.login import LoginPage
from rehearsal.pages.reference.patient import PatientPage
from rehearsal.pages.reference.printing import PrintPage
from rehearsal.pages.reference.referral import ReferralAnswerPage, ReferralInboxPage, ReferralPage
from rehearsal.pages.reference.registration import RegistrationPage
from rehearsal.pages.reference.results import ResultsPage
from rehearsal.pages.reference.search import PatientSearchPage
from rehearsal.pages.web_ui import (
    Encounter,
    InboxReferral,
    LabResult,
    LoginRefused,
    Order,
    PrintOutcome,
    SentReferral,
    Sex,
    Unit,
)
from rehearsal.plan import Plan

# -- the hospital's words ---------------------------------------------------------------------------
SEX: dict[str, str] = {"female": "Kvinna", "male": "Man", "unknown": "Okänt"}
"""The registration form's "Kön" options."""
PRINTER_TOOK = "Skrivaren {printer} tog emot"
"""How a print notice starts when the printer itself took the job (else it only says it was sent)."""


class ReferenceWebUi:
    """One tab on the reference hospital's web UI (``environment.web_base``)."""

    name: ClassVar[str] = "reference"
    cannot: ClassVar[Mapping[str, str | Mapping[str, str]]] = {}

    def __init__(self, page: Page, plan: Plan) -> None:
        self.page = page
        self.base = plan.environment.web_base.rstrip("/")
        self._search = re.compile(re.escape(f"{self.base}/patients") + r"(\?.*)?$")

    def _at_search(self) -> bool:
        return bool(self._search.search(self.page.url))

    def log_in(self, hsa_id: str, password: str) -> None:
        login = LoginPage(self.page, self.base).open()
        login.hsa_id.fill(hsa_id)
        login.password.fill(password)
        login.submit.click()
        self.page.wait_for_load_state()
        if not self._at_search():  # refused: what the screen said, heading first
            shown = login.error.all_inner_texts()
            heading = self.page.get_by_role("heading", level=1).all_inner_texts()
            raise LoginRefused(" / ".join([*heading, *shown]) or self.page.url)

    def signed_in_as(self) -> str:
        return PatientSearchPage(self.page, self.base).signed_in_as()

    def save_session(self) -> Any:
        return self.page.context.cookies()

    def resume(self, saved: Any) -> bool:
        if not saved:
            return False
        self.page.context.add_cookies(saved)
        self.page.goto(f"{self.base}/patients")
        if self._at_search():
            return True
        self.page.context.clear_cookies()
        return False

    def _search_page(self) -> PatientSearchPage:
        search = PatientSearchPage(self.page, self.base)
        return search if self._at_search() else search.open()

    def find_patient(self, identifier: str) -> ReferencePatient:
        return ReferencePatient(self._search_page().search(identifier))

    def find_patient_expecting_none(self, identifier: str) -> str:
        return self._search_page().search_expecting_none(identifier)

    def register_known(self, personnummer: str) -> ReferencePatient:
        return ReferencePatient(RegistrationPage(self.page, self.base).open().register_known(personnummer))

    def register_unknown(self, sex: Sex, birth_date: str) -> tuple[ReferencePatient, str]:
        registration = RegistrationPage(self.page, self.base).open()
        page, number = registration.register_unknown(SEX[sex], birth_date)
        return ReferencePatient(page), number

    def current_patient(self) -> ReferencePatient:
        return ReferencePatient(PatientPage(self.page, self.base))

    def referral_inbox(self) -> ReferenceInbox:
        return ReferenceInbox(ReferralInboxPage(self.page, self.base))


class ReferencePatient:
    """``/patients/{id}``; the id in the address is the patient's FHIR id."""

    def __init__(self, screen: PatientPage) -> None:
        self.screen = screen

    def expect_patient(self, name: str, identifier: str | None = None) -> ReferencePatient:
        self.screen.expect_patient(name, identifier)
        return self

    def identity(self) -> str:
        return self.screen.identity()

    def record_id(self) -> str | None:
        found = re.search(r"/patients/([^/?#]+)", self.screen.page.url)
        return found.group(1) if found else None

    def admit(self, care_type: str) -> None:
        self.screen.admit(care_type)

    def encounters(self) -> list[Encounter]:
        return [
            Encounter(r.get("Vårdform", ""), r.get("Plats", ""), r.get("Status", ""), r.get("Start", ""), r)
            for r in self.screen.encounters()
        ]

    def order_lab(self, test: str) -> Order:
        self.screen.order_lab(test)
        mine = [o for o in self._orders() if o.test == test]
        assert mine, f"ingen beställning av {test} i patientens beställningslista"
        return max(mine, key=lambda o: o.ordered_at)

    def orders(self) -> list[Order]:
        return self._orders()

    def _orders(self) -> list[Order]:
        return [
            Order(
                test=r.get("Analys", ""),
                key=f"{r.get('Analys', '')} {r.get('Beställd', '')}",
                ordered_at=r.get("Beställd", ""),
                status=r.get("Status", ""),
                shown=r,
            )
            for r in rows(self.screen.orders_table)
        ]

    def expect_order_listed(self, test: str) -> None:
        self.screen.expect_order_listed(test)

    def open_results(self) -> ReferenceResults:
        return ReferenceResults(self.screen.open_results())

    def open_referrals(self) -> ReferenceReferrals:
        return ReferenceReferrals(self.screen.open_referrals())

    def open_print(self) -> ReferencePrint:
        return ReferencePrint(self.screen.open_print())


class ReferenceResults:
    def __init__(self, screen: ResultsPage) -> None:
        self.screen = screen

    def results(self) -> list[LabResult]:
        return [
            LabResult(
                test=r.get("Analys", ""),
                value=r.get("Resultat", ""),
                order=r.get("Beställning", ""),
                unit=r.get("Enhet", ""),
                reference_range=r.get("Referensintervall", ""),
                status=r.get("Status", ""),
                shown=r,
            )
            for r in self.screen.results()
        ]

    def refresh(self) -> None:
        self.screen.page.reload()
        self.screen.wait()


class ReferenceReferrals:
    def __init__(self, screen: ReferralPage) -> None:
        self.screen = screen

    def send(self, receiver: Unit, question: str) -> None:
        self.screen.send(receiver.id, question)

    def sent(self) -> list[SentReferral]:
        return [
            SentReferral(
                receiver=r.get("Mottagare", ""),
                question=r.get("Frågeställning", ""),
                status=r.get("Status", ""),
                answer=r.get("Svar", ""),
                shown=r,
            )
            for r in self.screen.sent()
        ]

    def refresh(self) -> None:
        self.screen.page.reload()
        self.screen.wait()


class ReferenceInbox:
    def __init__(self, screen: ReferralInboxPage) -> None:
        self.screen = screen

    def refresh(self) -> None:
        self.screen.open()

    def referrals(self) -> list[InboxReferral]:
        return [
            InboxReferral(
                patient=r.get("Patient", ""),
                identifier=r.get("Personnummer", ""),
                sender=r.get("Från", ""),
                question=r.get("Frågeställning", ""),
                status=r.get("Status", ""),
                shown=r,
            )
            for r in self.screen.referrals()
        ]

    def open_referral(self, identifier: str, question: str) -> ReferenceReceived:
        return ReferenceReceived(self.screen.open_referral(identifier, question))


class ReferenceReceived:
    def __init__(self, screen: ReferralAnswerPage) -> None:
        self.screen = screen

    def question(self) -> str:
        return self.screen.question()

    def acknowledge(self) -> None:
        self.screen.acknowledge()

    def answer(self, text: str) -> None:
        self.screen.answer(text)


class ReferencePrint:
    def __init__(self, screen: PrintPage) -> None:
        self.screen = screen

    def print_wristband(self, printer: str) -> PrintOutcome:
        return self._outcome(printer, lambda: self.screen.print_wristband(printer))

    def print_specimen_label(self, test: str, printer: str) -> PrintOutcome:
        return self._outcome(printer, lambda: self.screen.print_specimen_label(test, printer))

    def _outcome(self, printer: str, job: Any) -> PrintOutcome:
        try:
            said = job()
        except AssertionError:  # no confirmation: what the screen said instead
            said = None
        said = said or _notice_text(self.screen.page)
        return PrintOutcome(said.startswith(PRINTER_TOOK.format(printer=printer)), said)


def _notice_text(page: Page) -> str:
    """The confirmation (role=status) or refusal (role=alert) the last action showed."""
    try:
        texts = page.get_by_role("status").all_inner_texts() + page.get_by_role("alert").all_inner_texts()
    except PlaywrightError:
        return ""
    return " ".join(t.strip() for t in texts if t.strip())
