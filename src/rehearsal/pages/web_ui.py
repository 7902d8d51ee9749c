"""The clinical web UI as the steps see it: typed interfaces one target's page objects implement.

The klinisk steps (``scenarios/test_klinisk.py``) and :mod:`rehearsal.workflows.clinic` talk
only to these Protocols; each target's page objects implement them with that target's paths,
labels and notices (role- and label-based locators, in one module per target, in its own
language). The plan picks the implementation::

    environment:
      adapters: {web_ui: gnuhealth}        # default: reference (the reference hospital)

:func:`rehearsal.adapters.resolve` returns a :class:`WebUiAdapter`: a class (or factory) called
with the Playwright page and the plan, giving one :class:`ClinicalWebUi` per browser tab.

    ClinicalWebUi ─ log_in, find_patient, register_known / register_unknown, current_patient
      ├─ PatientView ─ admit, encounters, order_lab, orders, record_id
      │    ├─ ResultsView     the lab results filed on the patient
      │    ├─ ReferralsView   the patient's sent referrals (write, read the answer)
      │    └─ PrintView       wristband and specimen label
      └─ ReferralInbox ─ ReceivedReferral (acknowledge, answer)

How a method fails (every implementation keeps to this):

- the screen did not show what was expected (a missing notice, the wrong patient): an
  ``AssertionError`` whose text says what was expected and what was shown — Playwright's
  ``expect`` raises exactly that, so ``expect(...)`` is the usual way;
- the target said *no* in words (a refused login, "you may not create lab orders"): raise
  :class:`Refused` (or :class:`LoginRefused`) with the target's own words, unmasked and
  untranslated; the step puts it into its Swedish message (``journalen tog inte emot …: <words>``),
  masking any patient number in it;
- a number that is not the run's own is refused before it is typed (:mod:`rehearsal.patient_gate`):
  the seam checks it before your method is called (:class:`Gated`), and your page objects
  may check again (the reference ones do); never catch ``NotATestIdentity``.

What a target cannot do at all (a UI without referrals) is declared, not failed:
:attr:`WebUiAdapter.cannot` maps a capability (:data:`CAPABILITIES`) to the reason, and every
criterion that needs it (:data:`NEEDS`) is *not applicable* with that reason
(:mod:`rehearsal.applicability`): its tests are not generated and its go/no-go line says why.

Records (:class:`Order`, :class:`LabResult` …) carry the words the steps compare in fields and,
in ``shown``, the row as the screen showed it (its own headings), which is what the evidence
attaches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from rehearsal import identities, patient_gate
from rehearsal.adapters import AdapterError

if TYPE_CHECKING:  # the report process reads capabilities without loading Playwright
    from playwright.sync_api import Page

    from rehearsal.plan import Plan

Sex = Literal["female", "male", "unknown"]

#: What a web UI adapter may declare it cannot do, with what each covers.
CAPABILITIES: dict[str, str] = {
    "register_known": "register a known patient by personnummer and open the record",
    "register_unknown": "register an unidentified patient under a reservnummer",
    "admit": "admit the patient (a care contact at the user's site) and list the admissions",
    "lab_order": "order a lab test on the patient and list the orders",
    "lab_results": "show the lab results filed on the patient",
    "referrals": "write a referral, read its answer; receive, acknowledge and answer one",
    "printing": "print a wristband and a specimen label to the site's printers",
}

#: The capabilities each criterion of the shipped klinisk features needs (features/klinisk/*.feature
#: feed these ids through their ``@criterion:`` tag; tests/test_web_ui_adapters.py keeps the two in
#: step). Log in and patient search are needed by every one of them and cannot be declared away.
NEEDS: dict[str, tuple[str, ...]] = {
    "clin-registration": ("register_known", "register_unknown", "admit"),
    "clin-lab-order": ("lab_order", "lab_results"),
    "clin-referral": ("referrals",),
    "clin-printing": ("printing",),
}


class Refused(AssertionError):
    """The target refused an action in words; ``str(exc)`` is what its screen said, as it said it."""


class LoginRefused(Refused):
    """The target did not let the user in (wrong password, no access for the role …)."""


# -- records: what a screen lists, as the steps compare it -----------------------------------------


@dataclass(frozen=True)
class Encounter:
    """One admission (care contact) of the patient."""

    care_type: str
    """In the features' words ("Akut", "Slutenvård", "Öppenvård"): a target using others maps them."""
    place: str
    """Where: the plan site's ``name`` (a target that names its units otherwise maps them back)."""
    status: str = ""
    start: str = ""
    shown: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Order:
    """One lab order listed on the patient."""

    test: str
    """The short name ordered ("P-CRP"), as the feature gives it."""
    key: str
    """What the target's results name this order by (:attr:`LabResult.order`); as unique as the
    target makes it (the reference hospital: test and minute, "P-CRP 2026-11-26 10:15")."""
    ordered_at: str = ""
    status: str = ""
    shown: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class LabResult:
    """One result value filed on the patient."""

    test: str
    value: str
    """As shown ("4,2"); empty when the row has no value."""
    order: str
    """The :attr:`Order.key` of the order it answers."""
    unit: str = ""
    reference_range: str = ""
    status: str = ""
    shown: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SentReferral:
    """A referral the patient's record lists as sent."""

    receiver: str
    question: str
    """Exactly as stored (line breaks and spaces included): compared byte for byte."""
    status: str = ""
    answer: str = ""
    """The answer exactly as stored; "" while unanswered."""
    shown: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class InboxReferral:
    """A referral in the user's unit's inbox."""

    patient: str
    identifier: str
    sender: str
    question: str
    """Exactly as stored: compared byte for byte."""
    status: str = ""
    shown: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class PrintOutcome:
    """What the EHR said about one print job."""

    accepted: bool
    """True only when the EHR says the printer took the job."""
    said: str
    """The EHR's words (its notice or its refusal; "" when it said nothing)."""


