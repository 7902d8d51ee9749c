"""Hosts, origin, credentials and a total deadline for every HTTP call (issue #12, findings 2 and 7).

Against real hostile peers on loopback (tests/hostile_http.py): a FHIR server whose search
Bundle's ``next`` points at another loopback address, redirects to another origin, a base
outside ``allowed_hosts``, and a server that drips its answer one byte at a time. The
listener on the other address counts connections and keeps what arrives: 0 connections,
no Authorization header, and the one-line error names the refused link.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hostile_http import ELSEWHERE, Dripping, Listener, Scripted, fhir_json

from rehearsal import silence
from rehearsal.clients.coexistence import LegacyClient
from rehearsal.clients.fhir import FhirClient
from rehearsal.clients.http import GuardedClient, HostRefused, HttpError
from rehearsal.clients.jsonhttp import JsonClient
from rehearsal.errors import TargetError
from rehearsal.plan import Environment, Timeouts
from rehearsal.preflight import check_reachable
from rehearsal.workflows import gate

USER, PASSWORD = "SE2321000131-P000000000101", "hosts-secret-pw"
CONNECT, READ = 0.5, 1.0  # total deadline: 1.5 s
DEADLINE = CONNECT + READ


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    silence.reset()
    yield
    silence.reset()


@pytest.fixture
def listener() -> Iterator[Listener]:
    peer = Listener()
    yield peer
    peer.close()


def environment(base: str, allowed: list[str] | None = None, **more: Any) -> Environment:
    return Environment(
        name="värd",
        kind="test",
        fhir_base=f"{base}/fhir",
        web_base=base,
        allowed_hosts=allowed or ["127.0.0.1", "localhost"],
        timeouts=Timeouts(connect=CONNECT, read=READ, device=CONNECT),
        **more,
    )


def bundle(*patients: str, next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    entries = [{"resource": {"resourceType": "Patient", "id": p}} for p in patients]
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


@pytest.fixture
def paging_server(listener: Listener) -> Iterator[Scripted]:
    """Page 1 on 127.0.0.1; its ``next`` on the listener's address (another host)."""
    elsewhere = f"http://{listener.host_port}/fhir/Patient?page=2"
    server = Scripted(lambda path: fhir_json(bundle("p1", next_url=elsewhere)))
    yield server
    server.close()


# --- paging links --------------------------------------------------------------------------


def test_a_next_link_to_another_loopback_address_is_refused_and_nothing_reaches_it(
    paging_server: Scripted, listener: Listener
) -> None:
    with FhirClient(environment(paging_server.base), auth=(USER, PASSWORD)) as fhir:
        with pytest.raises(HostRefused) as refused:
            fhir.search("Patient", {"name": "x"})
    message = str(refused.value)
    assert "\n" not in message
    assert f"http://{listener.host_port}/fhir/Patient?page=2" in message  # the refused link, by name
    assert "next link" in message and "another origin than environment.fhir_base" in message
    time.sleep(0.2)
    assert listener.count == 0 and listener.authorizations() == []
    assert [a for _, _, a in paging_server.requests] != [None]  # the own server did get the credentials
    listener.assert_live()


def test_a_next_link_to_an_allowed_host_on_another_port_is_still_another_origin(
    paging_server: Scripted, listener: Listener
) -> None:
    """Both users' credentials must stay with the server they were configured for, even on an allowed host."""
    env = environment(paging_server.base, allowed=["127.0.0.1", ELSEWHERE])
    with FhirClient(env, auth=(USER, PASSWORD)) as fhir, pytest.raises(HostRefused, match="page=2"):
        fhir.search("Patient")
    time.sleep(0.2)
    assert listener.count == 0


