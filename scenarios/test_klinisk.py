"""Clinical run-through in the web UI (Playwright): features/klinisk/.

The `web` fixture is the browser page; every step after it is used gets a screenshot.
"""

import os

from pytest_bdd import given, parsers, scenarios, then, when

from rehearsal.pages import LoginPage, PatientPage
from rehearsal.plan import Plan, Site

scenarios("klinisk")


@given("att en användare på platsen är inloggad i webbklienten", target_fixture="search_page")
def logged_in(web, plan: Plan, site: Site):
    assert site.users, f"{site.id}: planen har ingen användare att logga in med"
    user = site.users[0]
    password = os.environ.get(user.password_env)
    assert password, f"{site.id}: lösenordet för {user.hsa_id} saknas (miljövariabeln {user.password_env})"
    return LoginPage(web, plan.environment.web_base).open().login(user.hsa_id, password)


@when("användaren söker fram en testpatient ur planen", target_fixture="patient_page")
def find_test_patient(search_page, plan: Plan) -> PatientPage:
    patient = plan.test_identities[0]
    return search_page.search(patient.personnummer).expect_patient(patient.name, patient.personnummer)


@when(parsers.parse('beställer labbprovet "{test}"'))
def order_lab(patient_page: PatientPage, test: str):
    patient_page.order_lab(test)


@then(parsers.parse('visas beställningen "{test}" i patientens beställningslista'))
def order_listed(patient_page: PatientPage, test: str):
    patient_page.expect_order_listed(test)
