"""Clinical run-through in the web UI (Playwright): features/klinisk/.

The steps talk to the plan's web UI adapter (``environment.adapters.web_ui``) only through the
interfaces of rehearsal.pages.web_ui, so they read the same for every target. The `web` fixture
is the browser page under it; every step after it is used gets a screenshot, and a failed
scenario keeps its Playwright trace (both attached to the report).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pytest_bdd import given, parsers, scenarios, then, when

from rehearsal import evidence, fidelity, guard, patient_gate
from rehearsal.clients.coexistence import LegacyClient
from rehearsal.clients.fhir import FhirClient, reference_id
from rehearsal.identities import check_reservnummer, reservnummer_sex
from rehearsal.pages.web_ui import ClinicalWebUi, PatientView, PrintView, Refused
from rehearsal.plan import Plan, Site
from rehearsal.workflows import clinic, referrals, routines
from rehearsal.workflows.lab import ANALYSES
from rehearsal.workflows.printers import witness_for

scenarios("klinisk")


# -- login and the patient --------------------------------------------------------------------------


@given("att en användare på platsen är inloggad i webbklienten", target_fixture="ui")
def logged_in(web, plan: Plan, site: Site, web_sessions: dict) -> ClinicalWebUi:
    ui, reused = clinic.log_in(web, plan, site, web_sessions)
    evidence.attach_text("Inloggad", ui.signed_in_as() + (" (pågående session)" if reused else ""))
    return ui


@when("användaren söker fram platsens testpatient", target_fixture="patient")
def find_test_patient(ui: ClinicalWebUi, plan: Plan, site: Site, ctx: dict) -> PatientView:
    ctx["patient"] = identity = routines.patient_for(plan, site)
    return clinic.open_patient(ui, identity)


# -- registration and admission ---------------------------------------------------------------------


@when("användaren registrerar platsens testpatient på personnummer", target_fixture="patient")
def register_known(ui: ClinicalWebUi, plan: Plan, site: Site, ctx: dict) -> PatientView:
    ctx["patient"] = identity = routines.patient_for(plan, site)
    return ui.register_known(identity.personnummer)


@then("visas patientens journal med namn och personnummer enligt planen")
def known_patient_shown(patient: PatientView, ctx: dict) -> None:
    patient.expect_patient(ctx["patient"].name, ctx["patient"].personnummer)


@then("hittas patienten när användaren söker på personnumret")
def found_by_personnummer(ui: ClinicalWebUi, ctx: dict) -> None:
    clinic.open_patient(ui, ctx["patient"])


@when("användaren registrerar en okänd man med ett uppskattat födelsedatum", target_fixture="patient")
def register_unknown(ui: ClinicalWebUi, site: Site, ctx: dict, rehearsal_run_dir: Path) -> PatientView:
    born = date(1940, 1, 1) + timedelta(days=random.randrange(60 * 365))  # spread: serials per day are few
    patient, number = ui.register_unknown("male", born.isoformat())
    guard.record(rehearsal_run_dir, number, f"okänd patient registrerad i webbklienten på {site.id}")
    ctx.update(reservnummer=number, born=born)
    evidence.attach_text("Reservnummer", number)
    return patient


@then("får patienten ett giltigt reservnummer för en man med det födelsedatumet")
def valid_reservnummer(ctx: dict) -> None:
    number = check_reservnummer(ctx["reservnummer"])
    assert number.startswith(ctx["born"].strftime("%Y%m%d")), (
        f"{number}: födelsedatumet är inte {ctx['born']}"
    )
    assert reservnummer_sex(number) == "male", f"{number}: löpnumret anger inte en man"


@then("hittas patienten när användaren söker på reservnumret")
def found_by_reservnummer(ui: ClinicalWebUi, ctx: dict) -> None:
    found = ui.find_patient(ctx["reservnummer"])
    assert found.identity() == ctx["reservnummer"], f"sökningen visar {found.identity()!r}"


@when(parsers.parse('användaren skriver in patienten med vårdformen "{care}"'))
def admit(ui: ClinicalWebUi, care: str) -> None:
    ui.current_patient().admit(care)


@then(parsers.parse('visas vårdkontakten "{care}" på platsen i patientens vårdkontakter'))
def admitted(ui: ClinicalWebUi, site: Site, care: str) -> None:
    shown = ui.current_patient().encounters()
    evidence.attach_json("Vårdkontakter", [dict(e.shown) for e in shown])
    assert any(e.care_type == care and e.place == site.name for e in shown), (
        f"ingen vårdkontakt {care} på {site.name}: {[dict(e.shown) for e in shown]}"
    )


# -- lab order and result ---------------------------------------------------------------------------


@when(parsers.parse('beställer labbprovet "{test}"'))
def order_lab(patient: PatientView, site: Site, test: str, ctx: dict) -> None:
    try:
        ctx["order"] = patient.order_lab(test)
    except Refused as refused:  # the target said no: in its own words, any patient number masked
        said = patient_gate.mask_all(str(refused))
        raise AssertionError(f"{site.id}: journalen tog inte emot beställningen av {test}: {said}") from None


@then(parsers.parse('visas beställningen "{test}" i patientens beställningslista'))
def order_listed(patient: PatientView, test: str) -> None:
    patient.expect_order_listed(test)


@then(parsers.parse('visas provsvaret för "{test}" på samma patient inom planens svarstid'))
def result_on_same_patient(patient: PatientView, plan: Plan, site: Site, test: str, ctx: dict) -> None:
    ordered = ctx["order"].key
    patient_id = patient.record_id()
    results = patient.open_results()
    within = plan.coexistence.lab.result_within_s
    with FhirClient(plan.environment) as fhir:
        shown = sum(1 for r in results.results() if r.order == ordered)
        if patient_id is None:  # the UI cannot name the record in FHIR: its order key is taken as unique
            before, elsewhere = 0, None
        else:  # rows of earlier orders placed the same minute look alike: count ours out if already in
            before = max(0, shown - 1) if _result_of_newest(fhir, patient_id, test) == patient_id else shown
            elsewhere = lambda: _misfiled(fhir, patient_id, test)  # noqa: E731
        row = clinic.wait_for_new_result(results, ordered, before, within, elsewhere)
        if row is None:
            where = (elsewhere and elsewhere()) or "beställningen har inget svar i journalen"
            raise AssertionError(
                f"{site.id}: inget provsvar för {ordered} på {ctx['patient'].name} inom {within:g} s: {where}"
            )
    evidence.attach_json("Provsvar", dict(row.shown))
    assert row.value, f"provsvaret för {ordered} saknar resultat: {dict(row.shown)}"


def _newest_report(fhir: FhirClient, patient_id: str, test: str) -> tuple[str, dict[str, Any] | None] | None:
    """(order id, its DiagnosticReport or None) of the patient's newest order of ``test``."""
    code = ANALYSES[test][0]
    orders = [
        o
        for o in fhir.search("ServiceRequest", {"subject": f"Patient/{patient_id}"})
        if any(c.get("code") == code for c in (o.get("code") or {}).get("coding") or [])
    ]
    if not orders:
        return None
    reports = fhir.search("DiagnosticReport", {"based-on": f"ServiceRequest/{orders[-1]['id']}"})
    return orders[-1]["id"], (reports[0] if reports else None)


