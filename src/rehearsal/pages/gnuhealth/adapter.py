"""GNU Health 5.0 (SAO web client) as a ``web_ui`` adapter: its screens behind the typed interfaces.

What a clinician does in GNU Health, in its own words:

- log in: SAO's "User name", "Login", then "Password" and "OK"; the menu shows "Health";
- find a patient: Health → Patients, "Search" with the personnummer (GNU Health's PUID), the row
  whose PUID is exactly it, opened;
- register a known patient: the person is in GNU Health's register (a party with that PUID); if
  they are not a patient yet, Patients → "New", the person picked in "Patient", "Save";
- order a lab test: "Open related records" → "Lab: New order" (GNU Health's wizard), the test
  added under "Tests", "Request"; GNU Health refuses it for a user whose access groups do not
  allow creating "Patient Lab Test" records, in its own words;
- the orders on the patient: "Open related records" → "Lab: Orders", a related-records entry the
  hospital configures beside GNU Health's own "Lab: Results" (see tests/gnuhealth/seed.py);
- the results: "Open related records" → "Lab: Results".

Names are shown as GNU Health represents them ("Lastname, Name"); the plan's "Name Lastname" is
compared in that form. What GNU Health 5.0 with health + health_lab does not do is declared in
:attr:`GnuHealthWebUi.cannot`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from rehearsal.pages.gnuhealth.sao import Sao
from rehearsal.pages.web_ui import (
    Encounter,
    LabResult,
    LoginRefused,
    Order,
    Refused,
    Sex,
)
from rehearsal.plan import Plan

#: GNU Health's words the steps depend on (its English UI).
MENU_PATIENTS = ("Health", "Patients")
ORDER_ACTION = "Lab: New order"
ORDERS_RELATE = "Lab: Orders"
RESULTS_RELATE = "Lab: Results"
PUID = "PUID"
PATIENT_FIELD_HELP = "Person associated to this patient"
#: The analyses of the features as GNU Health lab test types are named: "<NAME> (<code>)".
TEST_CODE = re.compile(r"\(([^()]+)\)\s*$")


def gnuhealth_name(name: str) -> str:
    """The plan's "Tolvan Tolvansson" as GNU Health shows a person: "Tolvansson, Tolvan"."""
    first, _, last = name.strip().partition(" ")
    return f"{last}, {first}" if last else first


