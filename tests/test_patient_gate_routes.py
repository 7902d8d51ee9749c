"""The patient gate reads everything a screenshot or a trace can show, not only the body's text.

Pages on loopback show a personnummer that is no test identity of the plan through each
route a page has to show it: a field's ``value`` (in the HTML, or set by script after
load), CSS generated content, a frame (``srcdoc``, and a page of another origin), and the
number written with an en dash. A real pytest session with the rehearsal plugin, Chromium
and ``--tracing retain-on-failure`` opens each page in a scenario that then fails (so its
trace would be kept): for each, no screenshot, no trace, one masked line saying why, and
the whole number in no byte of the run folder. A page showing only the plan's own patient
is photographed and its trace kept, so the test fails both ways.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from rehearsal import patient_gate
from rehearsal.identities import check_personnummer, luhn_digit
from rehearsal.plan import load_plan
from tests.conftest import DEMO_PLAN, _move_ports, free_port

OWN = "19121212-1212"  # Tolvan, a test identity of the demo plan


def _valid_number(ymd: str, serial: str) -> str:
    return check_personnummer(f"{ymd}-{serial}{luhn_digit(ymd[2:] + serial)}")


#: Valid check digit, not one of the demo plan's test identities.
FOREIGN = _valid_number("19700101", "123")
MASKED = f"{FOREIGN[:8]}-****"
YMD, TAIL = FOREIGN[:8], FOREIGN[9:]


def _css_escaped(text: str) -> str:
    return "".join(f"\\{ord(c):x} " for c in text)


def _js_pieces(text: str) -> str:
    """The number as a script expression whose source never holds it whole."""
    return " + ".join(json.dumps(text[i : i + 3]) for i in range(0, len(text), 3))


def _pages(other_origin: str) -> dict[str, str]:
    """Route name → HTML. Only the route itself carries the number: not the source of the page."""
    frame_script = f"<p id=n></p><script>n.textContent = {_js_pieces(FOREIGN)}</script>"
    return {
        "input-value": f'<label>Personnummer <input value="{FOREIGN}"></label>',
        "value-by-script": (
            f"<label>Personnummer <input id=f></label>"
            f"<script>addEventListener('load', () => {{ f.value = {_js_pieces(FOREIGN)} }})</script>"
        ),
        "css-after": (
            f'<style>.pnr::after {{ content: "{_css_escaped(FOREIGN)}" }}</style><p class="pnr">Patient: </p>'
        ),
        "iframe-srcdoc": f"<iframe srcdoc='{frame_script}'></iframe>",
        "iframe-other-origin": f'<iframe src="{other_origin}/frame"></iframe>',
        "en-dash": f"<p>Patient {YMD}\u2013{TAIL}</p>",
        "clean": (
            f'<p>Tolvan {OWN}</p><input value="{OWN}">'
            f'<style>.pnr::after {{ content: "{OWN}" }}</style><p class="pnr"></p>'
            f"<iframe srcdoc='<p>{OWN}</p>'></iframe>"
        ),
        "login": LOGIN_FORM,
        # the number is on screen until a click in the same step removes it: no step screenshot can
        # hold it, and the kept trace records actions, not the page (rehearsal.browser.lean_traces)
        "shown-then-hidden": f'<p id="n">Patient {FOREIGN}</p><button onclick="n.remove()">Dölj</button>',
    }


LOGIN_FORM = """<h1>Logga in</h1><form method="post" action="/login">
<label>HSA-id <input name="hsa"></label><label>Lösenord <input name="pw" type="password"></label>
<button>Logga in</button></form>"""
#: What a refusing login screen says: the page text log_in copies into its failure.
LOGIN_REFUSED = (
    f'<p role="alert">Kontot är låst: patient {FOREIGN} är öppen på en annan dator</p>{LOGIN_FORM}'
)


class _Pages(BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.pages.get(self.path.strip("/"))
        if body is None:
            self.send_error(404)
            return
        data = f"<!doctype html><html><head><title>Sida</title></head><body>{body}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.pages = {"login": LOGIN_REFUSED}
        self.do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Site:
    base: str
    other: str


@pytest.fixture(scope="module")
def gate_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo plan on free ports (conftest's make_plan, at module scope: one session for all)."""
    data = _move_ports(yaml.safe_load(DEMO_PLAN.read_text(encoding="utf-8")), {})
    path = tmp_path_factory.mktemp("gate-plan") / "plan.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def site(gate_plan: Path) -> Iterator[Site]:
    """The plan's web UI address serves the pages; another site (localhost, own port) the framed one."""
    web_base = load_plan(gate_plan).plan.environment.web_base.rstrip("/")
    other_port = free_port()
    framed = type("Framed", (_Pages,), {"pages": {"frame": f"<p>Patient {FOREIGN}</p>"}})
    other = f"http://localhost:{other_port}"  # another port and another site: its own renderer
    main = type("Main", (_Pages,), {"pages": _pages(other)})
    servers = [
        ThreadingHTTPServer(("127.0.0.1", urlsplit(web_base).port or 80), main),
        ThreadingHTTPServer(("127.0.0.1", other_port), framed),
    ]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Site(web_base, other)
    for server in servers:
        server.shutdown()
        server.server_close()