def _result_of_newest(fhir: FhirClient, patient_id: str, test: str) -> str | None:
    """The patient the newest order's result is filed on (None while there is none)."""
    found = _newest_report(fhir, patient_id, test)
    return reference_id(found[1].get("subject"), "Patient") if found and found[1] else None


def _misfiled(fhir: FhirClient, patient_id: str, test: str) -> str | None:
    """Why to stop waiting: the patient's newest order of ``test`` has its result on another patient."""
    found = _newest_report(fhir, patient_id, test)
    if not found or found[1] is None:
        return None
    order, report = found
    other = reference_id(report.get("subject"), "Patient")
    if other is None or other == patient_id:
        return None
    who = ", ".join(str(i.get("value")) for i in fhir.read("Patient", other).get("identifier") or [])
    return f"svaret {report['id']} (beställning {order}) ligger på fel patient: {who or other}"


# -- referrals across the boundary ---------------------------------------------------------------


@when(
    parsers.parse(
        "skickar en remiss till platsens mottagare i det äldre journalsystemet med frågeställningen:"
    )
)
def send_referral(patient: PatientView, plan: Plan, site: Site, ctx: dict, docstring: str) -> None:
    receiver = routines.legacy_counterpart(plan, site)
    assert receiver is not None
    ref = referrals.token(site, "klinisk")
    ctx.update(receiver=receiver, ref=ref, question=referrals.with_token(docstring, ref))
    ctx["referral_page"] = patient.open_referrals()
    ctx["referral_page"].send(receiver, ctx["question"])


