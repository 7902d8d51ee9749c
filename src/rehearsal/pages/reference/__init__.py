"""Playwright page objects for the EHR web UI, one class per screen.

Step definitions read like ``PatientPage(page, base).order_lab("P-CRP")``: each method is
one thing a clinician does, located by role and label the way a screen reader finds it,
and checked with Playwright's ``expect`` (which waits), so steps need no sleeps.
Constructors take the Playwright ``Page`` and the plan's ``environment.web_base``.

    LoginPage → PatientSearchPage → PatientPage → ResultsPage / ReferralPage / PrintPage
    RegistrationPage → PatientPage          ReferralInboxPage → ReferralAnswerPage
"""

from rehearsal.pages.login import LoginPage
from rehearsal.pages.patient import PatientPage
from rehearsal.pages.printing import PrintPage
from rehearsal.pages.referral import ReferralAnswerPage, ReferralInboxPage, ReferralPage
from rehearsal.pages.registration import RegistrationPage
from rehearsal.pages.results import ResultsPage
from rehearsal.pages.search import PatientSearchPage

__all__ = [
    "LoginPage",
    "PatientPage",
    "PatientSearchPage",
    "PrintPage",
    "ReferralAnswerPage",
    "ReferralInboxPage",
    "ReferralPage",
    "RegistrationPage",
    "ResultsPage",
]
