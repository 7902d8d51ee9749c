"""The page objects driving every screen of the new EHR's web UI in Chromium.

The EHR runs alone (``EhrServer``) on a free port, with one site's printers made real for
the print screen: a real ``ippeveprinter`` as the document printer, and plain TCP
listeners that keep what they receive as the wristband and label printers (raw port 9100
style; they never answer ``~HS``, so the UI reports the job as sent without a status).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from conftest import free_port
from reference_hospital.ehr_server import EhrServer
from reference_hospital.faults import Fault
from reference_hospital.fhir_resources import ResultValue, patient_id, result_bundle
from rehearsal import evidence, patient_gate, pytest_plugin
from rehearsal.pages.reference import (
    LoginPage,
    PatientPage,
    PatientSearchPage,
    ReferenceWebUi,
    ReferralInboxPage,
    RegistrationPage,
)
from rehearsal.pages.web_ui import LoginRefused, PrintOutcome
from rehearsal.plan import Printer, load_plan

DEMO = Path(__file__).resolve().parents[1] / "plans" / "demo.yaml"
PASSWORD = "test-only-password"
ANNA, BJORN = "SE2321000131-P000000000101", "SE2321000131-P000000000201"
NPU = "urn:oid:1.2.208.176.2.1"

pytestmark = pytest.mark.slow


class RecordingPrinter:
    """A plain TCP listener on loopback that keeps the bytes of every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.uri = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.jobs: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        data += chunk
                self.jobs.append(data)

    def wait_for_jobs(self, count: int, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.jobs) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.jobs


