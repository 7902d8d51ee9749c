"""The clinician web UI of the reference EHR: server-rendered HTML, Swedish labels, no JavaScript.

Screens: login (HSA-id + password, the user's role and site shown once in), patient
search, registration (a known test patient, or an unknown one under a new reservnummer),
the patient page (admission, lab order, the patient's admissions and lab orders), and —
in :mod:`reference_hospital.webui_screens` — results, referrals sent and received,
and printing of wristbands, specimen labels and documents.

Every form control has a ``<label for>`` and every button a name, so page objects find
them by label and role the way a screen reader would. Outcomes are shown on the next
page as ``role=status`` (done) or ``role=alert`` (refused). All dynamic text is escaped;
sessions live in memory (a restart logs everyone out, which is what a rehearsal wants).
Faults: ``ehr-down`` answers 503 everywhere; ``login-denied-role@SITE`` lets the site's
users authenticate and then tells them their role gives no access (403).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from reference_hospital.ehr import (
    LAB_TESTS,
    Clinician,
    Ehr,
    FhirError,
    Refusal,
    personnummer_digits,
)
from reference_hospital.fhir_resources import ENCOUNTER_CLASSES, identity_of, name_of
from reference_hospital.store import Resource
from reference_hospital.webui_common import (
    STATUS_SV,
    Session,
    analysis,
    display,
    local_time,
    looks_like_reservnummer,
)
from reference_hospital.webui_screens import ClinicalScreens

COOKIE = "ehr_session"
SESSION_S = 8 * 3600

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b}
header{background:#00315c;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;
flex-wrap:wrap}
header a{color:#fff}
header .env{background:#ffd400;color:#000;padding:.1rem .5rem;font-weight:600}
header form{margin-left:auto}
nav ul{list-style:none;display:flex;gap:1rem;margin:0;padding:0}
main{padding:1rem;max-width:64rem}
label{display:block;margin-top:.6rem;font-weight:600}
input,select,textarea{font-size:1rem;padding:.3rem}
textarea{width:100%;min-height:6rem}
button{font-size:1rem;margin-top:.6rem;padding:.3rem 1rem}
[role=alert]{color:#a30000;font-weight:600}
[role=status]{color:#075e00;font-weight:600}
table{border-collapse:collapse;margin-top:1rem}
caption{text-align:left;font-weight:600;font-size:1.2rem}
th,td{border:1px solid #bbb;padding:.3rem .6rem;text-align:left;vertical-align:top}
.text{white-space:pre-wrap}
section{margin-top:1.2rem}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


Handler = Callable[[Request, Session], Awaitable[Response]]


class WebUI(ClinicalScreens):
    """The HTML face of an :class:`Ehr`, mounted at the path of ``environment.web_base``."""

    def __init__(self, ehr: Ehr, prefix: str = "") -> None:
        self.ehr = ehr
        self.prefix = prefix.rstrip("/")
        self._sessions: dict[str, Session] = {}

    def routes(self) -> list[Route]:
        page = self._signed_in
        return [
            Route("/", self._open(self.home), methods=["GET"]),
            Route("/login", self._open(self.login_form), methods=["GET"]),
            Route("/login", self._open(self.login), methods=["POST"]),
            Route("/logout", self._open(self.logout), methods=["POST"]),
            Route("/patients", page(self.search), methods=["GET"]),
            Route("/register", page(self.registration), methods=["GET"]),
            Route("/register", page(self.register_known), methods=["POST"]),
            Route("/register/unknown", page(self.register_unknown), methods=["POST"]),
            Route("/patients/{pid}", page(self.patient), methods=["GET"]),
            Route("/patients/{pid}/admissions", page(self.admit), methods=["POST"]),
            Route("/patients/{pid}/orders", page(self.order), methods=["POST"]),
            *self.clinical_routes(page),
        ]

    def url(self, path: str) -> str:
        return f"{self.prefix}{path}"

    # -- sessions and guards -----------------------------------------------------------------------

    def _session(self, request: Request) -> Session | None:
        token = request.cookies.get(COOKIE, "")
        session = self._sessions.get(token)
        if session is None:
            return None
        if session.expires < time.time():
            self._sessions.pop(token, None)
            return None
        return session

    def _to_login(self) -> Response:
        return RedirectResponse(self.url("/login"), status_code=303)

    def _down(self) -> Response:
        body = (
            '<h1>Journalen är inte tillgänglig</h1><p role="alert">Journalsystemet svarar inte just nu.</p>'
        )
        response = self._page("Journalen är inte tillgänglig", body, None, 503)
        response.headers["Retry-After"] = "5"
        return response

    def _open(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A screen anyone may reach (login): only ``ehr-down`` stops it."""

        async def endpoint(request: Request) -> Response:
            if self.ehr.down:
                return self._down()
            return await handler(request)

        return endpoint

    def _signed_in(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A screen for logged-in clinicians whose role gives access; POSTs also need the form's token."""

        async def endpoint(request: Request) -> Response:
            if self.ehr.down:
                return self._down()
            session = self._session(request)
            if session is None:
                return self._to_login()
            denied = self.ehr.access_denied(session.clinician)
            if denied:
                return self._denied_page(session.clinician, denied)
            if request.method == "POST":
                form = await request.form()
                if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
                    return self._back(request, session, "alert", "Formuläret har gått ut. Försök igen.")
            try:
                return await handler(request, session)
            except Refusal as exc:
                return self._back(request, session, "alert", str(exc))
            except FhirError as exc:
                return self._back(request, session, "alert", f"Det gick inte: {exc}")

        return endpoint

    def _back(self, request: Request, session: Session, role: str, text: str) -> Response:
        """After a POST: show ``text`` on the screen the form was on."""
        session.flash.append((role, text))
        return RedirectResponse(_form_page(request.url.path), status_code=303)

    def _done(self, session: Session, text: str, target: str) -> Response:
        session.flash.append(("status", text))
        return RedirectResponse(self.url(target), status_code=303)

    def _denied_page(self, clinician: Clinician, message: str) -> Response:
        body = f"""
<h1>Ingen behörighet</h1>
<p>Inloggad som {escape(clinician.name)} ({escape(clinician.role)}), {escape(clinician.site_name)}</p>
<p role="alert">{escape(message)}</p>
<p><a href="{escape(self.url("/login"))}">Till inloggningen</a></p>"""
        return self._page("Ingen behörighet", body, None, 403)

    # -- login ------------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        target = "/patients" if self._session(request) else "/login"
        return RedirectResponse(self.url(target), status_code=303)

    async def login_form(self, request: Request) -> Response:
        if self._session(request):
            return RedirectResponse(self.url("/patients"), status_code=303)
        return self._login_page()

    def _login_page(self, error: str = "", hsa_id: str = "", status: int = 200) -> Response:
        alert = f'<p role="alert">{escape(error)}</p>' if error else ""
        body = f"""
<h1>Logga in</h1>
{alert}
<form method="post" action="{escape(self.url("/login"))}">
  <label for="hsa_id">HSA-id</label>
  <input id="hsa_id" name="hsa_id" value="{escape(hsa_id)}" autocomplete="username" required>
  <label for="password">Lösenord</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <div><button type="submit">Logga in</button></div>
</form>"""
        return self._page("Logga in", body, None, status)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        hsa_id = str(form.get("hsa_id", "")).strip()
        clinician = self.ehr.authenticate(hsa_id, str(form.get("password", "")))
        if clinician is None:
            return self._login_page("Fel HSA-id eller lösenord.", hsa_id, status=401)
        denied = self.ehr.access_denied(clinician)
        if denied:
            return self._denied_page(clinician, denied)
        now = time.time()
        for stale in [t for t, s in self._sessions.items() if s.expires < now]:
            self._sessions.pop(stale, None)
        token = secrets.token_urlsafe(32)
        self._sessions[token] = Session(clinician, secrets.token_urlsafe(16), now + SESSION_S)
        response = RedirectResponse(self.url("/patients"), status_code=303)
        response.set_cookie(
            COOKIE, token, max_age=SESSION_S, path=self.prefix or "/", httponly=True, samesite="lax"
        )
        return response

    async def logout(self, request: Request) -> Response:
        session = self._session(request)
        form = await request.form()
        if session and secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            self._sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = self._to_login()
        response.delete_cookie(COOKIE, path=self.prefix or "/")
        return response

    # -- finding and registering patients -----------------------------------------------------------

    async def search(self, request: Request, session: Session) -> Response:
        query = request.query_params.get("personnummer", "").strip()
        alert, status = "", 200
        if query:
            if personnummer_digits(query) is None and not looks_like_reservnummer(query):
                alert, status = f"Ogiltigt personnummer: {query}. Skriv ÅÅÅÅMMDD-NNNN.", 400
            else:
                patient = await self.ehr.find_patient(query)
                if patient is not None:
                    return RedirectResponse(self.url(f"/patients/{patient['id']}"), status_code=303)
                alert, status = f"Ingen patient med personnummer {query}.", 404
        body = f"""
<h1>Sök patient</h1>
<form method="get" action="{escape(self.url("/patients"))}" role="search" aria-label="Patientsökning">
  <label for="personnummer">Personnummer</label>
  <input id="personnummer" name="personnummer" value="{escape(query)}" placeholder="ÅÅÅÅMMDD-NNNN"
         required>
  <div><button type="submit">Sök</button></div>
</form>
{f'<p role="alert">{escape(alert)}</p>' if alert else ""}
<p><a href="{escape(self.url("/register"))}">Registrera patient</a></p>"""
        return self._page("Sök patient", body, session, status)

    async def registration(self, request: Request, session: Session) -> Response:
        sexes = (("female", "Kvinna"), ("male", "Man"), ("unknown", "Okänt"))
        options = "".join(f'<option value="{v}">{t}</option>' for v, t in sexes)
        csrf = self._csrf(session)
        body = f"""
<h1>Registrera patient</h1>
<section aria-labelledby="known-heading">
  <h2 id="known-heading">Känd patient</h2>
  <form method="post" action="{escape(self.url("/register"))}" aria-labelledby="known-heading">
    {csrf}
    <label for="reg-personnummer">Personnummer</label>
    <input id="reg-personnummer" name="personnummer" placeholder="ÅÅÅÅMMDD-NNNN" required>
    <label for="reg-phone">Telefon (valfritt)</label>
    <input id="reg-phone" name="phone" type="tel">
    <div><button type="submit">Registrera</button></div>
  </form>
</section>
<section aria-labelledby="unknown-heading">
  <h2 id="unknown-heading">Okänd patient</h2>
  <p>Patienten får ett reservnummer (ÅÅÅÅMMDD + K/M/X + tre siffror).</p>
  <form method="post" action="{escape(self.url("/register/unknown"))}" aria-labelledby="unknown-heading">
    {csrf}
    <label for="reg-sex">Kön</label>
    <select id="reg-sex" name="sex" required>{options}</select>
    <label for="reg-birth">Uppskattat födelsedatum</label>
    <input id="reg-birth" name="birth_date" type="date" required>
    <div><button type="submit">Registrera okänd patient</button></div>
  </form>
</section>"""
        return self._page("Registrera patient", body, session)

    async def register_known(self, request: Request, session: Session) -> Response:
        form = await request.form()
        patient = await self.ehr.register_known(str(form.get("personnummer", "")), str(form.get("phone", "")))
        label, value = identity_of(patient)
        return self._done(
            session, f"Patienten är registrerad: {name_of(patient)}, {value}", f"/patients/{patient['id']}"
        )

    async def register_unknown(self, request: Request, session: Session) -> Response:
        form = await request.form()
        sex = str(form.get("sex", ""))
        try:
            born = datetime.strptime(str(form.get("birth_date", "")), "%Y-%m-%d").date()
        except ValueError:
            raise Refusal("Ange ett födelsedatum som ÅÅÅÅ-MM-DD.") from None
        if sex not in ("male", "female", "unknown"):
            raise Refusal("Välj kön.")
        patient = await self.ehr.register_unknown(sex, born)
        _, number = identity_of(patient)
        return self._done(
            session, f"Okänd patient registrerad med reservnummer {number}", f"/patients/{patient['id']}"
        )

    # -- the patient --------------------------------------------------------------------------------

    def _patient_or_404(self, pid: str, session: Session) -> Resource | Response:
        patient = self.ehr.store.read("Patient", pid)
        if patient is None:
            back = escape(self.url("/patients"))
            body = f'<h1>Patienten finns inte</h1><p><a href="{back}">Sök patient</a></p>'
            return self._page("Patienten finns inte", body, session, 404)
        return patient

    def _patient_header(self, patient: Resource, title: str | None = None) -> str:
        """The heading of every patient screen: h1 (the name, or a title naming the patient) and identity."""
        label, value = identity_of(patient)
        pid = patient["id"]
        links = (
            ("", "Översikt"),
            ("/results", "Provsvar"),
            ("/referrals", "Remisser"),
            ("/print", "Utskrift"),
        )
        nav = "".join(
            f'<li><a href="{escape(self.url(f"/patients/{pid}{path}"))}">{text}</a></li>'
            for path, text in links
        )
        return f"""
<nav aria-label="Patienten"><ul>{nav}</ul></nav>
<h1>{escape(title or name_of(patient))}</h1>
<dl>
  <dt>{escape(label)}</dt><dd>{escape(value)}</dd>
  <dt>Födelsedatum</dt><dd>{escape(patient.get("birthDate", ""))}</dd>
</dl>"""

    async def patient(self, request: Request, session: Session) -> Response:
        pid = request.path_params["pid"]
        patient = self._patient_or_404(pid, session)
        if isinstance(patient, Response):
            return patient
        csrf = self._csrf(session)
        klasses = "".join(f'<option value="{k}">{escape(v)}</option>' for k, v in ENCOUNTER_CLASSES.items())
        encounters = self.ehr.encounters(pid)
        encounter_rows = (
            "".join(
                "<tr>"
                f"<td>{escape((e.get('class') or {}).get('display', ''))}</td>"
                f"<td>{escape(display(e.get('serviceProvider')))}</td>"
                f"<td>{escape(STATUS_SV.get(e.get('status', ''), e.get('status', '')))}</td>"
                f"<td>{escape(local_time((e.get('period') or {}).get('start', '')))}</td>"
                "</tr>"
                for e in encounters
            )
            or '<tr><td colspan="4">Inga vårdkontakter</td></tr>'
        )
        options = "".join(
            f'<option value="{escape(t.code)}">{escape(t.code)} – {escape(t.display)}</option>'
            for t in LAB_TESTS.values()
        )
        orders = self.ehr.orders(pid)
        order_rows = (
            "".join(
                "<tr>"
                f"<td>{escape(analysis(o))}</td>"
                f"<td>{escape(o.get('code', {}).get('text', ''))}</td>"
                f"<td>{escape(STATUS_SV.get(o.get('status', ''), o.get('status', '')))}</td>"
                f"<td>{escape(local_time(o.get('authoredOn', '')))}</td>"
                f"<td>{escape(o.get('requester', {}).get('display', ''))}</td>"
                "</tr>"
                for o in orders
            )
            or '<tr><td colspan="5">Inga beställningar</td></tr>'
        )
        body = f"""
<p><a href="{escape(self.url("/patients"))}">Sök patient</a></p>
{self._patient_header(patient)}
<section aria-labelledby="admit-heading">
  <h2 id="admit-heading">Inskrivning</h2>
  <form method="post" action="{escape(self.url(f"/patients/{pid}/admissions"))}"
        aria-labelledby="admit-heading">
    {csrf}
    <label for="klass">Vårdform</label>
    <select id="klass" name="klass" required>{klasses}</select>
    <div><button type="submit">Skriv in</button></div>
  </form>
  <table>
    <caption>Vårdkontakter</caption>
    <thead><tr><th scope="col">Vårdform</th><th scope="col">Plats</th><th scope="col">Status</th>
    <th scope="col">Start</th></tr></thead>
    <tbody>{encounter_rows}</tbody>
  </table>
</section>
<section aria-labelledby="order-heading">
  <h2 id="order-heading">Beställ labbprov</h2>
  <form method="post" action="{escape(self.url(f"/patients/{pid}/orders"))}" aria-labelledby="order-heading">
    {csrf}
    <label for="test">Analys</label>
    <select id="test" name="test" required>
      <option value="">Välj analys</option>{options}
    </select>
    <div><button type="submit">Beställ</button></div>
  </form>
  <table>
    <caption>Labbeställningar</caption>
    <thead><tr><th scope="col">Analys</th><th scope="col">Benämning</th><th scope="col">Status</th>
    <th scope="col">Beställd</th><th scope="col">Beställare</th></tr></thead>
    <tbody>{order_rows}</tbody>
  </table>
</section>"""
        return self._page(name_of(patient), body, session)

    async def admit(self, request: Request, session: Session) -> Response:
        pid = request.path_params["pid"]
        form = await request.form()
        klass = str(form.get("klass", ""))
        if klass not in ENCOUNTER_CLASSES:
            raise Refusal("Välj vårdform.")
        await self.ehr.admit(pid, session.clinician, klass)
        c = session.clinician
        return self._done(
            session, f"Patienten är inskriven: {ENCOUNTER_CLASSES[klass]}, {c.site_name}", f"/patients/{pid}"
        )

    async def order(self, request: Request, session: Session) -> Response:
        pid = request.path_params["pid"]
        form = await request.form()
        test = str(form.get("test", ""))
        if test not in LAB_TESTS:
            raise Refusal("Välj en analys i listan.")
        try:
            created = await self.ehr.order_lab(pid, test, session.clinician)
        except FhirError as exc:
            raise Refusal(f"Beställningen misslyckades: {exc}") from exc
        return self._done(session, f"Beställning skickad: {analysis(created)}", f"/patients/{pid}")

    # -- layout ---------------------------------------------------------------------------------------

    def _csrf(self, session: Session) -> str:
        return f'<input type="hidden" name="csrf" value="{escape(session.csrf)}">'

    def _page(self, title: str, body: str, session: Session | None, status: int = 200) -> HTMLResponse:
        user = nav = messages = ""
        if session is not None:
            c = session.clinician
            user = f"""<span>Inloggad som {escape(c.name)} ({escape(c.role)}), {escape(c.site_name)}</span>
<form method="post" action="{escape(self.url("/logout"))}">
  {self._csrf(session)}<button type="submit">Logga ut</button>
</form>"""
            items = (
                ("/patients", "Sök patient"),
                ("/register", "Registrera patient"),
                ("/referrals", "Inkomna remisser"),
            )
            nav = (
                '<nav aria-label="Huvudmeny"><ul>'
                + "".join(f'<li><a href="{escape(self.url(path))}">{text}</a></li>' for path, text in items)
                + "</ul></nav>"
            )
            messages = "".join(f'<p role="{role}">{escape(text)}</p>' for role, text in session.flash)
            session.flash.clear()
        env = self.ehr.plan.environment.name
        html = f"""<!doctype html>
<html lang="sv">
<head><meta charset="utf-8"><title>{escape(title)} – Referenssjukhuset</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<header><strong>Referenssjukhuset</strong><span class="env">Testmiljö: {escape(env)}</span>
{nav}{user}</header>
<main>{messages}{body}
</main>
</body>
</html>"""
        return HTMLResponse(
            html,
            status,
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": _CSP,
                "X-Content-Type-Options": "nosniff",
            },
        )


def _form_page(path: str) -> str:
    """The screen a POST's form is on: the same path where that is a screen, else its parent."""
    if path.endswith(("/register", "/referrals")):
        return path
    return path.rsplit("/", 1)[0] or "/"
