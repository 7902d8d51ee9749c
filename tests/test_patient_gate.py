"""The patient gate: the run touches only its own patients, and says so in one masked line.

The clients are pointed at a real loopback listener that counts connections: a refused
patient must cost zero of them (nothing about that patient ever leaves the harness).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rehearsal import guard, patient_gate
from rehearsal.clients.coexistence import BridgeClient, LegacyClient
from rehearsal.clients.fhir import FhirClient
from rehearsal.clients.hl7 import LabOrder, build_order
from rehearsal.plan import Environment, Timeouts

OWN, OTHER = "19121212-1212", "19800101-0019"


@pytest.fixture(autouse=True)
def gate() -> Iterator[None]:
    patient_gate.only([OWN])
    yield
    patient_gate.reopen()


class CountingListener:
    """Accepts and counts connections; answers nothing (nothing should ever arrive)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    srv = CountingListener()
    yield srv
    srv.sock.close()


def test_identities_in_text_are_found_by_their_rules() -> None:
    text = "Tolvan 19121212-1212, 121212-1212, 199001011234 (fel kontrollsiffra), tel 08-123 456 78"
    found = patient_gate.identities_in(text)
    assert found[:2] == ["19121212-1212", "121212-1212"]
    assert "199001011234" not in "".join(found)
    assert patient_gate.identities_in("19900161-1236 samordningsnummer") == ["19900161-1236"]


def test_foreign_in_masks_others_and_knows_the_own_without_century() -> None:
    assert patient_gate.foreign_in(f"{OWN} och 121212-1212") == []
    assert patient_gate.foreign_in(f"{OWN} och {OTHER}") == ["19800101-****"]
    patient_gate.reopen()
    assert patient_gate.foreign_in(OTHER) == []  # no run, no gate


def test_check_refuses_in_one_masked_line_and_lets_non_identities_pass() -> None:
    assert patient_gate.check(OWN, "söka efter") == OWN
    assert patient_gate.check("Tolvan Tolvansson", "öppna remiss för") == "Tolvan Tolvansson"
    assert patient_gate.check("19800101-0028", "registrera") == "19800101-0028"  # fails its check digit
    with pytest.raises(patient_gate.NotATestIdentity) as refused:
        patient_gate.check(OTHER, "söka efter")
    message = str(refused.value)
    assert message.startswith("vägrar söka efter patient 19800101-****: inte en av planens testidentiteter")
    assert "\n" not in message and OTHER.replace("-", "") not in message.replace("-", "")


def test_a_reservnummer_the_run_made_is_its_own(tmp_path: Path) -> None:
    number = "20000101M078"
    assert patient_gate.foreign_in(number) == ["20000101-****"]
    guard.record(tmp_path, number, "okänd patient registrerad")
    assert patient_gate.foreign_in(number) == []
    assert patient_gate.check(number, "söka efter") == number


def test_clients_refuse_before_connecting(listener: CountingListener) -> None:
    base = f"http://127.0.0.1:{listener.port}"
    env = Environment(
        name="t", kind="test", fhir_base=f"{base}/fhir", web_base=base, allowed_hosts=["127.0.0.1"]
    )
    timeouts = Timeouts(connect=1, read=1)
    calls = [
        lambda: FhirClient(env).patients_by_personnummer(OTHER),
        lambda: FhirClient(env).patient_by_identifier(f"urn:oid:1.2.752.129.2.1.3.1|{OTHER}"),
        lambda: LegacyClient(base, timeouts).send_referral(OTHER, "a", "b", "text"),
        lambda: LegacyClient(base, timeouts).publish(OTHER, "a", "t", "text"),
        lambda: LegacyClient(base, timeouts).referrals(personnummer=OTHER),
        lambda: BridgeClient(base, timeouts).npo(OTHER),
        lambda: build_order(LabOrder("1", OTHER, "Testa Testsson", "NPU1", "Hb", "NY", "SAS")),
    ]
    for call in calls:
        with pytest.raises(patient_gate.NotATestIdentity):
            call()
    assert listener.count == 0


def test_the_own_patient_without_century_is_still_the_own() -> None:
    assert patient_gate.check("1212121212", "söka efter") == "1212121212"
    with pytest.raises(patient_gate.NotATestIdentity):
        patient_gate.check("8001010019", "söka efter")
