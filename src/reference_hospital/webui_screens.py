"""The clinical screens beyond the patient page: results, referrals (sent and received), printing.

A mix-in of :class:`reference_hospital.webui.WebUI`; each screen is a few lines of HTML
around one :class:`~reference_hospital.ehr.Ehr` call, with the same conventions (labels
on every control, named buttons, ``role=status``/``role=alert`` for outcomes).

Referral text and answers are shown exactly as stored (``white-space: pre-wrap``), so what
a sender wrote can be compared character for character on the receiving side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from reference_hospital.ehr import Ehr, Referral, Refusal
from reference_hospital.fhir_resources import (
    identity_of,
    name_of,
    parse_reference,
    referral_answer,
    referral_question,
)
from reference_hospital.printing import (
    PrintResult,
    send_ipp,
    send_zpl,
    simple_pdf,
    specimen_label_zpl,
    wristband_zpl,
)
from reference_hospital.store import Resource
from reference_hospital.webui_common import (
    RESULT_STATUS_SV,
    Session,
    analysis,
    concept_text,
    display,
    form_text,
    local_time,
    quantity,
    reference_range,
)
from rehearsal.plan import Printer

TASK_STATUS_SV = {
    "requested": "Skickad",
    "received": "Mottagen",
    "accepted": "Accepterad",
    "in-progress": "Pågår",
    "completed": "Besvarad",
    "rejected": "Avvisad",
    "cancelled": "Makulerad",
    "failed": "Misslyckad",
}
PRINTER_KINDS = {"wristband": "armbandsskrivare", "label": "etikettskrivare", "document": "dokumentskrivare"}
PRINT_REASONS_SV = {
    "refused": "anslutningen nekades",
    "timeout": "skrivaren svarar inte",
    "unreachable": "skrivaren går inte att nå",
    "paper-out": "papper slut",
    "head-open": "skrivarhuvudet är öppet",
    "ribbon-out": "färgbandet är slut",
    "paused": "skrivaren är pausad",
    "http-error": "skrivaren svarade med ett fel",
    "ipp-error": "skrivaren avvisade jobbet",
    "bad-reply": "skrivarens svar gick inte att läsa",
    "bad-uri": "skrivarens adress i planen fungerar inte för den här utskriften",
}

Page = Callable[[Callable[[Request, Session], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]


class ClinicalScreens:
    """Results, referrals and printing; expects the attributes and helpers of ``WebUI``."""

    ehr: Ehr

    if TYPE_CHECKING:  # provided by WebUI

        def url(self, path: str) -> str: ...
        def _page(self, title: str, body: str, session: Session | None, status: int = 200) -> Response: ...
        def _csrf(self, session: Session) -> str: ...
        def _done(self, session: Session, text: str, target: str) -> Response: ...
        def _patient_or_404(self, pid: str, session: Session) -> Resource | Response: ...
        def _patient_header(self, patient: Resource, title: str | None = None) -> str: ...

    def clinical_routes(self, page: Page) -> list[Route]:
        return [
            Route("/patients/{pid}/results", page(self.results), methods=["GET"]),
            Route("/patients/{pid}/referrals", page(self.referrals), methods=["GET"]),
            Route("/patients/{pid}/referrals", page(self.send_referral), methods=["POST"]),
            Route("/referrals", page(self.inbox), methods=["GET"]),
            Route("/referrals/{tid}", page(self.referral), methods=["GET"]),
            Route("/referrals/{tid}/receive", page(self.receive_referral), methods=["POST"]),
            Route("/referrals/{tid}/answer", page(self.answer_referral), methods=["POST"]),
            Route("/patients/{pid}/print", page(self.print_page), methods=["GET"]),
            Route("/patients/{pid}/print/{what}", page(self.print_job), methods=["POST"]),
        ]

    # -- results -----------------------------------------------------------------------------------

    async def results(self, request: Request, session: Session) -> Response:
        patient = self._patient_or_404(request.path_params["pid"], session)
        if isinstance(patient, Response):
            return patient
        reports, observations = self.ehr.results(patient["id"])
        orders = {o["id"]: o for o in self.ehr.orders(patient["id"])}

        def ordered(resource: Resource) -> str:
            for based in resource.get("basedOn") or []:
                ref = parse_reference(str(based.get("reference", "")))
                if ref and ref[1] in orders:
                    return f"{analysis(orders[ref[1]])} {local_time(orders[ref[1]].get('authoredOn', ''))}"
            return ""

        rows = (
            "".join(
                "<tr>"
                f"<td>{escape(concept_text(o.get('code')))}</td>"
                f"<td>{escape(quantity(o)[0])}</td>"
                f"<td>{escape(quantity(o)[1])}</td>"
                f"<td>{escape(reference_range(o))}</td>"
                f"<td>{escape(RESULT_STATUS_SV.get(o.get('status', ''), o.get('status', '')))}</td>"
                f"<td>{escape(local_time(o.get('issued') or o.get('effectiveDateTime', '')))}</td>"
                f"<td>{escape(ordered(o))}</td>"
                "</tr>"
                for o in observations
            )
            or '<tr><td colspan="7">Inga provsvar</td></tr>'
        )
        report_rows = (
            "".join(
                "<tr>"
                f"<td>{escape(concept_text(r.get('code')))}</td>"
                f"<td>{escape(RESULT_STATUS_SV.get(r.get('status', ''), r.get('status', '')))}</td>"
                f"<td>{escape(local_time(r.get('issued', '')))}</td>"
                f"<td>{escape(ordered(r))}</td>"
                f'<td class="text">{escape(r.get("conclusion", ""))}</td>'
                "</tr>"
                for r in reports
            )
            or '<tr><td colspan="5">Inga svarsrapporter</td></tr>'
        )
        body = f"""
{self._patient_header(patient, f"Provsvar – {name_of(patient)}")}
<table>
  <caption>Provsvar</caption>
  <thead><tr><th scope="col">Analys</th><th scope="col">Resultat</th><th scope="col">Enhet</th>
  <th scope="col">Referensintervall</th><th scope="col">Status</th><th scope="col">Svarstid</th>
  <th scope="col">Beställning</th></tr></thead>
  <tbody>{rows}</tbody>
