"""#13 load attributed per site: with `per_site: true` on the `load_slo` criterion each site's
simulated users are judged on their own (requests named `path@site`), a site without simulated
users has a not-applicable load line, and the referral path is neither run nor judged where no
other unit on the new EHR can take it (a wave with one site live)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rehearsal import applicability
from rehearsal.load import (
    LoadResult,
    evaluate,
    load_sites,
    per_site,
    region_paths,
    request_name,
    split_name,
)
from rehearsal.load import _read_json as read_locust_json
from rehearsal.plan import load_plan
from tests.conftest import DEMO_PLAN

ALL_PATHS = ["login", "patient-search", "open-chart", "lab-order", "view-results", "create-referral"]


def entry(name: str, times: dict[int, int], failures: int = 0) -> dict[str, Any]:
    """One entry of Locust's --json-file (the fields the harness reads)."""
    n = sum(times.values())
    return {
        "name": name, "method": "GET", "num_requests": n, "num_failures": failures,
        "total_response_time": sum(t * c for t, c in times.items()), "max_response_time": max(times),
        "response_times": {str(t): c for t, c in times.items()}, "start_time": 100.0,
        "last_request_timestamp": 110.0,
    }  # fmt: skip


def test_the_demo_judges_each_sites_users_on_every_path() -> None:
    plan = load_plan(DEMO_PLAN).plan
    assert per_site(plan)
    assert load_sites(plan) == {"sas-boras": ALL_PATHS, "nal-trollhattan": ALL_PATHS}
    assert request_name("login", "sas-boras") == "login@sas-boras" and request_name("login") == "login"
    assert split_name("open-chart@nal-trollhattan") == ("open-chart", "nal-trollhattan")
    assert split_name("open-chart") == ("open-chart", None)


def test_figures_per_site_and_for_the_path_and_each_site_judged_apart(tmp_path: Path) -> None:
    plan = load_plan(DEMO_PLAN).plan
    assert plan.load is not None
    stats = tmp_path / "stats.json"
    entries = [entry(request_name("login", "nal-trollhattan"), {40: 20})]
    entries.append(entry(request_name("login", "sas-boras"), {30: 10}, failures=10))
    stats.write_text(json.dumps(entries), encoding="utf-8")
    read = read_locust_json(stats)
    assert read is not None
    paths, span = read
    assert span == 10.0
    assert (paths["login"].num_requests, paths["login"].num_failures) == (30, 10)  # the path, all sites
    assert paths["login@sas-boras"].num_failures == 10 and paths["login@nal-trollhattan"].num_failures == 0
    result = LoadResult(
        paths=paths, out_dir=tmp_path, html_report=tmp_path / "r.html", json_file=stats,
        log_file=tmp_path / "l.log", planned_s=10, elapsed_s=10, exit_code=0, measured_s=10,
    )  # fmt: skip
    verdicts = evaluate(plan.load, result, {"sas-boras": ["login"], "nal-trollhattan": ["login"]})
    by_site: dict[str | None, set[bool]] = {}
    for v in verdicts:
        assert v.path_id == "login"
        by_site.setdefault(v.site, set()).add(v.passed)
    assert by_site == {"nal-trollhattan": {True}, "sas-boras": {False}}
    sas_errors = next(v for v in verdicts if v.site == "sas-boras" and v.slo == "error_ratio")
    assert sas_errors.message.startswith("error ratio 100.00 % > 1 % (10 of 10 failed)")
    # the same figures judged region-wide: one verdict per SLO, on all sites' requests
    region = evaluate(plan.load, result, paths=["login"])
    assert {v.site for v in region} == {None} and not all(v.passed for v in region)


def test_one_site_live_has_no_referral_load_and_the_legacy_site_no_load_line(
    make_plan: Callable[..., Path],
) -> None:
    def nal_legacy(data: dict[str, Any]) -> None:
        next(s for s in data["sites"] if s["id"] == "nal-trollhattan")["system"] = "legacy"
        # the mix has doctors: with NÄL's doctor on the legacy EHR, Borås gets one of its own
        sas = next(s for s in data["sites"] if s["id"] == "sas-boras")
        sas["users"].append(
            {"hsa_id": "SE2321000131-P000000000103", "name": "Cecilia Ceder", "role": "läkare",
             "password_env": "REHEARSAL_PASSWORD"}
        )  # fmt: skip

    plan = load_plan(make_plan(nal_legacy)).plan
    without_referral = [p for p in ALL_PATHS if p != "create-referral"]
    assert load_sites(plan) == {"sas-boras": without_referral}  # nowhere to refer to: not run, not judged
    assert region_paths(plan) == without_referral
    load = plan.criterion("load-slo")
    assert load is not None
    assert applicability.reason(plan, load, plan.site("sas-boras")) is None
    assert applicability.reason(plan, load, plan.site("nal-trollhattan")) == (
        "nal-trollhattan arbetar ännu i det äldre journalsystemet (system: legacy); kriteriet gäller "
        "den nya journalen"
    )


def test_a_new_ehr_site_whose_users_have_no_role_in_the_mix_has_no_load_line(
    make_plan: Callable[..., Path],
) -> None:
    def nal_secretaries(data: dict[str, Any]) -> None:
        for user in next(s for s in data["sites"] if s["id"] == "nal-trollhattan")["users"]:
            user["role"] = "sekreterare"  # no share in load.mix
        sas = next(s for s in data["sites"] if s["id"] == "sas-boras")  # the mix's doctors work at Borås
        sas["users"].append(
            {"hsa_id": "SE2321000131-P000000000103", "name": "Cecilia Ceder", "role": "läkare",
             "password_env": "REHEARSAL_PASSWORD"}
        )  # fmt: skip

    plan = load_plan(make_plan(nal_secretaries)).plan
    assert set(load_sites(plan)) == {"sas-boras"}
    load = plan.criterion("load-slo")
    assert load is not None
    assert applicability.reason(plan, load, plan.site("nal-trollhattan")) == (
        "nal-trollhattan har inga simulerade användare i lastprofilen (inga användare i den nya journalen "
        "med en roll i load.mix)"
    )
