"""Clinical flows in the web UI that take more than one page-object call: login with a clear
refusal, waiting for a result or a referral to show up, reading back what a screen shows.

Everything goes through the page objects (:mod:`rehearsal.pages`); these helpers add the
waiting (bounded by the plan) and the messages a test lead can act on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from rehearsal import patient_gate
from rehearsal.pages import (
    LoginPage,
    PatientPage,
    PatientSearchPage,
    ReferralInboxPage,
    ReferralPage,
    ResultsPage,
)
from rehearsal.plan import Plan, Site, TestIdentity
from rehearsal.workflows.routines import login_for

POLL_S = 0.2


def log_in(
    web: Page, plan: Plan, site: Site, sessions: dict[str, list[Any]] | None = None
) -> tuple[PatientSearchPage, bool]:
    """Log in as the site's user; a refusal fails with what the screen said, naming the user.

    With ``sessions`` the site's user stays logged in between scenarios, as a clinician does
    during a shift: the first scenario of a site logs in through the login screen and its
    session cookies are kept; later ones start in that session, and log in through the
    screen again when the EHR no longer accepts it. Returns (search page, session reused).
    """
    base = plan.environment.web_base
    search = re.compile(re.escape(f"{base}/patients") + r"(\?.*)?$")
    if sessions and sessions.get(site.id):
        web.context.add_cookies(sessions[site.id])
        web.goto(f"{base}/patients")
        if search.search(web.url):
            return PatientSearchPage(web, base), True
        web.context.clear_cookies()
    login = login_for(site)
    page = LoginPage(web, base).open()
    page.hsa_id.fill(login.user.hsa_id)
    page.password.fill(login.password)
    page.submit.click()
    web.wait_for_load_state()
    if not search.search(web.url):  # refused: say so now, with what the screen said
        shown = page.error.all_inner_texts()
        heading = web.get_by_role("heading", level=1).all_inner_texts()
        said = " / ".join([*heading, *shown]) or web.url
        raise AssertionError(  # the screen's words, with any patient number on it masked
            f"{site.id}: inloggningen som {login.user.hsa_id} ({login.user.name}, {login.user.role}) "
            f"nådde inte patientsökningen: {patient_gate.mask_all(said)}"
        )
    if sessions is not None:
        sessions[site.id] = web.context.cookies()
    return PatientSearchPage(web, base), False


def open_patient(search: PatientSearchPage, identity: TestIdentity) -> PatientPage:
    return search.search(identity.personnummer).expect_patient(identity.name, identity.personnummer)


def patient_id_of(web: Page) -> str:
    """The patient's id in the EHR, from the patient screen's address (``/patients/{id}``)."""
    found = re.search(r"/patients/([^/?#]+)", web.url)
    assert found, f"ingen patient i adressen {web.url}"
    return found.group(1)


def newest_order(patient: PatientPage, test: str) -> dict[str, str]:
    """The newest row of the patient's lab orders for ``test`` (Analys, Benämning, Status, Beställd …)."""
    from rehearsal.pages._table import rows

    mine = [r for r in rows(patient.orders_table) if r.get("Analys") == test]
    assert mine, f"ingen beställning av {test} i patientens beställningslista"
    return max(mine, key=lambda r: r.get("Beställd", ""))


def wait_for_new_result(
    results: ResultsPage,
    ordered: str,
    before: int,
    within_s: float,
    give_up: Callable[[], str | None] | None = None,
) -> dict[str, str] | None:
    """Reload until a result row for the order ``ordered`` ("P-CRP 2026-11-26 10:15") beyond the ``before``
    already shown appears; the row, or None when none came within ``within_s``.

    ``give_up`` is asked between reloads; a reason from it (the result went elsewhere) ends the
    wait at once with an AssertionError saying so.
    """
    deadline = time.monotonic() + within_s
    while True:
        mine = [r for r in results.results() if r.get("Beställning") == ordered]
        if len(mine) > before:
            return mine[-1]
        if give_up is not None and (why := give_up()):
            raise AssertionError(why)
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL_S)
        results.page.reload()
        results.wait()


def wait_for_answer(referrals: ReferralPage, question: str, within_s: float) -> dict[str, str] | None:
    """The patient's sent referral with exactly this question, once it shows an answer (reloading)."""
    deadline = time.monotonic() + within_s
    while True:
        referrals.page.reload()
        referrals.wait()
        mine = [r for r in referrals.sent() if r.get("Frågeställning") == question]
        if mine and mine[-1].get("Svar"):
            return mine[-1]
        if time.monotonic() > deadline:
            return mine[-1] if mine else None
        time.sleep(POLL_S)


def wait_in_inbox(inbox: ReferralInboxPage, ref: str, within_s: float) -> dict[str, str] | None:
    """The inbox row whose question carries ``ref``, once it is there (reloading)."""
    deadline = time.monotonic() + within_s
    while True:
        inbox.open()
        found = [r for r in inbox.referrals() if ref in r.get("Frågeställning", "")]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL_S)


def notice_text(web: Page) -> str:
    """The confirmation (role=status) or refusal (role=alert) the last action showed."""
    try:
        texts = web.get_by_role("status").all_inner_texts() + web.get_by_role("alert").all_inner_texts()
    except PlaywrightError:
        return ""
    return " ".join(t.strip() for t in texts if t.strip())
