"""The clinician web UI of the reference EHR: server-rendered HTML, Swedish labels, no JavaScript.

Screens: login (HSA-id + password), patient search by personnummer, and the patient
page with a lab-order form and the list of the patient's lab orders. Every form control
has a ``<label for>`` and every button a name, so page objects find them by label and
role the way a screen reader would. All dynamic text is escaped; sessions live in
memory (a restart logs everyone out, which is what a rehearsal wants).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from rehearsal.reference.ehr import (
    LAB_TESTS,
    Clinician,
    Ehr,
    FhirError,
    name_of,
    personnummer_digits,
    personnummer_of,
)
from rehearsal.reference.store import Resource

COOKIE = "ehr_session"
SESSION_S = 8 * 3600

STATUS_SV = {
    "draft": "Utkast",
    "active": "Aktiv",
    "on-hold": "Pausad",
    "revoked": "Makulerad",
    "completed": "Klar",
    "entered-in-error": "Felregistrerad",
    "unknown": "Okänd",
}

try:
    _LOCAL = ZoneInfo("Europe/Stockholm")
except ZoneInfoNotFoundError:  # pragma: no cover - Debian ships tzdata
    _LOCAL = None

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b}
header{background:#00315c;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center}
header .env{background:#ffd400;color:#000;padding:.1rem .5rem;font-weight:600}
header form{margin-left:auto}
main{padding:1rem;max-width:60rem}
label{display:block;margin-top:.6rem;font-weight:600}
input,select{font-size:1rem;padding:.3rem}
button{font-size:1rem;margin-top:.6rem;padding:.3rem 1rem}
[role=alert]{color:#a30000;font-weight:600}
[role=status]{color:#075e00;font-weight:600}
table{border-collapse:collapse;margin-top:1rem}
caption{text-align:left;font-weight:600;font-size:1.2rem}
th,td{border:1px solid #bbb;padding:.3rem .6rem;text-align:left}
"""


_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


@dataclass
class Session:
    clinician: Clinician
    csrf: str
    expires: float