</table>
<table>
  <caption>Svarsrapporter</caption>
  <thead><tr><th scope="col">Undersökning</th><th scope="col">Status</th><th scope="col">Utfärdad</th>
  <th scope="col">Beställning</th><th scope="col">Utlåtande</th></tr></thead>
  <tbody>{report_rows}</tbody>
</table>"""
        return self._page(f"Provsvar – {name_of(patient)}", body, session)

    # -- referrals: the sender ------------------------------------------------------------------------

    async def referrals(self, request: Request, session: Session) -> Response:
        patient = self._patient_or_404(request.path_params["pid"], session)
        if isinstance(patient, Response):
            return patient
        pid = patient["id"]
        receivers = "".join(
            f'<option value="{escape(u.id)}">{escape(u.name)}'
            f"{' (gamla journalsystemet)' if u.system == 'legacy' else ''}</option>"
            for u in self.ehr.units().values()
        )
        rows = (
            "".join(
                "<tr>"
                f"<td>{escape(local_time(r.request.get('authoredOn', '')))}</td>"
                f"<td>{escape(display((r.request.get('performer') or [{}])[0]))}</td>"
                f'<td class="text">{escape(referral_question(r.request))}</td>'
                f"<td>{escape(TASK_STATUS_SV.get(r.task.get('status', ''), r.task.get('status', '')))}</td>"
                f'<td class="text">{escape(referral_answer(r.task) or "")}</td>'
                "</tr>"
                for r in self.ehr.referrals_sent(pid)
            )
            or '<tr><td colspan="5">Inga remisser</td></tr>'
        )
        body = f"""
{self._patient_header(patient, f"Remisser – {name_of(patient)}")}
<section aria-labelledby="referral-heading">
  <h2 id="referral-heading">Ny remiss</h2>
  <form method="post" action="{escape(self.url(f"/patients/{pid}/referrals"))}"
        aria-labelledby="referral-heading">
    {self._csrf(session)}
    <label for="receiver">Mottagare</label>
    <select id="receiver" name="receiver" required>{receivers}</select>
    <label for="question">Frågeställning</label>
    <textarea id="question" name="question" required></textarea>
    <div><button type="submit">Skicka remiss</button></div>
  </form>
