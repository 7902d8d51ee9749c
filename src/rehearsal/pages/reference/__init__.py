"""The reference hospital's web UI: its screens' page objects and the ``reference`` web_ui adapter.

Screens read like ``PatientPage(page, base).order_lab("P-CRP")``: each method is one thing a
clinician does, located by role and label the way a screen reader finds it, and checked with
Playwright's ``expect`` (which waits), so callers need no sleeps. Constructors take the
Playwright ``Page`` and the plan's ``environment.web_base``.

    LoginPage → PatientSearchPage → PatientPage → ResultsPage / ReferralPage / PrintPage
    RegistrationPage → PatientPage          ReferralInboxPage → ReferralAnswerPage

:class:`ReferenceWebUi` (``adapter``) puts them behind :mod:`rehearsal.pages.web_ui`, which is
all the steps see.
"""

from rehearsal.pages.reference.adapter import ReferenceWebUi
from rehearsal.pages.reference.login import LoginPage
from rehearsal.pages.reference.patient import PatientPage
from rehearsal.pages.reference.printing import PrintPage
from rehearsal.pages.reference.referral import ReferralAnswerPage, ReferralInboxPage, ReferralPage
from rehearsal.pages.reference.registration import RegistrationPage
from rehearsal.pages.reference.results import ResultsPage
from rehearsal.pages.reference.search import PatientSearchPage

__all__ = [
    "LoginPage",
    "PatientPage",
    "PatientSearchPage",
    "PrintPage",
    "ReferenceWebUi",
    "ReferralAnswerPage",
    "ReferralInboxPage",
    "ReferralPage",
    "RegistrationPage",
    "ResultsPage",
]