def test_a_next_link_of_the_same_origin_is_followed_with_the_credentials() -> None:
    """Positive control: paging on the own server works and carries the user's Basic auth."""
    server = Scripted(lambda path: fhir_json(bundle("p2") if "page=2" in path else bundle("p1")))
    server.answer = lambda path: fhir_json(
        bundle("p2") if "page=2" in path else bundle("p1", next_url=f"{server.base}/fhir/Patient?page=2")
    )
    try:
        with FhirClient(environment(server.base), auth=(USER, PASSWORD)) as fhir:
            found = fhir.search("Patient")
    finally:
        server.close()
    assert [p["id"] for p in found] == ["p1", "p2"]
    assert len(server.requests) == 2 and all(a and a.startswith("Basic ") for _, _, a in server.requests)


# --- redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_origin_is_refused_without_credentials(listener: Listener, status: int) -> None:
    target = f"http://{listener.host_port}/steal?x=1"
    server = Scripted(lambda path: (status, {"Location": target}, b""))
    try:
        with FhirClient(environment(server.base), auth=(USER, PASSWORD)) as fhir:
            with pytest.raises(HostRefused) as refused:
                fhir.read("Patient", "p1")
    finally:
        server.close()
    message = str(refused.value)
    assert "\n" not in message
    assert f"redirect (HTTP {status}) to {target} refused" in message
    assert "environment.fhir_base" in message and f"GET {server.base}/fhir/Patient/p1" in message
    time.sleep(0.2)
    assert listener.count == 0 and listener.authorizations() == []
    listener.assert_live()


def test_a_relative_redirect_within_the_origin_is_followed() -> None:
    server = Scripted(lambda path: (302, {"Location": "/fhir/Patient/p2"}, b""))
    server.answer = lambda path: (
        fhir_json({"resourceType": "Patient", "id": "p2"})
        if path.endswith("/p2")
        else (302, {"Location": "/fhir/Patient/p2"}, b"")
    )
    try:
        with FhirClient(environment(server.base), auth=(USER, PASSWORD)) as fhir:
            assert fhir.read("Patient", "p1")["id"] == "p2"
    finally:
        server.close()
    assert [p for _, p, _ in server.requests] == ["/fhir/Patient/p1", "/fhir/Patient/p2"]
    assert all(a and a.startswith("Basic ") for _, _, a in server.requests)


def test_the_legacy_json_client_refuses_a_redirect_elsewhere(listener: Listener) -> None:
    server = Scripted(lambda path: (307, {"Location": f"http://{listener.host_port}/api/referrals"}, b""))
    try:
        env = environment(server.base, legacy_base=server.base)
        with LegacyClient.for_plan(_plan_with(env)) as legacy, pytest.raises(HostRefused) as refused:
            legacy.referrals()
    finally:
        server.close()
    assert "environment.legacy_base" in str(refused.value) and listener.host_port in str(refused.value)
    time.sleep(0.2)
    assert listener.count == 0


def test_the_gate_does_not_follow_a_redirect_but_counts_it_as_an_answer(listener: Listener) -> None:
    """An SSO login page elsewhere is an answer: the central system is up; nothing goes there."""
    server = Scripted(lambda path: (302, {"Location": f"http://{listener.host_port}/sso"}, b""))
    try:
        plan = _plan_with(environment(server.base))
        assert gate.blocked(plan, ["web_base"]) is None
    finally:
        server.close()
    assert listener.count == 0


# --- hosts outside allowed_hosts -----------------------------------------------------------


def test_a_base_outside_allowed_hosts_sends_nothing_from_any_client(listener: Listener) -> None:
    base = f"http://{listener.host_port}"
    env = environment(base, allowed=["127.0.0.1"], legacy_base=base, bridge_base=base)
    plan = _plan_with(env)
    calls: list[Callable[[], object]] = [
        lambda: FhirClient(env, auth=(USER, PASSWORD)).capabilities(),
        lambda: LegacyClient.for_plan(plan).referrals(),
        lambda: JsonClient(base, env.timeouts, env.allowed_hosts).call("GET", "/api/records"),
        lambda: GuardedClient(base, env.timeouts, ["127.0.0.1"], bearer="tok").request("GET", "/"),
    ]
    for call in calls:
        with pytest.raises(HostRefused) as refused:
            call()
        message = str(refused.value)
        assert "\n" not in message and f"host '{ELSEWHERE}' is not in environment.allowed_hosts" in message
        assert message.startswith(f"GET {base}/")
    blocked = gate.blocked(plan, ["fhir_base", "legacy_base"])
    assert blocked and "allowed_hosts" in blocked
    with pytest.raises(TargetError, match=r"^environment\.fhir_base .*not in environment\.allowed_hosts"):
        check_reachable(plan)
    time.sleep(0.2)
    assert listener.count == 0
    listener.assert_live()