FEATURE = """\
Feature: Grinden
{scenarios}
"""
SCENARIO = """
  @id:gate-{route}
  Scenario: {route}
    Given sidan "{route}" är öppen
    Then misslyckas scenariot
"""
LOGIN_SCENARIO = """
  @id:gate-login-refused
  Scenario: login-refused
    Given inloggningen på platsens första användare vägras

  @id:gate-shown-then-hidden
  Scenario: shown-then-hidden
    Given sidan "shown-then-hidden" är öppen och knappen "Dölj" klickas
    Then misslyckas scenariot

  @id:gate-error-quotes-number
  Scenario: error-quotes-number
    Given sidan "clean" är öppen
    Then misslyckas scenariot med numret i meddelandet
"""
#: Scenarios that end on a clean page: photographed, their trace kept, numbers in it masked.
CLEAN_AT_THE_END = ["clean", "shown-then-hidden", "error-quotes-number"]
STEPS = """\
from pytest_bdd import given, parsers, scenarios, then

from rehearsal.workflows import clinic

scenarios("gate.feature")


@given("inloggningen på platsens första användare vägras")
def refused(web, plan):
    clinic.log_in(web, plan, plan.sites[0])


@given(parsers.parse('sidan "{{route}}" är öppen'))
def page_open(web, route):
    web.goto("{base}/" + route)
    web.wait_for_load_state("load")
    web.wait_for_function("() => document.readyState === 'complete'")


@given(parsers.parse('sidan "{{route}}" är öppen och knappen "{{name}}" klickas'))
def open_and_click(web, route, name):
    page_open(web, route)
    web.get_by_role("button", name=name).click()


@then("misslyckas scenariot")
def fails():
    raise AssertionError("misslyckas med flit, så att spåret skulle sparas")


@then("misslyckas scenariot med numret i meddelandet")
def fails_quoting(web):
    raise AssertionError("sidan sa: " + web.evaluate('() => [{pieces}].join("")'))
"""


@dataclass
class Outcome:
    run_dir: Path
    results: dict[str, dict[str, Any]]  # scenario name → Allure result
    output: str


