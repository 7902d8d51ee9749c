"""Page objects for the target's clinical web UI, one set per target behind typed interfaces.

:mod:`rehearsal.pages.web_ui` is the seam: the Protocols the klinisk steps and
:mod:`rehearsal.workflows.clinic` talk to, the records they compare, the capabilities a target
may lack. Each target's page objects implement it in a package of their own, chosen by the plan's
``environment.adapters.web_ui`` (see :mod:`rehearsal.adapters`):

- :mod:`rehearsal.pages.reference`  the reference hospital (``reference``, the default);
- a third party's, installed with an entry point ``web_ui:<name>`` (docs/targets.md).
"""

from rehearsal.pages.web_ui import (
    CAPABILITIES,
    NEEDS,
    ClinicalWebUi,
    Encounter,
    Gated,
    InboxReferral,
    LabResult,
    LoginRefused,
    Order,
    PatientView,
    PrintOutcome,
    PrintView,
    ReceivedReferral,
    ReferralInbox,
    ReferralsView,
    Refused,
    ResultsView,
    SentReferral,
    WebUiAdapter,
)

__all__ = [
    "CAPABILITIES",
    "NEEDS",
    "ClinicalWebUi",
    "Encounter",
    "Gated",
    "InboxReferral",
    "LabResult",
    "LoginRefused",
    "Order",
    "PatientView",
    "PrintOutcome",
    "PrintView",
    "ReceivedReferral",
    "ReferralInbox",
    "ReferralsView",
    "Refused",
    "ResultsView",
    "SentReferral",
    "WebUiAdapter",
]
