"""The page objects driving the real web UI of the reference hospital in Chromium."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from rehearsal.pages import LoginPage, PatientPage, PatientSearchPage
from rehearsal.plan import load_plan
from rehearsal.reference.hospital import Hospital

DEMO = Path(__file__).resolve().parents[1] / "plans" / "demo.yaml"
CHROMIUM = os.environ.get("REHEARSAL_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "test-only-password"
ANNA = "SE2321000131-P000000000101"
RESOLVER_RULES = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium, headless, no DNS look-ups leaving the machine (STACK.md); adds to the plugin's."""
    launch = dict(browser_type_launch_args)
    args = list(launch.get("args", []))
    for flag in ("--headless", "--no-sandbox", RESOLVER_RULES):
        if not any(a.split("=")[0] == flag.split("=")[0] for a in args):
            args.append(flag)
    launch["args"] = args
    if "executable_path" not in launch and Path(CHROMIUM).exists():
        launch["executable_path"] = CHROMIUM
    return launch


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


def test_login_search_order_and_see_it_listed(page: Page, web_base: str) -> None:
    search = LoginPage(page, web_base).open().login(ANNA, PASSWORD)
    patient = search.search("19121212-1212")
    patient.expect_patient("Tolvan Tolvansson", "19121212-1212")
    assert patient.orders() == []
    patient.order_lab("P-CRP")
    patient.expect_order_listed("P-CRP")
    assert patient.orders() == ["P-CRP"]
    patient.order_lab("B-Hb")
    assert PatientPage(page, web_base).orders() == ["P-CRP", "B-Hb"]


def test_wrong_password_shows_an_error(page: Page, web_base: str) -> None:
    error = LoginPage(page, web_base).open().login_expecting_error(ANNA, "wrong-password")
    assert error == "Fel HSA-id eller lösenord."
    expect(page.get_by_label("HSA-id")).to_have_value(ANNA)


def test_search_for_someone_not_in_the_plan_finds_nobody(page: Page, web_base: str) -> None:
    LoginPage(page, web_base).open().login(ANNA, PASSWORD)
    message = PatientSearchPage(page, web_base).open().search_expecting_none("19800101-0027")
    assert message == "Ingen patient med personnummer 19800101-0027."