class GnuHealthWebUi:
    """One tab on GNU Health's SAO (``environment.web_base`` is ``http://host:port/#DATABASE``)."""

    name: ClassVar[str] = "gnuhealth"
    cannot: ClassVar[Mapping[str, str | Mapping[str, str]]] = {
        "register_unknown": {
            "sv": "GNU Health har inga reservnummer (ett oidentifierat patientkort får inget PUID "
            "enligt VGR:s regler)",
            "en": "GNU Health has no reservnummer (an unidentified person gets no PUID by the VGR rules)",
        },
        "admit": {
            "sv": "inskrivning finns i modulen health_inpatient, som inte ingår i målet (health, health_lab)",
            "en": "admission is the health_inpatient module, not part of this target (health, health_lab)",
        },
        "referrals": {
            "sv": "GNU Health har inga remisser över samexistensgränsen",
            "en": "GNU Health has no referrals across the coexistence boundary",
        },
        "printing": {
            "sv": "GNU Health skriver inte ut armband eller provetiketter på Zebra-skrivare",
            "en": "GNU Health prints no wristbands or specimen labels to Zebra printers",
        },
    }

    def __init__(self, page: Page, plan: Plan) -> None:
        self.page = page
        self.plan = plan
        web = plan.environment.web_base
        parts = urlsplit(web)
        database = parts.fragment or parts.path.strip("/")
        assert database, f"environment.web_base {web} names no GNU Health database (…/#DATABASE)"
        self.sao = Sao(page, f"{parts.scheme}://{parts.netloc}", database)
        self.timeout_s = float(plan.environment.timeouts.connect + plan.environment.timeouts.read)

    def log_in(self, hsa_id: str, password: str) -> None:
        sao = self.sao
        sao.open_login()
        self.page.get_by_label("User name").fill(hsa_id)
        password_box = self.page.get_by_label("Password")
        for _ in range(3):  # SAO may take a first click before it listens (seen on a busy machine)
            self.page.get_by_role("button", name="Login").click()
            try:
                password_box.wait_for(timeout=10_000)
                break
            except PlaywrightTimeout:
                continue
        password_box.fill(password)
        self.page.get_by_role("button", name="OK").click()
        menu = sao.menu(MENU_PATIENTS[0])
        refused = self.page.get_by_text(
            re.compile("Bad User name or Password|wrong|denied|not allowed", re.I)
        )
        expect(menu.or_(refused).first).to_be_visible()
        if not menu.is_visible():
            said = sao.error_text() or " ".join(refused.all_inner_texts()) or "login dialog shown again"
            raise LoginRefused(said)

    def signed_in_as(self) -> str:
        line = self.sao.user_line()
        expect(line).to_be_visible()
        return line.inner_text().strip()

    def save_session(self) -> Any:
        return None  # SAO keeps its session in the tab; a new tab logs in again

    def resume(self, saved: Any) -> bool:
        return False

    def _patients(self) -> None:
        self.sao.open_menu_entry(*MENU_PATIENTS)

    def _row(self, identifier: str) -> dict[str, str]:
        self._patients()
        self.sao.search(identifier)
        self.sao.wait_idle()
        mine = self.sao.rows().filter(has=self.page.get_by_role("cell", name=identifier, exact=True))
        expect(mine, f"GNU Health lists no patient with PUID {identifier}").to_have_count(1)
        expect(self.sao.rows(), f"the search for {identifier} lists others too").to_have_count(1)
        return {
            k: v for k, v in zip(self._headings(), mine.locator("td").all_inner_texts(), strict=False) if k
        }

    def _headings(self) -> list[str]:
        return [t.strip() for t in self.sao.tab().locator("table.tree.table thead th").all_inner_texts()]

    def find_patient(self, identifier: str) -> GnuHealthPatient:
        row = self._row(identifier)
        self.sao.rows().filter(has=self.page.get_by_role("cell", name=identifier, exact=True)).dblclick()
        expect(GnuHealthPatient(self, row)._party()).not_to_have_value("")
        expect(self.sao.tool("Open related records")).to_be_enabled()
        return GnuHealthPatient(self, row)

    def find_patient_expecting_none(self, identifier: str) -> str:
        self._patients()
        self.sao.search(identifier)
        self.sao.wait_idle()
        mine = self.sao.rows().filter(has=self.page.get_by_role("cell", name=identifier, exact=True))
        expect(mine).to_have_count(0)
        return f"GNU Health lists no patient with PUID {identifier}"

    def register_known(self, personnummer: str) -> GnuHealthPatient:
        identity = next((i for i in self.plan.test_identities if i.personnummer == personnummer), None)
        assert identity is not None, f"{personnummer} är ingen testidentitet i planen"
        self._patients()
        self.sao.search(personnummer)
        self.sao.wait_idle()
        listed = self.sao.rows().filter(has=self.page.get_by_role("cell", name=personnummer, exact=True))
        if listed.count() == 0:  # a person of the register who is not a patient yet: make them one
            self.sao.tool("New").click()
            person = self.sao.tab().get_by_label("Patient", exact=True)
            person.fill(personnummer)
            self.page.get_by_role("option").or_(self.page.locator(".dropdown-menu li a")).filter(
                has_text=gnuhealth_name(identity.name)
            ).first.click()
            self.sao.tool("Save").click()
            self.sao.wait_idle()
            if said := self.sao.error_text():
                raise Refused(said)
        return self.find_patient(personnummer)

    def register_unknown(self, sex: Sex, birth_date: str) -> tuple[GnuHealthPatient, str]:
        raise Refused("GNU Health: no reservnummer (declared in GnuHealthWebUi.cannot)")

    def current_patient(self) -> GnuHealthPatient:
        return GnuHealthPatient(self, {})

    def referral_inbox(self) -> Any:
        raise Refused("GNU Health: no referrals (declared in GnuHealthWebUi.cannot)")


