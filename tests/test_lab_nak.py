"""A lab that refuses every message is not alive (#12, finding 6): only MSA-1 ``AA`` (or ``CA``)
counts; ``AE``/``AR``/``CE``/``CR`` fail, quoting MSA-3 and the ERR segment, in one line.

The peer is python-hl7's own asyncio MLLP server (``hl7.mllp.start_hl7_server``, a third-party
implementation of the protocol), on loopback, answering each message with python-hl7's
``create_ack(code)``; for AE it adds MSA-3 and an ERR segment as a lab would. The criterion
test runs the integrations scenario of ``tech-integrations`` (features/teknisk/integrationer.feature)
as a rehearsal run against that peer and reads the decision.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hl7
import hl7.mllp
import pytest
from hl7_peer import Hl7Server

from rehearsal.clients import hl7 as mllp
from rehearsal.plan import load_plan

MLLP_SCENARIO = "scenarios/test_teknisk.py::test_labbsystemet_kvitterar_meddelanden_på_sitt_mllpgränssnitt"
PING = "MSH|^~\\&|REHEARSAL|SE2321000131-E000000000001|LAB|KLINKEM|20260301120000||NMD^N02|PING{n}|P|2.5.1"
LAB_TEXT = "unknown message type NMD\x1b[2J"
LAB_ERR = "ERR|||200^Unsupported message type^HL70357|E||||NMD^N02 is not taken here"


def answer(code: str, message: hl7.Message) -> hl7.Message:
    """What the peer sends back: python-hl7's ACK with ``code``; for AE also MSA-3 and ERR."""
    ack = str(message.create_ack(code, application="LAB", facility="KLINKEM"))
    if code == "AE":
        ack = ack.rstrip("\r") + f"|{LAB_TEXT}\r{LAB_ERR}"
    return hl7.parse(ack)


class Hl7Peer(Hl7Server):
    """python-hl7's MLLP server on 127.0.0.1 in a thread of its own; ``code`` is what it answers."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code
        self.received: list[str] = []

    async def handle(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                self.received.append(str(message))
                writer.writemessage(answer(self.code, message))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def peer(request: pytest.FixtureRequest) -> Iterator[Hl7Peer]:
    with Hl7Peer(request.param) as running:
        yield running


@pytest.mark.parametrize("peer", ["AA", "CA"], indirect=True)
def test_aa_and_ca_are_acceptance(peer: Hl7Peer) -> None:
    ack = mllp.send_message(peer.uri, PING.format(n=1), 3.0)
    assert mllp.refusal(ack, peer.uri) is None
    assert mllp.require_accepted(ack, peer.uri) is ack


@pytest.mark.parametrize("peer", ["AR", "CR", "CE"], indirect=True)
def test_a_refusal_fails_naming_the_code_in_one_line(peer: Hl7Peer) -> None:
    ack = mllp.send_message(peer.uri, PING.format(n=2), 3.0)
    with pytest.raises(mllp.Refused) as refused:
        mllp.require_accepted(ack, peer.uri)
    said = str(refused.value)
    meaning = {"AR": "application reject", "CR": "commit reject", "CE": "commit error"}[peer.code]
    assert said == (
        f"{peer.uri} answered {peer.code} ({meaning}), not AA, to message 'PING2': "
        "no MSA-3 text; no ERR segment"
    )


@pytest.mark.parametrize("peer", ["AE"], indirect=True)
def test_an_error_quotes_msa3_and_err_cleaned(peer: Hl7Peer) -> None:
    ack = mllp.send_message(peer.uri, PING.format(n=3), 3.0)
    said = mllp.refusal(ack, peer.uri)
    assert said is not None and "\n" not in said and "\x1b" not in said
    assert said.startswith(f"{peer.uri} answered AE (application error), not AA, to message 'PING3': ")
    assert "MSA-3 'unknown message type NMD'" in said
    assert "ERR 'ERR|||200^Unsupported message type^HL70357|E||||NMD^N02 is not taken here'" in said


def lab_plan(make_plan: Callable[..., Path], uri: str) -> Path:
    def edit(data: dict[str, Any]) -> None:
        data["environment"]["lab_mllp"] = uri
        data["environment"]["timeouts"] = {"connect": 2, "read": 3, "device": 2}

    return make_plan(edit)


@pytest.mark.parametrize("peer", ["AR"], indirect=True)
def test_the_integrations_criterion_fails_quoting_a_lab_that_refuses(
    peer: Hl7Peer, make_plan: Callable[..., Path], tmp_path: Path
) -> None:
    from rehearsal.report import build_evidence
    from rehearsal.runner import execute

    loaded = load_plan(lab_plan(make_plan, peer.uri))
    env = {
        u.password_env: "x" for s in loaded.plan.sites for u in s.users if not os.environ.get(u.password_env)
    }
    outcome = execute(tmp_path / "reports", loaded, selection=[MLLP_SCENARIO], env=env, paths=["scenarios"])
    assert peer.received, (outcome.run.dir / "pytest.log").read_text(encoding="utf-8")
    decision = build_evidence(outcome.run, loaded.plan).decision.to_json()  # gonogo.*, no Allure
    (line,) = [c for c in decision["criteria"] if c["id"] == "tech-integrations"]
    assert line["status"] == "fail", json.dumps(line, ensure_ascii=False)
    results = [
        json.loads(p.read_text(encoding="utf-8")) for p in outcome.run.results_dir.glob("*-result.json")
    ]
    (result,) = [r for r in results if "MLLP" in r["name"] or "kvitterar" in r["name"]]
    message = result["statusDetails"]["message"]
    assert message.count("\n") <= 1, message  # the reason itself is one line (pytest adds its class)
    assert f"labbsystemet ({peer.uri}) answered {peer.code} (" in message
    assert "no MSA-3 text; no ERR segment" in message  # python-hl7's bare AR
    summary = (outcome.run.dir / "gonogo.md").read_text(encoding="utf-8")  # the decision quotes the lab
    assert f"labbsystemet ({peer.uri}) answered {peer.code} (application reject), not AA" in summary


@pytest.mark.slow  # starts the reference hospital (~3 s)
def test_the_reference_lab_takes_the_heartbeat(make_plan: Callable[..., Path], tmp_path: Path) -> None:
    """The scenario's NMD^N02 heartbeat is taken (AA) by the simulated lab: a clean hospital stays GO."""
    from reference_hospital.hospital import Hospital

    plan = load_plan(make_plan()).plan
    environ = {u.password_env: "x" for s in plan.sites for u in s.users}
    with Hospital(plan, [], tmp_path / "hospital", environ=environ) as hospital:
        assert hospital.plan.environment.lab_mllp
        ack = mllp.send_message(
            hospital.plan.environment.lab_mllp, PING.format(n=4) + "\rNCK|20260301120000", 5
        )
    assert mllp.refusal(ack, "the reference lab") is None, mllp.ack_text(ack)
