"""Workstation readiness: a facts file (from collectors/) judged against the plan's baseline.

A workstation cannot be asked over the network the way a printer can; a collector runs on
it (``collectors/collect-workstation.ps1`` on Windows, ``collect_workstation.py`` on Linux,
or osquery) and leaves a JSON facts file (``rehearsal/probes/workstation-facts.schema.json``). This
module reads such a file, validates it, and checks every rule of the baseline, giving one
finding per broken rule. A file that is missing, not JSON or not valid facts is one clear
problem naming the file and the field; it never stops a sweep.

    load_facts(path)                          -> dict            raises FactsError
    check_workstation(path, baseline, role)   -> WorkstationReadiness  never raises
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from rehearsal.errors import UsageError
from rehearsal.files import NotRegularFile, TooLarge, read_bounded
from rehearsal.plan import Baseline

SCHEMA_ID = "rehearsal-workstation-facts/1"
SCHEMA_PATH = Path(__file__).with_name("workstation-facts.schema.json")  # package data: works installed
MAX_FACTS_BYTES = 4 * 1024 * 1024
MAX_EXACT_INT = 2**53  # beyond this a JSON number is not carried exactly (RFC 8259) nor formatted as float
VERSION = re.compile(r"[0-9]+(\.[0-9]+)*")
MAX_SHOWN = 200  # characters of a value quoted in a reason


class FactsError(UsageError):
    """A facts file that cannot be used; the message names the file and, where known, the field."""


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str


@dataclass(frozen=True)
class WorkstationReadiness:
    """One workstation against the baseline: ``findings`` are the broken rules, ``error`` an unusable file."""

    workstation: str
    facts_file: str
    hostname: str = ""
    findings: tuple[Finding, ...] = ()
    error: str | None = None
    facts: dict[str, Any] | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None

    @property
    def problems(self) -> list[str]:
        return [self.error] if self.error else [f"{f.rule}: {f.message}" for f in self.findings]

    @property
    def warnings(self) -> list[str]:
        return []

    @property
    def ready(self) -> bool:
        return self.error is None and not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ready": self.ready, "problems": self.problems}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def shown(text: object) -> str:
    """A value from the file as it may appear in a one-line reason: control characters and line
    breaks escaped (a reason is one line in a table or a terminal), long values clipped."""
    text = str(text)
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + "…"
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _field(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return shown("".join(parts).lstrip(".")) or "(file)"


def _odd_number(data: Any) -> tuple[list[Any], Any] | None:
    """The first number no check can judge: NaN, ±Infinity (Python's json reads them) or an integer
    too large to compare or print as a float. Iterative: a deep file must not exhaust the stack."""
    stack: list[tuple[list[Any], Any]] = [([], data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return path, node
        if isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_EXACT_INT:
            return path, node
        if isinstance(node, dict):
            stack += [([*path, k], v) for k, v in reversed(node.items())]
        elif isinstance(node, list):
            stack += [([*path, i], v) for i, v in reversed(list(enumerate(node)))]
    return None


def validate(data: Any, where: str) -> None:
    """Raise FactsError naming the file and the first bad field (all of them, ordered by place)."""
    from jsonschema import Draft202012Validator, FormatChecker

    validator = Draft202012Validator(schema(), format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        listed = "; ".join(f"field {_field(e.absolute_path)}: {shown(e.message)}" for e in errors[:3])
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        raise FactsError(f"{where}: not valid workstation facts: {listed}{more}")
    # the schema's version patterns end in `$`, which Python's re also matches before a final newline
    versions = [("os.version", data["os"]["version"]), ("citrix_workspace", data.get("citrix_workspace"))]
    versions += [(f"browsers.{name}", v) for name, v in (data.get("browsers") or {}).items()]
    for name, version in versions:
        if version is not None and not VERSION.fullmatch(version):
            raise FactsError(f"{where}: field {shown(name)}: not a version: {shown(repr(version))}")
    try:
        datetime.fromisoformat(data["collected_at"].replace("Z", "+00:00"))
    except ValueError:
        raise FactsError(
            f"{where}: field collected_at: not an RFC 3339 time: {shown(repr(data['collected_at']))}"
        ) from None


def load_facts(path: str | Path) -> dict[str, Any]:
    """Read a facts file (ours or osquery's JSON) and validate it; FactsError says what and where."""
    path = Path(path)
    try:
        text = read_bounded(path, MAX_FACTS_BYTES).decode("utf-8-sig")
    except TooLarge:
        raise FactsError(f"{path}: facts file larger than {MAX_FACTS_BYTES // 1024 // 1024} MiB") from None
    except NotRegularFile:
        raise FactsError(f"{path}: not a regular file (a facts file is a plain JSON file)") from None
    except FileNotFoundError:
        raise FactsError(
            f"{path}: no facts file (the collector has not reported from this workstation)"
        ) from None
    except UnicodeDecodeError as exc:
        raise FactsError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise FactsError(f"{path}: cannot read facts file: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FactsError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise FactsError(f"{path}: not JSON: {shown(exc)}") from None
    except RecursionError:
        raise FactsError(f"{path}: not JSON: nested too deeply") from None
    odd = _odd_number(data)
    if odd is not None:
        raise FactsError(f"{path}: field {_field(odd[0])}: not a usable number: {shown(odd[1])}")
    if is_osquery(data):
        data = from_osquery(data, str(path))
    validate(data, str(path))
    return data


# --- osquery -----------------------------------------------------------------------------


def is_osquery(data: Any) -> bool:
    """osquery results: {table name: [rows]} as `osqueryi --json` gives per query, os_version required."""
    return isinstance(data, dict) and isinstance(data.get("os_version"), list) and "schema" not in data


def _rows(data: dict[str, Any], table: str) -> list[dict[str, Any]]:
    rows = data.get(table) or []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _num(value: Any) -> float | None:
    """osquery's numbers are strings; one that is not a finite number is not reported at all."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def from_osquery(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Map osquery tables (os_version, system_info, logical_drives/mounts, programs/deb_packages) to facts."""
    os_row = (_rows(data, "os_version") or [{}])[0]
    system = (_rows(data, "system_info") or [{}])[0]
    platform = str(os_row.get("platform", "")).lower()
    family = "windows" if "windows" in platform else "macos" if platform == "darwin" else "linux"
    version = str(os_row.get("version") or "")
    if family == "windows" and os_row.get("build"):
        version = f"{os_row.get('major', 10)}.{os_row.get('minor', 0)}.{os_row['build']}"
    facts: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "hostname": system.get("hostname") or system.get("computer_name") or "",
        "collected_at": data.get("collected_at") or datetime.now(UTC).isoformat(timespec="seconds"),
        "collector": "osquery",
        "os": {
            "family": family,
            "name": os_row.get("name", ""),
            "version": version,
            "build": str(os_row.get("build", "")),
        },
    }
    hardware: dict[str, Any] = {}
    if _num(system.get("physical_memory")) is not None:
        hardware["ram_gb"] = round(_num(system["physical_memory"]) / 1024**3, 1)  # type: ignore[operator]
    for drive in _rows(data, "logical_drives"):
        if str(drive.get("boot_partition")) == "1" or str(drive.get("device_id", "")).upper() == "C:":
            free = _num(drive.get("free_space"))
            if free is not None:
                hardware["disk_free_gb"] = round(free / 1024**3, 1)
    for mount in _rows(data, "mounts"):
        if mount.get("path") == "/" and "disk_free_gb" not in hardware:
            blocks, size = _num(mount.get("blocks_available")), _num(mount.get("blocks_size"))
            if blocks is not None and size is not None:
                hardware["disk_free_gb"] = round(blocks * size / 1024**3, 1)
    if hardware:
        facts["hardware"] = hardware
    browsers: dict[str, str] = {}
    citrix = None
    names = {
        "microsoft edge": "edge",
        "google chrome": "chrome",
        "mozilla firefox": "firefox",
        "chromium": "chromium",
    }
    for row in _rows(data, "programs") + _rows(data, "deb_packages"):
        name, program_version = str(row.get("name", "")).lower(), str(row.get("version", ""))
        clean = re.match(r"[0-9]+(\.[0-9]+)*", program_version)
        if not clean:
            continue
        for label, key in names.items():
            if name.startswith(label) or name == key:
                browsers[key] = clean.group(0)
        if name.startswith("citrix workspace") or name == "icaclient":
            citrix = clean.group(0)
    if browsers:
        facts["browsers"] = browsers
    facts["citrix_workspace"] = citrix
    if not facts["hostname"]:
        raise FactsError(f"{where}: osquery facts: field system_info.hostname is missing")
    return facts


# --- the baseline --------------------------------------------------------------------------


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"[0-9]+", text))


