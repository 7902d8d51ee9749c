"""A rehearsal's test data in GNU Health, put in only through its JSON-RPC (as its admin would).

Per plan site: a company with a health institution (GNU Health ties the institution a user works
at to the user's company), the site's users as Tryton users with a health professional record at
that institution, in GNU Health's own access groups — "Health Doctor" (may create lab test
requests) or, for a user named in ``without_lab_rights``, "Health Nurse" (may read them, not
create them: GNU Health's own rule, ``gnuhealth.patient.lab.test`` create right). The plan's test
identities as persons (the population register), each site's test identity also as a patient.
The lab analyses the features order (``P-CRP``, ``P-Na``) as GNU Health lab test types with one
analyte each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from rehearsal.identities import check_personnummer
from rehearsal.plan import Plan
from rehearsal.workflows.routines import patient_for
from tests.gnuhealth.rpc import Rpc

#: GNU Health's own access groups (security/access_rights.xml of health and health_lab).
WITH_LAB = ("Health Doctor", "Health Nurse", "Health Front Desk")
WITHOUT_LAB = ("Health Nurse", "Health Front Desk")
#: The analyses the klinisk features order, as lab test types: code -> (name, analyte, unit, low, high).
ANALYSES = {
    "P-CRP": ("C-REACTIVE PROTEIN", "CRP", "mg/L", 0.0, 5.0),
    "P-Na": ("SODIUM", "Na", "mmol/L", 137.0, 145.0),
}


@dataclass
class Seeded:
    """GNU Health's ids for what the plan names."""

    institutions: dict[str, int] = field(default_factory=dict)  # site id -> gnuhealth.institution
    companies: dict[str, int] = field(default_factory=dict)  # site id -> company.company
    users: dict[str, int] = field(default_factory=dict)  # HSA-id -> res.user
    patients: dict[str, int] = field(default_factory=dict)  # personnummer -> gnuhealth.patient
    persons: dict[str, int] = field(default_factory=dict)  # personnummer -> party.party
    test_types: dict[str, int] = field(default_factory=dict)  # "P-CRP" -> gnuhealth.lab.test_type


def _born_and_sex(personnummer: str) -> tuple[str, str]:
    digits = check_personnummer(personnummer).replace("-", "").replace("+", "")
    born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]) % 60 or 60)
    return born.isoformat(), ("m" if int(digits[10]) % 2 else "f")


def person(rpc: Rpc, personnummer: str, name: str) -> int:
    """A person in GNU Health's register: first and last name, PUID = the personnummer as written."""
    first, _, last = name.partition(" ")
    born, sex = _born_and_sex(personnummer)
    return rpc.create(
        "party.party",
        {
            "name": first,
            "lastname": last,
            "ref": personnummer,
            "is_person": True,
            "gender": sex,
            "dob": born,
            "fed_country": None,
        },
    )


