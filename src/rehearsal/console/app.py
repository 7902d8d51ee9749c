"""The console as a Starlette app: the page, its event stream, the evidence, and the forms.

Routes (all relative, so the page works behind any prefix):

    GET  /                    the page (regions rendered now; the stream keeps them current)
    GET  /events              server-sent events: the regions whenever the run folder changes
    GET  /static/console.js   the page's script and style, from the package (nothing from elsewhere)
    GET  /files/RUN/PATH      a file of a run of the chain (evidence), confined to that run's folder
    POST /attest              item, site, result (ok|fail), note, by → rehearsal.attest.record
                              (POST /attest and /runbook: a settled run's gonogo.* written again)
    POST /incident            action (raise|acknowledge|escalate|resolve), incident, site, title, note, by
    POST /runbook             step, action (start|done|fail), note, by → rehearsal.runbook.record

Safety, in :class:`Guard` (every request) and :func:`_checked` (every form):

- bound to the default loopback address, the ``Host`` header must name it (a web page
  elsewhere cannot reach the console through DNS rebinding);
- bound to any other address, every request needs the token (``REHEARSAL_CONSOLE_TOKEN``):
  an ``Authorization: Bearer`` header, or the cookie that ``?token=`` sets once (the address
  bar then loses it); without it 401;
- a form is taken only from the console's own page: the page's CSRF token in the body, and
  no ``Origin`` or ``Sec-Fetch-Site`` saying another site sent it;
- a Content-Security-Policy lets the page load and connect to itself only; evidence is
  served sandboxed (a target's HTML among it cannot run in the console's origin).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from rehearsal import attest, devtext, incidents, templating
from rehearsal.errors import RehearsalError, UsageError
from rehearsal.plan import LoadedPlan

from .events import Follower, Target, stream
from .view import Chain, texts, view

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

COOKIE = "rehearsal_console"
REGIONS = ("head", "grid", "failures", "manual", "incidents", "runbook")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
EVIDENCE_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; media-src 'self'"
)
STATIC = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
LIMITS = {"item": 100, "by": 100, "title": 300, "note": 2000, "incident": 40, "step": 100, "site": 100}


def _headers(csp: str = CSP) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


class Guard:
    """ASGI middleware: the token on every request when one is required, else the loopback Host."""

    def __init__(self, app: ASGI, token: str | None, hosts: set[str]):
        self.app = app
        self.token = token
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.token is None:
            if headers.get("host", "").lower() not in self.hosts:
                await _refuse(
                    403, "this console answers only at its own loopback address", scope, receive, send
                )
                return
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        if given is not None and self._ok(given):  # once: a cookie, and the token out of the address bar
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            where = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            response = RedirectResponse(where, 303, headers={**_headers(), "Set-Cookie": cookie})
            await response(scope, receive, send)
            return
        bearer = headers.get("authorization", "")
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:
            jar = SimpleCookie()
        presented = [bearer[7:] if bearer[:7].lower() == "bearer " else "", jar.get(COOKIE)]
        if not any(self._ok(p.value if hasattr(p, "value") else p) for p in presented if p):
            await _refuse(401, "this console needs its token (REHEARSAL_CONSOLE_TOKEN)", scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _ok(self, value: str) -> bool:
        return self.token is not None and hmac.compare_digest(value.encode(), self.token.encode())


async def _refuse(status: int, text: str, scope: Scope, receive: Any, send: Any) -> None:
    await PlainTextResponse(text + "\n", status, headers=_headers())(scope, receive, send)


def _template(name: str) -> str:
    return name if name.endswith(".html") else f"{name}.html"


def render_regions(loaded: LoadedPlan | None, found: Chain | None, csrf: str) -> dict[str, str]:
    """Each live region of the page, rendered by its template (autoescaped)."""
    if loaded is None:
        return {f"live-{r}": "" for r in REGIONS}
    shown = view(loaded.plan, found)
    return {f"live-{r}": templating.render(f"console_{r}.html", csrf=csrf, **shown) for r in REGIONS}


def create_app(target: Target, token: str | None = None, hosts: set[str] | None = None) -> ASGI:
    """The console for ``target``; ``token`` required on every request when given, else ``hosts``
    (the ``Host`` values of the loopback address it listens on) checked."""
    csrf = secrets.token_urlsafe(24)
    follower = Follower(target, lambda loaded, found: render_regions(loaded, found, csrf))

    async def page(request: Request) -> Response:
        snap = await asyncio.to_thread(follower.look)
        plan = snap.loaded.plan if snap.loaded else None
        t = texts(plan)
        body = templating.render(
            "console.html",
            t=t,
            lang=plan.language if plan else "sv",
            title=plan.title if plan else target.describe(),
            csrf=csrf,
            sites=[{"id": s.id, "name": s.name} for s in plan.sites] if plan else [],
            waiting=t["waiting"].format(plan=target.plan.path if target.plan else target.describe())
            if snap.run is None
            else "",
            regions={k: Markup(v) for k, v in snap.regions.items()},  # rendered by autoescaped templates
        )
        return Response(body, media_type="text/html; charset=utf-8", headers=_headers())

    async def events(request: Request) -> Response:
        return StreamingResponse(
            stream(follower, request.is_disconnected),
            media_type="text/event-stream",
            headers={**_headers(), "X-Accel-Buffering": "no"},
        )

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return PlainTextResponse("not found\n", 404, headers=_headers())
        text = resources.files("rehearsal.console").joinpath(name).read_text(encoding="utf-8")
        return Response(text, media_type=STATIC[name], headers=_headers())

    async def files(request: Request) -> Response:
        snap = await asyncio.to_thread(follower.look)
        runs = {r.dir.name: r.dir for r in (Chain.runs_of(snap.run) if snap.run else [])}
        base = runs.get(request.path_params["run"])
        if base is None:
            return PlainTextResponse("no such run in this chain\n", 404, headers=_headers())
        root = base.resolve()
        wanted = (root / request.path_params["path"]).resolve()
        if not wanted.is_relative_to(root) or not wanted.is_file():
            return PlainTextResponse("no such file in the run folder\n", 404, headers=_headers())
        return FileResponse(wanted, headers=_headers(EVIDENCE_CSP), content_disposition_type="inline")

    async def form_of(request: Request) -> FormData:
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise _Refused(403, "a form from another site is not taken")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            raise _Refused(403, "a form from another origin is not taken")
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")).encode(), csrf.encode()):
            raise _Refused(403, "the page is out of date: reload it and try again")
        return form

    def current() -> tuple[Any, LoadedPlan]:
        snap = follower.look()
        if snap.run is None or snap.loaded is None:
            raise UsageError("no run yet to record into")
        return snap.run, snap.loaded

    async def act(request: Request, do: Callable[[FormData], str]) -> Response:
        wants_json = "application/json" in request.headers.get("accept", "")
        try:
            form = await form_of(request)
            said = await asyncio.to_thread(do, form)
        except _Refused as exc:
            return _reply(wants_json, exc.status, exc.text)
        except RehearsalError as exc:
            return _reply(wants_json, 400, str(exc))
        follower.poke()
        return _reply(wants_json, 200, said)

    def attest_one(form: FormData) -> str:
        run, loaded = current()
        site = _field(form, "site") or None
        if site is not None:
            loaded.plan.site(site)
        result = _field(form, "result")
        if result not in ("ok", "fail"):
            raise UsageError("say whether it was done and worked: result ok or fail")
        item = _field(form, "item")
        if not item:
            raise UsageError("name the step attested (item)")
        made = attest.record(
            run.dir,
            attest.Attestation(
                item=item, site=site, by=_field(form, "by"), ok=result == "ok", note=_field(form, "note")
            ),
        )
        _decide_again(run, loaded)
        where = f" [{made.site}]" if made.site else ""
        return f"{made.item}{where}: {'ok' if made.ok else 'underkänt'} · {made.by} · {made.at}"

    def incident(form: FormData) -> str:
        run, loaded = current()
        action = _field(form, "action")
        site = _field(form, "site") or None
        if action == "raise" and site is not None:
            loaded.plan.site(site)
        inherited = [r.dir / incidents.FILE for r in Chain.runs_of(run)[:-1]]
        made = incidents.record(
            run.dir,
            incidents.Event(
                action=action,
                by=_field(form, "by"),
                incident=_field(form, "incident"),
                site=site,
                title=_field(form, "title"),
                note=_field(form, "note"),
            ),
            inherited=inherited,
        )
        return f"{made.incident}: {made.action} · {made.by} · {made.at}"

    def runbook_step(form: FormData) -> str:
        run, loaded = current()
        book = getattr(loaded.plan, "runbook", None)
        if book is None:
            raise UsageError("the plan of this run has no runbook")
        from rehearsal import runbook

        step = runbook.check_recordable(book, _field(form, "step"))
        made = runbook.record(
            run.dir, step.id, _field(form, "action"), _field(form, "by"), _field(form, "note")
        )
        _decide_again(run, loaded)  # the runbook line and chart are read from the records
        return f"{made.step}: {made.action} · {made.by} · {made.at}"

    async def post_attest(request: Request) -> Response:
        return await act(request, attest_one)

    async def post_incident(request: Request) -> Response:
        return await act(request, incident)

    async def post_runbook(request: Request) -> Response:
        return await act(request, runbook_step)

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/events", events, methods=["GET"]),
            Route("/static/{name}", static, methods=["GET"]),
            Route("/files/{run}/{path:path}", files, methods=["GET"]),
            Route("/attest", post_attest, methods=["POST"]),
            Route("/incident", post_incident, methods=["POST"]),
            Route("/runbook", post_runbook, methods=["POST"]),
        ]
    )
    return Guard(app, token, hosts or set())


class _Refused(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status, self.text = status, text


def _decide_again(run: Any, loaded: LoadedPlan) -> None:
    """A settled run's go/no-go written again, so what was just recorded is in gonogo.json now (a
    live run writes its own at its end). The Allure report is left as it is: it is slow to make and
    holds results, which a record made here does not change."""
    from rehearsal import lifetime, report

    if lifetime.still_running(run.dir, grace_s=0) is None:
        report.build_evidence(run, loaded.plan)


def _field(form: FormData, name: str) -> str:
    """A form value as one clean line, bounded (a note too: it goes into a JSON line of the record)."""
    value = form.get(name)
    return devtext.clean(str(value), limit=LIMITS.get(name, 200)) if isinstance(value, str) else ""


def _reply(wants_json: bool, status: int, text: str) -> Response:
    if wants_json:
        return JSONResponse({"ok": status == 200, "message": text}, status, headers=_headers())
    if status == 200:
        return RedirectResponse(".", 303, headers=_headers())
    return PlainTextResponse(text + "\n", status, headers=_headers())


__all__ = ["Guard", "create_app", "render_regions"]
