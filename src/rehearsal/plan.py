"""The rehearsal plan: one YAML file per go-live wave, validated into typed models.

The plan is the only place that knows about sites, devices, people and targets; every
other module takes what it needs from here, so a region can point the harness at a
plan we have never seen. Loading never raises a traceback at the user: it collects
every problem as ``file:line: field: message`` in a :class:`PlanError`.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from rehearsal import adapters
from rehearsal.adapters import monitoring_jsonpath
from rehearsal.errors import UsageError
from rehearsal.files import NotRegularFile, TooLarge, read_bounded
from rehearsal.identities import (
    IdentityError,
    check_hsa_id,
    check_personnummer,
)


def _repeated(values: Sequence[str]) -> list[str]:
    """The values that occur more than once, sorted (linear: a region has thousands of devices)."""
    return sorted(value for value, n in Counter(values).items() if n > 1)


def _cycle(after: Mapping[str, list[str]]) -> list[str]:
    """A circle of ``after`` references (``a → b → a``), or [] when there is none (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for root in after:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(after.get(root, [])))]
        state[root], path = 1, [root]
        while stack:
            node, todo = stack[-1]
            nxt = next(todo, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt) and nxt in after:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(after[nxt])))
    return []


def _port_of(value: str) -> int | None:
    """The URL's port, None when it names none; ValueError for 0 or one outside 1–65535.

    urlsplit only checks the range when ``.port`` is read, which would happen later (the
    preflight) as an internal error; and port 0 would silently mean the scheme's default.
    """
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None and parts.netloc.endswith(":"):
        port = 0
    if port is not None and not 1 <= port <= 65535:
        given = parts.netloc.rpartition(":")[2]
        raise ValueError(f"port {given or '(empty)'} is not between 1 and 65535 in {value!r}")
    return port


Aspect = Literal["organisatorisk", "klinisk", "teknisk"]
ASPECTS: tuple[str, ...] = ("organisatorisk", "klinisk", "teknisk")
Severity = Literal["blocker", "critical", "normal", "minor"]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]


class _Model(BaseModel):
    # allow_inf_nan=False: `.inf` as a timeout or a duration would silently lift the time bound
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Timeouts(_Model):
    """Seconds; every client and probe takes its limits from here."""

    connect: float = Field(3.0, gt=0)
    read: float = Field(10.0, gt=0)
    device: float = Field(2.0, gt=0)


class MonitoringProbe(_Model):
    """An integration engine's statistics over HTTP/JSON, read by the ``standards`` monitoring adapter.

    JSON paths are the small subset of :mod:`rehearsal.adapters.monitoring_jsonpath`; ``{site}``
    in the URLs or paths stands for the plan site id (engines that show each site apart).
    """

    url: str
    """Where the queue statistics are (``orphaned``, ``failed``, ``queue_depth`` are read here)."""
    heartbeat_url: str | None = None
    """Where the heartbeat is, when not at ``url``."""
    heartbeat: str | None = None
    """JSON path to the time of the last beat (ISO 8601, or epoch seconds/milliseconds)."""
    max_heartbeat_age_s: float = Field(60.0, gt=0)
    queue_depth: str | None = None
    """JSON path to the messages waiting (numbers found are added up)."""
    max_queue_depth: float | None = Field(None, ge=0)
    orphaned: str | None = None
    """JSON path to the catch-all/orphan queue's count: it must not grow during the rehearsal."""
    failed: str | None = None
    """JSON path to the errored messages' count: it must not grow during the rehearsal."""
    token_env: str | None = None
    """Environment variable holding a bearer token for the engine's API (never the token itself)."""

    @field_validator("url", "heartbeat_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.replace("{site}", "site"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {value!r}")
        _port_of(value.replace("{site}", "site"))
        return value

    @field_validator("heartbeat", "queue_depth", "orphaned", "failed")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            monitoring_jsonpath.parse(value.replace("{site}", "site"))
        return value


class MigrationSides(_Model):
    """Both sides of the migration as FHIR R4 Appointment, for the ``standards`` migration adapter."""

    source_fhir: str
    """FHIR base of the old system (or of its export loaded into a FHIR server)."""
    target_fhir: str | None = None
    """FHIR base holding the migrated bookings; default ``environment.fhir_base``."""
    identifier_system: str | None = None
    """The Appointment identifier that is the booking number on both sides (default: the first)."""
    page_size: int = Field(100, gt=0, le=1000)
    """``_count`` per search page."""

    @field_validator("source_fhir", "target_fhir")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_base(value)


def _http_base(value: str) -> str:
    """An http(s) base URL with a valid port, without its trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    _port_of(value)
    return value.rstrip("/")


class RecordsSides(_Model):
    """The legacy side's FHIR face, for the ``standards`` records adapter (the new side is ``fhir_base``)."""

    legacy_fhir: str

    @field_validator("legacy_fhir")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_base(value)


