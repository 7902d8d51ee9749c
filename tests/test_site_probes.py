"""Site probes: two probes (127.0.0.2 and 127.0.0.3 stand in for two site networks) each check
their own site's devices, their bundles imported give one decision naming the probe per line; a
bundle of another plan hash is refused, a probe that never reported shows as not reported; the
plan's probes field and the bundle reader's refusals (hostile zips, altered files, foreign runs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from reference_hospital.snmp_agents import SnmpAgents
from reference_hospital.zpl_printer import ZplSimulator
from rehearsal import site_probe
from rehearsal.gonogo import decide
from rehearsal.plan import PlanError, load_plan
from rehearsal.results import MergedResult, TestResult
from rehearsal.run import Run, load_run

ROOT = Path(__file__).resolve().parents[1]
SAS, NAL = "sas-boras", "nal-trollhattan"
SAS_NET, NAL_NET = "127.0.0.2", "127.0.0.3"


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "rehearsal", "--reports", str(reports), *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=180,
    )  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    said = done.stderr.splitlines()
    lines = [
        line for line in said if line.startswith("rehearse: ") and not line.startswith("rehearse: run 2")
    ]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def probes_plan(data: dict[str, Any], ports: dict[str, int]) -> None:
    """The demo's two sites, each with its devices on its own 'network', each covered by a probe;
    only the device criteria are decided (no browser, no load here)."""
    data["device_models"] = {}
    data.pop("runbook", None)
    data["criteria"] = [c for c in data["criteria"] if c["kind"] in ("device_readiness", "run_complete")]
    data["waivers"] = []
    for site in data["sites"]:
        site["workstations"] = []
    sites = {s["id"]: s for s in data["sites"]}
    sites[SAS]["printers"] = [
        {"id": "sas-armband1", "kind": "wristband", "uri": f"tcp://{SAS_NET}:{ports['sas-armband1']}"},
        {
            "id": "sas-dok1",
            "kind": "document",
            "uri": f"snmp://{SAS_NET}:{ports['snmp']}",
            "snmp": {"community": "sas-dok1", "port": ports["snmp"], "host": SAS_NET},
        },
    ]
    sites[NAL]["printers"] = [
        {"id": "nal-etikett1", "kind": "label", "uri": f"tcp://{NAL_NET}:{ports['nal-etikett1']}"}
    ]
    data["probes"] = [{"id": "probe-sas", "sites": [SAS]}, {"id": "probe-nal", "sites": [NAL]}]


def line(decision: dict[str, Any], criterion: str, site: str) -> dict[str, Any]:
    return next(c for c in decision["criteria"] if c["id"] == criterion and c["site"] == site)


@pytest.fixture
def two_sites(tmp_path: Path) -> Iterator[dict[str, int]]:
    """A ZPL printer per site network and an SNMP printer at the first, as real peers."""
    ports = {"sas-armband1": free_port(), "nal-etikett1": free_port()}
    snmp = SnmpAgents(tmp_path / "snmp", host=SAS_NET)
    snmp.add("sas-dok1", model="Rehearsal Simulated Document Printer")
    ports["snmp"] = snmp.port
    sas, nal = ZplSimulator(host=SAS_NET), ZplSimulator(host=NAL_NET)
    sas.add("sas-armband1", ports["sas-armband1"])
    nal.add("nal-etikett1", ports["nal-etikett1"], model="ZD421-203dpi", dpmm=8)
    with sas, nal, snmp:
        yield ports


@pytest.mark.slow  # four rehearse commands, three pytest sessions: ~25 s of CPU
def test_two_probes_check_their_sites_and_one_decision_names_the_probe_per_line(
    tmp_path: Path, make_plan: Callable[..., Path], two_sites: dict[str, int]
) -> None:
    plan = make_plan(lambda d: probes_plan(d, two_sites))
    reports = tmp_path / "reports"

    # the central run leaves the probes' sites to them: nothing reported yet is not passed
    central = rehearse(reports, "hardware", "--plan", str(plan))
    assert central.returncode == 1, central.stdout + central.stderr
    run_dir = (reports / "latest").resolve()
    decision = json.loads((run_dir / "gonogo.json").read_text())
    for criterion, site, probe in [
        ("tech-printers", SAS, "probe-sas"),
        ("tech-wristband-printers", SAS, "probe-sas"),
        ("tech-label-printers", NAL, "probe-nal"),
    ]:
        got = line(decision, criterion, site)
        assert (got["status"], got["details"]) == ("pending", f"sonden {probe} rapporterade inte")
        assert got["not_reported"] == [probe]
    assert line(decision, "tech-label-printers", SAS)["status"] == "not_applicable"

    # each probe checks its own site's devices, from "inside" its network
    bundles = {}
    for probe, site, address in [("probe-sas", SAS, SAS_NET), ("probe-nal", NAL, NAL_NET)]:
        out = tmp_path / f"{probe}.zip" if probe == "probe-sas" else tmp_path / probe  # zip, and a folder
        done = rehearse(
            tmp_path / f"at-{probe}", "probe", "--plan", str(plan), "--as", probe, "--address", address,
            "--bundle", str(out),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"probe {probe} at {address}, {site}" in done.stdout
        bundles[probe] = out
    with zipfile.ZipFile(bundles["probe-sas"]) as zf:
        manifest = json.loads(zf.read("bundle.json"))
        results = [json.loads(zf.read(n)) for n in zf.namelist() if n.endswith("-result.json")]
    assert manifest["address"] == SAS_NET and manifest["sites"] == [SAS]
    assert manifest["plan_sha256"] == load_plan(plan).sha256
    checked = {
        next(lb["value"] for lb in r["labels"] if lb["name"] == "device"): r["status"]
        for r in results
        if any(lb["name"] == "device" for lb in r["labels"])
    }
    assert checked == {"sas-armband1": "passed", "sas-dok1": "passed"}  # its own site's, no other
    readiness = json.loads((bundles["probe-nal"] / "hardware-readiness.json").read_text())
    assert list(readiness["sites"]) == [NAL]

    # the same probe's bundle had it run with another plan (one field changed): refused, nothing taken
    other = load_plan(
        make_plan(lambda d: (probes_plan(d, two_sites), d.update(title="Another")), name="o.yaml")
    )
    probe_run = load_run(tmp_path / "at-probe-sas")
    foreign = site_probe.write_bundle(
        replace(probe_run, plan_sha256=other.sha256),
        other.plan.probe("probe-sas"),
        tmp_path / "o.zip",
        SAS_NET,
    )
    refused = one_line(rehearse(reports, "import", str(foreign), str(bundles["probe-nal"])))
    assert refused.startswith(f"rehearse: {foreign}: made with another plan") and "refused" in refused
    assert not list((run_dir / "probes").glob("probe-*"))

    # both in: one decision, GO, each line naming the probe that checked it
    done = rehearse(
        reports, "import", str(bundles["probe-sas"]), str(bundles["probe-nal"]), "--run", run_dir.name
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"imported probe probe-nal (nal-trollhattan; ran {manifest['started'][:4]}" in done.stdout
    decision = json.loads((run_dir / "gonogo.json").read_text())
    assert decision["decision"] == "GO"
    by = {(c["id"], c["site"]): c.get("checked_by") for c in decision["criteria"] if c["status"] == "pass"}
    assert by == {
        ("tech-printers", SAS): ["probe-sas"],
        ("tech-wristband-printers", SAS): ["probe-sas"],
        ("tech-label-printers", NAL): ["probe-nal"],
        ("run-complete", None): None,
    }
    md = (run_dir / "gonogo.md").read_text()
    assert "NÄL, Trollhättan · kontrollerat av probe-nal |" in md
    assert "kontrollerat av probe-sas" in (run_dir / "gonogo.html").read_text()

    # a bundle older than the run it is imported into is refused
    manifest_path = bundles["probe-nal"] / "bundle.json"
    m = json.loads(manifest_path.read_text())
    m["started"] = "2020-01-01T00:00:00+00:00"
    manifest_path.write_text(json.dumps(m))
    refused = one_line(rehearse(reports, "import", str(bundles["probe-nal"])))
    assert "before run" in refused and "an older bundle is not this run's evidence" in refused


# --- the plan says which probe covers which site ------------------------------------------------


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        (
            [{"id": "p1", "sites": ["sas-boras", "nowhere"]}],
            "probes.0.sites: names no site of the plan: 'nowhere'",
        ),
        (
            [{"id": "p1", "sites": ["sas-boras"]}, {"id": "p2", "sites": ["sas-boras"]}],
            "probes.1.sites: site 'sas-boras' is already covered by probe 'p1'",
        ),
        (
            [{"id": "p1", "sites": ["sas-boras"]}, {"id": "p1", "sites": [NAL]}],
            "probes.1.id: probe id 'p1' is used twice",
        ),
        ([{"id": "p1", "sites": []}], "probes.0.sites: List should have at least 1 item"),
    ],
)
def test_plan_refuses_probes_of_unknown_or_shared_sites(
    make_plan: Callable[..., Path], probes: list[dict[str, Any]], message: str
) -> None:
    path = make_plan(lambda d: d.update(probes=probes))
    with pytest.raises(PlanError) as err:
        load_plan(path)
    (problem,) = err.value.problems
    assert problem.startswith(f"{path}:") and message in problem, problem


def test_probe_of_a_name_the_plan_lacks_is_one_line(tmp_path: Path, make_plan: Callable[..., Path]) -> None:
    plan = make_plan(lambda d: d.update(probes=[{"id": "probe-sas", "sites": [SAS]}]))
    line_ = one_line(rehearse(tmp_path, "probe", "--plan", str(plan), "--as", "probe-x"))
    assert line_ == "rehearse: plan has no probe 'probe-x' (probes: probe-sas)"
    line_ = one_line(rehearse(tmp_path, "probe", "--plan", str(plan), "--as", "probe-sas", "--site", NAL))
    assert line_ == f"rehearse: --site {NAL}: not a site of probe probe-sas (its sites: {SAS})"


# --- the decision, on hand-made results --------------------------------------------------------------


def result(device: str, site: str, criterion: str, probe: str | None, status: str = "passed") -> MergedResult:
    labels = {"criterion": criterion, "site": site, "device": device, "aspect": "teknisk"}
    labels |= {"probe": probe} if probe else {}
    uuid = f"{device}-{probe}"
    return MergedResult(TestResult(uuid, uuid, device, device, "", status, labels, 1, 2))


def test_a_line_names_central_or_its_probe_and_a_region_wide_line_waits_for_a_silent_probe(
    make_plan: Callable[..., Path],
) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["probes"] = [{"id": "probe-nal", "sites": [NAL]}]
        for c in d["criteria"]:
            if c["id"] == "tech-label-printers":
                c["per_site"] = False

    plan = load_plan(make_plan(edit)).plan
    results = [
        result("sas-akut-dok1", SAS, "tech-printers", None),
        result("nal-lab-dok1", NAL, "tech-printers", "probe-nal"),
        result("sas-lab-etikett1", SAS, "tech-label-printers", None),
    ]
    decision = decide(plan, results, complete=True, rehearsal="r", run="x", parent=None)
    got = {(c.id, c.site): c for c in decision.criteria}
    assert got[("tech-printers", SAS)].checked_by == ("central",)
    assert got[("tech-printers", NAL)].checked_by == ("probe-nal",)
    region = got[("tech-label-printers", None)]
    assert region.status == "pending" and region.not_reported == ("probe-nal",)
    assert region.details.endswith("; sonden probe-nal rapporterade inte (nal-trollhattan)")
    assert got[("tech-wristband-printers", NAL)].details == "sonden probe-nal rapporterade inte"
    assert (
        got[("tech-wristband-printers", SAS)].details == "inga resultat ännu"
    )  # central's own: pending as ever
    failing = [result("nal-lab-etikett1", NAL, "tech-label-printers", "probe-nal", "failed")]
    decision = decide(plan, results[2:] + failing, complete=True, rehearsal="r", run="x", parent=None)
    region = next(c for c in decision.criteria if c.id == "tech-label-printers")
    assert (
        region.status == "fail" and region.checked_by == ("central", "probe-nal") and not region.not_reported
    )


# --- bundles: whole, plain, bounded ------------------------------------------------------------------


@pytest.fixture
def bundle_of(tmp_path: Path, make_plan: Callable[..., Path]) -> Callable[..., tuple[Path, Run, Any]]:
    """A probe bundle written from a hand-made probe run folder, and a central run to import into."""
    loaded = load_plan(make_plan(lambda d: d.update(probes=[{"id": "probe-sas", "sites": [SAS]}])))

    def make(
        labels: dict[str, str] | None = None, zip_: bool = True, started: str = "2026-12-01T10:05:00+00:00"
    ) -> tuple[Path, Run, Any]:
        def run(name: str, started: str) -> Run:
            folder = tmp_path / name
            (folder / "allure-results").mkdir(parents=True, exist_ok=True)
            return Run(name, loaded.plan.rehearsal, "p", loaded.sha256, started, folder, sites=[SAS])

        central, probe_run = (
            run("central", "2026-12-01T10:00:00+00:00"),
            run("probe", started),
        )
        tags = {"probe": "probe-sas", "site": SAS, "rehearsal": loaded.plan.rehearsal} | (labels or {})
        record = {
            "uuid": "u1",
            "name": "p",
            "status": "passed",
            "labels": [{"name": k, "value": v} for k, v in tags.items()],
        }
        (probe_run.results_dir / "u1-result.json").write_text(json.dumps(record))
        out = tmp_path / ("b.zip" if zip_ else "b")
        shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
        site_probe.write_bundle(probe_run, loaded.plan.probe("probe-sas"), out, "127.0.0.2")
        return out, central, loaded.plan

    return make


def refusal(tmp_path: Path, path: Path, central: Run, plan: Any) -> str:
    with pytest.raises(site_probe.BundleError) as err:
        site_probe.import_bundles(central, plan, [path])
    assert not list((central.dir / "probes").iterdir())  # nothing staged is left, nothing taken
    assert not list(central.results_dir.iterdir())
    return str(err.value)


def rezip(
    path: Path, extra: Callable[[zipfile.ZipFile], None], keep: Callable[[str], bool] = lambda n: True
) -> None:
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if keep(n)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        extra(zf)


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [
        (
            lambda zf: zf.writestr("../../evil.json", "{}"),
            "holds '../../evil.json', which no probe bundle has",
        ),
        (lambda zf: zf.writestr("/etc/evil", "x"), "holds '/etc/evil'"),
        (
            lambda zf: zf.writestr("allure-results/sub/x-result.json", "{}"),
            "holds 'allure-results/sub/x-result.json'",
        ),
        (lambda zf: zf.writestr("allure-results/x-attachment.txt", "x"), "is not listed in bundle.json"),
        (
            lambda zf: zf.writestr("allure-results/big-attachment.bin", b"\0" * (65 << 20)),
            "larger than 64 MiB",
        ),
    ],
)
def test_hostile_zips_are_refused_in_one_line_and_leave_nothing(
    tmp_path: Path, bundle_of: Callable[..., Any], hostile: Callable[[zipfile.ZipFile], None], expected: str
) -> None:
    path, central, plan = bundle_of()
    rezip(path, hostile)
    assert expected in refusal(tmp_path, path, central, plan)


def test_altered_cut_foreign_or_mislabelled_bundles_are_refused(
    tmp_path: Path, bundle_of: Callable[..., Any]
) -> None:
    path, central, plan = bundle_of()
    rezip(path, lambda zf: zf.writestr("allure-results/u1-result.json", "{}"), keep=lambda n: "u1" not in n)
    assert "allure-results/u1-result.json differs from its sha256" in refusal(tmp_path, path, central, plan)

    path, central, plan = bundle_of()
    rezip(path, lambda zf: None, keep=lambda n: "u1" not in n)
    assert "allure-results/u1-result.json is listed but missing" in refusal(tmp_path, path, central, plan)

    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert "not a readable zip" in refusal(tmp_path, path, central, plan)

    path, central, plan = bundle_of(zip_=False)
    (path / "allure-results" / "link-attachment.txt").symlink_to("/etc/passwd")
    assert "link-attachment.txt is not a plain file" in refusal(tmp_path, path, central, plan)

    path, central, plan = bundle_of(zip_=False)
    m = json.loads((path / "bundle.json").read_text())
    (path / "bundle.json").write_text(json.dumps(m | {"rehearsal": "another-one"}))
    assert "a bundle of rehearsal 'another-one'" in refusal(tmp_path, path, central, plan)

    path, central, plan = bundle_of(labels={"site": NAL})
    assert f"a result for site '{NAL}', which probe probe-sas does not cover" in refusal(
        tmp_path, path, central, plan
    )

    path, central, plan = bundle_of(labels={"probe": "probe-nal"})
    assert "not labelled as checked by probe probe-sas" in refusal(tmp_path, path, central, plan)


def test_a_bundle_never_overwrites_what_the_run_recorded_and_a_newer_one_replaces_its_own(
    tmp_path: Path, bundle_of: Callable[..., Any]
) -> None:
    path, central, plan = bundle_of()
    (central.results_dir / "u1-result.json").write_text("central's own")
    assert "u1-result.json is already in run central from elsewhere" in refusal_keep(path, central, plan)
    (central.results_dir / "u1-result.json").unlink()
    (taken,) = site_probe.import_bundles(central, plan, [path])
    assert taken.probe == "probe-sas" and (central.results_dir / "u1-result.json").is_file()
    assert site_probe.imported(central)["probe-sas"]["results"] == ["u1-result.json"]
    site_probe.import_bundles(central, plan, [path])  # the same again: taken again, still one record
    assert sorted(p.name for p in (central.dir / "probes").iterdir()) == ["probe-sas"]
    older, central, plan = bundle_of(started="2026-12-01T10:01:00+00:00")
    assert "before the bundle of it already imported (2026-12-01T10:05:00+00:00" in refusal_keep(
        older, central, plan
    )


def refusal_keep(path: Path, central: Run, plan: Any) -> str:
    with pytest.raises(site_probe.BundleError) as err:
        site_probe.import_bundles(central, plan, [path])
    return str(err.value)
