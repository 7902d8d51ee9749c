"""Clinical flows in the web UI that take more than one page-object call: login with a clear
refusal, waiting for a result or a referral to show up.

Everything goes through the plan's web UI adapter (:mod:`rehearsal.pages.web_ui`, chosen by
``environment.adapters.web_ui``) behind the patient gate (:class:`rehearsal.pages.web_ui.Gated`);
these helpers add the waiting (bounded by the plan) and the messages a test lead can act on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page

from rehearsal import patient_gate
from rehearsal.pages.web_ui import (
    ClinicalWebUi,
    Gated,
    InboxReferral,
    LabResult,
    LoginRefused,
    PatientView,
    ReferralInbox,
    ReferralsView,
    ResultsView,
    SentReferral,
)
from rehearsal.plan import Plan, Site, TestIdentity
from rehearsal.workflows.routines import login_for

POLL_S = 0.2


def web_ui(web: Page, plan: Plan) -> ClinicalWebUi:
    """The plan's web UI adapter on this browser page, with the patient gate in front of it."""
    return Gated(plan.environment.adapter("web_ui")(web, plan))


def log_in(
    web: Page, plan: Plan, site: Site, sessions: dict[str, Any] | None = None
) -> tuple[ClinicalWebUi, bool]:
    """Log in as the site's user; a refusal fails with what the screen said, naming the user.

    With ``sessions`` the site's user stays logged in between scenarios, as a clinician does
    during a shift: the first scenario of a site logs in through the login screen and its
    session is kept; later ones start in that session, and log in through the screen again
    when the EHR no longer accepts it. Returns (the web UI, session reused).
    """
    ui = web_ui(web, plan)
    if sessions and sessions.get(site.id) and ui.resume(sessions[site.id]):
        return ui, True
    login = login_for(site)
    try:
        ui.log_in(login.user.hsa_id, login.password)
    except LoginRefused as refused:  # the screen's words, with any patient number on it masked
        raise AssertionError(
            f"{site.id}: inloggningen som {login.user.hsa_id} ({login.user.name}, {login.user.role}) "
            f"nådde inte patientsökningen: {patient_gate.mask_all(str(refused))}"
        ) from None
    if sessions is not None:
        sessions[site.id] = ui.save_session()
    return ui, False


def open_patient(ui: ClinicalWebUi, identity: TestIdentity) -> PatientView:
    return ui.find_patient(identity.personnummer).expect_patient(identity.name, identity.personnummer)


def wait_for_new_result(
    results: ResultsView,
    ordered: str,
    before: int,
    within_s: float,
    give_up: Callable[[], str | None] | None = None,
) -> LabResult | None:
    """Reload until a result for the order ``ordered`` (its :attr:`~rehearsal.pages.web_ui.Order.key`)
    beyond the ``before`` already shown appears; that result, or None when none came within ``within_s``.

    ``give_up`` is asked between reloads; a reason from it (the result went elsewhere) ends the
    wait at once with an AssertionError saying so.
    """
    deadline = time.monotonic() + within_s
    while True:
        mine = [r for r in results.results() if r.order == ordered]
        if len(mine) > before:
            return mine[-1]
        if give_up is not None and (why := give_up()):
            raise AssertionError(why)
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL_S)
        results.refresh()


def wait_for_answer(referrals: ReferralsView, question: str, within_s: float) -> SentReferral | None:
    """The patient's sent referral with exactly this question, once it shows an answer (reloading)."""
    deadline = time.monotonic() + within_s
    while True:
        referrals.refresh()
        mine = [r for r in referrals.sent() if r.question == question]
        if mine and mine[-1].answer:
            return mine[-1]
        if time.monotonic() > deadline:
            return mine[-1] if mine else None
        time.sleep(POLL_S)


def wait_in_inbox(inbox: ReferralInbox, ref: str, within_s: float) -> InboxReferral | None:
    """The inbox referral whose question carries ``ref``, once it is there (reloading)."""
    deadline = time.monotonic() + within_s
    while True:
        inbox.refresh()
        found = [r for r in inbox.referrals() if ref in r.question]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL_S)
