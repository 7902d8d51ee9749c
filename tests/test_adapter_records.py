"""The standards records adapter (NPÖ-like read) on two third-party FHIR servers (Medplum's router
in memory, one for the new EHR, one as the legacy system's FHIR face, seeded through their REST
APIs): a note published on the legacy side comes back byte for byte, å/ä/ö and negations
included, beside the new side's results; a side that does not answer is named, not left out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from medplum_peer import medplum_servers
from test_thirdparty_fhir import PNR_SYSTEM

from conftest import free_port
from rehearsal import fidelity, patient_gate
from rehearsal.adapters.records import Records, StandardsRecords
from rehearsal.patient_gate import NotATestIdentity
from rehearsal.plan import Plan, PlanError, load_plan
from rehearsal.workflows import routines

pytestmark = pytest.mark.slow  # starts two Node servers

STRANGER = "19391209-9805"  # valid, not a test identity of the plan
NOTE = "Anteckning från Vårdcentral Äldre: inga kända allergier, ej rökare. Ingen fraktur.\nÅter om två år."


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with medplum_servers(tmp_path_factory, "new", "legacy") as (new, legacy):
        yield new, legacy


def post(base: str, resource: dict[str, Any]) -> str:
    answer = httpx.post(f"{base}/{resource['resourceType']}", json=resource,
                        headers={"Content-Type": "application/fhir+json"})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def records_plan(make_plan, new: str, legacy: str) -> Plan:
    def edit(data: dict[str, Any]) -> None:
        env = data["environment"]
        env["fhir_base"], env["adapters"], env["records"] = (
            new,
            {"records": "standards"},
            {"legacy_fhir": legacy},
        )

    return load_plan(make_plan(edit)).plan


def test_a_legacy_note_is_read_byte_for_byte_beside_the_new_sides_results(make_plan, servers) -> None:
    new, legacy = servers
    plan = records_plan(make_plan, new, legacy)
    identity = plan.test_identities[0]
    pnr = identity.personnummer.replace("-", "")
    patient = {"resourceType": "Patient", "identifier": [{"system": PNR_SYSTEM, "value": pnr}]}
    new_patient = post(new, patient)
    post(legacy, patient)
    result = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "P-Na"},
              "subject": {"reference": f"Patient/{new_patient}"},
              "conclusion": "Natrium 140 mmol/L"}  # fmt: skip
    report = post(new, result)

    records = plan.environment.adapter("records")(plan)
    assert isinstance(records, StandardsRecords) and isinstance(records, Records)
    try:
        note_id = records.publish(identity.personnummer, plan.sites[0].hsa_id, "Anteckning", NOTE)
        seen = records.overview(identity.personnummer)
    finally:
        records.close()
    assert seen.sources == {"new": None, "legacy": None}
    legacy_notes = [r for r in seen.records if r.source == "legacy"]
    assert [r.id for r in legacy_notes] == [f"DocumentReference/{note_id}"]
    assert fidelity.difference(NOTE, legacy_notes[0].text, "anteckningen") is None
    assert legacy_notes[0].text.encode("utf-8") == NOTE.encode("utf-8")
    assert [(r.id, r.text) for r in seen.records if r.source == "new"] == [
        (f"DiagnosticReport/{report}", "Natrium 140 mmol/L")
    ]


def test_a_side_that_does_not_answer_is_named_and_someone_else_is_refused(make_plan, servers) -> None:
    new, _ = servers
    dead = f"http://127.0.0.1:{free_port()}/fhir"
    plan = records_plan(make_plan, new, dead)
    records = plan.environment.adapter("records")(plan)
    patient_gate.only([i.personnummer for i in plan.test_identities])  # as a run closes it
    try:
        seen = records.overview(plan.test_identities[0].personnummer)
        assert STRANGER not in {i.personnummer for i in plan.test_identities}
        with pytest.raises(NotATestIdentity):
            records.overview(STRANGER)
        with pytest.raises(NotATestIdentity):
            records.publish(STRANGER, plan.sites[0].hsa_id, "x", "y")
    finally:
        patient_gate.reopen()
        records.close()
    assert set(seen.sources) == {"new", "legacy"}
    assert seen.sources["legacy"] and dead.removesuffix("/fhir") in str(seen.sources["legacy"])
    assert "\n" not in str(seen.sources["legacy"])


def test_needs_records_follows_the_plans_adapter(make_plan) -> None:
    reference = load_plan(make_plan(lambda d: d["environment"].pop("bridge_base"))).plan
    assert routines.not_applicable(reference, None, {"needs": ["records"]}) == (
        "planen anger ingen environment.bridge_base"
    )
    with pytest.raises(PlanError, match=r"standards needs environment\.records"):
        load_plan(make_plan(lambda d: d["environment"].update(adapters={"records": "standards"})))
