"""Playwright page objects for the EHR web UI, one class per screen.

Step definitions read like ``PatientPage(page, base).order_lab("P-CRP")``: each method is
one thing a clinician does, located by role and label the way a screen reader finds it,
and checked with Playwright's ``expect`` (which waits), so steps need no sleeps.
Constructors take the Playwright ``Page`` and the plan's ``environment.web_base``.
"""

from rehearsal.pages.login import LoginPage
from rehearsal.pages.patient import PatientPage
from rehearsal.pages.search import PatientSearchPage

__all__ = ["LoginPage", "PatientPage", "PatientSearchPage"]
