"""A plan that is not the demo — four other sites, two on the legacy EHR, another device mix, the
directory as an LDIF export — starts a hospital shaped like that plan, and nothing of it is left
after ``down``. Nothing in the reference hospital may be hard-coded to the demo sites.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import free_port
from reference_hospital import control
from reference_hospital.faults import parse_fault
from rehearsal.clients import directory as kiv
from rehearsal.errors import UsageError
from rehearsal.identities import HSA_ID_SYSTEM
from rehearsal.plan import LoadedPlan, load_plan

PASSWORD = "shapes-test-password"


def hsa(kind: str, number: int) -> str:
    return f"SE2321000131-{kind}{number:012d}"


def four_sites() -> dict[str, Any]:
    """Kungälv (new, direct), Alingsås (new, bridge), Skövde and Uddevalla (legacy); 3 IPP printers."""
    ehr = free_port()

    def user(n: int, name: str, role: str) -> dict[str, str]:
        return {"hsa_id": hsa("P", n), "name": name, "role": role, "password_env": "SHAPES_PASSWORD"}

    def ipp(pid: str) -> dict[str, str]:
        return {
            "id": pid,
            "kind": "document",
            "uri": f"ipp://127.0.0.1:{free_port()}/ipp/print",
            "location": "Kansli",
        }

    roster = {"beslut": {"name": "Ulla Ek"}, "support": {"name": "Rolf Al"}}
    return {
        "rehearsal": "shapes-gr2",
        "title": "GR2 – fyra andra platser",
        "environment": {
            "name": "formtest",
            "kind": "test",
            "fhir_base": f"http://127.0.0.1:{ehr}/r4",
            "web_base": f"http://127.0.0.1:{ehr}/klinik",
            "allowed_hosts": ["127.0.0.1"],
            "legacy_base": f"http://127.0.0.1:{free_port()}",
            "lab_mllp": f"mllp://127.0.0.1:{free_port()}",
            "bridge_base": f"http://127.0.0.1:{free_port()}",
            "bridge_mllp": f"mllp://127.0.0.1:{free_port()}",
            "directory": "export/kiv.ldif",
        },
        "sites": [
            {
                "id": "kungalv",
                "name": "Kungälvs sjukhus",
                "hsa_id": hsa("E", 1001),
                "lab_route": "direct",
                "units": [{"id": "kungalv-akut", "name": "Akuten Kungälv", "hsa_id": hsa("E", 1002)}],
                "printers": [ipp("kungalv-dok1"), ipp("kungalv-dok2")],
                "command_centre": roster,
                "users": [user(1001, "Åsa Öberg", "sjuksköterska")],
            },
            {
                "id": "alingsas",
                "name": "Alingsås lasarett",
                "hsa_id": hsa("E", 2001),
                "lab_route": "bridge",
                "units": [
                    {"id": "alingsas-med", "name": "Medicin Alingsås", "hsa_id": hsa("E", 2002)},
                    {"id": "alingsas-kir", "name": "Kirurgi Alingsås", "hsa_id": hsa("E", 2003)},
                ],
                "command_centre": roster,
                "users": [user(2001, "Per Ås", "läkare"), user(2002, "Eva Lind", "undersköterska")],
            },
            {
                "id": "skovde",
                "name": "Skaraborgs sjukhus Skövde",
                "hsa_id": hsa("E", 3001),
                "system": "legacy",
                "units": [{"id": "skovde-orto", "name": "Ortopedi Skövde", "hsa_id": hsa("E", 3002)}],
                "printers": [ipp("skovde-dok1")],
                "command_centre": roster,
                "users": [user(3001, "Nils Berg", "läkare")],
            },
            {
                "id": "uddevalla",
                "name": "Uddevalla sjukhus",
                "hsa_id": hsa("E", 4001),
                "system": "legacy",
                "printers": [
                    {"id": "udd-armband1", "kind": "wristband", "uri": f"tcp://127.0.0.1:{free_port()}"}
                ],
                "command_centre": roster,
                "users": [user(4001, "Lisa Holm", "sjuksköterska")],
            },
        ],
        "command_centre": {"roles": ["beslut", "support"], "central": roster},
        "test_identities": [
            {"personnummer": "19121212-1212", "name": "Tolvan Tolvansson"},
            {"personnummer": "19800101-0019", "name": "Testa Testsson"},
        ],
        "coexistence": {
            "lab": {"result_delay_s": 0.2, "application": "KEMLAB", "facility": "SKAS"},
            "bridge": {"poll_interval_s": 0.2},
            "migration": {"bookings_per_patient": 3, "first_day": "2030-01-07"},
            "directory_base_dn": "ou=KiV,o=Region,c=SE",
        },
        "criteria": [{"id": "run-complete", "title": "Klart", "kind": "run_complete"}],
    }


def ports_of(loaded: LoadedPlan) -> set[int]:
    env = loaded.plan.environment
    urls = [env.fhir_base, env.legacy_base, env.lab_mllp, env.bridge_base, env.bridge_mllp]
    urls += [p.uri for s in loaded.plan.sites for p in s.printers if p.uri.startswith("ipp://")]
    return {int(str(u).split("://", 1)[1].split("/")[0].rsplit(":", 1)[1]) for u in urls}


def listening() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoadedPlan, dict[str, Any], Path]]:
    """The four-site hospital, started as `rehearse reference up` does (a detached process)."""
    folder = tmp_path_factory.mktemp("shapes")
    path = folder / "gr2.yaml"
    path.write_text(yaml.safe_dump(four_sites(), allow_unicode=True, sort_keys=False), encoding="utf-8")
    loaded = load_plan(path)
    state_dir = folder / "state"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHAPES_PASSWORD", PASSWORD)
        state = control.up(loaded, [], state_dir)
    try:
        yield loaded, state, state_dir
    finally:
        control.down(state_dir)


@pytest.mark.slow
def test_every_component_is_up_and_shaped_by_the_plan(
    shaped: tuple[LoadedPlan, dict[str, Any], Path],
) -> None:
    loaded, state, _ = shaped
    health = httpx.get(f"{state['admin_url']}/health", timeout=5).json()
    components = health["components"]
    assert all(c["ok"] for c in components.values()), components
    assert components["directory"]["mode"] == "ldif"  # the file fallback: no LDAP port in this plan
    assert components["devices"]["ipp"] == ["kungalv-dok1", "kungalv-dok2", "skovde-dok1"]
    assert ports_of(loaded) <= listening()
    legacy = httpx.get(f"{loaded.plan.environment.legacy_base}/api/units", timeout=5).json()
    assert {u["hsa_id"]: u["site"] for u in legacy} == {
        hsa("E", 3001): "skovde",
        hsa("E", 3002): "skovde",
        hsa("E", 4001): "uddevalla",
    }


@pytest.mark.slow
def test_the_directory_export_lists_the_plans_units_and_people(
    shaped: tuple[LoadedPlan, dict[str, Any], Path],
) -> None:
    loaded, _, _ = shaped
    snapshot = kiv.for_plan(loaded.plan, relative_to=loaded.path.parent)
    assert snapshot.source == str(loaded.path.parent / "export" / "kiv.ldif")
    sites = {e.name for e in snapshot.units() if e.kind == "site"}
    assert sites == {
        "Kungälvs sjukhus",
        "Alingsås lasarett",
        "Skaraborgs sjukhus Skövde",
        "Uddevalla sjukhus",
    }
    assert {e.hsa_id for e in snapshot.of_site(hsa("E", 2001))} == {
        hsa("E", n) for n in (2001, 2002, 2003)
    } | {hsa("P", 2001), hsa("P", 2002)}
    assert {e.name: e.title for e in snapshot.people()}["Åsa Öberg"] == "sjuksköterska"


@pytest.mark.slow
def test_migration_covers_only_the_sites_going_live(shaped: tuple[LoadedPlan, dict[str, Any], Path]) -> None:
    loaded, _, _ = shaped
    summary = httpx.get(f"{loaded.plan.environment.bridge_base}/migration", timeout=5).json()
    # two identities × three bookings × units on the new EHR (Kungälv 1, Alingsås 2)
    assert summary["bookings"] == {"kungalv": 6, "alingsas": 12}
    assert summary["first_day"] == "2030-01-07"


@pytest.mark.slow
def test_lab_routes_follow_each_sites_local_routine(shaped: tuple[LoadedPlan, dict[str, Any], Path]) -> None:
    loaded, state, _ = shaped
    env = loaded.plan.environment
    with httpx.Client(base_url=env.fhir_base, timeout=5) as fhir:
        patient = fhir.get("Patient", params={"identifier": "191212121212"}).json()["entry"][0]["resource"][
            "id"
        ]
        orgs = {
            i["value"]
            for e in fhir.get("Organization").json()["entry"]
            for i in e["resource"].get("identifier", [])
        }
        assert {s.hsa_id for s in loaded.plan.sites} <= orgs
        orders = {}
        for site, user in (("kungalv", hsa("P", 1001)), ("alingsas", hsa("P", 2001))):
            made = fhir.post(
                "ServiceRequest",
                headers={"Content-Type": "application/fhir+json"},
                json={
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "108252007"}]}],
                    "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.1", "code": "NPU03429"}]},
                    "subject": {"reference": f"Patient/{patient}"},
                    "requester": {"identifier": {"system": HSA_ID_SYSTEM, "value": user}},
                },
            )
            assert made.status_code == 201, made.text
            orders[site] = made.json()["id"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done = [
                o
                for o in orders.values()
                if fhir.get("DiagnosticReport", params={"based-on": f"ServiceRequest/{o}"})
                .json()
                .get("entry")
            ]
            if len(done) == 2:
                break
            time.sleep(0.1)
        assert len(done) == 2
    lab = httpx.get(f"{state['admin_url']}/lab/", timeout=5).json()
    routes = {o["site"]: (o["route"], o["application"], o["facility"]) for o in lab["orders"]}
    assert routes == {
        "kungalv": ("fhir", "FHIR", hsa("E", 1001)),
        "alingsas": ("mllp", "NEWEHR", hsa("E", 2001)),
    }
    queues = httpx.get(f"{env.bridge_base}/bridge/queues", timeout=5).json()["queues"]
    assert [m["site"] for m in queues["new→lab"]["messages"]] == ["alingsas"]


def test_faults_follow_the_plans_sites(tmp_path: Path) -> None:
    path = tmp_path / "gr2.yaml"
    path.write_text(yaml.safe_dump(four_sites(), allow_unicode=True), encoding="utf-8")
    plan = load_plan(path).plan
    assert str(parse_fault("orphan-queue@uddevalla", plan)) == "orphan-queue@uddevalla"
    with pytest.raises(UsageError, match="sites it applies to: kungalv, alingsas"):
        parse_fault("migration-gap@skovde", plan)
    with pytest.raises(UsageError, match="plan has no site 'sas-boras'"):
        parse_fault("lab-results-lost@sas-boras", plan)


@pytest.mark.slow
def test_down_leaves_no_port_and_no_process(shaped: tuple[LoadedPlan, dict[str, Any], Path]) -> None:
    loaded, state, state_dir = shaped
    assert control.down(state_dir)
    assert not ports_of(loaded) & listening()
    mentions = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
                zombie = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except (OSError, IndexError):
                continue
            if str(state_dir.resolve()).encode() in cmdline and not zombie:
                mentions.append(proc.name)
    assert mentions == []