@pytest.fixture(scope="module")
def outcome(site: Site, tmp_path_factory: pytest.TempPathFactory, gate_plan: Path) -> Outcome:
    """One pytest session with the rehearsal plugin over every route's scenario."""
    root = tmp_path_factory.mktemp("gate-content")
    routes = [r for r in _pages(site.other) if r not in ("login", "shown-then-hidden")]
    (root / "features").mkdir()
    scenarios = "".join(SCENARIO.format(route=r) for r in routes) + LOGIN_SCENARIO
    (root / "features" / "gate.feature").write_text(FEATURE.format(scenarios=scenarios), encoding="utf-8")
    (root / "gate_scenarios").mkdir()
    steps = STEPS.format(base=site.base, pieces=_js_pieces(FOREIGN).replace(" + ", ", "))
    (root / "gate_scenarios" / "test_gate.py").write_text(steps, encoding="utf-8")
    (root / "pytest.ini").write_text(f"[pytest]\nbdd_features_base_dir = {root / 'features'}\n")
    run_dir = root / "run"
    run_dir.mkdir()
    cmd = [
        sys.executable, "-m", "pytest", str(root / "gate_scenarios"),
        "--rootdir", str(root), "-c", str(root / "pytest.ini"),
        "-p", "no:cacheprovider",
        "--rehearsal-plan", str(gate_plan),
        "--rehearsal-run-dir", str(run_dir),
        "--alluredir", str(run_dir / "allure-results"),
        "--browser", "chromium",
        "--output", str(run_dir / "playwright"),
        "--tracing", "retain-on-failure",
        "-q", "-p", "no:randomly",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["REHEARSAL_PASSWORD"] = "test-only-password"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=root)
    results = {}
    for path in (run_dir / "allure-results").glob("*-result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        results[result["name"]] = result
    expected = {*routes, "login-refused", "shown-then-hidden", "error-quotes-number"}
    assert set(results) == expected, done.stdout[-3000:] + done.stderr[-3000:]
    return Outcome(run_dir, results, done.stdout + done.stderr)


def _attachments(result: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(result.get("attachments", []))
    stack = list(result.get("steps", []))
    while stack:
        step = stack.pop()
        found += step.get("attachments", [])
        stack += step.get("steps", [])
    return found


def _forms(number: str) -> list[bytes]:
    """The whole number as it could be written anywhere: with its separators, without, short."""
    ymd, tail = number[:8], number[9:]
    texts = [f"{ymd}{sep}{tail}" for sep in ("-", "", "\u2013", " ", "+")]
    texts += [t[2:] for t in texts]
    return [t.encode() for t in texts] + [f"{ymd}\\u2013{tail}".encode()]


FOREIGN_ROUTES = [
    "input-value",
    "value-by-script",
    "css-after",
    "iframe-srcdoc",
    "iframe-other-origin",
    "en-dash",
    "login-refused",
]


@pytest.mark.slow
@pytest.mark.parametrize("route", FOREIGN_ROUTES)
def test_a_foreign_number_on_any_route_is_not_photographed_nor_traced(outcome: Outcome, route: str) -> None:
    result = outcome.results[route]
    assert result["status"] == "failed"
    attached = _attachments(result)
    names = [a["name"] for a in attached]
    assert not [n for n in names if n.startswith("Skärmbild")], names
    assert not [n for n in names if n.startswith("Playwright-spår")], names
    reasons = [a for a in attached if a["name"].startswith("Ingen skärmbild")]
    assert reasons, names
    for reason in reasons:
        text = (outcome.run_dir / "allure-results" / reason["source"]).read_text(encoding="utf-8")
        assert "\n" not in text.strip()
        assert f"Sidan visade 1 identitet(er) som inte är repetitionens testpatienter ({MASKED})" in text
        assert text.endswith("; ingen skärmbild och inget Playwright-spår sparas.")
    traces = list((outcome.run_dir / "playwright").glob(f"*{route.replace('-', '*')}*/trace.zip"))
    assert traces == []


@pytest.mark.slow
def test_the_reason_names_the_route(outcome: Outcome) -> None:
    def reason(route: str) -> str:
        first = next(a for a in _attachments(outcome.results[route]) if a["name"].startswith("Ingen"))
        return (outcome.run_dir / "allure-results" / first["source"]).read_text(encoding="utf-8")

    assert "i sidan (fältvärde)" in reason("value-by-script")
    assert "i sidan (genererat innehåll (CSS))" in reason("css-after")
    assert "i ram 1 (text)" in reason("iframe-other-origin")
    assert "i ram 1 (text)" in reason("iframe-srcdoc")


@pytest.mark.slow
def test_a_login_refusal_quotes_the_screen_with_the_number_masked(outcome: Outcome) -> None:
    message = outcome.results["login-refused"]["statusDetails"]["message"]
    assert f"nådde inte patientsökningen: Logga in / Kontot är låst: patient {MASKED} är öppen" in message


def _contents(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every file's bytes, and every member of every zip (a trace) unpacked."""
    data = path.read_bytes()
    yield str(path), data
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                yield f"{path}!{member}", archive.read(member)


@pytest.mark.slow
def test_the_whole_number_is_in_no_byte_of_the_run_folder(outcome: Outcome) -> None:
    forms = _forms(FOREIGN)
    scanned = 0
    for path in outcome.run_dir.rglob("*"):
        if path.is_file():
            for name, data in _contents(path):
                scanned += 1
                assert not [f for f in forms if f in data], name
    assert scanned > 20  # results, attachments, the clean page's trace and its members


@pytest.mark.slow
@pytest.mark.parametrize("scenario", CLEAN_AT_THE_END)
def test_a_page_with_only_the_runs_own_patient_is_photographed_and_traced(
    outcome: Outcome, scenario: str
) -> None:
    result = outcome.results[scenario]
    names = [a["name"] for a in _attachments(result)]
    assert [n for n in names if n.startswith("Skärmbild: ")], names
    assert not [n for n in names if n.startswith("Ingen skärmbild")], names
    assert [n for n in names if n.startswith("Playwright-spår")], names


@pytest.mark.slow
def test_a_kept_trace_holds_no_page_and_an_error_masks_the_number(outcome: Outcome) -> None:
    """The trace of shown-then-hidden holds its actions and none of the pages; the error quotes the number."""
    assert outcome.results["error-quotes-number"]["statusDetails"]["message"].startswith(
        f"AssertionError: sidan sa: {MASKED}"
    )
    (trace,) = [
        a for a in _attachments(outcome.results["shown-then-hidden"]) if a["name"].startswith("Playwright")
    ]
    with zipfile.ZipFile(outcome.run_dir / "allure-results" / trace["source"]) as archive:
        text = b"".join(archive.read(m) for m in archive.namelist())
    assert b'"type":"before"' in text and b"shown-then-hidden" in text, "the trace records no action"
    assert YMD.encode() not in text, "the trace holds the page that showed the number"


# -- the recognition and the masking themselves (no browser) ---------------------------------------


@pytest.fixture
def gate_closed() -> Iterator[None]:
    patient_gate.only([OWN])
    yield
    patient_gate.reopen()


@pytest.mark.parametrize(
    "written",
    [
        FOREIGN,
        FOREIGN.replace("-", ""),
        FOREIGN.replace("-", "\u2013"),  # en dash
        FOREIGN.replace("-", "\u2014"),  # em dash
        FOREIGN.replace("-", "\u2011"),  # non-breaking hyphen
        FOREIGN.replace("-", " "),
        FOREIGN.replace("-", "\u00a0"),
        FOREIGN.replace("-", " \u2013 "),
        FOREIGN[2:].replace("-", "+"),  # 100 years or more
        FOREIGN[2:],
    ],
)
def test_every_separator_form_is_found_and_masked(gate_closed: None, written: str) -> None:
    masked = MASKED if written.startswith("19") else MASKED[2:]
    assert patient_gate.foreign_in(f"Patient: {written}.") == [masked]
    assert patient_gate.mask_all(f"Patient: {written}.") == f"Patient: {masked}."


def test_numbers_that_are_not_identities_stay(gate_closed: None) -> None:
    text = (
        "HSA-id SE2321000131-P000000000101, tel 08-123 456 78, 070-123 45 67, order 20240115-0001, "
        f"{YMD}\t{TAIL} (table cells), {YMD}\n{TAIL}, {YMD}-{TAIL[:3]}{(int(TAIL[3]) + 1) % 10}"
    )
    assert patient_gate.identities_in(text) == []
    assert patient_gate.mask_all(text) == text


def test_mask_all_masks_every_identity_in_a_message(gate_closed: None) -> None:
    said = f"inloggningen nådde inte patientsökningen: {OWN} och {FOREIGN}, reserv 20000101M078"
    assert patient_gate.mask_all(said) == (
        f"inloggningen nådde inte patientsökningen: 19121212-**** och {MASKED}, reserv 20000101-****"
    )
    assert patient_gate.mask_all("") == ""