@pytest.fixture
def tab(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(locale="sv-SE")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def second_tab(chromium: Browser) -> Iterator[Page]:
    """Another person at another computer (own cookies): the receiving side of a referral."""
    context = chromium.new_context(locale="sv-SE")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def zebras() -> Iterator[dict[str, RecordingPrinter]]:
    printers = {"wristband": RecordingPrinter(), "label": RecordingPrinter()}
    yield printers
    for printer in printers.values():
        printer.sock.close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, zebras: dict[str, RecordingPrinter]
) -> Iterator[EhrServer]:
    """The demo plan's EHR on a free port; SÄS gets a wristband, a label and a real document printer."""
    from reference_hospital.printers import PrinterFleet

    port = free_port()
    plan = load_plan(DEMO).plan
    endpoints = ("legacy_base", "lab_mllp", "bridge_base", "bridge_mllp", "directory")
    env = plan.environment.model_copy(
        update={
            "fhir_base": f"http://127.0.0.1:{port}/fhir",
            "web_base": f"http://127.0.0.1:{port}",
            **dict.fromkeys(endpoints),
        }  # fmt: skip
    )
    document = Printer(id="sas-dok1", kind="document", uri=f"ipp://127.0.0.1:{free_port()}/ipp/print",
                       location="Akutmottagningen")  # fmt: skip
    printers = {
        "sas-boras": [
            Printer(
                id="sas-arm1", kind="wristband", uri=zebras["wristband"].uri, location="Akutmottagningen"
            ),
            Printer(id="sas-etikett1", kind="label", uri=zebras["label"].uri, location="Akutmottagningen"),
            document,
        ],
        # nothing listens on this port: a printer that is switched off
        "nal-trollhattan": [
            Printer(id="nal-dok1", kind="document", uri=f"ipp://127.0.0.1:{free_port()}/ipp/print")
        ],
    }
    sites = [s.model_copy(update={"printers": printers.get(s.id, [])}) for s in plan.sites]
    plan = plan.model_copy(update={"environment": env, "sites": sites})
    workdir = tmp_path_factory.mktemp("pages")
    with (
        PrinterFleet([document], workdir),
        EhrServer(plan, workdir, environ={"REHEARSAL_PASSWORD": PASSWORD}) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def web_base(server: EhrServer) -> str:
    return server.web_base


# -- login, search, lab order (the spine's flows) -----------------------------------------------------


def test_login_shows_role_and_site_then_search_order_and_see_it_listed(tab: Page, web_base: str) -> None:
    search = LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    assert (
        search.signed_in_as() == "Inloggad som Anna Andersson (sjuksköterska), Södra Älvsborgs Sjukhus, Borås"
    )
    patient = search.search("19121212-1212")
    patient.expect_patient("Tolvan Tolvansson", "19121212-1212")
    before = patient.orders()
    patient.order_lab("P-CRP")
    patient.expect_order_listed("P-CRP")
    patient.order_lab("B-Hb")
    assert PatientPage(tab, web_base).orders() == [*before, "P-CRP", "B-Hb"]


def test_wrong_password_shows_an_error(tab: Page, web_base: str) -> None:
    error = LoginPage(tab, web_base).open().login_expecting_error(ANNA, "wrong-password")
    assert error == "Fel HSA-id eller lösenord."
    expect(tab.get_by_label("HSA-id")).to_have_value(ANNA)


def test_search_for_someone_not_in_the_plan_finds_nobody(tab: Page, web_base: str) -> None:
    LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    message = PatientSearchPage(tab, web_base).open().search_expecting_none("19800101-0027")
    assert message == "Ingen patient med personnummer 19800101-0027."


def test_a_role_without_access_is_told_so_and_others_still_get_in(
    tab: Page, second_tab: Page, server: EhrServer
) -> None:
    server.board.activate(Fault("login-denied-role", "sas-boras"))
    try:
        message = LoginPage(tab, server.web_base).open().login_expecting_no_access(ANNA, PASSWORD)
        assert (
            "Rollen sjuksköterska ger ingen behörighet till journalen på Södra Älvsborgs Sjukhus" in message
        )
        LoginPage(second_tab, server.web_base).open().login(BJORN, PASSWORD)
    finally:
        server.board.deactivate(Fault("login-denied-role", "sas-boras"))
    LoginPage(tab, server.web_base).open().login(ANNA, PASSWORD)


# -- registration and admission ----------------------------------------------------------------------


def test_register_a_known_test_patient_and_admit(tab: Page, web_base: str) -> None:
    LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    patient = RegistrationPage(tab, web_base).open().register_known("19800101-0019", phone="+46 70 111 22 33")
    patient.expect_patient("Testa Testsson", "19800101-0019")
    assert patient.encounters() == []
    patient.admit("Akut")
    [stay] = patient.encounters()
    assert (stay["Vårdform"], stay["Plats"], stay["Status"]) == (
        "Akut",
        "Södra Älvsborgs Sjukhus, Borås",
        "Pågående",
    )
    refusal = RegistrationPage(tab, web_base).open().register_known_expecting_refusal("19800101-0027")
    assert "finns inte bland testidentiteterna" in refusal


def test_register_an_unknown_patient_under_a_reservnummer(tab: Page, web_base: str) -> None:
    LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    patient, number = RegistrationPage(tab, web_base).open().register_unknown("Man", "1981-08-29")
    assert re.fullmatch(r"19810829M\d{3}", number) and int(number[9:11]) % 2 == 1
    patient.expect_patient(f"Okänd man {number}")
    assert patient.identity() == number
    patient.admit("Akut")
    patient.order_lab("P-Na")
    found = PatientSearchPage(tab, web_base).open().search(number)  # the reserve identity can be searched
    found.expect_patient(f"Okänd man {number}")


# -- results -----------------------------------------------------------------------------------------


def test_results_show_on_the_patient_of_the_order(tab: Page, server: EhrServer) -> None:
    LoginPage(tab, server.web_base).open().login(BJORN, PASSWORD)
    patient = PatientSearchPage(tab, server.web_base).open().search("20100101-0113")
    patient.order_lab("P-CRP")
    results = patient.open_results()
    assert results.results() == []
    with httpx.Client(base_url=server.fhir_base, timeout=10) as fhir:  # the lab answers through the bridge
        [order] = fhir.get("/ServiceRequest", params={"patient": patient_id("20100101-0113")}).json()["entry"]
        crp = {"coding": [{"system": NPU, "code": "NPU19748", "display": "P-CRP"}]}
        bundle = result_bundle(order["resource"], [ResultValue(crp, 4.2, "mg/L", 0, 5)])
        assert fhir.post("/", json=bundle).status_code == 200
    row = results.wait_for_result("P-CRP", timeout_s=10)
    assert (row["Resultat"], row["Enhet"], row["Referensintervall"], row["Status"]) == (
        "4,2",
        "mg/L",
        "0–5",
        "Slutligt",
    )
    assert row["Beställning"].startswith("P-CRP ")
    assert results.reports()[0]["Status"] == "Slutligt"


# -- referrals ---------------------------------------------------------------------------------------


def test_referral_written_answered_and_read_back_byte_identical(
    tab: Page, second_tab: Page, web_base: str
) -> None:
    question = "Ingen feber, inget blod, inte öm – ej trauma.\nFrågeställning: fraktur i höger fot? Åäö ÅÄÖ é"
    answer = unicodedata.normalize(
        "NFD", "Ingen fraktur. Inget att åtgärda, ej gips.\nÅterbesök inte nödvändigt."
    )
    LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    referrals = PatientSearchPage(tab, web_base).open().search("19121212-1212").open_referrals()
    referrals.send("NÄL, Trollhättan", question)
    [sent] = [r for r in referrals.sent() if r["Frågeställning"] == question]
    assert (sent["Mottagare"], sent["Status"], sent["Svar"]) == ("NÄL, Trollhättan", "Skickad", "")

    LoginPage(second_tab, web_base).open().login(BJORN, PASSWORD)
    inbox = ReferralInboxPage(second_tab, web_base).open()
    assert any(
        r["Frågeställning"] == question and r["Patient"] == "Tolvan Tolvansson" for r in inbox.referrals()
    )
    received = inbox.open_referral("Tolvan Tolvansson", question)
    assert received.question() == question
    received.acknowledge()
    assert received.status() == "Mottagen"
    assert referrals.answer_to(question) == ""
    received.answer(answer)
    assert received.answer_text() == answer
    assert received.status() == "Besvarad"
    assert referrals.answer_to(question) == answer


# -- printing ----------------------------------------------------------------------------------------


def test_print_wristband_label_and_document_to_the_sites_printers(
    tab: Page, web_base: str, zebras: dict[str, RecordingPrinter]
) -> None:
    LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    patient = PatientSearchPage(tab, web_base).open().search("19121212-1212")
    patient.order_lab("P-Na")
    printing = patient.open_print()
    message = printing.print_wristband("sas-arm1")
    assert message == "Armbandet skickades till sas-arm1; skrivaren lämnade ingen status."
    [band] = zebras["wristband"].wait_for_jobs(1)
    assert band.startswith(b"^XA^CI28") and b"Tolvan Tolvansson" in band and b"^XZ" in band
    assert "Född 1912-12-12".encode() in band
    message = printing.print_specimen_label(order="P-Na")
    assert message == "Provetiketten för P-Na skickades till sas-etikett1; skrivaren lämnade ingen status."
    [label] = zebras["label"].wait_for_jobs(1)
    assert b"P-Na" in label and b"19121212-1212" in label
    message = printing.print_document()
    assert re.fullmatch(r"Skrivaren sas-dok1 tog emot patientöversikten \(jobb \d+\)\.", message), message


def test_a_printer_that_does_not_answer_is_reported(tab: Page, server: EhrServer) -> None:
    LoginPage(tab, server.web_base).open().login(BJORN, PASSWORD)
    printing = PatientSearchPage(tab, server.web_base).open().search("19121212-1212").open_print()
    expect(tab.get_by_text("NÄL, Trollhättan har ingen armbandsskrivare i planen.")).to_be_visible()
    expect(tab.get_by_role("button", name="Skriv ut armband")).to_be_disabled()
    message = printing.print_document(expect_accepted=False)
    assert message == "Skrivaren nal-dok1 tog inte emot patientöversikten: anslutningen nekades."


# -- only the run's own patients: refused before the browser types, no screenshot of others -----


@pytest.fixture
def gate_closed() -> Iterator[None]:
    """The gate as a run closes it: Tolvan is the run's only patient (the EHR knows more)."""
    patient_gate.only(["19121212-1212"])
    yield
    patient_gate.reopen()


def test_the_run_refuses_a_patient_who_is_not_its_own_before_typing_it(
    tab: Page, web_base: str, gate_closed: None
) -> None:
    LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    registration = RegistrationPage(tab, web_base).open()
    with pytest.raises(patient_gate.NotATestIdentity) as refused:
        registration.register_known("19800101-0019")
    assert str(refused.value).startswith("vägrar registrera patient 19800101-****:")
    assert "\n" not in str(refused.value) and "0019" not in str(refused.value)
    assert registration.personnummer.input_value() == ""  # never typed, never sent
    with pytest.raises(patient_gate.NotATestIdentity):
        PatientSearchPage(tab, web_base).open().search("198001010019")
    PatientSearchPage(tab, web_base).open().search("19121212-1212").expect_patient("Tolvan Tolvansson")


def test_no_screenshot_of_a_page_showing_someone_else(
    tab: Page, web_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    attached: list[tuple[str, str]] = []
    monkeypatch.setattr(evidence, "attach_jpeg", lambda name, data: attached.append(("jpeg", name)))
    monkeypatch.setattr(evidence, "attach_text", lambda name, text: attached.append((name, text)))
    item = type("Item", (), {"nodeid": "features/x.feature::testa"})()
    LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    PatientSearchPage(tab, web_base).open().search("19800101-0019").expect_patient("Testa Testsson")
    try:
        patient_gate.only(["19800101-0019"])  # Testa is the run's own: photographed
        pytest_plugin._screenshot(item, tab, "patienten öppnas")
        assert attached == [("jpeg", "Skärmbild: patienten öppnas")]
        patient_gate.only(["19121212-1212"])  # Testa is someone else's: not photographed
        pytest_plugin._screenshot(item, tab, "patienten öppnas")
    finally:
        patient_gate.reopen()
    assert len(attached) == 2 and attached[1][0] == "Ingen skärmbild: patienten öppnas"
    assert "19800101-****" in attached[1][1] and "0019" not in attached[1][1]
    assert item.nodeid in pytest_plugin._FOREIGN_ON_SCREEN  # and its trace is dropped


# -- the same screens behind the web UI interfaces (the `reference` web_ui adapter) ------------------


def test_the_reference_adapter_puts_its_screens_behind_the_interfaces(
    tab: Page, second_tab: Page, server: EhrServer
) -> None:
    demo = load_plan(DEMO).plan
    plan = demo.model_copy(
        update={"environment": demo.environment.model_copy(update={"web_base": server.web_base})}
    )
    ui = ReferenceWebUi(tab, plan)
    with pytest.raises(LoginRefused) as refused:
        ui.log_in(ANNA, "wrong-password")
    assert "Fel HSA-id eller lösenord." in str(refused.value)
    ui.log_in(ANNA, PASSWORD)
    assert ui.signed_in_as().startswith("Inloggad som Anna Andersson (sjuksköterska)")
    patient = ui.find_patient("19121212-1212").expect_patient("Tolvan Tolvansson", "19121212-1212")
    assert patient.record_id() == patient_id("19121212-1212")  # the FHIR id, for the wrong-patient check
    order = patient.order_lab("B-Hb")
    assert (order.test, order.key) == ("B-Hb", f"B-Hb {order.ordered_at}") and order.ordered_at
    assert order == patient.orders()[-1] and order.shown["Analys"] == "B-Hb"
    assert ui.find_patient_expecting_none("19800101-0027") == "Ingen patient med personnummer 19800101-0027."
    # the session goes on in another tab; a tab without it logs in again
    other = ReferenceWebUi(second_tab, plan)
    assert not other.resume(None)
    assert other.resume(ui.save_session()) and other.signed_in_as() == ui.signed_in_as()
    # the EHR's words decide whether a printer took the job: "sent, no status" is not "took it"
    band = ui.find_patient("19121212-1212").open_print().print_wristband("sas-arm1")
    assert band == PrintOutcome(False, "Armbandet skickades till sas-arm1; skrivaren lämnade ingen status.")
