"""Technical run-through through the APIs: features/teknisk/."""

from pytest_bdd import parsers, scenarios, then, when

from rehearsal import evidence
from rehearsal.clients.fhir import patient_name, supports_search
from rehearsal.plan import Plan

scenarios("teknisk")


@when("serverns CapabilityStatement hämtas", target_fixture="capabilities")
def fetch_capabilities(fhir):
    statement = fhir.capabilities()
    evidence.attach_json("CapabilityStatement", statement)
    return statement


@then(parsers.parse('anger det FHIR-version "{version}"'))
def fhir_version(capabilities: dict, version: str):
    assert capabilities.get("resourceType") == "CapabilityStatement"
    assert capabilities.get("fhirVersion") == version, f"fhirVersion {capabilities.get('fhirVersion')!r}"


@then(parsers.parse('stöder det sökning på "{resource}" med parametern "{param}"'))
def supports(capabilities: dict, resource: str, param: str):
    assert supports_search(capabilities, resource, param), f"{resource}?{param}= saknas i CapabilityStatement"


@when("varje testpatient i planen söks på personnummer via FHIR", target_fixture="found")
def search_each(plan: Plan, fhir):
    found = {i.personnummer: fhir.patients_by_personnummer(i.personnummer) for i in plan.test_identities}
    evidence.attach_json("Träffar per personnummer", {k: len(v) for k, v in found.items()})
    return found


@then("hittas exakt en patient per personnummer med rätt namn")
def exactly_one_each(plan: Plan, found: dict):
    problems = []
    for identity in plan.test_identities:
        hits = found[identity.personnummer]
        if len(hits) != 1:
            problems.append(f"{identity.personnummer}: {len(hits)} träffar")
        elif patient_name(hits[0]) != identity.name:
            name = patient_name(hits[0])
            problems.append(f"{identity.personnummer}: namnet är {name!r}, väntat {identity.name!r}")
    assert not problems, "; ".join(problems)