def _version_key(text: str) -> tuple[tuple[int, str], ...]:
    """Each number of a version as (digit count, digits): compares like the integers do, without
    converting them (a collector's version of 5000 digits is beyond what int() reads)."""
    return tuple((len(n), n) for n in (m.lstrip("0") for m in re.findall(r"[0-9]+", text)))


def _older(found: str, minimum: str) -> bool:
    have, need = _version_key(found), _version_key(minimum)
    width = max(len(have), len(need))
    return have + ((0, ""),) * (width - len(have)) < need + ((0, ""),) * (width - len(need))


def citrix_version(text: str) -> str:
    """Citrix Workspace as YYMM[.x]: installers say 24.9.10.28 for the release named 2409."""
    match = re.fullmatch(r"(\d{2})\.(\d{1,2})((?:\.\d+)*)", text.strip())
    return f"{match.group(1)}{int(match.group(2)):02d}{match.group(3)}" if match else text


def findings_for(
    facts: dict[str, Any], baseline: Baseline, role: str = "", now: datetime | None = None
) -> list[Finding]:
    """One finding per broken baseline rule (pure)."""
    found: list[Finding] = []

    def add(rule: str, message: str) -> None:
        found.append(Finding(rule, message))

    os_facts = facts["os"]
    if baseline.os:
        family, version = os_facts["family"], os_facts["version"]
        if family not in baseline.os:
            add("os", f"{family} is not in the baseline (supported: {', '.join(baseline.os)})")
        elif _older(version, baseline.os[family]):
            add("os", f"{family} {version} is older than the baseline {baseline.os[family]}")
    hardware = facts.get("hardware") or {}
    if baseline.min_ram_gb is not None:
        ram = hardware.get("ram_gb")
        if ram is None:
            add("ram", "RAM not reported")
        elif ram < baseline.min_ram_gb:
            add("ram", f"{ram:g} GB RAM, baseline {baseline.min_ram_gb:g} GB")
    if baseline.min_disk_free_gb is not None:
        disk = hardware.get("disk_free_gb")
        if disk is None:
            add("disk", "free disk space not reported")
        elif disk < baseline.min_disk_free_gb:
            add("disk", f"{disk:g} GB free on the system drive, baseline {baseline.min_disk_free_gb:g} GB")
    if baseline.min_display:
        width, height = (int(n) for n in baseline.min_display.split("x"))
        displays = facts.get("displays") or []
        if not displays:
            add("display", "no display reported")
        elif not any(d["width"] >= width and d["height"] >= height for d in displays):
            best = max(displays, key=lambda d: d["width"] * d["height"])
            add(
                "display",
                f"largest display {best['width']}x{best['height']}, baseline {baseline.min_display}",
            )
    browsers = facts.get("browsers") or {}
    for browser, minimum in baseline.browsers.items():
        if browser not in browsers:
            add(f"browser:{browser}", f"{browser} not installed (baseline {minimum})")
        elif _older(browsers[browser], minimum):
            add(f"browser:{browser}", f"{browser} {browsers[browser]} is older than the baseline {minimum}")
    if baseline.citrix_workspace:
        citrix = facts.get("citrix_workspace")
        if not citrix:
            add("citrix", f"Citrix Workspace app not installed (baseline {baseline.citrix_workspace})")
        elif _older(citrix_version(citrix), citrix_version(baseline.citrix_workspace)):
            add("citrix", f"Citrix Workspace {citrix} is older than the baseline {baseline.citrix_workspace}")
    needed = baseline.peripherals.get(role, []) if role else []
    working = {p["kind"] for p in facts.get("peripherals") or [] if p.get("status", "ok") in ("ok", "OK")}
    for kind in needed:
        if kind not in working:
            add(f"peripheral:{kind}", f"no working {kind} (needed for the role {role})")
    if baseline.endpoints is not None:
        endpoints = facts.get("endpoints") or []
        if not endpoints:
            add("endpoints", "no EHR endpoint measured from the workstation")
        for e in endpoints:
            url, rule = shown(e["url"]), baseline.endpoints
            if e.get("error"):
                add("endpoint", f"{url}: {shown(e['error'])}")
                continue
            latency = e.get("latency_ms")
            if latency is not None and latency > rule.max_latency_ms:
                add("endpoint-latency", f"{url}: {latency:g} ms, baseline at most {rule.max_latency_ms:g} ms")
            if rule.tls_trusted and e["url"].startswith("https") and e.get("tls_trusted") is not True:
                add("endpoint-tls", f"{url}: certificate not trusted by the workstation")
            days = e.get("cert_days_left")
            if e["url"].startswith("https") and days is not None and days < rule.min_cert_days:
                add(
                    "endpoint-cert",
                    f"{url}: certificate expires in {days:g} days (baseline {rule.min_cert_days})",
                )
    if baseline.max_clock_skew_s is not None:
        clock = facts.get("clock")
        if clock is None:
            add("clock", "clock skew not measured")
        elif abs(clock["skew_s"]) > baseline.max_clock_skew_s:
            add(
                "clock",
                f"clock off by {clock['skew_s']:+g} s, baseline at most {baseline.max_clock_skew_s:g} s",
            )
    if baseline.max_facts_age_h is not None:
        collected = datetime.fromisoformat(facts["collected_at"].replace("Z", "+00:00"))
        if collected.tzinfo is None:
            collected = collected.replace(tzinfo=UTC)
        age_h = ((now or datetime.now(UTC)) - collected).total_seconds() / 3600
        if age_h > baseline.max_facts_age_h:
            add(
                "facts-age",
                f"facts collected {age_h:.0f} h ago, baseline at most {baseline.max_facts_age_h:g} h",
            )
    return found


def check_workstation(
    workstation: str, path: str | Path, baseline: Baseline | None, role: str = "", now: datetime | None = None
) -> WorkstationReadiness:
    """Read, validate and judge one facts file; never raises for a bad file (it is the result)."""
    try:
        facts = load_facts(path)
    except FactsError as exc:
        return WorkstationReadiness(workstation=workstation, facts_file=str(path), error=str(exc))
    findings = findings_for(facts, baseline, role, now) if baseline else []
    return WorkstationReadiness(
        workstation=workstation,
        facts_file=str(path),
        hostname=facts["hostname"],
        findings=tuple(findings),
        facts=facts,
    )


__all__ = [
    "FactsError",
    "Finding",
    "WorkstationReadiness",
    "check_workstation",
    "findings_for",
    "from_osquery",
    "load_facts",
    "validate",
    "version_tuple",
]
