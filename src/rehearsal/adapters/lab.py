"""The lab link: a message to the lab over HL7 v2/MLLP, its acknowledgement, and (where the adapter
can read it) the lab's result, with the text the order carried.

A lab that answers ``AR`` is not taking orders, and a link that turns "Björk" into "BjÃ¶rk" or
"Bj?rk" files results under a name nobody ordered: both were invisible to an ASCII ping. The
technical scenario (features/teknisk/integrationer.feature) asks the plan's adapter::

    lab = plan.environment.adapter("lab")(plan)
    exchange = lab.exchange(site)      # -> Exchange: what was sent, the ACK, the result if read
    lab.close()

Class methods ``missing(plan)`` and ``endpoints(plan)`` as every adapter (``@needs:lab``: the
scenario that checks the result's text is collected only when the adapter reads results).

Adapters: ``reference`` (:mod:`rehearsal.adapters.lab_reference`: the reference lab's network
check, its results go to the reference bridge) and ``standards`` (below: a new order, ORM^O01 or
OML^O21, out to ``environment.lab_mllp``; the ORU^R01 in on ``environment.lab.results_mllp``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rehearsal import fidelity
from rehearsal.clients import hl7 as mllp
from rehearsal.errors import UsageError
from rehearsal.plan import Plan, Site
from rehearsal.workflows import routines

#: What the order says to the lab: å, ä, ö and the negations that faults strip.
COMMENT = "Ingen känd allergi; patienten är inte fastande, provtagning utan stas. Åter vid behov, ör och hö."
#: The order's fields that carry free text, and what each is (named in a failure).
TEXT_FIELDS = (("PID", 5, "patientens namn"), ("OBR", 16, "beställare"), ("NTE", 3, "kommentar"))
MESSAGES = {"ORM^O01": "ORM^O01^ORM_O01", "OML^O21": "OML^O21^OML_O21"}
ANALYSIS = ("NPU02319", "B-Hb Hemoglobin")


@dataclass
class Exchange:
    """One message to the lab and what came of it.

    ``refused`` is None when the ACK accepted (MSA-1 AA/CA), else the line quoting the peer;
    ``error`` when no ACK came at all. ``echo`` is None when this adapter does not read the
    lab's result, else the problems of the result (empty: it came, on the same patient, each
    text field byte for byte).
    """

    where: str
    control_id: str
    sent: str
    ack: str = ""
    code: str = ""
    refers_to: str = ""
    refused: str | None = None
    error: str | None = None
    echo: list[str] | None = None
    result: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        return {k: (v.replace("\r", "\n") if isinstance(v, str) else v) for k, v in vars(self).items()}


@runtime_checkable
class LabLink(Protocol):
    """Built as ``adapter(plan)``."""

    def exchange(self, site: Site) -> Exchange:
        """Send the adapter's test message from ``site`` and judge what came back."""
        ...

    def close(self) -> None: ...