class WebUI:
    """The HTML face of an :class:`Ehr`, mounted at the path of ``environment.web_base``."""

    def __init__(self, ehr: Ehr, prefix: str = "") -> None:
        self.ehr = ehr
        self.prefix = prefix.rstrip("/")
        self._sessions: dict[str, Session] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/patients", self.search, methods=["GET"]),
            Route("/patients/{pid}", self.patient, methods=["GET"]),
            Route("/patients/{pid}/orders", self.order, methods=["POST"]),
        ]

    def url(self, path: str) -> str:
        return f"{self.prefix}{path}"

    # -- sessions ------------------------------------------------------------------------------

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

    # -- screens -------------------------------------------------------------------------------

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

    async def search(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        query = request.query_params.get("personnummer", "").strip()
        alert, status = "", 200
        if query:
            if personnummer_digits(query) is None:
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
         inputmode="numeric" required>
  <div><button type="submit">Sök</button></div>
</form>
{f'<p role="alert">{escape(alert)}</p>' if alert else ""}"""
        return self._page("Sök patient", body, session, status)

    async def patient(
        self, request: Request, notice: str = "", error: str = "", status: int = 200
    ) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        pid = request.path_params["pid"]
        patient = self.ehr.store.read("Patient", pid)
        if patient is None:
            back = escape(self.url("/patients"))
            body = f'<h1>Patienten finns inte</h1><p><a href="{back}">Sök patient</a></p>'
            return self._page("Patienten finns inte", body, session, 404)
        orders = self.ehr.orders(pid)
        ordered = request.query_params.get("ordered")
        if ordered and not notice:
            placed = next((o for o in orders if o["id"] == ordered), None)
            if placed is not None:
                notice = f"Beställning skickad: {_analysis(placed)}"
        options = "".join(
            f'<option value="{escape(t.code)}">{escape(t.code)} – {escape(t.display)}</option>'
            for t in LAB_TESTS.values()
        )
        rows = (
            "".join(
                "<tr>"
                f"<td>{escape(_analysis(o))}</td>"
                f"<td>{escape(o.get('code', {}).get('text', ''))}</td>"
                f"<td>{escape(STATUS_SV.get(o.get('status', ''), o.get('status', '')))}</td>"
                f"<td>{escape(_local_time(o.get('authoredOn', '')))}</td>"
                f"<td>{escape(o.get('requester', {}).get('display', ''))}</td>"
                "</tr>"
                for o in orders
            )
            or '<tr><td colspan="5">Inga beställningar</td></tr>'
        )
        name = name_of(patient)
        body = f"""
<p><a href="{escape(self.url("/patients"))}">Sök patient</a></p>
<h1>{escape(name)}</h1>
<dl>
  <dt>Personnummer</dt><dd>{escape(personnummer_of(patient))}</dd>
  <dt>Födelsedatum</dt><dd>{escape(patient.get("birthDate", ""))}</dd>
</dl>
{f'<p role="status">{escape(notice)}</p>' if notice else ""}
{f'<p role="alert">{escape(error)}</p>' if error else ""}
<section aria-labelledby="order-heading">
  <h2 id="order-heading">Beställ labbprov</h2>
  <form method="post" action="{escape(self.url(f"/patients/{pid}/orders"))}" aria-labelledby="order-heading">
    <input type="hidden" name="csrf" value="{escape(session.csrf)}">
    <label for="test">Analys</label>
    <select id="test" name="test" required>
      <option value="">Välj analys</option>{options}
    </select>
    <div><button type="submit">Beställ</button></div>
  </form>
</section>
<table>
  <caption>Labbeställningar</caption>
  <thead><tr><th scope="col">Analys</th><th scope="col">Benämning</th><th scope="col">Status</th>
  <th scope="col">Beställd</th><th scope="col">Beställare</th></tr></thead>
  <tbody>{rows}</tbody>
</table>"""
        return self._page(name, body, session, status)

    async def order(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        pid = request.path_params["pid"]
        form = await request.form()
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            return await self.patient(request, error="Formuläret har gått ut. Försök igen.", status=403)
        test = str(form.get("test", ""))
        if test not in LAB_TESTS:
            return await self.patient(request, error="Välj en analys i listan.", status=422)
        try:
            created = self.ehr.order_lab(pid, test, session.clinician)
        except FhirError as exc:
            return await self.patient(request, error=f"Beställningen misslyckades: {exc}", status=exc.status)
        return RedirectResponse(self.url(f"/patients/{pid}?ordered={created['id']}"), status_code=303)

    # -- layout --------------------------------------------------------------------------------

    def _page(self, title: str, body: str, session: Session | None, status: int = 200) -> HTMLResponse:
        user = ""
        if session is not None:
            c = session.clinician
            user = f"""<span>Inloggad som {escape(c.name)} ({escape(c.role)}), {escape(c.site_name)}</span>
<form method="post" action="{escape(self.url("/logout"))}">
  <input type="hidden" name="csrf" value="{escape(session.csrf)}"><button type="submit">Logga ut</button>
</form>"""
        env = self.ehr.plan.environment.name
        html = f"""<!doctype html>
<html lang="sv">
<head><meta charset="utf-8"><title>{escape(title)} – Referenssjukhuset</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<header><strong>Referenssjukhuset</strong><span class="env">Testmiljö: {escape(env)}</span>{user}</header>
<main>{body}
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


def _analysis(order: Resource) -> str:
    code: dict[str, Any] = order.get("code") or {}
    for coding in code.get("coding") or []:
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    return str(code.get("text", ""))


def _local_time(instant: str) -> str:
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return instant
    if _LOCAL is not None and moment.tzinfo is not None:
        moment = moment.astimezone(_LOCAL)
    return moment.strftime("%Y-%m-%d %H:%M")