class Unit(Protocol):
    """The receiving end of a referral (:class:`rehearsal.workflows.routines.Unit` is one)."""

    id: str
    name: str
    hsa_id: str


# -- the screens ---------------------------------------------------------------------------------------


class ResultsView(Protocol):
    """The lab results filed on one patient."""

    def results(self) -> list[LabResult]:
        """Every result row shown now, oldest first (empty when there are none)."""
        ...

    def refresh(self) -> None:
        """Show the newest state (reload); results come when the lab answers, so callers poll."""
        ...


class ReferralsView(Protocol):
    """The referrals of one patient: write one, read what came back."""

    def send(self, receiver: Unit, question: str) -> None:
        """Send a referral to ``receiver`` with ``question`` typed exactly as given (no trimming).

        Returns once the target confirms it was sent; :class:`Refused` with its words if it says no.
        """
        ...

    def sent(self) -> list[SentReferral]:
        """The patient's sent referrals shown now, oldest first."""
        ...

    def refresh(self) -> None:
        """Show the newest state (an answer arrives across the coexistence boundary; callers poll)."""
        ...


class ReceivedReferral(Protocol):
    """One referral opened from the inbox."""

    def question(self) -> str:
        """The question exactly as stored (line breaks and spaces included)."""
        ...

    def acknowledge(self) -> None:
        """Confirm receipt; returns when the target confirms it."""
        ...

    def answer(self, text: str) -> None:
        """Answer with ``text`` typed exactly as given; returns when the target confirms it was sent."""
        ...


class ReferralInbox(Protocol):
    """Referrals sent to the logged-in user's unit."""

    def refresh(self) -> None:
        """Open (or reload) the inbox so it shows the newest referrals."""
        ...

    def referrals(self) -> list[InboxReferral]:
        """The referrals listed now, oldest first."""
        ...

    def open_referral(self, identifier: str, question: str) -> ReceivedReferral:
        """Open the newest referral for the patient with this personnummer (or reservnummer) and
        exactly this question; an ``AssertionError`` when there is none."""
        ...