</section>
<table>
  <caption>Skickade remisser</caption>
  <thead><tr><th scope="col">Skickad</th><th scope="col">Mottagare</th><th scope="col">Frågeställning</th>
  <th scope="col">Status</th><th scope="col">Svar</th></tr></thead>
  <tbody>{rows}</tbody>
</table>"""
        return self._page(f"Remisser – {name_of(patient)}", body, session)

    async def send_referral(self, request: Request, session: Session) -> Response:
        pid = request.path_params["pid"]
        form = await request.form()
        referral = await self.ehr.send_referral(
            pid, session.clinician, str(form.get("receiver", "")), form_text(form, "question")
        )
        receiver = display((referral.request.get("performer") or [{}])[0])
        return self._done(session, f"Remissen är skickad till {receiver}", f"/patients/{pid}/referrals")

    # -- referrals: the receiver ------------------------------------------------------------------------

    async def inbox(self, request: Request, session: Session) -> Response:
        c = session.clinician
        rows = (
            "".join(
                "<tr>"
                f"<td>{escape(local_time(r.task.get('authoredOn', '')))}</td>"
                f"<td>{escape(name_of(r.patient) if r.patient else '')}</td>"
                f"<td>{escape(identity_of(r.patient)[1] if r.patient else '')}</td>"
                f"<td>{escape(display(r.request.get('requester')))}</td>"
                f'<td class="text">{escape(referral_question(r.request))}</td>'
                f"<td>{escape(TASK_STATUS_SV.get(r.task.get('status', ''), r.task.get('status', '')))}</td>"
                f'<td><a href="{escape(self.url("/referrals/" + r.task["id"]))}">Öppna</a></td>'
                "</tr>"
                for r in self.ehr.referral_inbox(c.site_id)
            )
            or '<tr><td colspan="7">Inga remisser</td></tr>'
        )
        body = f"""
<h1>Inkomna remisser</h1>
<p>Remisser till {escape(c.site_name)}.</p>
<table>
  <caption>Inkomna remisser</caption>
  <thead><tr><th scope="col">Inkommen</th><th scope="col">Patient</th><th scope="col">Personnummer</th>
  <th scope="col">Från</th><th scope="col">Frågeställning</th><th scope="col">Status</th>
  <th scope="col"><span hidden>Åtgärd</span></th></tr></thead>
  <tbody>{rows}</tbody>
</table>"""
        return self._page("Inkomna remisser", body, session)

    async def referral(self, request: Request, session: Session) -> Response:
        referral = self.ehr.referral(request.path_params["tid"])
        tid = referral.task["id"]
        status = referral.task.get("status", "")
        answer = referral_answer(referral.task)
        csrf = self._csrf(session)
        actions = ""
        if status == "requested":
            actions += f"""
<form method="post" action="{escape(self.url(f"/referrals/{tid}/receive"))}">
  {csrf}<button type="submit">Kvittera</button>
</form>"""
        if status != "completed":
            actions += f"""
<section aria-labelledby="answer-heading">
  <h2 id="answer-heading">Besvara</h2>
  <form method="post" action="{escape(self.url(f"/referrals/{tid}/answer"))}"
        aria-labelledby="answer-heading">
    {csrf}
    <label for="answer">Svar</label>
    <textarea id="answer" name="answer" required></textarea>
    <div><button type="submit">Skicka svar</button></div>
  </form>
</section>"""
        answered = (
            f"""
<section aria-labelledby="reply-heading">
  <h2 id="reply-heading">Remissvar</h2>
  <p class="text" aria-labelledby="reply-heading">{escape(answer)}</p>
