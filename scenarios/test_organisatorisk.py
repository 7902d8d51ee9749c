"""Organisational run-through: features/organisatorisk/."""

from pytest_bdd import given, scenarios, then

from rehearsal import evidence
from rehearsal.plan import Plan, Site

scenarios("organisatorisk")


@given("platsens kommandocentral enligt planen", target_fixture="roster")
def site_roster(site: Site):
    roster = dict(site.command_centre)
    shown = {role: person.model_dump() if person else None for role, person in roster.items()}
    evidence.attach_json("Bemanning enligt planen", shown)
    return roster


@then("har varje roll i planen en namngiven person")
def every_role_named(plan: Plan, site: Site, roster: dict):
    missing = [role for role in plan.command_centre.roles if roster.get(role) is None]
    assert not missing, f"{site.id}: ingen person för rollen {', '.join(missing)}"


@then("har varje person i kommandocentralen ett telefonnummer")
def every_person_reachable(site: Site, roster: dict):
    unreachable = [f"{role} ({p.name})" for role, p in roster.items() if p is not None and not p.phone]
    assert not unreachable, f"{site.id}: telefonnummer saknas för {', '.join(unreachable)}"