class PrintView(Protocol):
    """Print-outs for one patient to the user's site printers."""

    def print_wristband(self, printer: str) -> PrintOutcome:
        """Print the patient's wristband on the plan printer with this id.

        Never raises for a refusal: a printer that did not take the job is ``accepted=False`` with
        what the EHR said (the step reports every printer, then fails).
        """
        ...

    def print_specimen_label(self, test: str, printer: str) -> PrintOutcome:
        """Print the specimen label of the patient's newest order of ``test`` on that printer (as above)."""
        ...


class PatientView(Protocol):
    """One patient's record as the screen shows it now."""

    def expect_patient(self, name: str, identifier: str | None = None) -> PatientView:
        """Check the record is this patient (name, and the identifier when given); ``AssertionError``
        naming what was shown when not."""
        ...

    def identity(self) -> str:
        """The patient's personnummer, samordningsnummer or reservnummer as shown."""
        ...

    def record_id(self) -> str | None:
        """The patient's id in the target's FHIR API (``Patient/{id}``), or None when the UI cannot
        tell: the lab-result step then skips its check that the result is not on another patient."""
        ...

    def admit(self, care_type: str) -> None:
        """Admit the patient at the user's site with this care type (the feature's word, "Akut");
        returns when the target confirms it."""
        ...

    def encounters(self) -> list[Encounter]:
        """The patient's admissions shown now."""
        ...

    def order_lab(self, test: str) -> Order:
        """Order one lab test by its short name ("P-CRP"); returns the new order as now listed.

        :class:`Refused` with the target's words when it will not take the order (no right to order).
        """
        ...

    def orders(self) -> list[Order]:
        """The patient's lab orders shown now, oldest first."""
        ...

    def expect_order_listed(self, test: str) -> None:
        """Check an order of ``test`` is listed (``AssertionError`` when not)."""
        ...

    def open_results(self) -> ResultsView: ...

    def open_referrals(self) -> ReferralsView: ...

    def open_print(self) -> PrintView: ...


@runtime_checkable
class ClinicalWebUi(Protocol):
    """One clinician's browser tab on a target's web UI (``page`` is the Playwright page under it:
    the plugin photographs it after every step and checks it with the patient gate)."""

    page: Page

    def log_in(self, hsa_id: str, password: str) -> None:
        """Log in as the plan user with this HSA-id and land where patients are searched.

        The user's site (for a target whose login asks for a unit or institution) is the plan
        site listing that HSA-id in ``sites[].users``; a target whose login names are not HSA-ids
        maps them (the GNU Health adapter, for one).

        :class:`LoginRefused` with what the screen said (heading and error text) when refused.
        """
        ...

    def signed_in_as(self) -> str:
        """The line naming who is logged in (and where, when the target shows it)."""
        ...

    def save_session(self) -> Any:
        """What :meth:`resume` needs to continue this login in a new tab (cookies …), or None."""
        ...

    def resume(self, saved: Any) -> bool:
        """Continue a saved login, as a clinician does during a shift: True when the target still
        accepts it (and patient search is shown), False otherwise (then log in again)."""
        ...

    def find_patient(self, identifier: str) -> PatientView:
        """Search by personnummer or reservnummer and open the record; ``AssertionError`` if nobody."""
        ...

    def find_patient_expecting_none(self, identifier: str) -> str:
        """Search for someone who must not be found; returns the target's message."""
        ...

    def register_known(self, personnummer: str) -> PatientView:
        """Register a test patient of the plan by personnummer; returns the opened record.

        Whatever else the target's form wants (name, sex, birth date) comes from the plan's test
        identity with this personnummer (``plan.test_identities``; the adapter was given the plan),
        never from elsewhere. A rehearsal runs again and again: registering a patient the target
        already has must still end on that one record (not a second patient).
        """
        ...

    def register_unknown(self, sex: Sex, birth_date: str) -> tuple[PatientView, str]:
        """Register an unidentified patient (estimated ``birth_date`` YYYY-MM-DD) under a reservnummer;
        returns the opened record and the reservnummer (made by the target or, when it has none,
        by the page objects with :func:`rehearsal.identities.make_reservnummer`)."""
        ...

    def current_patient(self) -> PatientView:
        """The patient record the tab shows now (after a search or a registration)."""
        ...

    def referral_inbox(self) -> ReferralInbox: ...