@then("kommer remissen fram till det äldre journalsystemet med frågeställningen ordagrant")
def arrives_in_legacy(plan: Plan, site: Site, ctx: dict) -> None:
    receiver, pnr = ctx["receiver"], ctx["patient"].personnummer
    within = referrals.crossing_s(plan)
    with LegacyClient.for_plan(plan) as legacy:
        row = referrals.poll(lambda: _legacy_inbound(legacy, receiver.hsa_id, pnr, ctx["ref"]), within)
    assert row is not None, (
        f"remissen från {site.name} kom aldrig fram till {receiver.name} inom {within:g} s"
    )
    ctx["legacy_row"] = row
    evidence.attach_json("Remissen i det äldre journalsystemet", row)
    _same(ctx["question"], str(row.get("text", "")), "frågeställningen")


def _legacy_inbound(legacy: LegacyClient, unit: str, pnr: str, ref: str) -> dict[str, Any] | None:
    rows = legacy.referrals(direction="in", unit=unit, personnummer=pnr)
    return next((r for r in reversed(rows) if ref in str(r.get("text", ""))), None)


@when("mottagaren i det äldre journalsystemet kvitterar och besvarar remissen med:")
def legacy_answers(plan: Plan, ctx: dict, docstring: str) -> None:
    ctx["answer"] = docstring
    with LegacyClient.for_plan(plan) as legacy:
        legacy.acknowledge(int(ctx["legacy_row"]["id"]))
        legacy.answer(int(ctx["legacy_row"]["id"]), docstring, f"{ctx['receiver'].name} (repetition)")


@then("visas svaret i webbklienten ordagrant som det skrevs")
def answer_shown(plan: Plan, ctx: dict) -> None:
    within = referrals.crossing_s(plan)
    row = clinic.wait_for_answer(ctx["referral_page"], ctx["question"], within)
    evidence.attach_json("Skickade remisser (raden)", dict(row.shown) if row else {})
    assert row is not None, "remissen syns inte längre bland patientens skickade remisser"
    assert row.answer, f"inget svar visas inom {within:g} s (status {row.status!r})"
    _same(ctx["answer"], row.answer, "remissvaret")


LEGACY_REFERS = (
    "platsens enhet i det äldre journalsystemet remitterar platsens testpatient "
    "till platsen med frågeställningen:"
)


@when(LEGACY_REFERS)
def legacy_refers(plan: Plan, site: Site, ctx: dict, docstring: str) -> None:
    sender, receiver = routines.legacy_sender(site), routines.new_receiver(site)
    assert sender is not None and receiver is not None
    ctx["patient"] = identity = routines.patient_for(plan, site)
    ref = referrals.token(site, "klinisk")
    ctx.update(sender=sender, ref=ref, question=referrals.with_token(docstring, ref))
    with LegacyClient.for_plan(plan) as legacy:
        ctx["legacy_row"] = legacy.send_referral(
            identity.personnummer, sender.hsa_id, receiver.hsa_id, ctx["question"]
        )


@then("syns remissen i platsens inkorg med frågeställningen ordagrant")
def in_inbox(ui: ClinicalWebUi, plan: Plan, site: Site, ctx: dict) -> None:
    within = referrals.crossing_s(plan)
    row = clinic.wait_in_inbox(ui.referral_inbox(), ctx["ref"], within)
    assert row is not None, (
        f"remissen från {ctx['sender'].name} syns inte i inkorgen på {site.name} inom {within:g} s"
    )
    evidence.attach_json("Remissen i inkorgen", dict(row.shown))
    ctx["inbox_row"] = row
    _same(ctx["question"], row.question, "frågeställningen")


