"""The standards lab adapter against a lab built on python-hl7's own MLLP server (a third-party
implementation of the protocol, on loopback): a new order (ORM^O01 or OML^O21) with å/ä/ö out,
the ACK judged (only ``AA`` passes; ``AR``/``AE`` fail quoting the peer's MSA-3/ERR), and the
lab's ORU^R01 in on the rehearsal's own listener, its text fields compared byte for byte.

The peer's faults are the ones real links have: a server not told the encoding (python-hl7's
``encoding="latin-1"``, or ASCII with ``replace``: "BjÃ¶rk", "Bj??rk"), a lab that re-encodes
its results as latin-1 (not UTF-8 at all), one that files the result on another patient, one
that never answers. Each is caught with the field named. The last test runs the scenario
(tek-integrations-04) as a rehearsal and reads the go/no-go.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hl7
import hl7.mllp
import pytest
from hl7_peer import Hl7Server

from conftest import free_port
from rehearsal.adapters.lab import COMMENT, MESSAGES, Exchange, LabLink, StandardsLab
from rehearsal.adapters.lab_reference import ReferenceLab
from rehearsal.clients import hl7 as mllp
from rehearsal.plan import Plan, PlanError, Site, load_plan
from rehearsal.workflows import routines

OTHER_PATIENT = "193912099805"  # valid, not a test identity of the plan
AR_TEXT = "Okänd avsändare SE2321000131"
AE_ERR = "ERR|||103^Table value not found^HL70357|E||||NPU02319 ej i katalogen"
#: The two scenarios of tech-integrations that judge the lab link (by stable id).
SELECTION = ["tek-integrations-02", "tek-integrations-04"]


@dataclass
class Behaviour:
    """What the peer lab does: its ACK code, how it decodes the order, how it encodes its result."""

    code: str = "AA"
    read_as: str = "utf-8"
    read_errors: str = "strict"
    write_as: str = "utf-8"
    write_errors: str = "strict"
    patient: str | None = None  # file the result on this PID-3 instead
    answer: bool = True


@dataclass
class Lab(Hl7Server):
    """python-hl7's asyncio MLLP server as a lab: ACK at once, then the ORU^R01 to ``results``."""

    behaviour: Behaviour
    results: str = ""
    received: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        Hl7Server.__init__(self)

    def encoding(self) -> tuple[str, str]:
        return self.behaviour.read_as, self.behaviour.read_errors

    def ack(self, order: hl7.Message) -> str:
        ack = str(order.create_ack(self.behaviour.code, application="LAB", facility="KLINKEM")).rstrip("\r")
        if self.behaviour.code == "AR":
            return f"{ack}|{AR_TEXT}"
        if self.behaviour.code == "AE":
            return f"{ack}|Analysen finns inte\r{AE_ERR}"
        return ack

    def result(self, order: hl7.Message) -> str:
        """The ORU^R01: PID copied (or another patient's), placer number, OBR-16 and NTE echoed."""
        msh, obr = order.segment("MSH"), order.segment("OBR")
        pid = str(order.segment("PID"))
        if self.behaviour.patient:
            pid = pid.replace(str(order.segment("PID")(3)(1)(1)), self.behaviour.patient, 1)
        placer = str(order.segment("ORC")(2))
        segments = [
            f"MSH|^~\\&|LAB|KLINKEM|{msh(3)}|{msh(4)}|20261202120000||ORU^R01^ORU_R01|RES{msh(10)}|P|2.5.1",
            pid,
            f"ORC|RE|{placer}|F1",
            "|".join(["OBR", "1", placer, "F1", str(obr(4))] + [""] * 11 + [str(obr(16))]),
            "OBX|1|NM|NPU02319^B-Hb^NPU||134|g/L|117-153||||F",
            *[str(s) for s in order if str(s(0)) == "NTE"],
        ]
        return "\r".join(segments)

    async def handle(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while not writer.is_closing():
                order = await reader.readmessage()
                self.received.append(str(order))
                writer.writemessage(hl7.parse(self.ack(order)))
                await writer.drain()
                if self.behaviour.code == "AA" and self.behaviour.answer:
                    await self._send_result(order)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _send_result(self, order: hl7.Message) -> None:
        host, port = mllp.parse_uri(self.results)
        b = self.behaviour
        reader, writer = await hl7.mllp.open_hl7_connection(
            host, port, encoding=b.write_as, encoding_errors=b.write_errors
        )
        writer.writeblock(self.result(order).encode(b.write_as, b.write_errors))
        await writer.drain()
        await reader.readblock()  # the rehearsal's ACK
        writer.close()


def lab_plan(make_plan: Callable[..., Path], lab: Lab, message: str = "ORM^O01", within: float = 5) -> Path:
    lab.results = f"mllp://127.0.0.1:{free_port()}"

    def edit(data: dict[str, Any]) -> None:
        env = data["environment"]
        env["lab_mllp"], env["adapters"] = lab.uri, {"lab": "standards"}
        env["lab"] = {"results_mllp": lab.results, "message": message}
        env["timeouts"] = {"connect": 2, "read": 3, "device": 2}
        data["coexistence"]["lab"] = {"result_delay_s": 0, "result_within_s": within}

    return make_plan(edit)


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    with Lab(getattr(request, "param", Behaviour())) as running:
        yield running


def exchange(make_plan: Callable[..., Path], lab: Lab, **kw: Any) -> tuple[Plan, Exchange]:
    """The exchange from the site whose user's name has å/ä/ö (it travels in ORC-12 and OBR-16)."""
    plan = load_plan(lab_plan(make_plan, lab, **kw)).plan
    link = plan.environment.adapter("lab")(plan)
    assert isinstance(link, StandardsLab) and isinstance(link, LabLink)
    try:
        return plan, link.exchange(ordering_site(plan))
    finally:
        link.close()


def ordering_site(plan: Plan) -> Site:
    return next(s for s in plan.sites if s.users and not s.users[0].name.isascii())


@pytest.mark.parametrize("message", ["ORM^O01", "OML^O21"])
def test_an_order_acknowledged_aa_comes_back_byte_for_byte(make_plan, lab: Lab, message: str) -> None:
    plan, made = exchange(make_plan, lab, message=message)
    assert made.error is None and made.refused is None, made.evidence()
    assert made.code == "AA" and made.refers_to == made.control_id
    assert made.echo == [], made.echo
    (order,) = lab.received
    assert mllp.field(mllp.parse(order), "MSH", 9) == MESSAGES[message]
    user = ordering_site(plan).users[0]
    assert f"|{user.hsa_id}^{user.name}" in order and COMMENT in order  # as sent, read as UTF-8
    assert not COMMENT.isascii() and not user.name.isascii()
    identity = routines.patient_for(plan, ordering_site(plan))
    assert identity.personnummer.replace("-", "") in made.result


@pytest.mark.parametrize(
    ("lab", "said"),
    [
        (Behaviour(code="AR"), f"answered AR (application reject), not AA, to message '{{c}}': "
                               f"MSA-3 '{AR_TEXT}'"),
        (Behaviour(code="AE"), "answered AE (application error), not AA, to message '{c}': "
                               "MSA-3 'Analysen finns inte'"),
    ],
    indirect=["lab"],
)  # fmt: skip
def test_ar_and_ae_fail_quoting_the_peer(make_plan, lab: Lab, said: str) -> None:
    _, made = exchange(make_plan, lab)
    assert made.refused is not None and "\n" not in made.refused
    assert made.refused.startswith(f"labbsystemet ({lab.uri}) {said.format(c=made.control_id)}")
    if lab.behaviour.code == "AE":
        assert "NPU02319 ej i katalogen" in made.refused
    assert made.echo is None  # refused: no result is waited for


@pytest.mark.parametrize(
    ("lab", "mangled"),
    [
        (Behaviour(read_as="latin-1"), "Ã¶"),  # a server not told the encoding: UTF-8 read as latin-1
        (Behaviour(read_as="ascii", read_errors="replace", write_as="ascii", write_errors="replace"), "?"),
    ],
    indirect=["lab"],
)
def test_a_peer_that_mangles_aao_is_caught_with_the_field_named(make_plan, lab: Lab, mangled: str) -> None:
    _, made = exchange(make_plan, lab)
    assert made.code == "AA" and made.refused is None  # the ACK alone says all is well
    assert made.echo, made.evidence()
    said = "\n".join(made.echo)
    assert "OBR-16 (beställare) kom inte fram ordagrant" in said
    assert "NTE-3 (kommentar) kom inte fram ordagrant" in said
    assert mangled in said and "«inte»" not in said  # the words are all there; the letters are not


@pytest.mark.parametrize("lab", [Behaviour(write_as="latin-1")], indirect=True)
def test_a_result_reencoded_as_latin1_is_named_by_its_fields(make_plan, lab: Lab) -> None:
    _, made = exchange(make_plan, lab)
    (problem,) = made.echo or [""]
    assert "är inte UTF-8 i OBR-16, NTE-3" in problem, problem


@pytest.mark.parametrize("lab", [Behaviour(patient=OTHER_PATIENT)], indirect=True)
def test_a_result_on_another_patient_fails(make_plan, lab: Lab) -> None:
    _, made = exchange(make_plan, lab)
    assert made.echo and any("PID-3" in p and OTHER_PATIENT in p and "fel patient" in p for p in made.echo)


@pytest.mark.parametrize("lab", [Behaviour(answer=False)], indirect=True)
def test_a_lab_that_never_answers_fails_in_bounded_time(make_plan, lab: Lab) -> None:
    _, made = exchange(make_plan, lab, within=0.5)
    assert made.echo == [
        f"inget ORU^R01 för beställning {made.control_id.split('-')[0]} till {lab.results} inom 0.5 s"
    ]
    assert made.seconds["svar"] < 3


def test_the_listener_acknowledges_what_it_cannot_read_with_ar() -> None:
    uri = f"mllp://127.0.0.1:{free_port()}"
    with mllp.MllpListener(uri, 2) as inbox:
        broken = b"MSH|^~\\&|LAB|KLINKEM|X|Y|20261202||ORU^R01|C1|P|2.5.1\rPID|1||1^^^X||Bj\xf6rk^Bj\xf6rn"
        with mllp.MllpClient(uri, 2) as client:
            ack = mllp.read_ack(client.send_raw(mllp.START_BLOCK + broken + mllp.END_BLOCK), uri, "C1")
        got = inbox.wait_for(lambda r: True, 1)
    assert mllp.ack_code(ack) == "AR" and "not UTF-8 in PID-5" in mllp.ack_text(ack)
    assert got is not None and got.problem == "not UTF-8 in PID-5" and got.text is None


def test_plans_pick_the_lab_adapter(make_plan) -> None:
    plan = load_plan(make_plan()).plan
    assert plan.environment.adapter("lab") is ReferenceLab
    assert "bryggan" in str(routines.not_applicable(plan, None, {"needs": ["lab"]}))
    with pytest.raises(PlanError, match=r"standards needs environment\.lab_mllp and environment\.lab"):
        load_plan(make_plan(lambda d: d["environment"].update(adapters={"lab": "standards"})))


@pytest.mark.parametrize("lab", [Behaviour(read_as="latin-1")], indirect=True)
def test_the_integrations_criterion_fails_naming_the_field(make_plan, lab: Lab, tmp_path: Path) -> None:
    from rehearsal.report import build_evidence
    from rehearsal.runner import execute

    loaded = load_plan(lab_plan(make_plan, lab))
    env = {
        u.password_env: "x" for s in loaded.plan.sites for u in s.users if not os.environ.get(u.password_env)
    }
    outcome = execute(tmp_path / "reports", loaded, selection=SELECTION, env=env, paths=["scenarios"])
    log = (outcome.run.dir / "pytest.log").read_text(encoding="utf-8")
    assert len(lab.received) == 1, log  # one order for both scenarios
    results = [
        json.loads(p.read_text(encoding="utf-8")) for p in outcome.run.results_dir.glob("*-result.json")
    ]
    by_status = sorted((r["status"], r["name"]) for r in results)
    assert [s for s, _ in by_status] == ["failed", "passed"], by_status
    (failed,) = [r for r in results if r["status"] == "failed"]
    assert "NTE-3 (kommentar) kom inte fram ordagrant" in failed["statusDetails"]["message"]
    decision = build_evidence(outcome.run, loaded.plan).decision.to_json()
    (line,) = [c for c in decision["criteria"] if c["id"] == "tech-integrations"]
    assert line["status"] == "fail", json.dumps(line, ensure_ascii=False)


def test_a_results_port_in_use_is_one_line_naming_it() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        uri = f"mllp://127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(mllp.MllpError) as failed:
            mllp.MllpListener(uri).start()
    assert str(failed.value).startswith(f"{uri}: cannot listen: ") and "\n" not in str(failed.value)


def test_no_order_goes_to_a_production_lab(make_plan, lab: Lab, tmp_path: Path) -> None:
    """The standards adapter places a real order: against production both lab scenarios are skipped
    with the reason and the lab receives nothing."""
    import yaml

    from rehearsal.runner import execute

    path = lab_plan(make_plan, lab)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["environment"]["kind"] = "production"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    loaded = load_plan(path)
    assert loaded.plan.environment.kind == "production" and loaded.plan.environment.lab is not None
    env = {u.password_env: "x" for s in loaded.plan.sites for u in s.users}
    outcome = execute(tmp_path / "reports", loaded, selection=SELECTION, env=env, paths=["scenarios"])
    results = [
        json.loads(p.read_text(encoding="utf-8")) for p in outcome.run.results_dir.glob("*-result.json")
    ]
    assert lab.received == []
    assert [r["status"] for r in results] == ["skipped", "skipped"], [r["statusDetails"] for r in results]
    assert all("produktion" in r["statusDetails"]["message"] for r in results)