class GnuHealthPatient:
    """The patient form (Health → Patients, one record), with the list row it was opened from."""

    def __init__(self, ui: GnuHealthWebUi, row: Mapping[str, str]) -> None:
        self.ui = ui
        self.sao = ui.sao
        self.page = ui.page
        self.row = dict(row)

    def _party(self) -> Any:
        """The form's "Patient" field (the person), found by GNU Health's own help text for it."""
        return self.sao.tab().get_by_title(PATIENT_FIELD_HELP, exact=True).locator("input").first

    def expect_patient(self, name: str, identifier: str | None = None) -> GnuHealthPatient:
        expect(self._party(), "the patient form names another person").to_have_value(gnuhealth_name(name))
        if identifier is not None:
            assert self.row.get(PUID) == identifier, f"the patient was opened from the row {self.row}"
        return self

    def identity(self) -> str:
        return self.row.get(PUID, "")

    def record_id(self) -> str | None:
        return None  # GNU Health 5.0 serves no FHIR API here

    def admit(self, care_type: str) -> None:
        raise Refused("GNU Health: no admission (declared in GnuHealthWebUi.cannot)")

    def encounters(self) -> list[Encounter]:
        return []

    def _back(self) -> None:
        """Close the related-records tab and return to the patient form."""
        self.page.locator("#tablist > li.active").get_by_role("button", name="Close").click()
        expect(self.sao.tool("Open related records")).to_be_enabled()

    def order_lab(self, test: str) -> Order:
        wizard = self.page.get_by_role("dialog").filter(has_text=ORDER_ACTION)
        self.sao.relate(ORDER_ACTION, opens=wizard)
        tests = wizard.locator(".form-many2many").filter(has_text="Tests").get_by_role("textbox")
        self.sao.wait_idle()  # the wizard's defaults, still loading, clear what is typed (a busy machine)
        tests.fill(test)
        self.sao.wait_idle()
        if tests.input_value() != test:
            tests.fill(test)
        option = self.page.locator(".dropdown-menu").get_by_text(f"({test})")
        self._refused_or(option, wizard)
        option.first.click()
        expect(wizard.get_by_role("cell", name=test, exact=True)).to_be_visible()
        wizard.get_by_role("button", name="Request").click()
        self._refused_or(wizard, wizard, gone=True)
        deadline = time.monotonic() + self.ui.timeout_s  # a list opened at once may still show 0 of 0
        while not (mine := [o for o in self.orders() if o.test == test]) and time.monotonic() < deadline:
            self.page.wait_for_timeout(500)
        assert mine, f"GNU Health lists no order of {test} under {ORDERS_RELATE} after the request"
        return mine[0]

    def _refused_or(self, expected: Any, wizard: Any, gone: bool = False) -> None:
        """Wait for ``expected`` (visible, or hidden with ``gone``) or GNU Health's refusal dialog;
        on a refusal: its words as :class:`Refused`, after closing it and the wizard."""
        problem = (
            self.page.get_by_role("dialog")
            .filter(has_not_text=ORDER_ACTION)
            .filter(has=self.page.get_by_role("button", name="OK"))
        )
        if gone:  # the wizard closes when GNU Health took it, or a refusal opens over it
            deadline = time.monotonic() + self.ui.timeout_s
            while expected.is_visible() and not problem.count() and time.monotonic() < deadline:
                self.page.wait_for_timeout(100)
            if not problem.count():
                expect(expected, "GNU Health's order dialog did not close").to_be_hidden()
                return
        else:
            expect(expected.first.or_(problem).first).to_be_visible()
            if not problem.count():
                return
        body = problem.first.locator(".modal-body")
        said = " ".join(t.strip() for t in body.inner_text().splitlines() if t.strip())
        problem.first.get_by_role("button", name="OK").click()
        if wizard.is_visible():
            wizard.get_by_role("button", name="Cancel").click()
        raise Refused(said or "GNU Health refused the order without a message")

    def orders(self) -> list[Order]:
        self.sao.relate(ORDERS_RELATE)
        expect(self.sao.tab().get_by_placeholder("Search").first).to_be_visible()
        self.sao.wait_idle()
        found = []
        for r in self.sao.table():
            code = TEST_CODE.search(r.get("Test Type", ""))
            test = code.group(1) if code else r.get("Test Type", "")
            found.append(
                Order(test, f"{r.get('Order', '')} {test}", r.get("Date", ""), r.get("State", ""), r)
            )
        self._back()
        return found

    def expect_order_listed(self, test: str) -> None:
        assert any(o.test == test for o in self.orders()), (
            f"GNU Health lists no order of {test} on the patient"
        )

    def open_results(self) -> GnuHealthResults:
        return GnuHealthResults(self)

    def open_referrals(self) -> Any:
        raise Refused("GNU Health: no referrals (declared in GnuHealthWebUi.cannot)")

    def open_print(self) -> Any:
        raise Refused("GNU Health: no wristband or label printing (declared in GnuHealthWebUi.cannot)")


class GnuHealthResults:
    """ "Lab: Results" of the patient: GNU Health's lab tests, one row per test, analytes summarised."""

    def __init__(self, patient: GnuHealthPatient) -> None:
        self.patient = patient
        self.sao = patient.sao
        self.sao.relate(RESULTS_RELATE)
        expect(self.sao.tab().get_by_placeholder("Search").first).to_be_visible()

    def results(self) -> list[LabResult]:
        self.sao.wait_idle()
        found = []
        for r in self.sao.table():
            code = TEST_CODE.search(r.get("Test type", ""))
            test = code.group(1) if code else r.get("Test type", "")
            found.append(
                LabResult(
                    test,
                    r.get("Summary", ""),
                    f"{r.get('Order', '')} {test}",
                    status=r.get("State", ""),
                    shown=r,
                )
            )
        return found

    def refresh(self) -> None:
        self.sao.tool("Reload/Undo").click()
        self.sao.wait_idle()