def seed(
    rpc: Rpc,
    plan: Plan,
    without_lab_rights: Iterable[str] = (),
    passwords: dict[str, str] | None = None,
    patients_for_sites: bool = True,
) -> Seeded:
    """Everything the plan's klinisk scenarios need, through ``rpc`` (GNU Health's admin)."""
    done = Seeded()
    no_lab = set(without_lab_rights)
    groups = {g["name"]: g["id"] for g in rpc.search_read("res.group", [], ["name"])}
    currency = rpc.create("currency.currency", {"name": "Swedish krona", "code": "SEK", "symbol": "kr"})
    for site in plan.sites:
        party = rpc.create("party.party", {"name": site.name, "is_institution": True, "fed_country": None})
        done.companies[site.id] = rpc.create("company.company", {"party": party, "currency": currency})
        done.institutions[site.id] = rpc.create(
            "gnuhealth.institution",
            {"party": party, "code": site.hsa_id, "institution_type": "hospital", "public_level": "public"},
        )
    for site in plan.sites:
        company = done.companies[site.id]
        for user in site.users:
            password = (passwords or {}).get(user.hsa_id) or os.environ.get(user.password_env)
            assert password, f"no password for {user.hsa_id} (environment variable {user.password_env})"
            wanted = WITHOUT_LAB if user.hsa_id in no_lab else WITH_LAB
            uid = rpc.create(
                "res.user",
                {
                    "login": user.hsa_id,
                    "name": user.name,
                    "password": password,
                    "groups": [["add", [groups[g] for g in wanted]]],
                    "companies": [["add", [company]]],
                    "company": company,
                },
            )
            done.users[user.hsa_id] = uid
            first, _, last = user.name.partition(" ")
            hp_party = rpc.create(
                "party.party",
                {
                    "name": first,
                    "lastname": last,
                    "is_person": True,
                    "is_healthprof": True,
                    "gender": "nd",
                    "internal_user": uid,
                    "fed_country": None,
                },
            )
            rpc.create(
                "gnuhealth.healthprofessional", {"party": hp_party, "institution": done.institutions[site.id]}
            )
    for identity in plan.test_identities:
        done.persons[identity.personnummer] = person(rpc, identity.personnummer, identity.name)
    if patients_for_sites:
        for site in plan.sites:
            identity = patient_for(plan, site)
            if identity.personnummer not in done.patients:
                party = done.persons[identity.personnummer]
                rpc.model("party.party", "write", [party], {"is_patient": True})
                done.patients[identity.personnummer] = rpc.create("gnuhealth.patient", {"party": party})
    uom = rpc.one("product.uom", [("symbol", "=", "u")])
    for code, (name, analyte, unit, low, high) in ANALYSES.items():
        product = _service(rpc, f"{name} ({code})", uom)
        known = rpc.search_read("gnuhealth.lab.test.units", [("name", "=", unit)], ["id"])
        units = (
            known[0]["id"] if known else rpc.create("gnuhealth.lab.test.units", {"name": unit, "code": unit})
        )
        done.test_types[code] = rpc.create(
            "gnuhealth.lab.test_type",
            {
                "name": f"{name} ({code})",
                "code": code,
                "product_id": product,
                "critearea": [
                    [
                        "create",
                        [
                            {
                                "name": analyte,
                                "code": analyte,
                                "units": units,
                                "lower_limit": low,
                                "upper_limit": high,
                                "sequence": 1,
                            }
                        ],
                    ]
                ],
            },
        )
    return done


def _service(rpc: Rpc, name: str, uom: int) -> int:
    """A service product (GNU Health bills lab tests as products)."""
    template = rpc.create(
        "product.template",
        {"name": name, "type": "service", "default_uom": uom, "products": [["create", [{}]]]},
    )
    return int(rpc.search_read("product.product", [("template", "=", template)], ["id"])[0]["id"])


def orders_relate(rpc: Rpc) -> None:
    """ "Lab: Orders" under the patient's "Open related records", beside GNU Health's own "Lab: Results".

    GNU Health 5.0 lists a patient's lab test requests only in the Laboratory menu, which only the
    lab's group sees; a hospital shows them on the patient with a related-records action of its
    own (Administration → User Interface → Actions), made here the same way through the RPC.
    """
    eval_active = {"__class__": "Eval", "v": "active_id", "d": ""}
    window = rpc.create(
        "ir.action.act_window",
        {
            "name": "Lab: Orders",
            "res_model": "gnuhealth.patient.lab.test",
            "domain": json.dumps([["patient_id", "=", eval_active]]),
        },
    )
    action = rpc.search_read("ir.action.act_window", [("id", "=", window)], ["action"])[0]["action"]
    rpc.create(
        "ir.action.keyword", {"keyword": "form_relate", "model": "gnuhealth.patient,-1", "action": action}
    )


def lab_technician(rpc: Rpc, password: str, login: str = "lab-technician") -> str:
    """A user in GNU Health's "Health Lab" group: the lab that answers requests (tests/gnuhealth/lab.py)."""
    group = rpc.one("res.group", [("name", "=", "Health Lab")])
    rpc.create(
        "res.user",
        {"login": login, "name": "Lab Technician", "password": password, "groups": [["add", [group]]]},
    )
    return login
