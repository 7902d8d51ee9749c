"""Local routines: which scenario applies at which site, and who is on the other side.

During coexistence the routines differ per site, and the plan says which applies where:
``sites[].system`` (the site works in the new or the legacy EHR; a unit may differ) and
``sites[].lab_route`` (a new-EHR site orders lab tests through the bridge or directly).
Feature files carry the routine a scenario rehearses as tags, and a scenario runs only at
the sites where it applies (the others are not collected for that site):

============================  ======================================================
``@system:new`` / ``legacy``   the site works in that EHR
``@lab_route:bridge|direct``   a new-EHR site with that lab routine
``@route:new-to-legacy``       a new-EHR site, and some unit of the plan is on the legacy
                               EHR (its own first, else the plan's first): referrals cross
``@route:legacy-to-new``       the site has a unit on the legacy EHR and one on the new
                               EHR: referrals from its legacy unit cross to its new one
``@needs:FIELD``               the plan names ``environment.FIELD`` (``bridge_base``,
                               ``legacy_base``, ``lab_mllp``, ``directory`` …)
``@needs:INTERFACE``           the plan's adapter for it can serve the plan (``monitoring``,
                               ``migration``: see :mod:`rehearsal.adapters`)
============================  ======================================================

Traffic is always sent *from* the site under test, so a fault that bites on a site's
outgoing traffic (the bridge's faults are keyed by the sending site) shows at that site.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rehearsal import adapters
from rehearsal.plan import Plan, Site, TestIdentity, User

TAGS = ("system", "lab_route", "route", "needs")
ENDPOINTS = ("fhir_base", "web_base", "legacy_base", "lab_mllp", "bridge_base", "bridge_mllp", "directory")
ROUTES = ("new-to-legacy", "legacy-to-new")


@dataclass(frozen=True)
class Unit:
    """A site or one of its units, as an end of a referral: plan id, name, HSA-id, its site, its EHR."""

    id: str
    name: str
    hsa_id: str
    site: str
    system: str


def units_of(site: Site) -> list[Unit]:
    """The site itself, then its units (each with the EHR it works in)."""
    found = [Unit(site.id, site.name, site.hsa_id, site.id, site.system)]
    found += [Unit(u.id, u.name, u.hsa_id, site.id, u.system or site.system) for u in site.units]
    return found


def legacy_counterpart(plan: Plan, site: Site) -> Unit | None:
    """Where a new-EHR site's referrals cross to: its own legacy unit, else the plan's first one."""
    if site.system != "new":
        return None
    own = [u for u in units_of(site) if u.system == "legacy"]
    anywhere = [u for s in plan.sites for u in units_of(s) if u.system == "legacy"]
    return next(iter(own or anywhere), None)


def legacy_sender(site: Site) -> Unit | None:
    """The site's own unit on the legacy EHR, which sends referrals across to its new side."""
    return next((u for u in units_of(site) if u.system == "legacy"), None)


def new_receiver(site: Site) -> Unit | None:
    """The site's own unit on the new EHR (the site itself when it is on the new EHR)."""
    return next((u for u in units_of(site) if u.system == "new"), None)


def patient_for(plan: Plan, site: Site, offset: int = 0) -> TestIdentity:
    """The test identity a site's scenarios use: spread over the sites, so sites never share one
    patient when the plan has enough (a fault at one site then cannot show on another's)."""
    index = next(i for i, s in enumerate(plan.sites) if s.id == site.id)
    return plan.test_identities[(index + offset) % len(plan.test_identities)]


@dataclass(frozen=True)
class Login:
    """A plan user and the password from the environment variable the plan names."""

    user: User
    password: str

    @property
    def auth(self) -> tuple[str, str]:
        return self.user.hsa_id, self.password


def login_for(site: Site, user: User | None = None) -> Login:
    """The site's (first) user with its password; AssertionError naming what is missing."""
    if user is None:
        assert site.users, f"{site.id}: planen har ingen användare på platsen (sites[].users)"
        user = site.users[0]
    password = os.environ.get(user.password_env)
    assert password, f"{site.id}: lösenordet för {user.hsa_id} saknas (miljövariabeln {user.password_env})"
    return Login(user, password)


def not_applicable(plan: Plan, site: Site | None, wanted: Mapping[str, Iterable[str]]) -> str | None:
    """Why a scenario with these routine tags does not apply (at this site); None when it does."""
    for field in wanted.get("needs", ()):
        if field in adapters.INTERFACES:  # @needs:monitoring: what the plan's adapter for it needs
            if why := adapters.missing(plan, field):
                return why
            continue
        if field not in ENDPOINTS:
            return f"okänd slutpunkt @needs:{field} (kända: {', '.join(ENDPOINTS)})"
        if getattr(plan.environment, field) is None:
            return f"planen anger ingen environment.{field}"
    if site is None:
        return None
    systems = set(wanted.get("system", ()))
    if systems and site.system not in systems:
        return f"{site.id} arbetar i {site.system}-journalen"
    routes = set(wanted.get("lab_route", ()))
    if routes and (site.system != "new" or site.lab_route not in routes):
        return f"{site.id} har labbrutinen {site.lab_route}"
    for route in wanted.get("route", ()):
        if route == "new-to-legacy" and legacy_counterpart(plan, site) is None:
            return f"{site.id}: ingen enhet i det äldre journalsystemet att remittera till"
        if route == "legacy-to-new" and (legacy_sender(site) is None or new_receiver(site) is None):
            return f"{site.id}: har inte både en enhet i det äldre och en i den nya journalen"
        if route not in ROUTES:
            return f"okänd rutin @route:{route} (kända: {', '.join(ROUTES)})"
    return None
