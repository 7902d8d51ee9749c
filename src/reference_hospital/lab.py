"""The lab system: HL7 v2 lab orders in over MLLP, an ACK at once, ORU^R01 results after a delay.

Orders arrive as ORM^O01 or OML^O21 from either side of the coexistence boundary: the
legacy EHR sends its own, the bridge sends those of new-EHR sites whose plan route is
``bridge``. Each gets an ACK on the same connection: ``AA`` when the lab takes it, ``AE``
when a required part is missing or unknown (patient id, placer number, test, sending
facility) and ``AR`` for what is not an order at all (wrong message type, not HL7, not
UTF-8). After ``coexistence.lab.result_delay_s`` the result goes, as an ORU^R01
addressed back to the order's sender (MSH-5/6 = the order's MSH-3/4), to the
integration engine — the bridge's MLLP port (``environment.bridge_mllp``) — which files
it with the side that ordered.

Sites on the new EHR with ``lab_route: direct`` have no bridge in between: the lab reads
their lab orders straight from the new EHR (FHIR ServiceRequest) and files the results
there itself (DiagnosticReport + Observation).

What the lab received, acknowledged, resulted and delivered is kept and shown at
``/_reference/lab`` (the hospital's admin port). Fault: ``lab-results-lost@SITE`` — the
site's results are marked sent, and go nowhere.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

import hl7
import hl7.mllp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from reference_hospital.bridge import (
    Inbox,
    LabResult,
    LinkError,
    NewEhrLink,
    SiteMap,
    is_lab_order,
    pnr_digits,
    pnr_display,
    utcnow,
)
from reference_hospital.faults import LAB_RESULTS_LOST, FaultBoard
from reference_hospital.hospital import Component, Hospital, LoopThread, bind_socket, endpoint_address
from reference_hospital.mllp_peer import answer_each_block
from rehearsal.clients import hl7 as mllp
from rehearsal.errors import TargetError

log = logging.getLogger("reference_hospital.lab")

ORDER_TYPES = {("ORM", "O01"), ("OML", "O21")}
NETWORK_CHECK = ("NMD", "N02")  # application management data: what the heartbeat scenario sends
DELIVERY_ATTEMPTS = 20


@dataclass(frozen=True)
class Analysis:
    """What the lab can analyse, by NPU code, and the (always normal) value it reports."""

    npu: str
    code: str
    name: str
    value: str
    unit: str
    reference: str

    def result(self) -> mllp.LabValue:
        return mllp.LabValue(self.npu, f"{self.code} {self.name}", self.value, self.unit, self.reference)


CATALOGUE: dict[str, Analysis] = {
    a.npu: a
    for a in (
        Analysis("NPU02319", "B-Hb", "Hemoglobin", "134", "g/L", "117-153"),
        Analysis("NPU19748", "P-CRP", "C-reaktivt protein", "3", "mg/L", "<5"),
        Analysis("NPU03429", "P-Na", "Natrium", "140", "mmol/L", "137-145"),
        Analysis("NPU03230", "P-K", "Kalium", "4.1", "mmol/L", "3.5-4.4"),
        Analysis("NPU01370", "P-Glukos", "Glukos", "5.4", "mmol/L", "4.0-6.0"),
    )
}
_BY_SHORT = {a.code.lower(): a for a in CATALOGUE.values()}


def analysis(code: str) -> Analysis | None:
    """An analysis by NPU code (``NPU19748``) or short name (``P-CRP``)."""
    return CATALOGUE.get(code.strip().upper()) or _BY_SHORT.get(code.strip().lower())


@dataclass
class OrderRecord:
    """One order as the lab saw it, from receipt to delivery of its result."""

    filler: str
    placer: str
    route: str  # "mllp" (ORM/OML from an EHR or the bridge) or "fhir" (the direct route)
    application: str
    facility: str
    site: str | None
    personnummer: str
    test: str
    received: str
    ack: str
    resulted: str | None = None
    delivered: str | None = None
    delivery: str = "waiting"  # waiting → delivered | failed (| lost, only visible here)
    attempts: int = 0
    error: str = ""
    service_request: str | None = None


class LabSystem(Component):
    """The lab's MLLP listener, its result timers, and its direct FHIR route."""

    name = "lab"
    faults = (LAB_RESULTS_LOST,)

    def __init__(self, hospital: Hospital) -> None:
        plan = hospital.plan
        env = plan.environment
        assert env.lab_mllp is not None
        self.plan = plan
        self.board: FaultBoard = hospital.board
        self.settings = plan.coexistence.lab
        self.uri = env.lab_mllp
        self.host, self.port = endpoint_address("lab_mllp", env.lab_mllp, ("mllp",))
        self.results_to = env.bridge_mllp
        self.sites = SiteMap(plan)
        self.direct_sites = {s.id for s in plan.sites if s.system == "new" and s.lab_route == "direct"}
        self.loop = LoopThread("reference-lab")
        self.orders: dict[str, OrderRecord] = {}
        self.counts = {"received": 0, "AA": 0, "AE": 0, "AR": 0}
        self._lock = threading.Lock()
        self._fillers = itertools.count(1)
        self._sock: Any = None
        self._server: Any = None
        self._direct: asyncio.Task[None] | None = None
        self._link: NewEhrLink | None = None
        self._timers: set[asyncio.Task[None]] = set()

    # -- component -----------------------------------------------------------------------------

    def describe(self) -> str:
        return f"lab ({self.uri})"

    def ports(self) -> list[int]:
        return [self.port]

    def bind(self) -> None:
        self._sock = bind_socket(self.host, self.port, f"the lab system ({self.uri})")

    def start(self) -> None:
        self.loop.start()
        self.loop.call(self._start())

    async def _start(self) -> None:
        self._server = await hl7.mllp.start_hl7_server(self._client, sock=self._sock, limit=1 << 20)
        if self.direct_sites:
            self._link = NewEhrLink(
                self.plan.environment.fhir_base, self.plan.environment.timeouts, self.sites
            )
            self._direct = asyncio.get_running_loop().create_task(self._direct_route())

    def stop(self) -> None:
        if self.loop.running:
            try:
                self.loop.call(self._stop(), timeout=10)
            except TargetError:
                pass
        self.loop.stop()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _stop(self) -> None:
        for task in [self._direct, *self._timers]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._direct, *self._timers] if t), return_exceptions=True)
        if self._server is not None:
            self._server.close()
        if self._link is not None:
            await self._link.close()

    def health(self) -> dict[str, Any]:
        serving = self._server is not None and self._server.is_serving()
        return {"ok": serving, "url": self.uri, **self.summary()}

    def summary(self) -> dict[str, int]:
        with self._lock:
            records = list(self.orders.values())
        return {
            **self.counts,
            "orders": len(records),
            "resulted": sum(1 for r in records if r.resulted),
            "delivered": sum(1 for r in records if r.delivery == "delivered"),
        }

    def admin_routes(self) -> list[BaseRoute]:
        return [Route("/", self._state, methods=["GET"])]

    async def _state(self, request: Request) -> Response:
        """Everything the lab knows: counts, and every order with its result's fate (incl. ``lost``)."""
        with self._lock:
            orders = [asdict(r) for r in self.orders.values()]
        return JSONResponse({"url": self.uri, **self.summary(), "orders": orders})

    # -- MLLP ----------------------------------------------------------------------------------

    async def _client(self, reader: Any, writer: Any) -> None:
        await answer_each_block(reader, writer, self.receive, _bare_ack, "the lab could not take the order")

    def receive(self, block: bytes) -> str:
        """Take one message; the ACK to send back. Schedules the result of an accepted order."""
        with self._lock:
            self.counts["received"] += 1
        try:
            text = block.decode(mllp.ENCODING)
        except UnicodeDecodeError:
            return self._count(_bare_ack("AR", "", "the message is not UTF-8 (MSH-18 UNICODE UTF-8)"), "AR")
        try:
            message = mllp.parse(text)
            message.segment("MSH")
        except Exception:  # noqa: BLE001 - python-hl7 raises several kinds on garbage
            return self._count(_bare_ack("AR", "", "not an HL7 v2 message (no MSH segment)"), "AR")
        control_id = mllp.field(message, "MSH", 10)
        kind = (mllp.field(message, "MSH", 9, 1), mllp.field(message, "MSH", 9, 2))
        if kind == NETWORK_CHECK:  # the integrations heartbeat: taken (AA), as a live lab does
            return self._nak(message, "AA", "")
        if kind not in ORDER_TYPES:
            return self._nak(message, "AR", f"the lab takes ORM^O01 and OML^O21, not {'^'.join(kind)}")
        pnr = mllp.field(message, "PID", 3, 1)
        placer = mllp.field(message, "ORC", 2, 1) or mllp.field(message, "OBR", 2, 1)
        test = mllp.field(message, "OBR", 4, 1)
        missing = [
            n
            for n, v in (("PID-3 patient id", pnr), ("ORC-2 placer number", placer), ("OBR-4 test", test))
            if not v
        ]
        if missing:
            return self._nak(message, "AE", f"missing {', '.join(missing)}")
        found = analysis(test)
        if found is None:
            return self._nak(message, "AE", f"unknown test {test!r} (the lab does {', '.join(CATALOGUE)})")
        facility = mllp.field(message, "MSH", 4)
        site = self.sites.site_of(facility)
        if site is None:
            return self._nak(
                message, "AE", f"unknown sending facility {facility!r} (not an HSA-id of the plan)"
            )
        application = mllp.field(message, "MSH", 3)
        key = f"{application}/{placer}"
        with self._lock:
            duplicate = key in self.orders
            if not duplicate:
                self.orders[key] = OrderRecord(
                    filler=f"LAB{next(self._fillers):06d}",
                    placer=placer,
                    route="mllp",
                    application=application,
                    facility=facility,
                    site=site.id,
                    personnummer=pnr_display(pnr_digits(pnr)),
                    test=found.npu,
                    received=utcnow(),
                    ack="AA",
                )
        if not duplicate:  # a resent order is acknowledged again, but resulted once
            self._later(lambda: self._result_over_mllp(key, message, found))
        log.info("lab order %s from %s (%s): AA", placer, application, control_id)
        return self._nak(message, "AA", "")

    def _nak(self, message: hl7.Message, code: str, text: str) -> str:
        sender = (self.settings.application, self.settings.facility)
        return self._count(mllp.acknowledge(message, code, sender, text), code)

    def _count(self, ack: str, code: str) -> str:
        with self._lock:
            self.counts[code] += 1
        return ack

    def _later(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``make()`` after the plan's result delay (cancelled, never started, when the lab stops)."""

        async def wait_then() -> None:
            await asyncio.sleep(self.settings.result_delay_s)
            await make()

        task = asyncio.get_running_loop().create_task(wait_then())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    # -- results ---------------------------------------------------------------------------------

    def _lost(self, record: OrderRecord) -> bool:
        """``lab-results-lost``: the result is marked delivered, and goes nowhere."""
        if record.site is not None and self.board.active(LAB_RESULTS_LOST, record.site):
            record.delivery, record.delivered, record.error = "lost", utcnow(), ""
            return True
        return False

    async def _result_over_mllp(self, key: str, order: hl7.Message, found: Analysis) -> None:
        record = self.orders[key]
        record.resulted = utcnow()
        oru = mllp.build_result(
            order, record.filler, [found.result()], (self.settings.application, self.settings.facility)
        )
        if self._lost(record):
            return
        if self.results_to is None:
            record.delivery, record.error = (
                "failed",
                "no integration engine for results (environment.bridge_mllp)",
            )
            return
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            record.attempts = attempt
            try:
                ack = await mllp.send_message_async(self.results_to, oru, self.plan.environment.timeouts.read)
            except mllp.MllpError as exc:
                record.error = str(exc)
                await asyncio.sleep(min(5.0, 0.2 * attempt))
                continue
            code = mllp.ack_code(ack)
            if code in ("AA", "CA"):
                record.delivery, record.delivered, record.error = "delivered", utcnow(), ""
            else:
                record.delivery, record.error = "failed", f"the bridge answered {code}: {mllp.ack_text(ack)}"
            return
        record.delivery = "failed"

    # -- the direct route --------------------------------------------------------------------------

    async def _direct_route(self) -> None:
        """Read lab orders of direct-route sites from the new EHR; file their results there."""
        assert self._link is not None
        link = self._link
        inbox = Inbox("lab direct route")
        while True:
            try:
                fresh = await link.changed("ServiceRequest", self.plan.coexistence.bridge.batch)
                inbox.add(r for r in fresh if is_lab_order(r) and r.get("status") == "active")
                await inbox.work(lambda request: self._direct_order(link, request))
            except LinkError as exc:
                log.debug("lab direct route: %s", exc)
            except Exception:  # keep reading; the admin state shows what did not arrive
                log.exception("lab direct route failed")
            await asyncio.sleep(self.plan.coexistence.bridge.poll_interval_s)

    async def _direct_order(self, link: NewEhrLink, request: dict[str, Any]) -> None:
        key = f"FHIR/{request['id']}"
        if key in self.orders:
            return
        site = await link.site_of_request(request)
        if site is None or site.id not in self.direct_sites:
            return
        coding = next(iter((request.get("code") or {}).get("coding") or []), {})
        found = analysis(str(coding.get("code", ""))) or analysis(str(coding.get("display", "")))
        pnr = await link.personnummer_of(request.get("subject")) or ""
        with self._lock:
            self.counts["received"] += 1
            self.orders[key] = OrderRecord(
                filler=f"LAB{next(self._fillers):06d}",
                placer=str(request["id"]),
                route="fhir",
                application="FHIR",
                facility=site.hsa_id,
                site=site.id,
                personnummer=pnr,
                test=found.npu if found else str(coding.get("code", "")),
                received=utcnow(),
                ack="AA" if found and pnr else "AE",
                service_request=str(request["id"]),
                delivery="waiting" if found and pnr else "failed",
                error="" if found and pnr else "unknown test or patient",
            )
            self.counts["AA" if found and pnr else "AE"] += 1
        if found and pnr:
            self._later(lambda: self._result_over_fhir(key, found))

    async def _result_over_fhir(self, key: str, found: Analysis) -> None:
        assert self._link is not None
        record = self.orders[key]
        record.resulted = utcnow()
        if self._lost(record):
            return
        result = LabResult(
            personnummer=record.personnummer,
            placer=record.placer,
            filler=record.filler,
            test_code=found.npu,
            test_name=f"{found.code} {found.name}",
            values=(found.result(),),
            site_id=record.site,
            service_request=record.service_request,
        )
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            record.attempts = attempt
            try:
                await self._link.file_result(result)
            except LinkError as exc:
                record.error = str(exc)
                if not exc.retry:
                    break
                await asyncio.sleep(min(5.0, 0.2 * attempt))
                continue
            record.delivery, record.delivered, record.error = "delivered", utcnow(), ""
            return
        record.delivery = "failed"


def _bare_ack(code: str, control_id: str, text: str) -> str:
    """An ACK for input too broken for python-hl7's create_ack (no MSH to answer)."""
    return "\r".join(
        [
            f"MSH|^~\\&|LAB||||{mllp.timestamp()}||ACK|ACK{mllp.timestamp()}|P|{mllp.VERSION}",
            f"MSA|{code}|{control_id}|{mllp.escape(text)}",
            f"ERR|||||E||||{mllp.escape(text)}",
        ]
    )


def components(hospital: Hospital) -> list[Component]:
    return [LabSystem(hospital)] if hospital.plan.environment.lab_mllp else []
