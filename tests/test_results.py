"""Reading allure-results (tolerant of killed runs) and merging a rerun chain."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from rehearsal.results import (
    MergedResult,
    ResultWarning,
    TestResult,
    failed_nodeids,
    merge,
    read_results,
)

KILLED_RUN = Path(__file__).parent / "data" / "allure-killed-run"


def write_result(
    folder: Path,
    name: str,
    status: str,
    stop: int,
    *,
    history_id: str | None = None,
    nodeid: str | None = None,
    site: str | None = None,
) -> str:
    """A minimal allure-pytest style result file; returns its uuid."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = str(uuid.uuid4())
    labels = [{"name": "aspect", "value": "klinisk"}]
    if site:
        labels.append({"name": "site", "value": site})
    if nodeid is not None:
        labels.append({"name": "nodeid", "value": nodeid})
    data = {
        "uuid": uid,
        "name": name,
        "fullName": f"tests.x#{name}",
        "historyId": history_id or f"h-{name}",
        "status": status,
        "start": stop - 10,
        "stop": stop,
        "labels": labels,
    }
    (folder / f"{uid}-result.json").write_text(json.dumps(data), encoding="utf-8")
    return uid


def test_reads_fields_of_a_real_looking_result() -> None:
    with pytest.warns(ResultWarning):
        results = read_results(KILLED_RUN)
    by_name = {r.name: r for r in results}
    lab = by_name["Labbeställning i webbklienten"]
    assert lab.status == "failed"
    assert lab.uuid == "5b1f0c1e-0d7e-4f43-9a55-3f6f7e0c0001"
    assert lab.history_id == "88204de3207beb012fe3cdcdeb2c5ed1"
    assert lab.nodeid == "scenarios/test_klinisk.py::test_labbestallning[nal-trollhattan]"
    assert lab.full_name == "scenarios.test_klinisk#test_labbestallning"
    assert lab.labels["site"] == "nal-trollhattan" and lab.site == "nal-trollhattan"
    assert lab.criterion == "clin-lab-order" and lab.aspect == "klinisk"
    assert lab.start == 1795660455000 and lab.stop == 1795660455896
    assert lab.message.startswith("AssertionError: knappen Skicka")
    # attachments of the test and of its steps, with the file name Allure wrote
    assert set(lab.attachments) == {
        ("logg", "5b1f0c1e-0d7e-4f43-9a55-3f6f7e0c0102-attachment.txt"),
        ("skärmbild", "5b1f0c1e-0d7e-4f43-9a55-3f6f7e0c0101-attachment.png"),
    }
    assert lab.results_dir == KILLED_RUN
    fhir = by_name["FHIR-sökning på testpatient"]
    assert fhir.status == "passed" and fhir.site is None and fhir.message == ""


def test_truncated_empty_and_non_object_files_are_skipped_with_a_warning_each() -> None:
    with pytest.warns(ResultWarning) as caught:
        results = read_results(KILLED_RUN)
    assert len(results) == 2  # the two complete files
    messages = [str(w.message) for w in caught]
    for broken in ("0003", "0004", "0005"):
        assert any(f"3f6f7e0c{broken}-result.json" in m and "skipped" in m for m in messages), messages
    assert len(messages) == 3


def test_file_cut_at_any_byte_never_crashes(tmp_path: Path) -> None:
    good = (KILLED_RUN / "5b1f0c1e-0d7e-4f43-9a55-3f6f7e0c0001-result.json").read_bytes()
    for cut in range(0, len(good), 97):
        (tmp_path / f"{cut:05d}-result.json").write_bytes(good[:cut])
    (tmp_path / "latin1-result.json").write_bytes('{"name": "å"'.encode("latin-1"))
    with pytest.warns(ResultWarning):
        assert read_results(tmp_path) == []


def test_odd_status_and_missing_fields_are_tolerated(tmp_path: Path) -> None:
    (tmp_path / "a-result.json").write_text(
        json.dumps({"uuid": "u-1", "status": "exploded", "labels": [{"name": "site"}, "junk"]}),
        encoding="utf-8",
    )
    [result] = read_results(tmp_path)
    assert result.status == "unknown"
    assert result.history_id == "u-1" and result.name == "u-1" and result.nodeid == ""
    assert result.labels == {}


