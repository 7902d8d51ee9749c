"""The standards monitoring adapter against an engine that is not the reference bridge: a loopback
HTTP server (Starlette/uvicorn) answering in Mirth Connect's shape (channel statistics with
received/sent/error/queued per channel, a server status with its last beat). The plan says
where the numbers are (environment.monitoring, JSON paths); heartbeat, catch-all and failed
messages are judged from them, per site when the URL names ``{site}``."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import free_port
from rehearsal.adapters import monitoring_jsonpath as jsonpath
from rehearsal.adapters.monitoring import Monitoring, StandardsMonitoring
from rehearsal.plan import Plan, PlanError, load_plan
from rehearsal.workflows import gate, routines

TOKEN = "motor-token-13"


class Engine:
    """A Mirth-like engine: ``/api/channels/statistics`` (optionally ``?site=``), ``/api/server/status``."""

    def __init__(self) -> None:
        self.channels: dict[str, dict[str, dict[str, int]]] = {}
        for site in ("sas-boras", "nal-trollhattan"):
            self.channels[site] = {
                f"lab-{site}": {"received": 12, "sent": 12, "error": 0, "queued": 0},
                f"catch-all-{site}": {"received": 3, "sent": 0, "error": 0, "queued": 3},  # before the run
            }
        self.beat = datetime.now(UTC)
        self.status = 200
        self.seen_auth: list[str] = []
        self.port = free_port()

    def statistics(self, site: str | None) -> dict[str, Any]:
        sites = [site] if site else list(self.channels)
        rows = [{"channelId": f"ch-{name}", "name": name, **numbers}
                for s in sites for name, numbers in self.channels[s].items()]  # fmt: skip
        return {"list": {"channelStatistics": rows}}

    def app(self) -> Starlette:
        async def stats(request: Request) -> Response:
            self.seen_auth.append(request.headers.get("authorization", ""))
            return JSONResponse(self.statistics(request.path_params.get("site")), self.status)

        async def status(request: Request) -> Response:
            return JSONResponse({"state": "STARTED", "lastBeat": self.beat.isoformat()}, self.status)

        return Starlette(routes=[
            Route("/api/channels/statistics", stats), Route("/api/sites/{site}/statistics", stats),
            Route("/api/server/status", status),
        ])  # fmt: skip


@pytest.fixture
def engine() -> Iterator[Engine]:
    running = Engine()
    sock = socket.socket()
    sock.bind(("127.0.0.1", running.port))
    server = uvicorn.Server(uvicorn.Config(running.app(), log_level="warning", lifespan="off", http="h11"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield running
    server.should_exit = True
    thread.join(timeout=10)


def engine_plan(make_plan, engine: Engine, **probe: Any) -> Plan:
    base = f"http://127.0.0.1:{engine.port}"
    settings = {
        "url": f"{base}/api/channels/statistics",
        "heartbeat_url": f"{base}/api/server/status",
        "heartbeat": "$.lastBeat",
        "max_heartbeat_age_s": 30,
        "queue_depth": "$.list.channelStatistics[*].queued",
        "orphaned": "$.list.channelStatistics[?(@.name=='catch-all-sas-boras')].queued",
        "failed": "$.list.channelStatistics[*].error",
        **probe,
    }

    def edit(data: dict[str, Any]) -> None:
        data["environment"]["adapters"] = {"monitoring": "standards"}
        data["environment"]["monitoring"] = {k: v for k, v in settings.items() if v is not None}

    return load_plan(make_plan(edit)).plan


def site(plan: Plan, site_id: str):  # noqa: ANN201 - a test helper
    return next(s for s in plan.sites if s.id == site_id)


@pytest.fixture
def made(make_plan, engine: Engine) -> Iterator[Monitoring]:
    plan = engine_plan(make_plan, engine)
    monitor = plan.environment.adapter("monitoring")(plan)
    assert isinstance(monitor, StandardsMonitoring) and isinstance(monitor, Monitoring)
    yield monitor
    monitor.close()


# -- heartbeat --------------------------------------------------------------------------------------


def test_a_fresh_beat_is_healthy_and_a_stale_one_or_an_error_is_not(made: Monitoring, engine: Engine) -> None:
    beat = made.heartbeat()
    assert beat.ok and beat.problem == "", beat
    assert beat.evidence["body"]["state"] == "STARTED"

    engine.beat = datetime.now(UTC) - timedelta(minutes=5)
    stale = made.heartbeat()
    assert not stale.ok
    # by the engine's Date header (whole seconds): 299 or 300 s
    assert re.search(r": senaste hjärtslag för (299|300) s sedan \(högst 30 s\)$", stale.problem), stale

    engine.status = 500
    broken = made.heartbeat()
    assert not broken.ok and broken.problem.endswith("/api/server/status): HTTP 500, inget JSON-svar")


def test_too_many_waiting_messages_make_the_engine_unhealthy(make_plan, engine: Engine) -> None:
    plan = engine_plan(make_plan, engine, max_queue_depth=10)
    monitor = plan.environment.adapter("monitoring")(plan)
    try:
        assert monitor.heartbeat().ok  # 6 waiting (two catch-all queues of 3)
        engine.channels["nal-trollhattan"]["lab-nal-trollhattan"]["queued"] = 9
        beat = monitor.heartbeat()
    finally:
        monitor.close()
    assert not beat.ok and "15 meddelanden väntar i köerna (högst 10)" in beat.problem


def test_an_engine_that_does_not_answer_is_one_line_naming_it(make_plan) -> None:
    dead = free_port()
    plan = load_plan(make_plan(lambda d: d["environment"].update(
        adapters={"monitoring": "standards"},
        monitoring={"url": f"http://127.0.0.1:{dead}/stats", "orphaned": "$.parked"},
    ))).plan  # fmt: skip
    monitor = plan.environment.adapter("monitoring")(plan)
    beat = monitor.heartbeat()
    monitor.close()
    assert not beat.ok and beat.problem.startswith("integrationsmotorn: ") and "\n" not in beat.problem
    assert f"127.0.0.1:{dead}" in beat.problem


# -- activity during the rehearsal ------------------------------------------------------------------


def test_only_what_was_parked_or_failed_during_the_run_counts(made: Monitoring, engine: Engine) -> None:
    mark = made.mark()
    quiet = made.activity(mark, None)
    assert quiet.orphaned == () and quiet.failed == () and quiet.messages is None  # 3 parked before: not ours

    engine.channels["sas-boras"]["catch-all-sas-boras"]["queued"] += 2
    engine.channels["nal-trollhattan"]["lab-nal-trollhattan"]["error"] += 1
    after = made.activity(mark, None)
    url = f"http://127.0.0.1:{engine.port}/api/channels/statistics"
    assert after.orphaned == (f"2 nya meddelanden i catch-all-kön enligt {url} (3 → 5)",)
    assert after.failed == (f"1 nya meddelanden misslyckade enligt {url} (0 → 1)",)
    assert after.evidence["before"]["orphaned"] == 3 and after.evidence["now"]["orphaned"] == 5


def test_with_site_in_the_url_each_site_is_judged_on_its_own_numbers(make_plan, engine: Engine) -> None:
    base = f"http://127.0.0.1:{engine.port}"
    plan = engine_plan(
        make_plan, engine, url=f"{base}/api/sites/{{site}}/statistics",
        orphaned="$.list.channelStatistics[?(@.name=='catch-all-{site}')].queued",
    )  # fmt: skip
    monitor = plan.environment.adapter("monitoring")(plan)
    try:
        mark = monitor.mark()
        assert set(mark) == {"sas-boras", "nal-trollhattan"}
        engine.channels["nal-trollhattan"]["catch-all-nal-trollhattan"]["queued"] += 4
        boras = monitor.activity(mark, site(plan, "sas-boras"))
        nal = monitor.activity(mark, site(plan, "nal-trollhattan"))
    finally:
        monitor.close()
    assert boras.orphaned == ()
    assert nal.orphaned == (
        f"4 nya meddelanden i catch-all-kön enligt {base}/api/sites/nal-trollhattan/statistics (3 → 7)",
    )


def test_a_missing_start_counts_from_zero_and_says_so(made: Monitoring) -> None:
    found = made.activity({"": "no answer at the start"}, None)
    assert found.orphaned == (
        f"3 nya meddelanden i catch-all-kön enligt {found.evidence['url']} (0 → 3)"
        " (inget utgångsläge från repetitionens början)",
    )


def test_the_bearer_token_comes_from_the_environment_and_goes_only_to_the_engine(
    make_plan, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE_TOKEN", TOKEN)
    plan = engine_plan(make_plan, engine, token_env="ENGINE_TOKEN")
    monitor = plan.environment.adapter("monitoring")(plan)
    try:
        monitor.activity(monitor.mark(), None)
    finally:
        monitor.close()
    assert engine.seen_auth and set(engine.seen_auth) == {f"Bearer {TOKEN}"}
    assert TOKEN not in repr(plan)


# -- where it applies, the central gate, the plan ---------------------------------------------------


def test_needs_monitoring_follows_the_plans_adapter(make_plan, engine: Engine) -> None:
    standards = engine_plan(make_plan, engine)
    assert routines.not_applicable(standards, None, {"needs": ["monitoring"]}) is None
    reference = load_plan(make_plan(lambda d: d["environment"].pop("bridge_base"))).plan
    why = routines.not_applicable(reference, None, {"needs": ["monitoring"]})
    assert why == "planen anger ingen environment.bridge_base"
    assert gate.blocked(standards, ["monitoring"]) is None
    engine_down = engine_plan(make_plan, engine, url=f"http://127.0.0.1:{free_port()}/x", heartbeat_url=None)
    blocked = gate.blocked(engine_down, ["monitoring"]) or ""
    assert blocked.startswith("blockerad av central störning: integrationsövervakningen svarar inte")


def test_plan_errors_name_the_field(make_plan) -> None:
    def bad_path(data: dict[str, Any]) -> None:
        data["environment"]["adapters"] = {"monitoring": "standards"}
        data["environment"]["monitoring"] = {"url": "http://127.0.0.1:1/s", "orphaned": "$.a[?(@.b>1)]"}

    with pytest.raises(PlanError, match=r"environment\.monitoring\.orphaned.*outside the supported subset"):
        load_plan(make_plan(bad_path))
    with pytest.raises(PlanError, match=r"standards needs environment\.monitoring"):
        load_plan(make_plan(lambda d: d["environment"].update(adapters={"monitoring": "standards"})))
    with pytest.raises(PlanError, match=r"environment\.monitoring\.url.*not an http\(s\) URL"):
        load_plan(make_plan(lambda d: d["environment"].update(monitoring={"url": "ftp://x/y"})))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.a.b", [1]),
        ("$['a']['b']", [1]),
        ("$.list[*].n", [1, 2, 3]),
        ("$.list[-1].n", [3]),
        ("$.list[?(@.name=='två')].n", [2]),
        ("$.list[?(@.tag.k==2)].n", [3]),
        ("$.map[*]", [10, 20]),
        ("$.missing.x", []),
    ],
)
def test_the_json_path_subset(path: str, expected: list[Any]) -> None:
    document = {
        "a": {"b": 1},
        "list": [{"name": "ett", "n": 1}, {"name": "två", "n": 2}, {"name": "tre", "n": 3, "tag": {"k": 2}}],
        "map": {"x": 10, "y": 20},
    }
    assert jsonpath.values(jsonpath.parse(path), document) == expected


@pytest.mark.parametrize("path", ["a.b", "$..deep", "$.a[?(@.n>1)]", "$.a[1:3]"])
def test_json_paths_outside_the_subset_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="JSON path"):
        jsonpath.parse(path)
