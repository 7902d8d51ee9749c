"""Login and role per HSA-id: can the plan's user act in the new EHR, in their role, at their site?

SÄS (Borås) staff could not log in the week before go-live. Through the FHIR API with the
user's own credentials (HTTP Basic, HSA-id and password) the check asks three things:
is the login accepted (not 401/403), does a Practitioner with the HSA-id exist, and does
a PractitionerRole tie it to the site's organisation (its HSA-id) with the plan's role.
The role found is also what orders and referrals name as their requester.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rehearsal.clients.fhir import FhirClient, FhirError, hsa_id_of, reference_id
from rehearsal.identities import HSA_ID_SYSTEM
from rehearsal.plan import Site, User


@dataclass
class RoleAtSite:
    """What the EHR says about one user at one site; ``problems`` empty when all is as planned."""

    hsa_id: str
    site: str
    role: str | None = None
    organization: str | None = None
    organization_hsa_id: str | None = None
    requester: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


def role_at_site(fhir: FhirClient, site: Site, user: User) -> RoleAtSite:
    """Ask the EHR, as the user, for their Practitioner and their role at the site."""
    found = RoleAtSite(user.hsa_id, site.id)
    try:
        practitioners = fhir.by_hsa_id("Practitioner", user.hsa_id)
    except FhirError as exc:
        refused = {401: "inloggningen nekas", 403: "inloggad men rollen ger ingen behörighet"}
        found.problems.append(f"{user.hsa_id} ({user.name}): {refused.get(exc.status or 0, 'fel')}: {exc}")
        return found
    if not practitioners:
        found.problems.append(f"{user.hsa_id} ({user.name}) finns inte som Practitioner i journalen")
        return found
    roles = fhir.search("PractitionerRole", {"practitioner": f"Practitioner/{practitioners[0]['id']}"})
    at_site = []
    for role in roles:
        org_id = reference_id(role.get("organization"), "Organization")
        org = fhir.read("Organization", org_id) if org_id else {}
        org_hsa = hsa_id_of(org) or ((role.get("organization") or {}).get("identifier") or {}).get("value")
        at_site.append((role, org, org_hsa))
    mine = [r for r in at_site if r[2] == site.hsa_id] or [
        r for r in at_site if r[1].get("name") == site.name
    ]
    if not mine:
        places = ", ".join(f"{o.get('name', '?')} ({h})" for _, o, h in at_site) or "ingen roll alls"
        found.problems.append(
            f"{user.hsa_id} ({user.name}) har ingen roll på {site.name} ({site.hsa_id}): {places}"
        )
        return found
    role, org, org_hsa = next((r for r in mine if _has_role(r[0], user.role)), mine[0])
    found.role = user.role if _has_role(role, user.role) else " / ".join(role_names(role)) or None
    found.organization, found.organization_hsa_id = org.get("name"), org_hsa
    found.requester = {
        "reference": f"PractitionerRole/{role['id']}",
        "identifier": {"system": HSA_ID_SYSTEM, "value": user.hsa_id},
        "display": f"{user.name}, {user.role}, {site.name}",
    }
    if not _has_role(role, user.role):
        said = f"har rollen {found.role!r} på {site.name}, planen säger {user.role!r}"
        found.problems.append(f"{user.hsa_id} ({user.name}) {said}")
    if org_hsa != site.hsa_id:
        found.problems.append(
            f"{user.hsa_id} ({user.name}): rollens organisation {org.get('name', '?')} har HSA-id {org_hsa}, "
            f"planen säger {site.hsa_id}"
        )
    return found


def role_names(role: dict[str, Any]) -> list[str]:
    """What a PractitionerRole calls its role: each ``code``'s text, then its codings' display and code.

    The reference EHR writes the plan's words as ``code.text``; a standard server may carry only a
    coding (``{"system": …, "code": …, "display": "Sjuksköterska"}``). Any of them may name the role.
    """
    names: list[str] = []
    for concept in role.get("code") or []:
        if not isinstance(concept, dict):
            continue
        names += [concept["text"]] if isinstance(concept.get("text"), str) else []
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict):
                names += [str(coding[k]) for k in ("display", "code") if isinstance(coding.get(k), str)]
    return [n for n in dict.fromkeys(n.strip() for n in names) if n]


def _has_role(role: dict[str, Any], planned: str) -> bool:
    """The plan's role (``users[].role``) is one of the role's names, letter case aside."""
    return planned.strip().casefold() in {n.casefold() for n in role_names(role)}
