"""No byte of a failing run carries the clinicians' password (issue #12, finding 1).

One real `rehearse run` against the reference hospital with the site's logins refused
(`login-denied-role`), so every browser scenario fails and keeps its Playwright trace
(fill values, DOM snapshots, the login POST), and with `fhir_base` pointing at a hostile
FHIR peer that echoes the `Authorization` header (and the credentials it decodes) in every
error body, so the failure messages carry it into results, attachments, pytest.log and the
report. Then every byte under the run folder (inside every zip, and the single-file
report's embedded base64 data decoded) and the CLI's stdout/stderr is searched for the
planted password: raw, URL-encoded, base64 (alone and as `user:password`) and JSON-escaped.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import pytest
import yaml
from pictures import VIEWPORT, picture_sizes

from conftest import free_port
from rehearsal.results import read_results

pytestmark = pytest.mark.slow

#: Distinctive, and different in each form: "/", "+", "%" change under URL-encoding, the
#: quote, backslash and "ö" under JSON escaping.
PASSWORD = 'Rött"Lösen/7f+3a%9c\\Q'
PASSWORD_ENV = "REHEARSAL_PASSWORD"
SITE = "sas-boras"
USER = "SE2321000131-P000000000101"  # the site's user in plans/demo.yaml
_EMBEDDED = re.compile(rb'd\("([^"]+)","([A-Za-z0-9+/=]*)"\)')


def forms(secret: str, users: list[str]) -> dict[str, bytes]:
    """Every spelling of the secret the scan looks for, by name."""
    plain = secret.encode()
    found = {
        "raw": plain,
        "url": quote(secret, safe="").encode(),
        "url-lower": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret, safe="")).encode(),
        "url-plus": quote_plus(secret, safe="").encode(),
        "json": json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
        "json-ascii": json.dumps(secret, ensure_ascii=True)[1:-1].encode(),
        "base64": base64.b64encode(plain),
        "base64-url": base64.urlsafe_b64encode(plain),
    }
    for pad in (1, 2):  # inside a longer base64 text the secret may start at any byte offset
        core = base64.b64encode(b"\0" * pad + plain)[4:]
        found[f"base64+{pad}"] = core[: len(core) - 4]
    for user in users:
        found[f"basic({user})"] = base64.b64encode(f"{user}:{secret}".encode())
    return found


def blobs(name: str, data: bytes, depth: int = 0) -> Iterator[tuple[str, bytes]]:
    """The file itself, then every zip member and every embedded base64 value, recursively."""
    yield name, data
    if depth > 4:
        return
    if data[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            return
        for member in archive.namelist():
            yield from blobs(f"{name}!{member}", archive.read(member), depth + 1)
        return
    for match in _EMBEDDED.finditer(data):  # Allure 3 single file: d("data/…", "<base64>")
        try:
            decoded = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            continue
        yield from blobs(f"{name}#{match.group(1).decode()}", decoded, depth + 1)


def scan(items: Iterator[tuple[str, bytes]], wanted: dict[str, bytes]) -> dict[str, int]:
    """Occurrences per `place (form)`; empty when the secret is nowhere."""
    hits: dict[str, int] = {}
    for place, data in items:
        for form, needle in wanted.items():
            count = data.count(needle)
            if count:
                hits[f"{place} ({form})"] = count
    return hits


def scan_tree(root: Path, wanted: dict[str, bytes]) -> dict[str, int]:
    def files() -> Iterator[tuple[str, bytes]]:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                yield from blobs(str(path.relative_to(root)), path.read_bytes())

    return scan(files(), wanted)


class HostileFhir(BaseHTTPRequestHandler):
    """The hospital's FHIR API behind a proxy that, for any request with credentials, answers 401
    echoing the caller's Authorization header and the credentials it decodes."""

    upstream = ("127.0.0.1", 0)
    seen_auth = 0

    def _answer(self) -> None:
        header = self.headers.get("Authorization", "")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not header:
            return self._forward(body)
        type(self).seen_auth += 1
        try:
            decoded = base64.b64decode(header.partition(" ")[2]).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        said = (
            f"refused Authorization: {header} (credentials {decoded}, password {decoded.partition(':')[2]})"
        )
        issue = {"severity": "error", "code": "login", "diagnostics": said}
        self._send(401, json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode())

    def _forward(self, body: bytes) -> None:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            reply = upstream.getresponse()
            self._send(reply.status, reply.read(), reply.getheader("Content-Type") or "application/fhir+json")
        finally:
            upstream.close()

    def _send(self, status: int, body: bytes, kind: str = "application/fhir+json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hostile_fhir() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), HostileFhir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def rehearse(reports: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", "rehearsal", "--reports", str(reports), *args],
        capture_output=True, timeout=300, env=env,
    )  # fmt: skip


def without_load(data: dict[str, Any]) -> None:
    data.pop("load")
    data["criteria"] = [c for c in data["criteria"] if c["kind"] != "load_slo"]


