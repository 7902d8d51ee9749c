"""The standards print witness against real printer peers: the ZPL simulator (``~HS``), snmpsim
(``prtMarkerLifeCount``) and ippeveprinter (Get-Jobs); each passes when the printer shows the
job and fails, naming the printer, when it does not."""

from __future__ import annotations

import asyncio
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port
from reference_hospital.printers import PrinterFleet
from reference_hospital.snmp_agents import SnmpAgents
from reference_hospital.zpl_printer import ZplSimulator
from rehearsal import adapters
from rehearsal.adapters.print_witness import MARKER_LIFE_COUNT, Mark, PrintWitness, StandardsPrintWitness
from rehearsal.pdf import simple_pdf
from rehearsal.plan import Plan, Printer, SnmpAccess, load_plan
from rehearsal.probes import zpl
from rehearsal.probes.ipp_client import IppSession

pytestmark = pytest.mark.slow  # starts snmpsim and ippeveprinter

COUNTER = f"{MARKER_LIFE_COUNT}.1.1"
LABEL = "^XA^FO20,20^FDTolvan Tolvansson^FS^XZ"


@pytest.fixture
def plan(make_plan) -> Plan:
    return load_plan(
        make_plan(lambda d: d["environment"].update(adapters={"print_witness": "standards"}))
    ).plan


@pytest.fixture
def witness(plan: Plan) -> Iterator[PrintWitness]:
    made = plan.environment.adapter("print_witness")(plan)
    assert isinstance(made, StandardsPrintWitness) and isinstance(made, PrintWitness)
    yield made
    made.close()


def test_the_plan_picks_the_standards_witness_and_reference_stays_the_default(make_plan) -> None:
    assert "standards" in adapters.available("print_witness")
    default = load_plan(make_plan()).plan
    assert default.environment.adapter("print_witness").__name__ == "ReferencePrintWitness"


# -- ZPL: ~HS says ready with nothing held ----------------------------------------------------------


@pytest.fixture
def zebra() -> Iterator[tuple[ZplSimulator, Printer]]:
    with ZplSimulator() as sim:
        sim.add("armband", 0)
        yield sim, Printer(id="armband", kind="wristband", uri=f"tcp://127.0.0.1:{sim.port('armband')}")


def test_zpl_printer_that_took_the_label_and_holds_nothing_confirms(witness, zebra) -> None:
    sim, printer = zebra
    mark = witness.mark(printer)
    asyncio.run(zpl.print_label(printer.uri, LABEL, 2.0))
    said = witness.confirm(printer, mark, "Tolvan Tolvansson")
    assert said == "armband svarar ~HS: redo, inget kvar i skrivaren (0 format i bufferten, 0 etiketter kvar)"
    assert sim.printed("armband")[-1] == LABEL


def test_zpl_printer_holding_the_label_in_error_fails_naming_what_it_holds(witness, zebra) -> None:
    sim, printer = zebra
    mark = witness.mark(printer)
    sim.set_state("armband", paused=True)
    asyncio.run(zpl.print_label(printer.uri, LABEL, 2.0))
    with pytest.raises(AssertionError) as err:
        witness.confirm(printer, mark, "Tolvan Tolvansson")
    assert str(err.value) == (
        f"skrivaren armband ({printer.uri}) är inte redo efter jobbet: paused, 1 format i bufferten, "
        "1 etiketter kvar"
    )


def test_zpl_printer_gone_after_the_job_fails_in_one_line(witness, zebra) -> None:
    sim, printer = zebra
    mark = witness.mark(printer)
    sim.set_state("armband", offline=True)
    with pytest.raises(
        AssertionError, match=r"^skrivaren armband \(tcp://127\.0\.0\.1:\d+\) svarar inte på ~HS"
    ):
        witness.confirm(printer, mark, "Tolvan Tolvansson")


# -- SNMP: the page counter moved --------------------------------------------------------------------


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpAgents]:
    running = SnmpAgents(tmp_path_factory.mktemp("snmp-witness"))
    running.add("dok1", extra={COUNTER: "65|4711"})
    running.add("nocounter")
    with running:
        yield running


def snmp_printer(agents: SnmpAgents, community: str) -> Printer:
    return Printer(
        id=community, kind="document", uri=f"ipp://127.0.0.1:{free_port()}/ipp/print",
        snmp=SnmpAccess(community=community, port=agents.port),
    )  # fmt: skip


def test_snmp_counter_that_grew_confirms_and_one_that_did_not_fails(witness, agents: SnmpAgents) -> None:
    printer = snmp_printer(agents, "dok1")
    mark = witness.mark(printer)
    assert mark == Mark("snmp", 4711)
    with pytest.raises(AssertionError) as err:
        witness.confirm(printer, mark, "x", within_s=0.5)
    assert str(err.value).startswith(f"skrivaren dok1 ({printer.uri}) har inte skrivit ut något: ")
    assert "prtMarkerLifeCount 4711 → 4711" in str(err.value)
    agents.set_state("dok1", extra={COUNTER: "65|4713"})  # the printer printed two pages
    said = witness.confirm(printer, mark, "x", within_s=5.0)
    assert said == "dok1 räknade 2 ny(a) utskrift(er) (prtMarkerLifeCount 4711 → 4713)"


def test_snmp_printer_without_a_page_counter_fails_instead_of_passing(witness, agents: SnmpAgents) -> None:
    printer = snmp_printer(agents, "nocounter")
    mark = witness.mark(printer)
    assert mark.via == "snmp" and mark.value is None and "prtMarkerLifeCount" in mark.problem
    with pytest.raises(AssertionError, match=r"gick inte att fråga före jobbet \(snmp\).*prtMarkerLifeCount"):
        witness.confirm(printer, mark, "x")


# -- IPP: Get-Jobs shows a new job in hand -----------------------------------------------------------


@pytest.fixture(scope="module")
def ipp_printer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Printer]:
    """ippeveprinter whose job command is ``true``: a job completes at once."""
    home = tmp_path_factory.mktemp("witness-ipp")
    ippeve = shutil.which("ippeveprinter", path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert ippeve, "ippeveprinter not found: install cups-ipp-utils"
    wrapper = home / "ippeveprinter-true"
    wrapper.write_text(f'#!/bin/sh\nexec {ippeve} -c {shutil.which("true")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    printer = Printer(id="witness-dok", kind="document", uri=f"ipp://127.0.0.1:{free_port()}/ipp/print")
    with PrinterFleet([printer], Path(home) / "fleet", ippeveprinter=str(wrapper)):
        yield printer


def test_ipp_printer_with_a_new_job_in_hand_confirms_and_without_one_fails(witness, ipp_printer) -> None:
    mark = witness.mark(ipp_printer)
    assert mark.via == "ipp" and isinstance(mark.value, int) and not mark.problem
    with pytest.raises(AssertionError) as err:
        witness.confirm(ipp_printer, mark, "x", within_s=0.3)
    assert str(err.value) == (
        f"skrivaren witness-dok ({ipp_printer.uri}) har inte tagit jobbet: "
        f"inget nytt jobb efter jobb {mark.value}"
    )

    async def print_one() -> int | None:
        async with IppSession(ipp_printer.uri, 5.0) as session:
            return (await session.print_job(simple_pdf("Armband", ["Tolvan"]), job_name="armband")).id

    job = asyncio.run(print_one())
    said = witness.confirm(ipp_printer, mark, "x", within_s=10.0)
    assert said.startswith(f"witness-dok har jobb {job} (") and said.endswith(") enligt IPP Get-Jobs")
