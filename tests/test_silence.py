"""The registry of components that did not answer (rehearsal.silence), against real silent sockets.

Each client waits its plan timeout once for a silent peer; the next call to the same
host:port fails at once, and both messages name the plan field, the address and the
seconds. Off (outside a rehearsal session) nothing is remembered, so a long-lived process
sees a component again once it answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from silent_peers import SilentPeers

from conftest import free_port
from rehearsal import silence
from rehearsal.clients import hl7 as mllp
from rehearsal.clients.directory import DirectoryError, read_ldap
from rehearsal.clients.fhir import FhirClient
from rehearsal.clients.jsonhttp import JsonClient
from rehearsal.errors import TargetError
from rehearsal.plan import Environment, Timeouts, load_plan
from rehearsal.workflows import gate

CONNECT, READ = 0.3, 0.4


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    silence.reset()
    yield
    silence.reset()


@pytest.fixture
def peer() -> Iterator[int]:
    port = free_port()
    with SilentPeers([port]):
        yield port


def environment(port: int, **more: str) -> Environment:
    return Environment(
        name="tyst",
        kind="test",
        fhir_base=f"http://127.0.0.1:{port}/fhir",
        web_base=f"http://127.0.0.1:{port}",
        allowed_hosts=["127.0.0.1"],
        timeouts=Timeouts(connect=CONNECT, read=READ, device=CONNECT),
        **more,
    )


def timed(call, *args: object) -> tuple[float, str]:
    """Seconds the call took and the message of the TargetError it raised."""
    started = time.monotonic()
    with pytest.raises(TargetError) as raised:
        call(*args)
    return time.monotonic() - started, str(raised.value)


def test_address_of_plan_endpoints() -> None:
    assert silence.address_of("http://127.0.0.1:18080/fhir") == ("127.0.0.1", 18080)
    assert silence.address_of("https://ehr.example/fhir") == ("ehr.example", 443)
    assert silence.address_of("ldap://127.0.0.1") == ("127.0.0.1", 389)
    assert silence.address_of("mllp://127.0.0.1:2575") == ("127.0.0.1", 2575)
    assert silence.address_of("../hsa/export.ldif") is None


def test_a_timeout_names_every_field_at_the_address_and_is_remembered(peer: int) -> None:
    env = environment(peer)
    silence.enable(env)
    message = silence.timed_out(env.fhir_base, 2, "GET …/metadata")
    where = f"environment.fhir_base, environment.web_base (127.0.0.1:{peer})"
    assert message == f"{where}: GET …/metadata: no answer within 2 s"
    with pytest.raises(silence.Silent, match=r"not asked again: no answer within 2 s earlier in this run"):
        silence.check(env.web_base + "/patients")  # same host:port, the other field
    silence.check(f"http://127.0.0.1:{free_port()}")  # another component is asked as usual
    assert [t.fields for t in silence.silent()] == [("environment.fhir_base", "environment.web_base")]


def test_off_nothing_is_remembered(peer: int) -> None:
    message = silence.timed_out(f"http://127.0.0.1:{peer}", 1, "GET /")
    assert message == f"127.0.0.1:{peer}: GET /: no answer within 1 s"
    silence.check(f"http://127.0.0.1:{peer}")
    assert silence.silent() == []


def test_fhir_waits_once_then_fails_at_once(peer: int) -> None:
    env = environment(peer)
    silence.enable(env)
    with FhirClient(env) as fhir:
        first, said = timed(fhir.capabilities)
        again, said_again = timed(fhir.search, "Patient")
    assert READ * 0.9 <= first < READ + 1.0, first
    assert f"environment.fhir_base, environment.web_base (127.0.0.1:{peer})" in said
    assert f"no answer within {READ:g} s" in said
    assert again < READ / 2, again
    assert f"(127.0.0.1:{peer}): not asked again: no answer within {READ:g} s" in said_again


def test_json_client_shares_the_registry_by_address(peer: int) -> None:
    env = environment(peer, legacy_base=f"http://127.0.0.1:{peer}")
    silence.enable(env)
    with JsonClient(env.legacy_base or "", env.timeouts) as legacy:
        first, said = timed(legacy.call, "GET", "/api/referrals")
        again, said_again = timed(legacy.call, "GET", "/api/records")
    assert first >= READ * 0.9 and again < READ / 2
    assert "environment.legacy_base" in said and f"no answer within {READ:g} s" in said
    assert "not asked again" in said_again


def test_mllp_waits_once_for_an_acknowledgement(peer: int) -> None:
    uri = f"mllp://127.0.0.1:{peer}"
    silence.enable(environment(free_port(), lab_mllp=uri))
    first, said = timed(mllp.send_message, uri, "MSH|^~\\&|A|B|C|D|||NMD^N02|1|P|2.5.1", READ, CONNECT)
    again, said_again = timed(mllp.send_message, uri, "MSH|^~\\&|A|B|C|D|||NMD^N02|2|P|2.5.1", READ, CONNECT)
    assert READ * 0.9 <= first < READ + 1.0 and again < READ / 2
    assert said.startswith(f"environment.lab_mllp (127.0.0.1:{peer}): ")
    assert f"no acknowledgement within {READ:g} s" in said
    assert "not asked again" in said_again


def test_ldap_is_bounded_by_the_plan_not_by_ldap3_whole_seconds(peer: int) -> None:
    uri = f"ldap://127.0.0.1:{peer}"
    silence.enable(environment(free_port(), directory=uri))
    started = time.monotonic()
    with pytest.raises(DirectoryError) as raised:
        read_ldap(uri, "o=VGR,c=SE", READ, CONNECT)  # ldap3 alone would wait a whole second per request
    took = time.monotonic() - started
    assert took < CONNECT + READ + 0.3, took
    assert f"environment.directory (127.0.0.1:{peer})" in str(raised.value)
    assert f"no answer within {CONNECT + READ:g} s" in str(raised.value)
    again, said_again = timed(read_ldap, uri, "o=VGR,c=SE", READ, CONNECT)
    assert again < READ / 2 and "not asked again" in said_again


def test_the_gate_blocks_at_once_once_a_central_system_timed_out(peer: int, make_plan) -> None:
    def edit(data: dict) -> None:
        data["environment"].update(
            fhir_base=f"http://127.0.0.1:{peer}/fhir",
            web_base=f"http://127.0.0.1:{peer}",
            timeouts={"connect": CONNECT, "read": READ, "device": CONNECT},
        )

    plan = load_plan(make_plan(edit)).plan
    silence.enable(plan.environment)
    started = time.monotonic()
    first = gate.blocked(plan, ["fhir_base", "legacy_base"])
    took, started = time.monotonic() - started, time.monotonic()
    again = gate.blocked(plan, ["web_base"])
    assert READ * 0.9 <= took < READ + 1.0 and time.monotonic() - started < READ / 2
    assert first and f"GET http://127.0.0.1:{peer}/fhir/metadata: no answer within {READ:g} s" in first
    assert "environment.fhir_base" in first
    assert again and "not asked again" in again and "environment.web_base" in again


def test_an_unknown_address_is_named_by_itself() -> None:
    silence.enable()
    assert silence.where("http://10.0.0.1:8080/x") == "10.0.0.1:8080"
    assert silence.where("relative/file.ldif") == "relative/file.ldif"