</section>"""
            if answer is not None
            else ""
        )
        patient = referral.patient
        label, value = identity_of(patient) if patient else ("Personnummer", "")
        body = f"""
<p><a href="{escape(self.url("/referrals"))}">Inkomna remisser</a></p>
<h1>Remiss</h1>
<dl>
  <dt>Patient</dt><dd>{escape(name_of(patient) if patient else "")}</dd>
  <dt>{escape(label)}</dt><dd>{escape(value)}</dd>
  <dt>Från</dt><dd>{escape(display(referral.request.get("requester")))}</dd>
  <dt>Till</dt><dd>{escape(display(referral.task.get("owner")))}</dd>
  <dt>Skickad</dt><dd>{escape(local_time(referral.task.get("authoredOn", "")))}</dd>
  <dt>Status</dt><dd>{escape(TASK_STATUS_SV.get(status, status))}</dd>
</dl>
<section aria-labelledby="question-heading">
  <h2 id="question-heading">Frågeställning</h2>
  <p class="text" aria-labelledby="question-heading">{escape(referral_question(referral.request))}</p>
</section>
{actions}{answered}"""
        return self._page("Remiss", body, session)

    async def receive_referral(self, request: Request, session: Session) -> Response:
        referral = await self.ehr.receive_referral(request.path_params["tid"], session.clinician)
        return self._done(session, "Remissen är kvitterad", f"/referrals/{referral.task['id']}")

    async def answer_referral(self, request: Request, session: Session) -> Response:
        form = await request.form()
        referral: Referral = await self.ehr.answer_referral(
            request.path_params["tid"], session.clinician, form_text(form, "answer")
        )
        return self._done(session, "Svaret är skickat", f"/referrals/{referral.task['id']}")

    # -- printing -------------------------------------------------------------------------------------

    def _printers(self, session: Session, kind: str) -> list[Printer]:
        return [p for p in self.ehr.plan.site(session.clinician.site_id).printers if p.kind == kind]

    def _printer_select(self, session: Session, kind: str, field_id: str, label: str) -> str:
        printers = self._printers(session, kind)
        if not printers:
            return f"<p>{escape(session.clinician.site_name)} har ingen {PRINTER_KINDS[kind]} i planen.</p>"
        options = "".join(
            f'<option value="{escape(p.id)}">{escape(p.id)}{f" – {escape(p.location)}" if p.location else ""}'
            "</option>"
            for p in printers
        )
        select = f'<select id="{field_id}" name="printer">{options}</select>'
        return f'<label for="{field_id}">{label}</label>{select}'

    async def print_page(self, request: Request, session: Session) -> Response:
        patient = self._patient_or_404(request.path_params["pid"], session)
        if isinstance(patient, Response):
            return patient
        pid = patient["id"]
        csrf = self._csrf(session)
        orders = "".join(
            f'<option value="{escape(o["id"])}">'
            f"{escape(analysis(o))} {escape(local_time(o.get('authoredOn', '')))}"
            "</option>"
            for o in reversed(self.ehr.orders(pid))
        )
        order_select = (
            f'<label for="order">Labbeställning</label><select id="order" name="order">{orders}</select>'
            if orders
            else "<p>Patienten har inga labbeställningar.</p>"
        )

        def form(what: str, heading: str, fields: str, button: str, enabled: bool) -> str:
            return f"""
<section aria-labelledby="{what}-heading">
  <h2 id="{what}-heading">{heading}</h2>
  <form method="post" action="{escape(self.url(f"/patients/{pid}/print/{what}"))}"
        aria-labelledby="{what}-heading">
    {csrf}{fields}
    <div><button type="submit"{"" if enabled else " disabled"}>{button}</button></div>
  </form>