def test_missing_folder_warns_and_reads_nothing(tmp_path: Path) -> None:
    with pytest.warns(ResultWarning, match="no allure-results"):
        assert read_results(tmp_path / "nope") == []


def test_merge_rerun_failed_then_passed_latest_wins_and_earlier_is_a_retry(tmp_path: Path) -> None:
    first, second = tmp_path / "run1", tmp_path / "run2"
    failed_uuid = write_result(first, "lab", "failed", 1000, nodeid="t.py::lab")
    write_result(first, "roster", "passed", 1000, nodeid="t.py::roster")
    passed_uuid = write_result(second, "lab", "passed", 2000, nodeid="t.py::lab")
    merged = merge([first, second])
    by_name = {m.latest.name: m for m in merged}
    assert set(by_name) == {"lab", "roster"}
    lab = by_name["lab"]
    assert lab.latest.uuid == passed_uuid and lab.status == "passed"
    assert [r.uuid for r in lab.retries] == [failed_uuid]
    assert lab.rerun_fixed
    assert by_name["roster"].retries == ()
    assert failed_nodeids(merged) == []


def test_merge_latest_stop_wins_even_if_it_is_in_the_older_folder(tmp_path: Path) -> None:
    first, second = tmp_path / "run1", tmp_path / "run2"
    write_result(first, "lab", "failed", 5000, nodeid="t.py::lab")
    write_result(second, "lab", "passed", 2000, nodeid="t.py::lab")
    [lab] = merge([first, second])
    assert lab.status == "failed" and [r.status for r in lab.retries] == ["passed"]
    assert failed_nodeids([lab]) == ["t.py::lab"]


def test_merge_tie_on_stop_goes_to_the_later_folder(tmp_path: Path) -> None:
    first, second = tmp_path / "run1", tmp_path / "run2"
    write_result(first, "lab", "failed", 3000)
    write_result(second, "lab", "passed", 3000)
    assert merge([first, second])[0].status == "passed"
    assert merge([second, first])[0].status == "failed"


def test_merge_keeps_sites_apart_by_history_id(tmp_path: Path) -> None:
    write_result(tmp_path, "lab", "failed", 1000, history_id="h-lab-sas", site="sas-boras")
    write_result(tmp_path, "lab", "passed", 2000, history_id="h-lab-nal", site="nal-trollhattan")
    merged = merge([tmp_path])
    assert sorted((m.latest.site, m.status, len(m.retries)) for m in merged) == [
        ("nal-trollhattan", "passed", 0),
        ("sas-boras", "failed", 0),
    ]


def test_merge_survives_a_killed_run_in_the_chain(tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    shutil.copytree(KILLED_RUN, killed)
    rerun = tmp_path / "rerun"
    write_result(
        rerun,
        "Labbeställning i webbklienten",
        "passed",
        1795660999000,
        history_id="88204de3207beb012fe3cdcdeb2c5ed1",
        nodeid="x",
    )
    with pytest.warns(ResultWarning):
        merged = merge([killed, rerun])
    lab = next(m for m in merged if m.latest.name.startswith("Labbeställning"))
    assert lab.status == "passed" and lab.retries[0].status == "failed"
    assert lab.retries[0].results_dir == killed and lab.latest.results_dir == rerun


def test_failed_nodeids_takes_failed_and_broken_once_each_and_skips_the_rest(tmp_path: Path) -> None:
    write_result(tmp_path, "a", "failed", 1, nodeid="t.py::a")
    write_result(tmp_path, "b", "broken", 1, nodeid="t.py::b")
    write_result(tmp_path, "c", "skipped", 1, nodeid="t.py::c")
    write_result(tmp_path, "d", "passed", 1, nodeid="t.py::d")
    write_result(tmp_path, "e", "failed", 1, nodeid="")  # no node id: cannot be selected
    write_result(tmp_path, "a2", "failed", 1, nodeid="t.py::a")  # same node, other params
    assert sorted(failed_nodeids(merge([tmp_path]))) == ["t.py::a", "t.py::b"]


def test_results_are_frozen_and_hashable() -> None:
    result = TestResult(uuid="u", history_id="h", name="n", full_name="", nodeid="", status="passed")
    merged = MergedResult(latest=result)
    with pytest.raises(AttributeError):
        result.status = "failed"  # type: ignore[misc]
    assert {merged, MergedResult(latest=result)} == {merged}
