"""Referral round trips across the boundary through the standards adapter, on two third-party FHIR
servers (Medplum's router in memory: one the new EHR, one the legacy system's FHIR face), seeded
through their REST APIs.

What carries a referral from one side to the other is the hospital's integration engine; here a
small engine in the test plays it over the two REST APIs (ServiceRequest + Task copied to the
side that owns the receiving unit by HSA-id, the Task's answer copied back), once faithful and
once lossy the way real engines were (negations dropped, UTF-8 read as latin-1). The round trips
are the technical scenario's own (``Traffic`` → ``workflows.referrals`` with the plan's adapter):
both directions, the text checked byte for byte with "ingen", "inte", "utan" and å/ä/ö.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from medplum_peer import medplum_servers
from test_thirdparty_fhir import PNR_SYSTEM, Medplum, _seed

from rehearsal import patient_gate
from rehearsal.adapters.referrals import (
    Referrals,
    StandardsReferrals,
    answered_task,
    question_of,
    task_answer,
)
from rehearsal.adapters.referrals_reference import ReferenceReferrals
from rehearsal.identities import personnummer_tokens
from rehearsal.patient_gate import NotATestIdentity
from rehearsal.plan import LoadedPlan, Plan, PlanError, load_plan
from rehearsal.workflows import referrals, routines
from rehearsal.workflows.traffic import Traffic

pytestmark = pytest.mark.slow  # starts two Node servers (~2 s) and waits out a lost referral (~4 s)

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
STRANGER = "19391209-9805"  # valid, not a test identity of the plan
#: Every trip the demo plan's sites make: (site, route).
TRIPS = [
    ("sas-boras", "new-to-legacy"),
    ("nal-trollhattan", "new-to-legacy"),
    ("nal-trollhattan", "legacy-to-new"),
]


def drop_negations(text: str) -> str:
    """What a lossy engine did after a real go-live: "inte" and "ingen" gone."""
    return re.sub(r"\b(?:[Ii]nte|[Ii]ngen) ", "", text)


def latin1_misread(text: str) -> str:
    """An engine that reads UTF-8 as latin-1: "ö" arrives as "Ã¶"."""
    return text.encode("utf-8").decode("latin-1")


class Engine(threading.Thread):
    """The integration engine between the two FHIR sides: a requested Task owned by a unit of the
    other side is copied there (its ServiceRequest's text through ``mangle``), on the patient found
    there by personnummer; when the copy is completed, its answer goes back to the original."""

    def __init__(self, bases: dict[str, str], side_of: dict[str, str], mangle: Callable[[str], str]) -> None:
        super().__init__(daemon=True, name="test-engine")
        self.bases, self.side_of, self.mangle = bases, side_of, mangle
        self.carried: dict[tuple[str, str], tuple[str, str]] = {}
        self.answered: set[tuple[str, str]] = set()
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        http = {
            n: httpx.Client(base_url=b + "/", timeout=5, headers=FHIR_JSON) for n, b in self.bases.items()
        }
        try:
            while not self._halt.wait(0.1):
                try:
                    self._cycle(http)
                except (httpx.HTTPError, KeyError, ValueError, AssertionError) as exc:
                    self.errors.append(repr(exc))
        finally:
            for client in http.values():
                client.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def _cycle(self, http: dict[str, httpx.Client]) -> None:
        for side, client in http.items():
            for task in search(client, "Task", {"status": "requested"}):
                owner = ((task.get("owner") or {}).get("identifier") or {}).get("value")
                other = self.side_of.get(owner or "")
                if other and other != side and (side, task["id"]) not in self.carried:
                    self.carried[(side, task["id"])] = (other, self._carry(client, http[other], task))
        for (side, tid), (other, copy) in list(self.carried.items()):
            if (side, tid) in self.answered:
                continue
            done = http[other].get(f"Task/{copy}").json()
            if done.get("status") == "completed":
                original = http[side].get(f"Task/{tid}").json()
                answer = task_answer(done) or ""
                put(http[side], answered_task(original, self.mangle(answer)))
                self.answered.add((side, tid))

    def _carry(self, origin: httpx.Client, there: httpx.Client, task: dict[str, Any]) -> str:
        request = origin.get(task["focus"]["reference"]).json()
        patient = origin.get(request["subject"]["reference"]).json()
        pnr = next(i["value"] for i in patient["identifier"] if i["system"] == PNR_SYSTEM).replace("-", "")
        tokens = ",".join(personnummer_tokens(f"{pnr[:8]}-{pnr[8:]}"))  # either stored form
        (found,) = search(there, "Patient", {"identifier": tokens})
        subject = {"reference": f"Patient/{found['id']}"}
        note = [{"text": self.mangle(question_of(request))}]
        copy = post(there, {**request, "id": None, "meta": None, "subject": subject, "note": note})
        return post(there, {**task, "id": None, "meta": None, "for": subject,
                            "focus": {"reference": f"ServiceRequest/{copy}"},
                            "basedOn": [{"reference": f"ServiceRequest/{copy}"}]})  # fmt: skip


def search(client: httpx.Client, rtype: str, params: dict[str, str]) -> list[dict[str, Any]]:
    answer = client.get(rtype, params=params)
    assert answer.status_code == 200, answer.text
    return [e["resource"] for e in answer.json().get("entry") or []]


def post(client: httpx.Client, resource: dict[str, Any]) -> str:
    body = {k: v for k, v in resource.items() if v is not None}
    answer = client.post(body["resourceType"], json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def put(client: httpx.Client, resource: dict[str, Any]) -> None:
    answer = client.put(f"{resource['resourceType']}/{resource['id']}", json=resource)
    assert answer.status_code == 200, answer.text


def referral_plan(make_plan: Callable[..., Any], new: str, legacy: str) -> Plan:
    return referral_loaded(make_plan, new, legacy).plan


def referral_loaded(make_plan: Callable[..., Any], new: str, legacy: str) -> LoadedPlan:
    def edit(data: dict[str, Any]) -> None:
        env = data["environment"]
        for name in ("legacy_base", "bridge_base", "lab_mllp", "bridge_mllp"):
            env.pop(name, None)
        env["fhir_base"], env["adapters"] = new, {"referrals": "standards"}
        env["referrals"] = {"legacy_fhir": legacy}
        env["timeouts"] = {"connect": 2, "read": 3, "device": 2}
        data["coexistence"]["bridge"] = {"poll_interval_s": 0.2}
        data["coexistence"]["lab"] = {
            "result_delay_s": 0,
            "result_within_s": 0.5,
        }  # nobody answers lab orders

    return load_plan(make_plan(edit))


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, make_plan_module) -> Iterator[tuple[str, str]]:
    with medplum_servers(tmp_path_factory, "new", "legacy") as (new_base, legacy_base):
        plan = load_plan(make_plan_module()).plan
        with httpx.Client(base_url=new_base + "/", timeout=10, headers=FHIR_JSON) as http:
            _seed(Medplum(new_base, http), plan)
        with httpx.Client(base_url=legacy_base + "/", timeout=10, headers=FHIR_JSON) as http:
            for identity in plan.test_identities:
                value = identity.personnummer.replace("-", "")
                post(http, {"resourceType": "Patient", "identifier": [{"system": PNR_SYSTEM, "value": value}],
                            "name": [{"text": identity.name}]})  # fmt: skip
        yield new_base, legacy_base


@pytest.fixture(scope="module")
def make_plan_module(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    from conftest import plan_copy

    folder = tmp_path_factory.mktemp("plans")
    return lambda edit=None: plan_copy(folder, edit, f"plan-{len(list(folder.iterdir()))}.yaml")


def round_trips(plan: Plan, mangle: Callable[[str], str] | None, monkeypatch) -> list[referrals.RoundTrip]:
    """The scenario's traffic for every trip of the plan, with an engine carrying (or none)."""
    monkeypatch.setenv("REHEARSAL_PASSWORD", "medplum-ignores-it")
    side_of = {u.hsa_id: u.system for s in plan.sites for u in routines.units_of(s)}
    env = plan.environment
    assert env.referrals is not None
    engine = Engine({"new": env.fhir_base, "legacy": env.referrals.legacy_fhir}, side_of, mangle or str)
    if mangle is not None:
        engine.start()
    traffic = Traffic(plan, plan.sites)
    try:
        by_id = {s.id: s for s in plan.sites}
        return [traffic.referral(by_id[site], route) for site, route in TRIPS]
    finally:
        traffic.close()
        if mangle is not None:
            engine.stop()
            assert not engine.errors, engine.errors


def test_both_directions_arrive_and_return_byte_for_byte(make_plan, servers, monkeypatch) -> None:
    plan = referral_plan(make_plan, *servers)
    assert isinstance(plan.environment.adapter("referrals")(plan), StandardsReferrals)
    trips = round_trips(plan, lambda text: text, monkeypatch)
    for trip in trips:
        assert trip.problems == [], trip.summary()
        assert trip.received_question is not None and trip.received_answer is not None
        assert trip.received_question.encode("utf-8") == trip.question.encode("utf-8")
        assert trip.received_answer.encode("utf-8") == trip.answer.encode("utf-8")
    words = (referrals.QUESTION + referrals.ANSWER).lower()
    assert all(w in words for w in ("ingen", "inte", "utan", "å", "ä", "ö")), words
    assert [t.direction for t in trips] == ["ny→äldre", "ny→äldre", "äldre→ny"]


def test_a_lossy_engine_fails_each_trip_naming_the_lost_words(make_plan, servers, monkeypatch) -> None:
    plan = referral_plan(make_plan, *servers)
    trips = round_trips(plan, lambda text: latin1_misread(drop_negations(text)), monkeypatch)
    for trip in trips:
        said = "\n".join(trip.problems)
        assert "frågeställningen kom inte fram ordagrant" in said, trip.summary()
        assert "remissvaret kom inte fram ordagrant" in said, trip.summary()
        assert "«inte»" in said and "«Ingen»" in said and "Ã¤" in said


def test_a_referral_nobody_carries_never_arrives_in_bounded_time(make_plan, servers, monkeypatch) -> None:
    plan = referral_plan(make_plan, *servers)
    within = referrals.crossing_s(plan)
    trips = round_trips(plan, None, monkeypatch)
    for trip in trips:
        (problem,) = trip.problems
        assert problem.startswith(f"remissen från {trip.sender} kom aldrig fram till {trip.receiver}")
        assert problem.endswith(f"inom {within:g} s")


def test_only_test_identities_and_the_plans_adapter(make_plan, servers) -> None:
    plan = referral_plan(make_plan, *servers)
    legacy = plan.environment.adapter("referrals")(plan)
    assert isinstance(legacy, Referrals)
    unit = routines.units_of(plan.sites[1])[-1]
    patient_gate.only([i.personnummer for i in plan.test_identities])  # as a run closes it
    try:
        with pytest.raises(NotATestIdentity):
            legacy.send(STRANGER, unit, routines.units_of(plan.sites[0])[0], "x")
        with pytest.raises(NotATestIdentity):
            legacy.find(STRANGER, unit, "Ref x")
    finally:
        patient_gate.reopen()
        legacy.close()
    assert StandardsReferrals.endpoints(plan) == {"referrals.legacy_fhir": servers[1]}
    reference = load_plan(make_plan(lambda d: d["environment"].pop("legacy_base"))).plan
    assert reference.environment.adapter("referrals") is ReferenceReferrals
    assert routines.not_applicable(reference, None, {"needs": ["referrals"]}) == (
        "planen anger ingen environment.legacy_base"
    )
    with pytest.raises(PlanError, match=r"standards needs environment\.referrals"):
        load_plan(make_plan(lambda d: d["environment"].update(adapters={"referrals": "standards"})))


def test_the_referrals_criterion_fails_at_the_site_whose_referrals_lose_words(
    make_plan, servers, tmp_path, monkeypatch
) -> None:
    """The technical scenarios as a rehearsal run (``@needs:referrals`` collected by the standards
    adapter): the engine drops negations only from NÄL's referrals, so tech-referrals fails at NÄL,
    quoting the lost words, and passes at Borås."""
    from rehearsal.report import build_evidence
    from rehearsal.runner import execute

    loaded = referral_loaded(make_plan, *servers)
    plan = loaded.plan
    side_of = {u.hsa_id: u.system for s in plan.sites for u in routines.units_of(s)}
    env = plan.environment
    assert env.referrals is not None

    def lossy_at_nal(text: str) -> str:
        return drop_negations(text) if "Ref nal-trollhattan-" in text else text  # its questions only

    engine = Engine({"new": env.fhir_base, "legacy": env.referrals.legacy_fhir}, side_of, lossy_at_nal)
    engine.start()
    try:
        outcome = execute(
            tmp_path / "reports", loaded, env={"REHEARSAL_PASSWORD": "x"}, paths=["scenarios"],
            selection=["tek-referrals-01", "tek-referrals-02"],  # both routes, every site
        )  # fmt: skip
    finally:
        engine.stop()
    log = (outcome.run.dir / "pytest.log").read_text(encoding="utf-8")
    decision = build_evidence(outcome.run, loaded.plan).decision.to_json()
    lines = {(c["id"], c["site"]): c["status"] for c in decision["criteria"] if c["id"] == "tech-referrals"}
    assert lines == {
        ("tech-referrals", "sas-boras"): "pass",
        ("tech-referrals", "nal-trollhattan"): "fail",
    }, log
    summary = (outcome.run.dir / "gonogo.md").read_text(encoding="utf-8")
    assert "«inte»" in summary or "«inte»" in log
