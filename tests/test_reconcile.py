"""The mechanism behind the clinical and technical scenarios, without a hospital: reconciliation
(directory and migration), text fidelity, the test-identity guard, local routines and run scope.

Every check is shown passing on agreeing data and failing, with the message naming the
difference, on data that disagrees the way go-lives went wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rehearsal import fidelity, guard, reconcile
from rehearsal.clients.directory import DirectoryEntry, DirectorySnapshot
from rehearsal.identities import HSA_ID_SYSTEM, make_reservnummer
from rehearsal.plan import load_plan
from rehearsal.report import run_scope, scope_html, scope_markdown
from rehearsal.run import Run
from rehearsal.workflows import routines

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plan():
    return load_plan(ROOT / "plans" / "demo.yaml").plan


# -- directory --------------------------------------------------------------------------------------


def organizations(plan, change: dict[str, str] | None = None) -> list[dict]:
    """The Organizations an EHR built from the plan would have (ids = plan ids, units partOf their site)."""
    change = change or {}
    found = []
    for site in plan.sites:
        found.append(_org(site.id, site.name, change.get(site.id, site.hsa_id)))
        for unit in site.units:
            found.append(_org(unit.id, unit.name, change.get(unit.id, unit.hsa_id), site.id))
    return found


def _org(oid: str, name: str, hsa: str, part_of: str | None = None) -> dict:
    org = {"resourceType": "Organization", "id": oid, "name": name,
           "identifier": [{"system": HSA_ID_SYSTEM, "value": hsa}]}  # fmt: skip
    if part_of:
        org["partOf"] = {"reference": f"Organization/{part_of}"}
    return org


def directory(plan, drop: set[str] = frozenset(), extra: list[DirectoryEntry] = ()) -> DirectorySnapshot:
    entries = []
    for site in plan.sites:
        dn = f"ou={site.name},o=VGR,c=SE"
        entries.append(DirectoryEntry(dn, "site", site.hsa_id, site.name, site.hsa_id, None))
        for unit in site.units:
            entries.append(
                DirectoryEntry(
                    f"ou={unit.name},{dn}", "unit", unit.hsa_id, unit.name, site.hsa_id, site.hsa_id
                )
            )
    entries = [e for e in entries if e.hsa_id not in drop] + list(extra)
    return DirectorySnapshot("test", "o=VGR,c=SE", tuple(entries))


def test_directory_agrees_with_the_ehr_built_from_the_plan(plan):
    found = reconcile.reconcile_directory(plan, organizations(plan), directory(plan))
    assert all(d.ok for d in found.values()), {k: d.problems for k, d in found.items()}
    assert found["nal-trollhattan"].counts == {"journalen": 3, "katalogen": 3}


def test_a_changed_hsa_id_is_listed_at_its_site_only(plan):
    wrong = "SE2321000131-Z000000000202"
    found = reconcile.reconcile_directory(plan, organizations(plan, {"nal-kemi": wrong}), directory(plan))
    nal = found["nal-trollhattan"]
    assert nal.of(reconcile.ONLY_IN_EHR) == [
        f"i journalen men inte i HSA/KiV: {wrong} – Klinisk kemi NÄL (Organization/nal-kemi)"
    ]
    assert nal.of(reconcile.ONLY_IN_DIRECTORY)[0].startswith(
        "i HSA/KiV men inte i journalen: SE2321000131-E000000000202"
    )
    assert found["sas-boras"].ok and found["central"].ok


def test_a_malformed_hsa_id_and_units_without_a_site_are_named(plan):
    stray = DirectoryEntry(
        "ou=Okänd,o=VGR,c=SE", "site", "SE2321000131-E999", "Okänd enhet", "SE2321000131-E999", None
    )
    orgs = organizations(plan, {"sas-boras": "SE232-bad"}) + [_org("x", "Främmande", "SE2321000131-E888")]
    found = reconcile.reconcile_directory(plan, orgs, directory(plan, extra=[stray]))
    assert any("ogiltigt HSA-id i journalen" in p for p in found["sas-boras"].of(reconcile.INVALID))
    central = found["central"].problems
    assert any("Främmande" in p for p in central) and any("Okänd enhet" in p for p in central)


# -- migration --------------------------------------------------------------------------------------


EXTRACT = """bokning;personnummer;plats;enhet_hsa_id;enhet;start;slut;minuter;typ
B000001;19121212-1212;sas-boras;SE2321000131-E000000000101;SÄS;2026-11-27T08:30:00+01:00;2026-11-27T09:00:00+01:00;30;Nybesök
B000002;19800101-0019;sas-boras;SE2321000131-E000000000101;SÄS;2026-11-28T10:15:00+01:00;2026-11-28T10:45:00+01:00;30;Återbesök
B000003;19121212-1212;nal-trollhattan;SE2321000131-E000000000202;NÄL;2026-11-27T13:00:00+01:00;2026-11-27T13:30:00+01:00;30;Provtagning
"""


def appointments(rows: list[dict[str, str]]) -> list[dict]:
    return [
        {
            "resourceType": "Appointment",
            "id": f"mig-{r['bokning']}",
            "identifier": [{"system": "urn:x", "value": r["bokning"]}],
            "start": r["start"],
            "end": r["slut"],
            "participant": [
                {"actor": {"type": "Patient", "identifier": {"value": r["personnummer"].replace("-", "")}}},
                {"actor": {"type": "Organization", "identifier": {"value": r["enhet_hsa_id"]}}},
            ],
        }
        for r in rows
    ]


def test_migration_agrees_when_every_booking_came_over_as_it_was():
    plan = load_plan(ROOT / "plans" / "demo.yaml").plan
    rows = reconcile.parse_extract(EXTRACT)
    found = reconcile.reconcile_migration(plan, rows, appointments(rows))
    assert all(d.ok for d in found.values()), {k: d.problems for k, d in found.items()}
    assert found["sas-boras"].counts == {"utdraget": 2, "migrerade": 2}


def test_a_missing_booking_and_one_moved_to_0005_are_listed_at_their_site(plan):
    rows = reconcile.parse_extract(EXTRACT)
    migrated = appointments(rows)[1:]  # B000001 never made it
    migrated[0]["start"] = "2026-11-28T00:05:00+01:00"  # B000002 moved to 00:05 (same offset: a real change)
    found = reconcile.reconcile_migration(plan, rows, migrated)
    sas = found["sas-boras"]
    assert sas.of(reconcile.COUNT) == ["antal: 2 bokningar i utdraget, 1 migrerade"]
    assert sas.of(reconcile.MISSING) == [
        "B000001 (191212121212, 2026-11-27T08:30:00+01:00): saknas bland de migrerade"
    ]
    assert sas.of(reconcile.CHANGED) == [
        "B000002: tid 2026-11-28T00:05:00+01:00 efter migrering, 2026-11-28T10:15:00+01:00 i utdraget"
    ]
    assert found["nal-trollhattan"].ok


def test_the_same_instant_written_in_another_offset_is_not_a_difference(plan):
    rows = reconcile.parse_extract(EXTRACT)
    migrated = appointments(rows)
    migrated[0]["start"], migrated[0]["end"] = "2026-11-27T07:30:00Z", "2026-11-27T08:00:00+00:00"
    assert all(d.ok for d in reconcile.reconcile_migration(plan, rows, migrated).values())


def test_a_booking_migrated_without_a_source_is_extra(plan):
    rows = reconcile.parse_extract(EXTRACT)
    ghost = appointments([{**rows[0], "bokning": "B999999"}])
    found = reconcile.reconcile_migration(plan, rows, appointments(rows) + ghost)
    assert found["sas-boras"].of(reconcile.EXTRA) == [
        "B999999 (191212121212, 2026-11-27T08:30:00+01:00): migrerad men finns inte i utdraget"
    ]


# -- text fidelity ----------------------------------------------------------------------------------


def test_identical_text_passes_and_lost_negations_show_side_by_side():
    sent = "Ingen fraktur. Knät är inte svullet.\nEj behov av operation."
    assert fidelity.difference(sent, sent, "svaret") is None
    got = "fraktur. Knät är svullet.\nbehov av operation."
    message = fidelity.difference(sent, got, "remissvaret")
    assert message is not None and message.startswith("remissvaret kom inte fram ordagrant")
    assert "skickat" in message and "| mottaget" in message
    assert "saknas i mottaget: «Ingen», «inte», «Ej»" in message
    lines = message.splitlines()
    assert any("Ingen fraktur" in line and "| fraktur" in line for line in lines), message


def test_broken_encoding_and_a_changed_line_break_are_differences():
    sent = "Önskar åtgärd"
    mangled = sent.encode("utf-8").decode("latin-1")
    message = fidelity.difference(sent, mangled, "frågeställningen")
    assert message is not None and "Ã" in message and "«Önskar»" in message
    assert fidelity.difference("a\nb", "a\r\nb", "texten") is not None
    assert fidelity.difference("a", None, "svaret").startswith("svaret: inget mottaget")


# -- the test-identity guard ------------------------------------------------------------------------


def test_guard_accepts_test_identities_and_own_reserve_numbers_only(plan, tmp_path):
    from datetime import date

    own = make_reservnummer(date(1970, 1, 1), "male")
    stranger = make_reservnummer(date(1971, 1, 1), "female")
    guard.record(tmp_path, own, "okänd patient")
    touched = guard.Touched()
    touched.add("19121212-1212", "nya journalen: Encounter/1")
    touched.add(own, "nya journalen: Patient")
    assert guard.problems(plan, touched, guard.created(tmp_path)) == []
    touched.add(stranger, "nya journalen: Encounter/2")
    touched.add("19460101-0004", "bryggan: lab-order 7")
    found = guard.problems(plan, touched, guard.created(tmp_path))
    assert len(found) == 2
    masked = f"{stranger[:8]}-****"  # numbers are masked in what the guard reports
    assert any(masked in p and "reservnummer som repetitionen inte skapat" in p for p in found)
    assert any("19460101-**** (inte en testidentitet), sedd i: bryggan: lab-order 7" in p for p in found)
    assert json.loads((tmp_path / guard.LEDGER).read_text().splitlines()[0])["identity"] == own


# -- local routines ---------------------------------------------------------------------------------


def test_routines_follow_the_plan(plan):
    sas, nal = plan.site("sas-boras"), plan.site("nal-trollhattan")
    assert routines.not_applicable(plan, sas, {"lab_route": ["bridge"]}) is None
    assert routines.not_applicable(plan, sas, {"lab_route": ["direct"]}) is not None
    assert routines.not_applicable(plan, nal, {"lab_route": ["direct"]}) is None
    assert routines.not_applicable(plan, sas, {"route": ["legacy-to-new"]}) is not None
    assert routines.not_applicable(plan, nal, {"route": ["legacy-to-new"]}) is None
    assert routines.legacy_counterpart(plan, sas).id == "nal-orto"  # SÄS has none of its own
    assert routines.legacy_sender(nal).id == "nal-orto" and routines.new_receiver(nal).id == "nal-trollhattan"
    assert routines.patient_for(plan, sas) != routines.patient_for(plan, nal)
    bare = plan.model_copy(update={"environment": plan.environment.model_copy(update={"bridge_base": None})})
    assert (
        routines.not_applicable(bare, None, {"needs": ["bridge_base"]})
        == "planen anger ingen environment.bridge_base"
    )


# -- the run's scope in the go/no-go -------------------------------------------------------------------


def _run(**kw) -> Run:
    return Run(id="r", rehearsal="demo", plan_path="p", plan_sha256="x", started="s", dir=Path("."), **kw)


def test_scope_names_the_sites_and_aspects_that_did_not_run(plan):
    whole = run_scope([_run()], plan)
    assert (
        whole["complete_scope"]
        and scope_markdown(whole) == ""
        and scope_html("<header></header>", whole) == "<header></header>"
    )
    narrowed = run_scope([_run(sites=["sas-boras"], aspects=["klinisk"])], plan)
    assert narrowed["not_run"] == {"sites": ["nal-trollhattan"], "aspects": ["organisatorisk", "teknisk"]}
    text = scope_markdown(narrowed)
    assert "## Omfattning" in text and "Platser som inte kördes: nal-trollhattan" in text
    assert "Aspekter som inte kördes: organisatorisk, teknisk" in text
    assert 'class="scope"' in scope_html("<header>x</header><h2>", narrowed)
    # a later full run of the chain widens it again; a rerun of selected items does not
    assert run_scope([_run(sites=["sas-boras"]), _run(parent="r", selection=["a"])], plan)["not_run"]["sites"]
    assert run_scope([_run(sites=["sas-boras"]), _run()], plan)["complete_scope"]
