"""The technical scenarios' test traffic: sent once per session from every site in scope, concurrently.

Lab orders and referral round trips each wait on other systems (the lab's delay, the
bridge's polls). Run one after another per site and per scenario, the waits would add up;
started together on first use, they overlap, and each per-site scenario then waits only
for its own site's part. Every flow runs from the site under test, as that site's user,
and keeps its own error: a fault at one site never stops another site's traffic.

    traffic = Traffic(plan, sites)
    traffic.lab(site)                     -> LabTraffic   (orders and their outcomes)
    traffic.referral(site, "new-to-legacy" | "legacy-to-new") -> RoundTrip
    traffic.close()
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from rehearsal.adapters.referrals import Referrals
from rehearsal.clients.fhir import FhirClient
from rehearsal.plan import Plan, Site
from rehearsal.workflows import lab, referrals, routines
from rehearsal.workflows.people import role_at_site

#: The analysis the technical traffic orders (the clinical scenarios order another, so they never mix).
TRAFFIC_ANALYSIS = "B-Hb"


@dataclass
class LabTraffic:
    site: str
    route: str
    orders: list[str] = field(default_factory=list)
    outcomes: list[lab.LabOutcome] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [p for o in self.outcomes for p in o.problems]


class TrafficError(AssertionError):
    """A site's traffic could not be sent at all (login refused, a system down): the scenario's failure."""


def find_patient(fhir: FhirClient, personnummer: str) -> str:
    """The server id of the one patient with this personnummer (12 digits or dashed, one search)."""
    found = fhir.patients_by_personnummer(personnummer)
    if len(found) != 1:
        raise TrafficError(f"testpatienten {personnummer} finns {len(found)} gånger i journalen (väntat 1)")
    return str(found[0]["id"])


class Traffic:
    def __init__(self, plan: Plan, sites: list[Site]) -> None:
        self.plan = plan
        self.sites = sites
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, 3 * len(sites)), thread_name_prefix="rehearsal-traffic"
        )
        self._futures: dict[tuple[str, str], Future[Any]] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Send everything for every site in scope (once; later calls do nothing)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            for site in self.sites:
                if site.system == "new":
                    self._futures[(site.id, "lab")] = self._pool.submit(self._lab, site)
                for route in routines.ROUTES:
                    if (
                        routines.not_applicable(self.plan, site, {"route": [route], "needs": ["referrals"]})
                        is None
                    ):
                        self._futures[(site.id, route)] = self._pool.submit(self._referral, site, route)

    def lab(self, site: Site) -> LabTraffic:
        return self._result(site, "lab")

    def referral(self, site: Site, route: str) -> referrals.RoundTrip:
        return self._result(site, route)

    def flows(self, site: Site) -> list[Any]:
        """Every flow of the site, finished (errors raised as TrafficError)."""
        self.start()
        return [self._result(site, kind) for (sid, kind) in list(self._futures) if sid == site.id]

    def _result(self, site: Site, kind: str) -> Any:
        self.start()
        future = self._futures.get((site.id, kind))
        if future is None:
            raise TrafficError(f"{site.id}: ingen testtrafik av slaget {kind} (gäller inte platsen)")
        bound = self.plan.coexistence.lab.result_within_s + 4 * referrals.crossing_s(self.plan) + 30
        return future.result(timeout=bound)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the flows (each in its own thread) --------------------------------------------------------

    def _user_fhir(self, site: Site) -> tuple[FhirClient, dict[str, Any]]:
        login = routines.login_for(site)
        fhir = FhirClient(self.plan.environment, auth=login.auth)
        role = role_at_site(fhir, site, login.user)
        if role.requester is None:
            fhir.close()
            raise TrafficError(
                f"{site.id}: kan inte agera som {login.user.hsa_id}: " + "; ".join(role.problems)
            )
        return fhir, role.requester

    def _lab(self, site: Site) -> LabTraffic:
        fhir, requester = self._user_fhir(site)
        with fhir:
            made = LabTraffic(site.id, site.lab_route)
            placed = []
            started = time.monotonic()
            for identity in self.plan.test_identities:
                pid = find_patient(fhir, identity.personnummer)
                order = fhir.create(lab.lab_order(pid, TRAFFIC_ANALYSIS, requester))
                placed.append((order, identity.personnummer))
                made.orders.append(str(order["id"]))
            made.outcomes = lab.wait_for_results(
                fhir, placed, self.plan.coexistence.lab.result_within_s, started
            )
            return made

    def _referral(self, site: Site, route: str) -> referrals.RoundTrip:
        fhir, requester = self._user_fhir(site)
        identity = routines.patient_for(self.plan, site, offset=1)
        legacy: Referrals = self.plan.environment.adapter("referrals")(self.plan)
        with fhir, closing(legacy):
            patient = (find_patient(fhir, identity.personnummer), identity.personnummer)
            if route == "new-to-legacy":
                receiver = routines.legacy_counterpart(self.plan, site)
                assert receiver is not None
                return referrals.new_to_legacy(fhir, legacy, self.plan, site, requester, receiver, patient)
            sender, receiver = routines.legacy_sender(site), routines.new_receiver(site)
            assert sender is not None and receiver is not None
            return referrals.legacy_to_new(fhir, legacy, self.plan, site, sender, receiver, patient)
