"""GNU Health 5.0 (a real web EHR this project did not write) through the ``gnuhealth`` web_ui adapter.

GNU Health runs per session on a private PostgreSQL cluster and trytond on free loopback ports
(tests/gnuhealth/server.py), seeded only through its RPC (tests/gnuhealth/seed.py) from
plans/gnuhealth.example.yaml: two sites as GNU Health institutions, each site's user in GNU
Health's own access groups, the site's test patient, a lab technician answering requests.

When the optional set-up failed these tests FAIL with its one line (not skip): CI runs the
README's test command, and a second target that silently stopped being tested would look green.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rehearsal.pages.web_ui import NEEDS, Refused, missing
from rehearsal.plan import Plan, load_plan
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

PLAN = ROOT / "plans" / "gnuhealth.example.yaml"
PASSWORD = "gnuhealth-" + os.urandom(4).hex()
NO_LAB = "SE2321000131-P000000000201"  # the nal-trollhattan user: GNU Health's "Health Nurse" group only


@pytest.fixture(scope="module")
def gnuhealth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Plan, object, object]]:
    from tests.gnuhealth import seed
    from tests.gnuhealth.lab import LabTechnician
    from tests.gnuhealth.rpc import Rpc
    from tests.gnuhealth.server import NotSetUp, running, setup_problem

    if problem := setup_problem():
        pytest.fail(problem, pytrace=False)
    before = os.environ.get("REHEARSAL_PASSWORD")
    os.environ["REHEARSAL_PASSWORD"] = PASSWORD  # for this module only: the worker's next tests start
    plan = load_plan(PLAN).plan  # hospitals of their own, whose users must not get GNU Health's password
    try:
        with running(tmp_path_factory.mktemp("gnuhealth")) as server:
            env = plan.environment.model_copy(
                update={"web_base": server.web, "fhir_base": f"{server.base}/fhir"}
            )
            plan = plan.model_copy(update={"environment": env})
            with Rpc(server.base, server.database, "admin", server.admin_password) as admin:
                seed.seed(admin, plan, without_lab_rights=[NO_LAB])
                seed.orders_relate(admin)
                lab_password = os.urandom(8).hex()
                seed.lab_technician(admin, lab_password)
            with Rpc(server.base, server.database, "lab-technician", lab_password) as lab_rpc:
                lab = LabTechnician(lab_rpc).start()
                try:
                    yield plan, lab, server
                finally:
                    lab.stop()
    except NotSetUp as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        if before is None:
            os.environ.pop("REHEARSAL_PASSWORD", None)
        else:
            os.environ["REHEARSAL_PASSWORD"] = before


@pytest.fixture
def ui(gnuhealth: tuple[Plan, object, object], chromium):  # noqa: ANN001, ANN201 (conftest's Browser)
    """A fresh page on GnuHealth with the waits a rehearsal gives it (pytest_plugin's, expect's too)."""
    from playwright.sync_api import expect

    from rehearsal.pages.gnuhealth import GnuHealthWebUi
    from rehearsal.pages.web_ui import Gated

    plan, *_ = gnuhealth
    t = plan.environment.timeouts
    context = chromium.new_context()  # SAO in its own language, as pytest-playwright gave it
    page = context.new_page()
    page.set_default_timeout((t.connect + t.read) * 1000)
    expect.set_options(timeout=(t.connect + t.read) * 1000)
    yield Gated(GnuHealthWebUi(page, plan)), plan
    expect.set_options(timeout=5_000)
    context.close()


def test_declares_what_gnuhealth_cannot_do() -> None:
    from rehearsal.adapters import resolve

    adapter = resolve("web_ui", "gnuhealth")
    assert missing(adapter, "clin-lab-order", "sv") is None
    assert "remiss" in (missing(adapter, "clin-referral", "sv") or "")
    assert set(adapter.cannot) <= {c for needs in NEEDS.values() for c in needs}


def test_patient_search_and_lab_order_with_its_result(ui, tmp_path: Path) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    from rehearsal.workflows.routines import patient_for

    web, plan = ui
    site = plan.sites[0]
    identity = patient_for(plan, site)
    web.log_in(site.users[0].hsa_id, PASSWORD)
    assert site.users[0].name in web.signed_in_as()
    patient = web.find_patient(identity.personnummer).expect_patient(identity.name, identity.personnummer)
    web.page.screenshot(path=tmp_path / "patient.png")
    # only GNU Health's screens have this: its own related-records entry for the lab
    web.page.get_by_title("Open related records").first.click()
    expect(web.page.get_by_role("menuitem", name="Lab: New order", exact=True)).to_be_visible()
    web.page.keyboard.press("Escape")
    order = patient.order_lab("P-CRP")
    assert order.test == "P-CRP" and order.status in ("Draft", "Ordered")
    patient.expect_order_listed("P-CRP")
    results = patient.open_results()
    for _ in range(100):
        mine = [r for r in results.results() if r.order == order.key]
        if mine:
            break
        results.refresh()
    assert mine and "CRP" in mine[0].value, [r.shown for r in results.results()]


def test_user_without_lab_rights_is_refused_in_gnuhealths_words(ui) -> None:  # noqa: ANN001
    from rehearsal.workflows.routines import patient_for

    web, plan = ui
    site = next(s for s in plan.sites if s.users[0].hsa_id == NO_LAB)
    web.log_in(NO_LAB, PASSWORD)
    patient = web.find_patient(patient_for(plan, site).personnummer)
    with pytest.raises(Refused) as refused:
        patient.order_lab("P-Na")
    assert "not allowed" in str(refused.value), str(refused.value)


def test_klinisk_features_unchanged_on_gnuhealth_no_go_without_a_lab_right_go_once_granted(
    gnuhealth: tuple[Plan, object, Any], tmp_path: Path
) -> None:
    """The shipped features through ``rehearse run``: the NÄL user lacks GNU Health's right to create
    lab test requests (seeded in "Health Nurse" only), so the lab order fails there in a Swedish step
    message with GNU Health's words; granted "Health Doctor" through GNU Health's own groups, the
    rerun of what failed is GO. What GNU Health cannot do is not applicable, with its reason."""
    import json
    import subprocess
    import sys

    import yaml

    from tests.gnuhealth.rpc import Rpc

    plan, _, server = gnuhealth
    data = yaml.safe_load(PLAN.read_text(encoding="utf-8"))
    data["environment"].update(web_base=server.web, fhir_base=f"{server.base}/fhir")
    path = tmp_path / "gnuhealth.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    reports = tmp_path / "reports"

    def rehearse(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "rehearsal.cli", "--reports", str(reports), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=420)

    def lines() -> dict[tuple[str, str | None], dict]:
        found = json.loads((reports / "latest" / "gonogo.json").read_text(encoding="utf-8"))
        return {(c["id"], c["site"]): c for c in found["criteria"]}

    def grant(change: str) -> None:
        with Rpc(server.base, server.database, "admin", server.admin_password) as admin:
            doctor = admin.one("res.group", [("name", "=", "Health Doctor")])
            user = admin.one("res.user", [("login", "=", NO_LAB)])
            admin.model("res.user", "write", [user], {"groups": [[change, [doctor]]]})

    refused = rehearse("run", "--plan", str(path), "--aspect", "klinisk")
    assert refused.returncode == 1 and refused.stdout.startswith("NO-GO:"), refused.stdout + refused.stderr
    first = lines()
    assert first["clin-lab-order", "sas-boras"]["status"] == "pass"
    assert first["clin-lab-order", "nal-trollhattan"]["status"] == "fail"
    for site in ("sas-boras", "nal-trollhattan"):  # what GNU Health declared it cannot do
        for criterion, said in (("clin-registration", "reservnummer"), ("clin-referral", "remiss")):
            line = first[criterion, site]
            assert line["status"] == "not_applicable" and said in line["details"], line
    folder = reports / "latest" / "allure-results"
    results = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*-result.json")]
    labels = [({lab["name"]: lab["value"] for lab in r["labels"]}, r) for r in results]
    lab_orders = {tags["site"]: r for tags, r in labels if tags.get("criterion") == "clin-lab-order"}
    message = lab_orders["nal-trollhattan"]["statusDetails"]["message"]
    assert "nal-trollhattan: journalen tog inte emot beställningen av P-CRP:" in message, message
    assert "not allowed" in message, message  # GNU Health's own words: the create right it lacks
    last_step = lab_orders["sas-boras"]["steps"][-1]  # the result, on GNU Health's screen
    assert [a for a in last_step.get("attachments", []) if a["type"].startswith("image/")], last_step

    grant("add")
    try:
        rerun = rehearse("rerun")  # what failed in the latest run, on its own plan copy
    finally:
        grant("remove")  # as seeded: the other tests' NÄL user has no lab right
    verdicts = [line for line in rerun.stdout.splitlines() if line.startswith(("GO:", "NO-GO:"))]
    assert rerun.returncode == 0 and verdicts[0].startswith("GO:"), rerun.stdout + rerun.stderr
    assert lines()["clin-lab-order", "nal-trollhattan"]["status"] == "pass"


def test_a_non_test_patient_on_a_gnuhealth_page_is_caught_by_the_patient_gate(ui, gnuhealth) -> None:  # noqa: ANN001
    from rehearsal import patient_gate
    from rehearsal.identities import luhn_digit
    from tests.gnuhealth import seed
    from tests.gnuhealth.rpc import Rpc

    web, plan = ui
    _, _, server = gnuhealth
    body = "19700101-123"
    stranger = f"{body}{luhn_digit(body[2:8] + body[9:12])}"  # valid, and not a plan test identity
    with Rpc(server.base, server.database, "admin", server.admin_password) as admin:
        party = seed.person(admin, stranger, "Okänd Främling")
        admin.model("party.party", "write", [party], {"is_patient": True})
        admin.create("gnuhealth.patient", {"party": party})
    patient_gate.only(i.personnummer for i in plan.test_identities)
    try:
        web.log_in(plan.sites[0].users[0].hsa_id, PASSWORD)
        web._ui._patients()  # GNU Health's patient list shows everyone, the stranger too
        web._ui.sao.table()
        found = patient_gate.foreign_on_page(web.page)
        assert found.foreign, "the gate did not see the non-test patient on GNU Health's list"
        with pytest.raises(patient_gate.NotATestIdentity):
            web.find_patient(stranger)
    finally:
        patient_gate.reopen()