class StandardsLab:
    """HL7 v2 over MLLP as any lab speaks it: a new order out, ``AA`` required, the ORU^R01 back.

    The order (``environment.lab.message``: ORM^O01 or OML^O21) is for the site's test patient,
    from the site's first user, to ``coexistence.lab`` (application, facility), with the
    orderer's name (ORC-12, OBR-16) and a comment (NTE) carrying å/ä/ö and negations. The lab
    sends its ORU^R01 to ``environment.lab.results_mllp``, where this adapter listens for the
    run (and acknowledges it ``AA``); the result must name the same placer number (ORC-2 or
    OBR-2) and patient (PID-3) within ``coexistence.lab.result_within_s``, and each text field
    of the order that the result carries (PID-5, OBR-16, NTE-3) must be byte-identical. A result
    that is not UTF-8 is named by its fields (a peer that re-encoded as latin-1); one that
    carries none of the non-ASCII text leaves the encoding unproven, which fails too.
    """

    #: It places a real order: the scenarios skip it where writing is refused (production).
    writes = True

    def __init__(self, plan: Plan) -> None:
        settings, uri = plan.environment.lab, plan.environment.lab_mllp
        if settings is None or uri is None:
            raise UsageError("the standards lab adapter needs environment.lab_mllp and environment.lab")
        self.plan, self.uri, self.settings = plan, uri, settings
        self._inbox = mllp.MllpListener(settings.results_mllp, plan.environment.timeouts.read)
        self._inbox.start()

    @classmethod
    def missing(cls, plan: Plan) -> str | None:
        env = plan.environment
        if env.lab_mllp is None:
            return "planen anger ingen environment.lab_mllp"
        return None if env.lab else "planen anger ingen environment.lab (results_mllp)"

    @classmethod
    def endpoints(cls, plan: Plan) -> dict[str, str]:
        return {"lab_mllp": plan.environment.lab_mllp} if plan.environment.lab_mllp else {}

    def close(self) -> None:
        self._inbox.close()

    def exchange(self, site: Site) -> Exchange:
        identity = routines.patient_for(self.plan, site)
        orderer = site.users[0] if site.users else None
        placer = f"RH{time.time_ns() // 1_000_000 % 10**12}"
        lab = self.plan.coexistence.lab
        order = mllp.LabOrder(
            placer, identity.personnummer, identity.name, *ANALYSIS, "REHEARSAL", site.hsa_id,
            orderer.hsa_id if orderer else "", orderer.name if orderer else site.name, COMMENT,
        )  # fmt: skip
        text = mllp.build_order(order, (lab.application, lab.facility), MESSAGES[self.settings.message])
        made = Exchange(f"labbsystemet ({self.uri})", mllp.control_id(text), text)
        timeouts = self.plan.environment.timeouts
        started = time.monotonic()
        try:
            ack = mllp.send_message(self.uri, text, timeouts.read, connect_timeout=timeouts.connect)
        except mllp.MllpError as exc:
            made.error = str(exc)
            return made
        made.seconds["kvittens"] = round(time.monotonic() - started, 3)
        made.ack, made.code = str(ack), mllp.ack_code(ack)
        made.refers_to = mllp.field(ack, "MSA", 2)
        made.refused = mllp.refusal(ack, made.where)
        if made.refused is not None:
            return made
        sent = mllp.parse(text)
        within = lab.result_within_s
        got = self._inbox.wait_for(lambda r: _answers(r, placer), within)
        made.seconds["svar"] = round(time.monotonic() - started, 3)
        if got is None:
            made.echo = [
                f"inget ORU^R01 för beställning {placer} till {self.settings.results_mllp} inom {within:g} s"
            ]
            return made
        made.result = got.text if got.text is not None else got.raw.decode("latin-1")
        made.echo = echo_problems(sent, got)
        return made


def _answers(received: mllp.Received, placer: str) -> bool:
    message = received.lenient()
    if message is None:
        return False
    numbers = {mllp.field(message, "ORC", 2, 1), mllp.field(message, "OBR", 2, 1)}
    return mllp.field(message, "MSH", 9, 1) == "ORU" and placer in numbers


def echo_problems(order: Any, received: mllp.Received) -> list[str]:
    """What is wrong with the lab's result to ``order``: not UTF-8 (naming the fields), another
    patient, a text field that differs (named, shown side by side), or no non-ASCII text to prove
    the encoding by."""
    control = mllp.field(received.lenient() or order, "MSH", 10)
    if received.text is None:
        fields = ", ".join(mllp.undecodable_fields(received.raw)) or "?"
        return [f"labbets svar (ORU^R01 {control}) är inte UTF-8 i {fields}: labbet har skrivit om texten"
                " (latin-1?); å, ä och ö når inte fram"]  # fmt: skip
    result = received.message
    if result is None:
        return [f"labbets svar (ORU^R01 {control}) går inte att läsa: {received.problem}"]
    problems = []
    ordered, answered = mllp.field(order, "PID", 3, 1), mllp.field(result, "PID", 3, 1)
    if answered != ordered:
        problems.append(f"PID-3: svaret gäller {answered!r}, beställningen {ordered!r} (fel patient)")
    proven = False
    for segment, index, what in TEXT_FIELDS:
        sent, came = mllp.field(order, segment, index), mllp.field(result, segment, index)
        if not sent or not came:
            continue
        proven = proven or not sent.isascii()
        if diff := fidelity.difference(
            mllp.unescape(sent), mllp.unescape(came), f"{segment}-{index} ({what})"
        ):
            problems.append(diff)
    if not proven and not problems:
        carried = ", ".join(f"{s}-{i}" for s, i, _ in TEXT_FIELDS)
        problems.append(
            f"labbets svar bär ingen av beställningens text med å, ä, ö ({carried}): "
            "teckenkodningen är inte prövad"
        )
    return problems