class WebUiAdapter(Protocol):
    """What ``environment.adapters.web_ui`` names: called with the page and the plan."""

    name: ClassVar[str]
    cannot: ClassVar[Mapping[str, str | Mapping[str, str]]]
    """Capability (:data:`CAPABILITIES`) → why this target cannot do it: a sentence, or one per
    plan language (``{"sv": …, "en": …}``). Shown on the go/no-go line that becomes not applicable."""

    def __call__(self, page: Page, plan: Plan) -> ClinicalWebUi: ...


def missing(adapter: Any, criterion_id: str, language: str) -> str | None:
    """Why ``adapter`` cannot serve the criterion (its reasons for each capability it lacks), or None."""
    cannot: Mapping[str, Any] = getattr(adapter, "cannot", {}) or {}
    if unknown := sorted(set(cannot) - set(CAPABILITIES)):  # a typo would silently excuse nothing
        raise AdapterError(
            f"web_ui adapter {getattr(adapter, 'name', adapter)!r} declares unknown capabilities "
            f"{', '.join(unknown)} in `cannot` (known: {', '.join(CAPABILITIES)})"
        )
    reasons = []
    for capability in NEEDS.get(criterion_id, ()):
        if capability in cannot:
            why = cannot[capability]
            if isinstance(why, Mapping):
                why = why.get(language) or next(iter(why.values()), "")
            reasons.append(f"{capability}: {why}")
    return "; ".join(reasons) or None


# -- the seam's own guard: the patient gate does not rest on the adapter ------------------------------


class Gated:
    """A :class:`ClinicalWebUi` with the patient gate in front of it.

    Every identifier is checked by :func:`rehearsal.patient_gate.check` before the adapter sees it,
    and a reservnummer the adapter reports is let in only when it is one (its rules, its check
    digit); the screenshots' own gate is the plugin's. Everything else passes straight through.
    """

    def __init__(self, ui: ClinicalWebUi) -> None:
        self._ui = ui
        self.page = ui.page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ui, name)

    def find_patient(self, identifier: str) -> PatientView:
        return self._ui.find_patient(patient_gate.check(identifier, "söka efter"))

    def find_patient_expecting_none(self, identifier: str) -> str:
        return self._ui.find_patient_expecting_none(patient_gate.check(identifier, "söka efter"))

    def register_known(self, personnummer: str) -> PatientView:
        return self._ui.register_known(patient_gate.check(personnummer, "registrera"))

    def register_unknown(self, sex: Sex, birth_date: str) -> tuple[PatientView, str]:
        patient, number = self._ui.register_unknown(sex, birth_date)
        try:
            identities.check_reservnummer(number)
        except identities.IdentityError:
            raise AssertionError(
                f"webbklienten gav {patient_gate.mask(number)} som reservnummer, men det är inget"
            ) from None
        patient_gate.admit(number)  # the run made it: its own patient from now on
        return patient, number

    def referral_inbox(self) -> ReferralInbox:
        return _GatedInbox(self._ui.referral_inbox())


class _GatedInbox:
    def __init__(self, inbox: ReferralInbox) -> None:
        self._inbox = inbox

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inbox, name)

    def open_referral(self, identifier: str, question: str) -> ReceivedReferral:
        return self._inbox.open_referral(patient_gate.check(identifier, "öppna remiss för"), question)