class LabLink(_Model):
    """The lab link over HL7 v2, for the ``standards`` lab adapter: what to send and where results come."""

    results_mllp: str
    """Where the rehearsal listens for the lab's ORU^R01 (``mllp://host:port``, a local address):
    the lab's test instance sends results for the rehearsal's orders here."""
    message: Literal["ORM^O01", "OML^O21"] = "ORM^O01"
    """The order message the lab takes."""

    @field_validator("results_mllp")
    @classmethod
    def _mllp(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "mllp" or not parts.hostname or not _port_of(value) or parts.path not in ("", "/"):
            raise ValueError(f"expected mllp://host:port, got {value!r}")
        return value.rstrip("/")


class ReferralSides(_Model):
    """The legacy side's FHIR face, for the ``standards`` referrals adapter (the new side: ``fhir_base``)."""

    legacy_fhir: str

    @field_validator("legacy_fhir")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_base(value)


class Environment(_Model):
    name: str
    kind: Literal["test", "production"]
    fhir_base: str
    web_base: str
    allowed_hosts: list[str] = Field(min_length=1)
    timeouts: Timeouts = Timeouts()
    # Coexistence endpoints (optional; the reference hospital starts a component for each one set).
    legacy_base: str | None = None
    """Legacy EHR for units not yet live: JSON API under /api, an HTML overview at /."""
    lab_mllp: str | None = None
    """Lab system, HL7 v2 over MLLP: ``mllp://host:port``."""
    bridge_base: str | None = None
    """The reference hospital's coexistence bridge (its JSON API: ``rehearsal.adapters.bridge_reference``)."""
    bridge_mllp: str | None = None
    """Where the bridge takes HL7 v2 results (ORU^R01) from the lab: ``mllp://host:port``."""
    directory: str | None = None
    """HSA/KiV directory: ``ldap://host:port`` or the path of an LDIF export."""
    adapters: dict[str, str] = {}
    """Which adapter reaches each interface (``web_ui: gnuhealth``); unnamed ones: ``reference``."""
    monitoring: MonitoringProbe | None = None
    """The integration engine's HTTP/JSON statistics (``adapters: {monitoring: standards}``)."""
    migration: MigrationSides | None = None
    """Both sides of the migration over FHIR (``adapters: {migration: standards}``)."""
    records: RecordsSides | None = None
    """The legacy side's FHIR, for the NPÖ-like read (``adapters: {records: standards}``)."""
    lab: LabLink | None = None
    """The lab link over HL7 v2: results in, message type (``adapters: {lab: standards}``)."""
    referrals: ReferralSides | None = None
    """The legacy side's FHIR, for referrals across the boundary (``adapters: {referrals: standards}``)."""

    @model_validator(mode="after")
    def _monitoring_given(self) -> Environment:
        if adapters.chosen(self.adapters, "monitoring") == "standards" and self.monitoring is None:
            raise ValueError("adapters.monitoring: standards needs environment.monitoring (url, JSON paths)")
        if adapters.chosen(self.adapters, "migration") == "standards" and self.migration is None:
            raise ValueError("adapters.migration: standards needs environment.migration (source_fhir)")
        if adapters.chosen(self.adapters, "records") == "standards" and self.records is None:
            raise ValueError("adapters.records: standards needs environment.records (legacy_fhir)")
        if adapters.chosen(self.adapters, "lab") == "standards" and (self.lab is None or not self.lab_mllp):
            raise ValueError(
                "adapters.lab: standards needs environment.lab_mllp and environment.lab (results_mllp)"
            )
        if adapters.chosen(self.adapters, "referrals") == "standards" and self.referrals is None:
            raise ValueError("adapters.referrals: standards needs environment.referrals (legacy_fhir)")
        return self

    @field_validator("adapters")
    @classmethod
    def _known_adapters(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [p for i, n in value.items() if (p := adapters.check(i, n))]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def adapter(self, interface: str) -> Any:
        """The adapter this environment names for ``interface`` (see :mod:`rehearsal.adapters`)."""
        return adapters.resolve(interface, adapters.chosen(self.adapters, interface))

    @field_validator("legacy_base", "bridge_base")
    @classmethod
    def _optional_http_url(cls, value: str | None) -> str | None:
        return None if value is None else cls._http_url(value)

    @field_validator("lab_mllp", "bridge_mllp")
    @classmethod
    def _mllp_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        port = _port_of(value)
        if parts.scheme != "mllp" or not parts.hostname or not port or parts.path not in ("", "/"):
            raise ValueError(f"expected mllp://host:port, got {value!r}")
        return value.rstrip("/")

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str | None) -> str | None:
        if value is None or "://" not in value:
            return value  # an LDIF file
        parts = urlsplit(value)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or not _port_of(value):
            raise ValueError(f"expected ldap://host:port or the path of an LDIF file, got {value!r}")
        return value.rstrip("/")

    @field_validator("fhir_base", "web_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {value!r}")
        _port_of(value)
        return value.rstrip("/")

    def host_allowed(self, url: str) -> bool:
        return (urlsplit(url).hostname or "") in self.allowed_hosts


DeviceKind = Literal["document", "wristband", "label"]


class SnmpAccess(_Model):
    """Where a printer answers SNMP v2c (Printer-MIB): its community, and host/port if not the URI's."""

    community: str = Field(min_length=1, max_length=64)
    port: int = Field(161, gt=0, lt=65536)
    host: str | None = None


class Printer(_Model):
    id: Slug
    kind: DeviceKind
    uri: str
    location: str = ""
    snmp: SnmpAccess | None = None

    @field_validator("uri")
    @classmethod
    def _ipp_uri(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("ipp", "ipps", "tcp", "snmp") or not parts.hostname or not _port_of(value):
            raise ValueError(f"expected ipp://host:port/path (or tcp:// for ZPL), got {value!r}")
        return value


class Person(_Model):
    name: str = Field(min_length=1)
    phone: str | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\+?[0-9][0-9 -]{5,19}", value):
            raise ValueError(f"not a phone number: {value!r}")
        return value


class User(_Model):
    """A clinician account in the target, by HSA-id; the password comes from the environment."""

    hsa_id: str
    name: str
    role: str
    password_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")

    @field_validator("hsa_id")
    @classmethod
    def _hsa(cls, value: str) -> str:
        return _identity(check_hsa_id, value)


class Workstation(_Model):
    """A workstation whose facts file (see collectors/) is checked against the plan's baseline."""

    id: Slug
    role: str = ""
    location: str = ""
    facts: str | None = None  # a facts file; default <workstation_facts>/<site>/<id>.json


class DeviceModels(_Model):
    """What the EHR supports for one device kind: approved make/model patterns, required capabilities."""

    approved: list[str] = []  # glob patterns on make-and-model, case-insensitive; empty = any model
    capabilities: list[str] = []  # each one required; "pdf|pcl" = either (zpl, pdf, pcl, ps, 300dpi …)


class SupplyThresholds(_Model):
    """Supply levels in percent: below warn_below a warning; below fail_below the device is not ready."""

    warn_below: float = Field(20, ge=0, le=100)
    fail_below: float | None = Field(None, ge=0, le=100)


class EndpointBaseline(_Model):
    max_latency_ms: float = Field(200, gt=0)
    tls_trusted: bool = True
    min_cert_days: int = Field(14, ge=0)


class Baseline(_Model):
    """The minimum a workstation needs to run the EHR; a rule left out is not checked."""

    os: dict[str, str] = {}  # OS family -> minimum version, e.g. {windows: "10.0.19045"}
    min_ram_gb: float | None = Field(None, gt=0)
    min_disk_free_gb: float | None = Field(None, ge=0)
    min_display: str | None = Field(None, pattern=r"^[0-9]+x[0-9]+$")
    browsers: dict[str, str] = {}  # browser -> minimum version; every one listed must be installed
    citrix_workspace: str | None = None  # minimum Citrix Workspace app version
    peripherals: dict[str, list[str]] = {}  # workstation role -> peripheral kinds it needs
    endpoints: EndpointBaseline | None = None
    max_clock_skew_s: float | None = Field(None, ge=0)
    max_facts_age_h: float | None = Field(None, gt=0)


class Unit(_Model):
    """A sub-unit of a site (ward, clinic, lab) with its own HSA-id, as in HSA/KiV."""

    id: Slug
    name: str
    hsa_id: str
    system: Literal["new", "legacy"] | None = None
    """Which EHR the unit works in, when it differs from its site's (a unit that goes live later)."""

    @field_validator("hsa_id")
    @classmethod
    def _hsa(cls, value: str) -> str:
        return _identity(check_hsa_id, value)


class Site(_Model):
    id: Slug
    name: str
    hsa_id: str
    printers: list[Printer] = []
    command_centre: dict[str, Person | None] = {}
    users: list[User] = []
    system: Literal["new", "legacy"] = "new"
    """Which EHR the site works in during coexistence: the new one, or the legacy one (not yet live)."""
    lab_route: Literal["bridge", "direct"] = "direct"
    """Local routine for lab orders of a new-EHR site: through the coexistence bridge (HL7 v2) or direct."""
    units: list[Unit] = []
    workstations: list[Workstation] = []

    @field_validator("hsa_id")
    @classmethod
    def _hsa(cls, value: str) -> str:
        return _identity(check_hsa_id, value)


class SiteProbe(_Model):
    """A probe machine inside a site's network: it checks that site's devices where the central run
    cannot reach them and brings back a bundle (``rehearse probe``, ``rehearse import``)."""

    id: Slug
    sites: list[str] = Field(min_length=1)
    """The plan sites whose devices only this probe checks (the central run leaves them to it)."""
    address: str | None = None
    """Optional: where the probe sits in the site network (shown on its bundle; the probe records
    the address it actually used)."""


class Escalation(_Model):
    """How fast the command centre must react to a test incident (minutes)."""

    acknowledge_within_min: float = Field(gt=0)
    escalate_within_min: float = Field(gt=0)


class CommandCentre(_Model):
    roles: list[str] = Field(min_length=1)
    central: dict[str, Person | None] = {}
    escalation: Escalation | None = None


class TransitionActivity(_Model):
    """One activity of the transition plan (equipment, HSA/KiV review, migration, …)."""

    id: Slug
    title: str
    owner: str
    due: date
    done: bool = False
    evidence: str | None = None
    site: str | None = None


class TestIdentity(_Model):
    personnummer: str
    name: str

    @field_validator("personnummer")
    @classmethod
    def _pnr(cls, value: str) -> str:
        return _identity(check_personnummer, value)


class LoadPath(_Model):
    """One clinician workflow under load (its requests are named by ``id``) and its SLOs."""

    id: Slug
    title: str
    p95_ms: float = Field(gt=0)
    p99_ms: float | None = Field(None, gt=0)
    max_error_ratio: float = Field(0.01, ge=0, le=1)
    min_rps: float | None = Field(None, gt=0)
    """Fewest successful requests per second the path must carry over the run (its throughput SLO)."""
    weight: int = Field(1, ge=0, le=1000)
    """How often a user runs this path relative to the others (every role)."""
    weights: dict[str, int] = {}
    """Per role (a plan user's role) → weight, overriding ``weight``; 0 = that role never does it."""

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {role: w for role, w in value.items() if not 0 <= w <= 1000}
        if bad:
            raise ValueError(f"weights must be 0–1000, got {bad}")
        return value


class LoadProfile(_Model):
    users: int = Field(gt=0)
    spawn_rate: float = Field(gt=0)
    duration_s: float = Field(gt=0)
    paths: list[LoadPath] = Field(min_length=1)
    mix: dict[str, float] = {}
    """Role (of the plan's users) → share of the simulated users; empty = every role equally."""
    workers: int = Field(0, ge=0, le=64)
    """Locust worker processes on this machine (0 = one process); `rehearse load --workers N` overrides."""
    master_bind: str = "127.0.0.1"
    """Where the Locust master listens for workers (``HOST`` or ``HOST:PORT``); loopback unless opened."""

    @field_validator("master_bind")
    @classmethod
    def _master_bind(cls, value: str) -> str:
        host, colon, port = value.strip().rpartition(":") if ":" in value else (value.strip(), "", "")
        if not host or (colon and not (port.isdigit() and 1 <= int(port) <= 65535)):
            raise ValueError(f"expected HOST or HOST:PORT with a port between 1 and 65535, got {value!r}")
        return value

    @field_validator("mix")
    @classmethod
    def _mix(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {role: w for role, w in value.items() if w < 0}
        if bad:
            raise ValueError(f"mix weights must be 0 or more, got {bad}")
        if value and not any(value.values()):
            raise ValueError("mix gives every role weight 0: no one would work")
        return value

    @model_validator(mode="after")
    def _unique_paths(self) -> LoadProfile:
        ids = [p.id for p in self.paths]
        dupes = _repeated(ids)
        if dupes:
            raise ValueError(f"paths: duplicate id {', '.join(dupes)}")
        return self


CheckedKind = Literal["document", "wristband", "label", "workstation"]
CHECKED_KINDS: tuple[str, ...] = ("document", "wristband", "label", "workstation")
DEVICE_CRITERIA: dict[str, str] = {
    "document": "tech-printers",
    "wristband": "tech-wristband-printers",
    "label": "tech-label-printers",
    "workstation": "tech-workstations",
}
"""The documented criterion id each kind of checked device feeds (hardware_checks/)."""


class Criterion(_Model):
    """One line of the go/no-go scorecard; tests feed it through their `criterion` label."""

    id: Slug
    title: str
    kind: Literal[
        "all_pass", "success_rate", "device_readiness", "load_slo", "run_complete", "findings", "runbook"
    ]
    aspect: Aspect | None = None
    per_site: bool = False
    threshold: float | None = Field(None, ge=0, le=1)
    severity: Severity = "critical"
    description: str = ""
    owner: str | None = None
    """Who fixes this criterion's findings: a command-centre role (that site's holder) or a roster name."""
    max_high: int | None = Field(None, ge=0)
    """Kind ``findings``: no open critical finding and at most this many open high ones (default 0)."""
    system: Literal["new", "legacy", "any"] | None = None
    """Only at sites working in this EHR (``sites[].system``); default ``new`` for aspect klinisk
    (clinical workflows are those of the new EHR), ``any`` otherwise. Elsewhere: not applicable."""
    device_kinds: list[CheckedKind] | None = None
    """Only at sites with a device of one of these kinds (elsewhere: not applicable). For kind
    ``device_readiness`` also the kinds it counts; default by its id (:data:`DEVICE_CRITERIA`)."""

    @property
    def needs_system(self) -> str | None:
        """The EHR a site must work in for this criterion to apply there (None: any)."""
        system = self.system or ("new" if self.aspect == "klinisk" else "any")
        return None if system == "any" else system

    @model_validator(mode="after")
    def _max_high_only_for_findings(self) -> Criterion:
        if self.max_high is not None and self.kind != "findings":
            raise ValueError(f"max_high only applies to kind findings, not {self.kind}")
        return self

    @model_validator(mode="after")
    def _threshold_when_needed(self) -> Criterion:
        if self.kind in ("success_rate", "device_readiness") and self.threshold is None:
            raise ValueError(f"kind {self.kind} needs a threshold between 0 and 1")
        return self


_Day = date  # a field named `date` below must not shadow the type in its own annotation


class Waiver(_Model):
    """A failure the go/no-go panel accepted as a known risk, until its expiry (inclusive)."""

    criterion: Slug
    site: str | None = None
    reason: str = Field(min_length=1)
    accepted_by: str = Field(min_length=1)
    date: _Day
    expiry: _Day

    @model_validator(mode="after")
    def _expiry_after_date(self) -> Waiver:
        if self.expiry < self.date:
            raise ValueError(f"expiry {self.expiry} is before the date it was accepted ({self.date})")
        return self


class LabSettings(_Model):
    """The lab system: how long it takes to answer, and how long the rehearsal allows."""

    result_delay_s: float = Field(2.0, ge=0, le=3600)
    """Seconds from the order's ACK to the ORU^R01 result (the reference lab waits this long)."""
    result_within_s: float = Field(60.0, gt=0)
    """The check: every lab order has its result on the right patient within this many seconds."""
    application: str = Field("LAB", pattern=r"^[A-Za-z0-9_.-]{1,20}$")
    """MSH-3/MSH-5 name of the lab system."""
    facility: str = Field("KLINKEM", pattern=r"^[A-Za-z0-9_.-]{1,20}$")


class BridgeSettings(_Model):
    poll_interval_s: float = Field(0.5, gt=0, le=60)
    """How often the bridge looks for new work in each EHR (it reads at most `batch` items a time)."""
    batch: int = Field(50, gt=0, le=1000)


class MigrationSettings(_Model):
    bookings_per_patient: int = Field(2, ge=0, le=20)
    """Future bookings per test identity and new-EHR site in the legacy extract."""
    first_day: date | None = None
    """Day of the first migrated booking; default: the day after the hospital starts."""


class Coexistence(_Model):
    """Coexistence of the new and the legacy EHR: lab, bridge, migration and directory settings."""

    lab: LabSettings = LabSettings()
    bridge: BridgeSettings = BridgeSettings()
    migration: MigrationSettings = MigrationSettings()
    directory_base_dn: str = Field("o=VGR,c=SE", min_length=3)
    """Base DN of the HSA/KiV tree (units and people are below it)."""


RunbookKind = Literal["automated", "manual", "gate", "rollback"]
GATE_KINDS: tuple[str, ...] = ("all_pass", "success_rate", "device_readiness", "load_slo")
"""Criterion kinds a gate can hold on: judged on the results in at the moment it is reached."""


class RunbookStep(_Model):
    """One step of the cutover on the real clock: who, when, how long, and how its times are known.

    ``automated`` takes its actual start and end from the run's results (those with one of its
    ``criteria`` labels or ``tags``); ``manual`` from people (``rehearse runbook start|done|fail``);
    ``gate`` is reached when every step before it is done and holds when its ``criteria`` do;
    ``rollback`` is the drill back to the old routine, timed by people or, naming criteria or
    tags, by the run.
    """

    id: Slug
    title: str
    owner: str
    """A command-centre role or a roster name: who runs the step."""
    kind: RunbookKind
    start: float | None = Field(None, ge=0)
    """Planned start in minutes after T0 (the run's start); with ``after`` the later of the two."""
    after: list[Slug] = []
    """Steps that must be done first (planned start: when the last of them ends)."""
    duration: float = Field(ge=0)
    """Planned minutes (0 only for a gate)."""
    criteria: list[Slug] = []
    tags: list[str] = []
    site: str | None = None
    """Only results of this site count (default: the runbook's ``site``, else every site)."""

    @model_validator(mode="after")
    def _times_have_a_source(self) -> RunbookStep:
        if self.kind == "automated" and not (self.criteria or self.tags):
            raise ValueError("an automated step names the criteria and/or tags whose results time it")
        if self.kind == "gate" and not self.criteria:
            raise ValueError("a gate names the criteria that must hold when it is reached")
        if self.kind == "gate" and self.tags:
            raise ValueError("a gate holds on criteria, not tags")
        if self.kind == "manual" and (self.criteria or self.tags):
            raise ValueError("a manual step is timed by people; criteria and tags belong to automated steps")
        if self.duration == 0 and self.kind != "gate":
            raise ValueError(f"duration must be more than 0 minutes for a {self.kind} step")
        return self


class Runbook(_Model):
    """The steps of the day against the window the region accepted (minutes of plan time)."""

    window: float = Field(gt=0)
    margin: float | str = 0
    """Minutes, or a percentage (``"10%"``): of the window for the forecast, of a drill's duration."""
    clock: float = Field(1, gt=0, le=3600)
    """Plan seconds per real second: ``60`` runs a minute of the plan in a second (exercises, the demo)."""
    site: str | None = None
    steps: list[RunbookStep] = Field(min_length=1)

    @field_validator("margin")
    @classmethod
    def _margin(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            number = value.strip().removesuffix("%").strip()
            if not value.strip().endswith("%") or not re.fullmatch(r"[0-9]+(\.[0-9]+)?", number):
                raise ValueError(f"expected minutes or a percentage such as '10%', got {value!r}")
            if float(number) > 100:
                raise ValueError(f"a percentage margin is at most 100%, got {value!r}")
        elif value < 0:
            raise ValueError(f"margin must be 0 or more minutes, got {value}")
        return value

    def margin_of(self, minutes: float) -> float:
        """The margin in minutes against ``minutes`` (the window, or a drill's duration)."""
        if isinstance(self.margin, str):
            return minutes * float(self.margin.strip().removesuffix("%")) / 100
        return float(self.margin)

    def step(self, step_id: str) -> RunbookStep:
        for step in self.steps:
            if step.id == step_id:
                return step
        known = ", ".join(s.id for s in self.steps)
        raise UsageError(f"the runbook has no step {step_id!r} (steps: {known})")


class Plan(_Model):
    rehearsal: Slug
    title: str
    language: Literal["sv", "en"] = "sv"
    environment: Environment
    sites: list[Site] = Field(min_length=1)
    command_centre: CommandCentre
    test_identities: list[TestIdentity] = Field(min_length=1)
    load: LoadProfile | None = None
    criteria: list[Criterion] = Field(min_length=1)
    device_models: dict[DeviceKind, DeviceModels] = {}
    """Per device kind: approved make/model patterns and required capabilities (EHR compatibility)."""
    supplies: SupplyThresholds = SupplyThresholds()
    test_print: bool = False
    """Send a labelled test label/page to every reachable, ready printer during the hardware checks."""
    baseline: Baseline | None = None
    workstation_facts: str | None = None
    """Folder of workstation facts files (<site>/<workstation>.json), relative to the plan file."""
    wave: Slug | None = None
    """Rehearsals of one go-live wave (GR1, GR2, …) share a history; default: the rehearsal slug."""
    owners: dict[str, str] = {}
    """Who fixes findings, by `site/aspect`, site, aspect or `default`: a role or a roster name."""
    waivers: list[Waiver] = []
    waivers_file: str | None = None
    """YAML list of waivers (same shape as `waivers`), relative to the plan file."""
    transition: list[TransitionActivity] = []
    coexistence: Coexistence = Coexistence()
    runbook: Runbook | None = None
    """The cutover's steps on the real clock (``rehearsal.runbook``), judged by a ``runbook`` criterion."""
    probes: list[SiteProbe] = []
    """Site probes (``rehearsal.site_probe``): which probe checks which site's devices."""

    @model_validator(mode="after")
    def _unique_units(self) -> Plan:
        """Unit ids are unique in the plan; an HSA-id names one site, unit or user only."""
        ids = [u.id for s in self.sites for u in s.units] + [s.id for s in self.sites]
        dupes = _repeated(ids)
        if dupes:
            raise ValueError(f"sites: unit id also used by another unit or site: {', '.join(dupes)}")
        hsa = [s.hsa_id for s in self.sites] + [u.hsa_id for s in self.sites for u in s.units]
        hsa += list({u.hsa_id for s in self.sites for u in s.users})
        dupes = _repeated(hsa)
        if dupes:
            raise ValueError(f"sites: HSA-id used twice: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> Plan:
        for label, ids in (
            ("sites", [s.id for s in self.sites]),
            ("printers", [p.id for s in self.sites for p in s.printers]),
            ("workstations", [w.id for s in self.sites for w in s.workstations]),
            ("criteria", [c.id for c in self.criteria]),
        ):
            dupes = _repeated(ids)
            if dupes:
                raise ValueError(f"{label}: duplicate id {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _one_criterion_per_device_kind(self) -> Plan:
        """A device result feeds one readiness line: two listing the same kind would split it."""
        kinds = [k for c in self.criteria if c.kind == "device_readiness" for k in c.device_kinds or ()]
        dupes = _repeated(kinds)
        if dupes:
            raise ValueError(
                f"criteria: device kind in device_kinds of two device_readiness criteria: {', '.join(dupes)}"
            )
        return self

    @model_validator(mode="after")
    def _evidence_refs(self) -> Plan:
        """Waivers and owners must name criteria, sites, roles and people the plan has."""
        criteria = {c.id for c in self.criteria}
        sites = {s.id for s in self.sites}
        roles = set(self.command_centre.roles)
        people = {p.name for p in self.command_centre.central.values() if p} | {
            p.name for s in self.sites for p in s.command_centre.values() if p
        }
        for i, waiver in enumerate(self.waivers):
            if waiver.criterion not in criteria:
                raise ValueError(f"waivers: [{i}] names no criterion of the plan: {waiver.criterion!r}")
            if waiver.site is not None and waiver.site not in sites | {"central"}:
                raise ValueError(f"waivers: [{i}] names no site of the plan: {waiver.site!r}")
        refs = [(f"owners.{k}", v) for k, v in self.owners.items()]
        refs += [(f"criteria {c.id} owner", c.owner) for c in self.criteria if c.owner]
        for where, ref in refs:
            if ref not in roles and ref not in people:
                raise ValueError(
                    f"owners: {where}: {ref!r} is neither a command-centre role ({', '.join(sorted(roles))}) "
                    "nor a person in the roster"
                )
        places, aspects = sites | {"central"}, set(ASPECTS)
        for key in self.owners:
            site, slash, aspect = key.partition("/")
            ok = (site in places and aspect in aspects) if slash else key in places | aspects | {"default"}
            if not ok:
                raise ValueError(f"owners: {key!r} is not `default`, a site, an aspect or site/aspect")
        return self

    @model_validator(mode="after")
    def _runbook_refs(self) -> Plan:
        """Steps wait only for steps that exist, never in a circle; owners, sites and gates name
        what the plan has (each message starts with the step's field, so it gets the step's line)."""
        kinds = [(i, c) for i, c in enumerate(self.criteria) if c.kind == "runbook"]
        if kinds and self.runbook is None:
            raise ValueError(f"criteria.{kinds[0][0]}.kind: kind runbook needs the plan's `runbook:`")
        if self.runbook is None:
            return self
        steps = self.runbook.steps
        index: dict[str, int] = {}
        for i, s in enumerate(steps):
            index.setdefault(s.id, i)  # the first of a repeated id: the second is the one refused
        roles = set(self.command_centre.roles)
        people = {p.name for p in self.command_centre.central.values() if p} | {
            p.name for s in self.sites for p in s.command_centre.values() if p
        }
        sites = {s.id for s in self.sites}
        if self.runbook.site is not None and self.runbook.site not in sites:
            raise ValueError(f"runbook.site: names no site of the plan: {self.runbook.site!r}")
        for i, step in enumerate(steps):
            where = f"runbook.steps.{i}"
            if index[step.id] != i:
                raise ValueError(f"{where}.id: step id {step.id!r} is used twice")
            unknown = [a for a in step.after if a not in index]
            if unknown:
                raise ValueError(
                    f"{where}.after: names no step of the runbook: {unknown[0]!r} (steps: {', '.join(index)})"
                )
            if step.owner not in roles and step.owner not in people:
                raise ValueError(
                    f"{where}.owner: {step.owner!r} is neither a command-centre role "
                    f"({', '.join(sorted(roles))}) nor a person in the roster"
                )
            if step.site is not None and step.site not in sites:
                raise ValueError(f"{where}.site: names no site of the plan: {step.site!r}")
            if step.kind == "gate":
                for name in step.criteria:
                    criterion = self.criterion(name)
                    if criterion is None:
                        raise ValueError(f"{where}.criteria: names no criterion of the plan: {name!r}")
                    if criterion.kind not in GATE_KINDS:
                        raise ValueError(
                            f"{where}.criteria: a gate cannot hold on {name!r} of kind {criterion.kind} "
                            f"(only {', '.join(GATE_KINDS)}: judged on the results in when it is reached)"
                        )
        cycle = _cycle({s.id: s.after for s in steps})
        if cycle:
            raise ValueError(
                f"runbook.steps.{index[cycle[0]]}.after: steps wait for each other in a circle: "
                + " → ".join(cycle)
            )
        return self

    @model_validator(mode="after")
    def _probe_refs(self) -> Plan:
        """A probe covers sites the plan has, each site at most one probe (two would split its lines)."""
        sites = [s.id for s in self.sites]
        covered: dict[str, str] = {}
        seen: set[str] = set()
        for i, probe in enumerate(self.probes):
            if probe.id in seen or probe.id == "central":
                why = "is used twice" if probe.id in seen else "is reserved for the central run"
                raise ValueError(f"probes.{i}.id: probe id {probe.id!r} {why}")
            seen.add(probe.id)
            for site in probe.sites:
                if site not in sites:
                    raise ValueError(
                        f"probes.{i}.sites: names no site of the plan: {site!r} (sites: {', '.join(sites)})"
                    )
                if site in covered:
                    raise ValueError(
                        f"probes.{i}.sites: site {site!r} is already covered by probe {covered[site]!r}"
                    )
                covered[site] = probe.id
        return self

    def site(self, site_id: str) -> Site:
        for site in self.sites:
            if site.id == site_id:
                return site
        raise UsageError(f"plan has no site {site_id!r} (sites: {', '.join(s.id for s in self.sites)})")

    def probe(self, probe_id: str) -> SiteProbe:
        for probe in self.probes:
            if probe.id == probe_id:
                return probe
        if not self.probes:
            raise UsageError(f"plan has no probe {probe_id!r}: it names none (probes: in the plan)")
        raise UsageError(f"plan has no probe {probe_id!r} (probes: {', '.join(p.id for p in self.probes)})")

    def probe_of(self, site_id: str | None) -> SiteProbe | None:
        """The probe that checks this site's devices, or None when the central run does."""
        return next((p for p in self.probes if site_id in p.sites), None)

    def criterion(self, criterion_id: str) -> Criterion | None:
        return next((c for c in self.criteria if c.id == criterion_id), None)

    def device_criterion(self, kind: str) -> Criterion | None:
        """The criterion a kind of checked device feeds (``document`` … ``workstation``).

        The ``device_readiness`` criterion listing it in ``device_kinds``, else the one with its
        documented id (unless that one lists other kinds), else the first ``device_readiness``
        criterion without ``device_kinds``, else the first one: device results are never unscored.
        """
        readiness = [c for c in self.criteria if c.kind == "device_readiness"]
        listed = next((c for c in readiness if c.device_kinds and kind in c.device_kinds), None)
        documented = self.criterion(DEVICE_CRITERIA.get(kind, ""))
        if documented is not None and documented.device_kinds:
            documented = None
        unlisted = next((c for c in readiness if not c.device_kinds), None)
        return listed or documented or unlisted or next(iter(readiness), None)

    def kinds_of(self, criterion: Criterion) -> set[str]:
        """The device kinds a criterion is about: those it counts (device_readiness) or lists."""
        if criterion.kind == "device_readiness":
            return {k for k in CHECKED_KINDS if self.device_criterion(k) is criterion}
        return set(criterion.device_kinds or ())


class LoadedPlan(BaseModel):
    """A validated plan together with where it came from (for run.json and messages)."""

    model_config = ConfigDict(frozen=True)
    plan: Plan
    path: Path
    sha256: str


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when there: ~10x faster, same marks


class PlanError(UsageError):
    """Every problem found in one plan file, each as ``file:line: field: message``."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _identity(check: Any, value: str) -> str:
    try:
        return check(value)
    except IdentityError as exc:
        raise ValueError(str(exc)) from None


MAX_PLAN_BYTES = 8 * 1024 * 1024
"""A region's plan (hundreds of sites, thousands of devices) is well under 2 MB; checking an
87 MB one took 259 s and 7.9 GB, so anything this large is refused before it is parsed."""


class _PlanConstructor(_LOADER):  # type: ignore[misc, valid-type]
    """The plan's YAML loader: an impossible date is a located plan error, not a crash.

    PyYAML's timestamp constructor raises a bare ValueError (``2026-02-30``), which has no
    mark; here it becomes a ConstructorError at the date's own line.
    """

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"not a date: {node.value!r} ({exc})", node.start_mark
            ) from None


_PlanConstructor.add_constructor("tag:yaml.org,2002:timestamp", _PlanConstructor.construct_yaml_timestamp)


def _read_plan(path: Path) -> bytes:
    """The plan's bytes, refusing what is not a regular file (a FIFO would block) or too large."""
    try:
        return read_bounded(path, MAX_PLAN_BYTES)
    except NotRegularFile:
        raise PlanError([f"{path}: cannot read plan: not a regular file"]) from None
    except TooLarge:
        raise PlanError(
            [f"{path}:1: (file): plan is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB; split the wave"]
        ) from None
    except OSError as exc:
        raise PlanError([f"{path}: cannot read plan: {exc.strerror or exc}"]) from None


def load_plan(path: str | Path) -> LoadedPlan:
    """Read and validate a plan; raise PlanError listing every problem with its line.

    The cyclic garbage collector is paused meanwhile: the YAML tree and the models of a
    region's plan are a million objects that all stay alive, and the collector's passes over
    them made the cost per device grow with the plan (10,000 devices: ~40 % of the time)."""
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _load_plan(Path(path))
    finally:
        if gc_was_on:
            gc.enable()


def _load_plan(path: Path) -> LoadedPlan:
    raw = _read_plan(path)
    root: yaml.Node | None = None
    try:
        text = raw.decode("utf-8")
        loader = _PlanConstructor(text)
        try:
            root = loader.get_single_node()
            duplicates = _duplicate_keys(path, root)
            if duplicates:
                raise PlanError(duplicates)
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        raise PlanError([f"{path}:1: (file): not UTF-8 text ({exc.reason})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        field = _field_at(root, mark) if root is not None and mark is not None else "(yaml)"
        raise PlanError([f"{path}:{line}: {field}: {problem}"]) from None
    if not isinstance(data, dict):
        raise PlanError([f"{path}:1: (plan): expected a mapping of plan fields, got {type(data).__name__}"])
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError([_describe(path, root, err) for err in exc.errors()]) from None
    return LoadedPlan(plan=plan, path=path, sha256=hashlib.sha256(raw).hexdigest())


def unset_passwords(loaded: LoadedPlan, environ: Mapping[str, str]) -> list[str]:
    """Each plan user whose ``password_env`` is unset or empty, as ``file:line: field: message``.

    Checked before a run sends anything: without it every login fails one by one against the
    target, and the run ends NO-GO for a reason that is the operator's, not the environment's.
    """
    missing = [
        (("sites", i, "users", j, "password_env"), user.password_env)
        for i, site in enumerate(loaded.plan.sites)
        for j, user in enumerate(site.users)
        if not environ.get(user.password_env)
    ]
    if not missing:
        return []
    try:  # the lines, from the same bytes the plan was validated from
        raw = _read_plan(loaded.path)
        root = yaml.compose(raw.decode("utf-8"), Loader=_LOADER)
        if hashlib.sha256(raw).hexdigest() != loaded.sha256:
            root = None
    except (PlanError, yaml.YAMLError, UnicodeDecodeError):
        root = None
    return [
        f"{loaded.path}:{_line_of(root, loc)}: {'.'.join(map(str, loc))}: "
        f"environment variable {name} is not set (it holds this user's password)"
        for loc, name in missing
    ]


def _walk(node: yaml.Node, where: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], yaml.Node]]:
    """Every node of the tree with its path of keys and indexes (iterative: no recursion limit)."""
    stack = [(where, node)]
    while stack:
        where, node = stack.pop()
        yield where, node
        if isinstance(node, yaml.MappingNode):
            stack += [((*where, str(k.value)), v) for k, v in reversed(node.value)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [((*where, str(i)), v) for i, v in reversed(list(enumerate(node.value)))]


def _duplicate_keys(path: Path, root: yaml.Node | None) -> list[str]:
    """A key given twice in one mapping: YAML keeps the last silently (``kind: production`` then
    ``kind: test`` would run as test), so the plan is refused naming both lines."""
    problems = []
    for where, node in _walk(root) if root is not None else ():
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                continue
            line = key.start_mark.line + 1
            if key.value in first:
                field = ".".join(_printable(p) for p in (*where, key.value))
                earlier = first[key.value]
                problems.append(f"{path}:{line}: {field}: duplicate key (first given on line {earlier})")
            else:
                first[key.value] = line
    return problems


def _field_at(root: yaml.Node, mark: Any) -> str:
    """The dotted field of the scalar at ``mark`` (where a value could not be constructed)."""
    for where, node in _walk(root):
        if isinstance(node, yaml.ScalarNode) and node.start_mark.index == mark.index and where:
            return ".".join(_printable(p) for p in where)
    return "(yaml)"


def _describe(path: Path, root: yaml.Node | None, err: Any) -> str:
    loc = tuple(err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    head, sep, rest = message.partition(": ")
    dotted = tuple(int(p) if p.isdigit() else p for p in head.split("."))
    if not loc and sep and dotted[0] in Plan.model_fields:  # whole-plan checks name their field first
        loc, message = dotted, rest  # (or its dotted path: runbook.steps.2.after)
    field = ".".join(_printable(str(p)) for p in loc) or "(plan)"
    if err["type"] == "extra_forbidden":
        known = _known_fields(loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        message = "unknown field" + (f"; did you mean {guess[0]!r}?" if guess else "")
        if known:
            message += f" (known: {', '.join(sorted(known))})"
    elif err["type"] == "missing":
        message = "required field is missing"
    line = _line_of(root, loc)
    return f"{path}:{line}: {field}: {message}"


def _printable(text: str) -> str:
    """A field name as the user can read it on one line (a key may hold a newline or a colon)."""
    if text.isprintable() and ":" not in text:
        return text
    return repr(text).replace(":", "\\x3a")  # the colon separates file, line, field and message


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """Walk the YAML node tree along a pydantic location; the deepest node found gives the line."""
    node, line = root, (root.start_mark.line + 1 if root else 1)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, _ in node.value if k.value == str(part)), None)
            if match is None or key is None:
                break
            line, node = key.start_mark.line + 1, match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Plan
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        model = _model_in(fields[part].annotation)
    return list(getattr(model, "model_fields", {}).keys())


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