def test_a_json_client_without_a_list_talks_to_its_own_host_only(listener: Listener) -> None:
    server = Scripted(lambda path: (200, {"Content-Type": "application/json"}, b"[]"))
    try:
        with JsonClient(server.base, Timeouts(connect=CONNECT, read=READ)) as client:
            assert client.call("GET", "/x") == []
            with pytest.raises(HostRefused):
                client.call("GET", f"http://{listener.host_port}/x")
    finally:
        server.close()
    assert listener.count == 0


# --- the total deadline --------------------------------------------------------------------


def bounded(call: Callable[[], object], limit: float) -> tuple[float, BaseException | None]:
    """Run ``call`` in a thread; a call still running after ``limit`` fails the test instead of hanging it."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    took = time.monotonic() - started
    assert not thread.is_alive(), f"still waiting after {took:.1f} s: no total deadline"
    return took, outcome[0]


@pytest.mark.parametrize("head_at_once", [False, True], ids=["head-drips", "body-drips"])
def test_a_dripping_server_is_cut_off_at_the_total_deadline(head_at_once: bool) -> None:
    """One byte every 0.3 s never lets the 1 s read timeout fire; the 1.5 s deadline does."""
    with Dripping([0], interval=0.3, head_at_once=head_at_once) as drip:
        env = environment(f"http://127.0.0.1:{drip.ports[0]}")
        silence.enable(env)
        with FhirClient(env) as fhir:
            took, error = bounded(fhir.capabilities, DEADLINE + 10)
            again, error_again = bounded(fhir.capabilities, 1)
    assert isinstance(error, HttpError), error
    assert 0 < took < DEADLINE + 0.75, took  # a bound, not a benchmark
    assert drip.sent >= 2  # it was dripping, not silent, when it was cut off
    message = str(error)
    assert "\n" not in message
    assert message.startswith(
        f"environment.fhir_base, environment.web_base (127.0.0.1:{drip.ports[0]}): GET "
    )
    assert f"no complete answer within {DEADLINE:g} s (environment.timeouts: connect + read)" in message
    assert isinstance(error_again, silence.Silent) and again < 0.5  # not waited for twice


def test_a_dripping_json_system_is_cut_off_too() -> None:
    with Dripping([0], interval=0.3) as drip:
        base = f"http://127.0.0.1:{drip.ports[0]}"
        with JsonClient(
            base, Timeouts(connect=CONNECT, read=READ), field="environment.bridge_base"
        ) as client:
            took, error = bounded(lambda: client.call("GET", "/bridge/queues"), DEADLINE + 10)
    assert isinstance(error, HttpError) and 0 < took < DEADLINE + 0.75, (took, error)
    assert f"no complete answer within {DEADLINE:g} s" in str(error)


def test_a_flood_is_cut_off_at_the_reply_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from rehearsal.clients import http

    monkeypatch.setattr(http, "MAX_REPLY_BYTES", 64 * 1024)
    server = Scripted(lambda path: (200, {"Content-Type": "application/json"}, b" " * 1_000_000))
    try:
        with JsonClient(server.base, Timeouts(connect=CONNECT, read=READ)) as client:
            with pytest.raises(HttpError, match=r"reply cut off at 65536 bytes"):
                client.call("GET", "/big")
    finally:
        server.close()


def _plan_with(env: Environment) -> Any:
    """The smallest stand-in for a Plan the gate and for_plan need: its environment."""

    class PlanLike:
        environment = env

    return PlanLike()