def test_the_scan_finds_the_password_in_every_form(tmp_path):
    """The scan can fail: each form planted where the run's artifacts would hide it is found."""
    wanted = forms(PASSWORD, [USER])
    member = json.dumps({"value": PASSWORD, "auth": f"Basic {wanted[f'basic({USER})'].decode()}"})
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("trace.trace", member)
        archive.writestr("resources/body", f"hsa_id={USER}&password={quote_plus(PASSWORD)}")
    embedded = base64.b64encode(inner.getvalue()).decode()
    (tmp_path / "index.html").write_text(f'<script>d("data/attachments/x.zip","{embedded}")</script>')
    (tmp_path / "result.json").write_text(json.dumps({"message": PASSWORD}, ensure_ascii=False))
    (tmp_path / "log.txt").write_bytes(b"x" + base64.b64encode(b"ab" + PASSWORD.encode()) + b"y")
    hits = scan_tree(tmp_path, wanted)
    assert hits.get("index.html#data/attachments/x.zip!trace.trace (json-ascii)") == 1
    assert hits.get(f"index.html#data/attachments/x.zip!trace.trace (basic({USER}))") == 1
    assert hits.get("index.html#data/attachments/x.zip!resources/body (url-plus)") == 1
    assert hits.get("log.txt (base64+2)") == 1
    assert hits.get("result.json (json)") == 1
    assert "index.html (raw)" not in hits  # compressed and base64-encoded: found only by opening it


def test_a_failing_run_leaves_the_password_nowhere(make_plan, tmp_path, hostile_fhir):
    reports = tmp_path / "reports"
    hospital_plan = make_plan(without_load)
    data = yaml.safe_load(hospital_plan.read_text(encoding="utf-8"))
    hospital = urlsplit(data["environment"]["fhir_base"])
    HostileFhir.upstream = (hospital.hostname, hospital.port)
    proxy = f"127.0.0.1:{hostile_fhir.server_address[1]}"
    data["environment"]["fhir_base"] = hospital._replace(netloc=proxy).geturl()  # the same FHIR, behind it
    run_plan = hospital_plan.with_name("hostile.yaml")
    run_plan.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    attestations = hospital_plan.with_name(f"{hospital_plan.stem}.attestations.yaml")
    run_plan.with_name("hostile.attestations.yaml").write_bytes(attestations.read_bytes())

    up = rehearse(
        reports, "reference", "up", "--plan", str(hospital_plan), "--fault", f"login-denied-role@{SITE}"
    )
    assert up.returncode == 0, up.stderr.decode()
    try:
        done = rehearse(reports, "run", "--plan", str(run_plan), "--site", SITE)
    finally:
        rehearse(reports, "reference", "down")
    assert done.returncode == 1, (done.stdout + done.stderr).decode()
    run_dir = (reports / "latest").resolve()
    # the premise: browser scenarios failed and kept their traces, the hostile peer saw credentials
    assert list((run_dir / "allure-results").glob("*-attachment.zip")), "no Playwright trace was kept"
    assert HostileFhir.seen_auth > 0, "no request carried credentials to the echoing peer"
    assert (run_dir / "allure-report" / "index.html").is_file()
    # the evidence this run kept, as rehearsal.browser and the plugin make it: traces of the actions
    # and requests without a screencast or DOM snapshots, step screenshots as JPEG, the failed
    # step's DOM as text
    for trace in (run_dir / "allure-results").glob("*-attachment.zip"):
        with zipfile.ZipFile(trace) as archive:
            events = b"".join(archive.read(n) for n in archive.namelist() if n.endswith(".trace"))
        assert b'"type":"before"' in events, f"{trace.name} records no action"
        assert b'"frame-snapshot"' not in events and b'"screencast-frame"' not in events, trace.name
    doms = [
        name
        for result in read_results(run_dir / "allure-results")
        for name, _ in result.attachments
        if name.startswith("Sidans DOM vid felet")
    ]
    assert doms, "no failed step kept its page's DOM"
    shots = list((run_dir / "allure-results").glob("*-attachment.jpg"))
    assert shots and all(p.read_bytes()[:3] == b"\xff\xd8\xff" for p in shots)
    # a failed step is pictured whole (a passed one as the screen shows it: test_end_to_end's demo)
    failed = picture_sizes(run_dir).get("failed", set())
    assert failed and all(w == VIEWPORT[0] and h >= VIEWPORT[1] for w, h in failed), failed

    wanted = forms(PASSWORD, [u["hsa_id"] for s in data["sites"] for u in s["users"]])
    hits = scan_tree(run_dir, wanted)
    hits |= scan(iter([("stdout", done.stdout), ("stderr", done.stderr)]), wanted)
    assert not hits, f"{sum(hits.values())} occurrences of the password: {json.dumps(hits, indent=1)}"
