"""Where the console listens (#15): loopback by default; bound anywhere else (here 127.0.0.2, another
loopback address) it refuses to start without REHEARSAL_CONSOLE_TOKEN, then refuses every request
without the token and serves those that carry it, the page included, making no outside request."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import DEMO_PLAN, _move_ports, free_port
from tests.console_peer import chromium, console, rehearse
from tests.sockets import listeners

OTHER = "127.0.0.2"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run to show (the organisational part: it needs no target), once for the module."""
    folder = tmp_path_factory.mktemp("console-token")
    plan = (
        folder / "plan.yaml"
    )  # what make_plan writes: the demo plan on free ports, its attestations beside it
    data = _move_ports(yaml.safe_load(DEMO_PLAN.read_text(encoding="utf-8")), {})
    plan.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    plan.with_name("plan.attestations.yaml").write_bytes(
        DEMO_PLAN.with_name("demo.attestations.yaml").read_bytes()
    )
    done = rehearse(
        folder / "reports", "run", "--plan", str(plan), "--aspect", "organisatorisk", "--site", "sas-boras"
    )
    assert done.returncode == 1, done.stderr
    return folder / "reports"


def test_by_default_it_listens_on_loopback_only(reports: Path):
    with console(reports) as con:
        assert con.url.startswith("http://127.0.0.1:")
        port = int(con.url.rstrip("/").rsplit(":", 1)[1])
        found = listeners(con.process.pid)
        assert [(s.protocol, s.address, s.port) for s in found] == [("tcp", "127.0.0.1", port)], found
        assert httpx.get(con.url, timeout=5).status_code == 200  # no token asked on its own loopback


def test_bound_elsewhere_without_a_token_it_does_not_start(reports: Path):
    for given in ("", "short"):
        done = rehearse(
            reports, "console", "--bind", f"{OTHER}:{free_port()}", timeout=30,
            env={"REHEARSAL_CONSOLE_TOKEN": given} if given else None,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"rehearse: console bound to {OTHER} needs a token: set REHEARSAL_CONSOLE_TOKEN "
            "(at least 16 characters)"
        ], done.stderr
        assert done.stdout == ""
    bad = rehearse(reports, "console", "--bind", "127.0.0.1:99999", timeout=30)
    assert bad.returncode == 2 and bad.stderr.splitlines() == [
        "rehearse: --bind 127.0.0.1:99999: port 99999 is outside 0–65535"
    ]


def test_bound_elsewhere_every_request_needs_the_token(reports: Path):
    token = secrets.token_urlsafe(24)
    run_id = (reports / "latest").resolve().name
    with console(reports, "--bind", f"{OTHER}:{free_port()}", env={"REHEARSAL_CONSOLE_TOKEN": token}) as con:
        assert con.url.startswith(f"http://{OTHER}:") and token not in con.first_line
        base = con.url.rstrip("/")
        gets = [
            "/",
            "/events",
            "/static/console.js",
            "/static/console.css",
            f"/files/{run_id}/run.json",
            "/nope",
        ]
        posts = ["/attest", "/incident", "/runbook"]
        with httpx.Client(timeout=5) as client:
            for path in gets:
                assert client.get(base + path).status_code == 401, path
                assert (
                    client.get(
                        base + path, headers={"Authorization": "Bearer wrong-token-123456"}
                    ).status_code
                    == 401
                )
                assert (
                    client.get(base + path, headers={"Cookie": "rehearsal_console=nope"}).status_code == 401
                )
            for path in posts:
                refused = client.post(base + path, data={"action": "raise", "by": "Mallory", "title": "x"})
                assert refused.status_code == 401, path
            assert client.get(f"{base}/?token=wrong").status_code == 401
            run_dir = (reports / "latest").resolve()
            assert (
                not (run_dir / "incidents.jsonl").exists() and not (run_dir / "attestations.jsonl").exists()
            )

            bearer = {"Authorization": f"Bearer {token}"}
            assert client.get(base + "/", headers=bearer).status_code == 200
            assert client.get(base + "/static/console.js", headers=bearer).status_code == 200
            assert client.get(f"{base}/files/{run_id}/run.json", headers=bearer).status_code == 200
            with client.stream("GET", base + "/events", headers=bearer) as events:
                assert events.status_code == 200
                assert events.headers["content-type"].startswith("text/event-stream")

            once = client.get(f"{base}/?token={token}")  # the address a command centre is given, once
            assert once.status_code == 303 and once.headers["location"] == "/"
            assert client.get(base + "/").status_code == 200  # the cookie it set now carries the token


def test_the_page_served_with_the_token_works_and_makes_no_outside_request(reports: Path):
    token = secrets.token_urlsafe(24)
    with (
        console(reports, "--bind", f"{OTHER}:{free_port()}", env={"REHEARSAL_CONSOLE_TOKEN": token}) as con,
        chromium(OTHER) as pages,
    ):
        page = pages.page()
        assert page.goto(con.url).status == 401
        page.goto(f"{con.url}?token={token}")
        assert page.url == con.url  # the token left the address bar
        page.locator("#live-grid td[data-site='sas-boras'][data-aspect='organisatorisk']").wait_for()
        page.fill("#who", "Per Holm")
        page.select_option("#raise-site", "sas-boras")
        page.fill("#raise-title", "Testincident")
        page.locator("#raise-form").get_by_role("button", name="Lyft").click()
        page.locator("#live-incidents li.incident[data-state='raised']").wait_for(timeout=5_000)
        assert "Per Holm" in page.locator("#live-incidents").inner_text()  # who acted, on the record
        assert pages.outside(con.url) == []
        assert all(u.startswith(f"http://{OTHER}:") for u in pages.requests)
