"""The page objects driving the real web UI of the reference hospital in Chromium."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from rehearsal.pages import LoginPage, PatientPage, PatientSearchPage
from rehearsal.plan import load_plan
from rehearsal.reference.hospital import Hospital

DEMO = Path(__file__).resolve().parents[1] / "plans" / "demo.yaml"
CHROMIUM = os.environ.get("REHEARSAL_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "test-only-password"
ANNA = "SE2321000131-P000000000101"
RESOLVER_RULES = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, no DNS look-ups leaving the machine (see STACK.md).

    Our own Playwright, closed at the end of this module: pytest-playwright's session-wide
    one keeps an event loop marked running in the main thread, and every later test that
    calls ``asyncio.run`` would fail.
    """
    launch: dict[str, Any] = {"headless": True, "args": ["--headless", "--no-sandbox", RESOLVER_RULES]}
    if Path(CHROMIUM).exists() and not os.environ.get("PLAYWRIGHT_BROWSERS_PATH"):
        launch["executable_path"] = CHROMIUM
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch)
        yield browser
        browser.close()


@pytest.fixture
def tab(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(locale="sv-SE")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def web_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    plan = load_plan(DEMO).plan
    env = plan.environment.model_copy(
        update={"fhir_base": f"http://127.0.0.1:{port}/fhir", "web_base": f"http://127.0.0.1:{port}"}
    )
    plan = plan.model_copy(
        update={"environment": env, "sites": [s.model_copy(update={"printers": []}) for s in plan.sites]}
    )
    workdir = tmp_path_factory.mktemp("pages")
    with Hospital(plan, [], workdir, environ={"REHEARSAL_PASSWORD": PASSWORD}) as hospital:
        yield hospital.web_base


def test_login_search_order_and_see_it_listed(tab: Page, web_base: str) -> None:
    search = LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    patient = search.search("19121212-1212")
    patient.expect_patient("Tolvan Tolvansson", "19121212-1212")
    assert patient.orders() == []
    patient.order_lab("P-CRP")
    patient.expect_order_listed("P-CRP")
    assert patient.orders() == ["P-CRP"]
    patient.order_lab("B-Hb")
    assert PatientPage(tab, web_base).orders() == ["P-CRP", "B-Hb"]


def test_wrong_password_shows_an_error(tab: Page, web_base: str) -> None:
    error = LoginPage(tab, web_base).open().login_expecting_error(ANNA, "wrong-password")
    assert error == "Fel HSA-id eller lösenord."
    expect(tab.get_by_label("HSA-id")).to_have_value(ANNA)


def test_search_for_someone_not_in_the_plan_finds_nobody(tab: Page, web_base: str) -> None:
    LoginPage(tab, web_base).open().login(ANNA, PASSWORD)
    message = PatientSearchPage(tab, web_base).open().search_expecting_none("19800101-0027")
    assert message == "Ingen patient med personnummer 19800101-0027."