</section>"""

        wristband = self._printer_select(session, "wristband", "wristband-printer", "Armbandsskrivare")
        label = self._printer_select(session, "label", "label-printer", "Etikettskrivare")
        document = self._printer_select(session, "document", "document-printer", "Dokumentskrivare")
        body = (
            self._patient_header(patient, f"Utskrift – {name_of(patient)}")
            + form(
                "wristband",
                "Patientarmband",
                wristband,
                "Skriv ut armband",
                bool(self._printers(session, "wristband")),
            )
            + form(
                "label",
                "Provetikett",
                order_select + label,
                "Skriv ut provetikett",
                bool(orders and self._printers(session, "label")),
            )
            + form(
                "document",
                "Dokument",
                document,
                "Skriv ut patientöversikt",
                bool(self._printers(session, "document")),
            )
        )
        return self._page(f"Utskrift – {name_of(patient)}", body, session)

    async def print_job(self, request: Request, session: Session) -> Response:
        what = request.path_params["what"]
        kinds = {"wristband": "wristband", "label": "label", "document": "document"}
        if what not in kinds:
            raise Refusal("Okänd utskrift.")
        patient = self.ehr.store.read("Patient", request.path_params["pid"])
        if patient is None:
            raise Refusal("Patienten finns inte.")
        form = await request.form()
        printer = next((p for p in self._printers(session, kinds[what]) if p.id == form.get("printer")), None)
        if printer is None:
            raise Refusal(f"Välj en {PRINTER_KINDS[kinds[what]]} på {session.clinician.site_name}.")
        timeout = self.ehr.plan.environment.timeouts.device
        label, identity = identity_of(patient)
        site = session.clinician.site_name
        if what == "document":
            name = f"Patientöversikt {identity}"
            pdf = self._summary_pdf(patient)
            result = await send_ipp(printer.uri, pdf, timeout, job_name=name, user=session.clinician.hsa_id)
            thing = "patientöversikten"
        elif what == "wristband":
            job = wristband_zpl(
                name_of(patient), label, identity, patient.get("birthDate", ""), site, identity
            )
            result = await send_zpl(printer.uri, job, timeout)
            thing = "armbandet"
        else:
            order = next((o for o in self.ehr.orders(patient["id"]) if o["id"] == form.get("order")), None)
            if order is None:
                raise Refusal("Välj en labbeställning.")
            job = specimen_label_zpl(
                name_of(patient),
                identity,
                analysis(order),
                order["id"],
                local_time(order.get("authoredOn", "")),
                site,
            )
            result = await send_zpl(printer.uri, job, timeout)
            thing = f"provetiketten för {analysis(order)}"
        session.flash.append(_print_message(printer, thing, result))
        return RedirectResponse(self.url(f"/patients/{patient['id']}/print"), status_code=303)

    def _summary_pdf(self, patient: Resource) -> bytes:
        label, identity = identity_of(patient)
        lines = [f"{label}: {identity}", f"Födelsedatum: {patient.get('birthDate', '')}", ""]
        for encounter in self.ehr.encounters(patient["id"]):
            klass = (encounter.get("class") or {}).get("display", "")
            lines.append(
                f"Vårdkontakt: {klass}, {display(encounter.get('serviceProvider'))}, "
                f"{local_time((encounter.get('period') or {}).get('start', ''))}"
            )
        for order in self.ehr.orders(patient["id"]):
            lines.append(f"Labbeställning: {analysis(order)}, {local_time(order.get('authoredOn', ''))}")
        return simple_pdf(f"Patientöversikt – {name_of(patient)}", lines)


def _print_message(printer: Printer, thing: str, result: PrintResult) -> tuple[str, str]:
    """(role, Swedish sentence) for the outcome of a print job."""
    if not result.accepted:
        why = PRINT_REASONS_SV.get(result.reason, result.detail)
        return "alert", f"Skrivaren {printer.id} tog inte emot {thing}: {why}."
    job = f" (jobb {result.job_id})" if result.job_id is not None else ""
    if result.confirmed is None:
        sent = f"{thing[:1].upper()}{thing[1:]} skickades till {printer.id}"
        return "status", f"{sent}; skrivaren lämnade ingen status."
    return "status", f"Skrivaren {printer.id} tog emot {thing}{job}."
