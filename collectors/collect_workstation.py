#!/usr/bin/env python3
"""Collect the facts of this Linux workstation for the go-live rehearsal.

The format: src/rehearsal/probes/workstation-facts.schema.json.

Standard library only, Python 3.8+: it runs on the workstation, not in the harness.

    python3 collect_workstation.py --endpoint https://ehr.example.se/ [--cafile CA.pem] [--out FILE]

Writes one JSON object (to --out, else stdout). What cannot be read is left out, never
guessed: the hardware check then says "not reported" for the rule that needed it.
Endpoints: TCP connect time, whether the certificate verifies against the system trust
store (or --cafile) and days until it expires; clock skew from the first endpoint's
HTTP Date header.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

SCHEMA = "rehearsal-workstation-facts/1"
VERSION = "collect_workstation.py 1"
BROWSERS = {
    "edge": ("microsoft-edge", "microsoft-edge-stable"),
    "chrome": ("google-chrome", "google-chrome-stable"),
    "chromium": ("chromium", "chromium-browser"),
    "firefox": ("firefox",),
}
# USB interface classes and product-name words → peripheral kinds the baseline speaks of
USB_CLASSES = {"0b": "smartcard-reader", "0e": "webcam"}
NAME_WORDS = (
    ("barcode", "barcode-scanner"),
    ("scanner", "barcode-scanner"),
    ("smart card", "smartcard-reader"),
    ("smartcard", "smartcard-reader"),
    ("signature", "signature-pad"),
    ("headset", "headset"),
    ("zebra", "label-printer"),
)


def run(*command: str, timeout: float = 5.0) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def os_facts() -> dict:
    release: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                key, _, value = line.partition("=")
                release[key] = value.strip().strip('"')
            break
        except OSError:
            continue
    version = re.match(r"[0-9]+(\.[0-9]+)*", release.get("VERSION_ID", "")) or re.match(
        r"[0-9]+(\.[0-9]+)*", platform.release()
    )
    return {
        "family": "linux",
        "name": release.get("PRETTY_NAME", platform.platform()),
        "version": version.group(0) if version else "0",
        "build": platform.release(),
    }


def hardware_facts() -> dict:
    facts: dict = {}
    try:
        meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
        kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
        facts["ram_gb"] = round(kib / 1024**2, 1)
    except (OSError, AttributeError, ValueError):
        pass
    try:
        facts["disk_free_gb"] = round(shutil.disk_usage("/").free / 1024**3, 1)
    except OSError:
        pass
    for key, path in (("manufacturer", "sys_vendor"), ("model", "product_name")):
        try:
            facts[key] = Path("/sys/class/dmi/id", path).read_text(encoding="utf-8").strip()
        except OSError:
            pass
    return facts


def displays() -> list:
    found = []
    for modes in sorted(Path("/sys/class/drm").glob("card*-*/modes")):
        try:
            status = (modes.parent / "status").read_text(encoding="utf-8").strip()
            first = modes.read_text(encoding="utf-8").split()
        except OSError:
            continue
        if status == "connected" and first:
            match = re.match(r"(\d+)x(\d+)", first[0])
            if match:
                found.append({"width": int(match.group(1)), "height": int(match.group(2))})
    return found


def browsers() -> dict:
    found = {}
    for name, programs in BROWSERS.items():
        for program in programs:
            if shutil.which(program):
                match = re.search(r"([0-9]+(\.[0-9]+)+)", run(program, "--version"))
                if match:
                    found[name] = match.group(1)
                    break
    return found


def citrix() -> str | None:
    version = run("dpkg-query", "-W", "-f=${Version}", "icaclient")
    version = version or run("rpm", "-q", "--qf", "%{VERSION}", "ICAClient")
    match = re.match(r"[0-9]+(\.[0-9]+)*", version)
    return match.group(0) if match else None


def peripherals() -> list:
    found = []
    for device in sorted(Path("/sys/bus/usb/devices").glob("*")):
        try:
            product = (device / "product").read_text(encoding="utf-8").strip()
        except OSError:
            continue
        interfaces = [p for p in device.glob("*/bInterfaceClass") if p.is_file()]
        classes = {p.read_text(encoding="utf-8").strip() for p in interfaces}
        kind = next((USB_CLASSES[c] for c in classes if c in USB_CLASSES), None)
        lowered = product.lower()
        kind = kind or next((k for word, k in NAME_WORDS if word in lowered), None)
        if kind:
            found.append({"kind": kind, "name": product, "status": "ok"})
    return found


def printers() -> list:
    found = []
    for line in run("lpstat", "-v").splitlines():
        match = re.match(r"device for (\S+): (\S+)", line)
        if match:
            found.append({"name": match.group(1), "port": match.group(2)})
    return found


def endpoint(url: str, cafile: str | None, timeout: float) -> dict:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    result: dict = {"url": url, "latency_ms": None, "tls_trusted": None, "cert_days_left": None}
    result["error"] = None
    try:
        started = time.perf_counter()
        with socket.create_connection((host, port), timeout=timeout):
            result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    except OSError as exc:
        result["error"] = f"cannot connect to {host}:{port}: {exc.strerror or exc}"
        return result
    if secure:
        context = ssl.create_default_context(cafile=cafile)
        try:
            with socket.create_connection((host, port), timeout=timeout) as raw:
                with context.wrap_socket(raw, server_hostname=host) as tls:
                    cert = tls.getpeercert() or {}
            result["tls_trusted"] = True
            if cert.get("notAfter"):
                left = (ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) / 86400
                result["cert_days_left"] = round(left, 1)
        except ssl.SSLCertVerificationError:
            result["tls_trusted"] = False  # the baseline rule names it; not an error of the measurement
        except (OSError, ssl.SSLError) as exc:
            result["tls_trusted"] = False
            result["error"] = f"TLS with {host}:{port} failed: {exc}"
    return result


def clock(url: str, timeout: float) -> dict | None:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    context = ssl._create_unverified_context() if secure else None  # only the Date header matters here
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = context.wrap_socket(raw, server_hostname=host) if context else raw
            request = f"HEAD {parts.path or '/'} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            sock.sendall(request.encode())
            head = sock.recv(16384).decode("latin-1")
            now = time.time()
    except OSError:
        return None
    match = re.search(r"^date:\s*(.+?)\r?$", head, re.I | re.M)
    if not match:
        return None
    server = parsedate_to_datetime(match.group(1))
    return {"skew_s": round(now - server.timestamp(), 1), "reference": url}


def collect(endpoints: list, cafile: str | None, timeout: float) -> dict:
    facts = {
        "schema": SCHEMA,
        "hostname": socket.gethostname(),
        "collected_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (3.8+)
        "collector": VERSION,
        "os": os_facts(),
        "hardware": hardware_facts(),
        "displays": displays(),
        "browsers": browsers(),
        "citrix_workspace": citrix(),
        "peripherals": peripherals(),
        "printers": printers(),
        "endpoints": [endpoint(url, cafile, timeout) for url in endpoints],
    }
    skew = clock(endpoints[0], timeout) if endpoints else None
    if skew is not None:
        facts["clock"] = skew
    return facts


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", action="append", default=[], help="EHR URL to measure (repeatable)")
    parser.add_argument("--cafile", help="CA bundle the EHR's certificate must verify against")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per network step (default 5)")
    parser.add_argument("--out", help="write here (default: stdout); written whole or not at all")
    args = parser.parse_args(argv)
    text = json.dumps(collect(args.endpoint, args.cafile, args.timeout), indent=2, ensure_ascii=False) + "\n"
    if args.out:
        tmp = Path(args.out + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, args.out)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