@when("användaren öppnar remissen, kvitterar och besvarar den med:")
def answer_in_web(ui: ClinicalWebUi, ctx: dict, docstring: str) -> None:
    ctx["answer"] = docstring
    inbox = ui.referral_inbox()
    inbox.refresh()
    opened = inbox.open_referral(ctx["patient"].personnummer, ctx["inbox_row"].question)
    opened.acknowledge()
    opened.answer(docstring)


@then("kommer svaret fram till det äldre journalsystemet ordagrant som det skrevs")
def answer_in_legacy(plan: Plan, ctx: dict) -> None:
    within = referrals.crossing_s(plan)
    rid = int(ctx["legacy_row"]["id"])
    with LegacyClient.for_plan(plan) as legacy:
        row = referrals.poll(
            lambda: r if (r := legacy.referral(rid)).get("status") == "answered" else None, within
        )
        row = row or legacy.referral(rid)
    evidence.attach_json("Remissen i det äldre journalsystemet", row)
    assert row.get("status") == "answered", (
        f"svaret kom inte fram inom {within:g} s (status {row.get('status')!r})"
    )
    _same(ctx["answer"], str(row.get("answer") or ""), "remissvaret")


def _same(sent: str, received: str, what: str) -> None:
    problem = fidelity.difference(sent, received, what)
    if problem:
        evidence.attach_text(f"{what}: skickat och mottaget", problem)
    if problem:
        raise AssertionError(problem)


# -- printing -----------------------------------------------------------------------------------------


@when("skriver ut ett armband på varje armbandsskrivare på platsen")
def print_wristbands(patient: PatientView, plan: Plan, site: Site, ctx: dict) -> None:
    _print_each(patient, plan, site, ctx, "wristband", lambda page, p: page.print_wristband(p.id))


@when(parsers.parse('skriver ut en provetikett för "{test}" på varje etikettskrivare på platsen'))
def print_labels(patient: PatientView, plan: Plan, site: Site, ctx: dict, test: str) -> None:
    _print_each(patient, plan, site, ctx, "label", lambda page, p: page.print_specimen_label(test, p.id))


def _print_each(patient: PatientView, plan: Plan, site: Site, ctx: dict, kind: str, job: Any) -> None:
    printers = [p for p in site.printers if p.kind == kind]
    if not printers:  # a site without this kind prints on its other kind (clin-printing device_kinds)
        evidence.attach_text("Ingen skrivare", f"{site.id} har ingen skrivare av slaget {kind} i planen")
        return
    witness = ctx["witness"] if "witness" in ctx else ctx.setdefault("witness", witness_for(plan))
    page: PrintView = ctx.get("print_page") or patient.open_print()
    ctx["print_page"] = page
    for printer in printers:
        before = witness.mark(printer)
        ctx.setdefault("printed", []).append((printer, before, job(page, printer)))


@then("säger journalen att varje skrivare tog emot sitt jobb")
def ehr_says_printed(ctx: dict, site: Site) -> None:
    assert ctx.get("printed"), f"{site.id}: ingen armbands- eller etikettskrivare i planen (sites[].printers)"
    said = {p.id: outcome.said for p, _, outcome in ctx["printed"]}
    evidence.attach_json("Journalens svar per skrivare", said)
    refused = {p.id: outcome.said for p, _, outcome in ctx["printed"] if not outcome.accepted}
    assert not refused, "skrivare som inte tog emot jobbet enligt journalen: " + "; ".join(
        f"{pid}: {text or 'inget svar'}" for pid, text in refused.items()
    )


@then("bekräftar varje skrivare själv att den tog emot jobbet")
def printers_confirm(ctx: dict) -> None:
    witness = ctx["witness"]
    try:
        confirmed = [witness.confirm(p, before, ctx["patient"].name) for p, before, _ in ctx["printed"]]
    finally:
        witness.close()
    evidence.attach_json("Skrivarnas egen bekräftelse", confirmed)
