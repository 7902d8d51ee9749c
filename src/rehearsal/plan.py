"""The rehearsal plan: one YAML file per go-live wave, validated into typed models.

The plan is the only place that knows about sites, devices, people and targets; every
other module takes what it needs from here, so a region can point the harness at a
plan we have never seen. Loading never raises a traceback at the user: it collects
every problem as ``file:line: field: message`` in a :class:`PlanError`.
"""

from __future__ import annotations

import difflib
import hashlib
import re
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

from rehearsal.errors import UsageError
from rehearsal.identities import (
    IdentityError,
    check_hsa_id,
    check_personnummer,
)

Aspect = Literal["organisatorisk", "klinisk", "teknisk"]
ASPECTS: tuple[str, ...] = ("organisatorisk", "klinisk", "teknisk")
Severity = Literal["blocker", "critical", "normal", "minor"]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Model):
    """Seconds; every client and probe takes its limits from here."""

    connect: float = Field(3.0, gt=0)
    read: float = Field(10.0, gt=0)
    device: float = Field(2.0, gt=0)


class Environment(_Model):
    name: str
    kind: Literal["test", "production"]
    fhir_base: str
    web_base: str
    allowed_hosts: list[str] = Field(min_length=1)
    timeouts: Timeouts = Timeouts()

    @field_validator("fhir_base", "web_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.rstrip("/")

    def host_allowed(self, url: str) -> bool:
        return (urlsplit(url).hostname or "") in self.allowed_hosts


class Printer(_Model):
    id: Slug
    kind: Literal["document", "wristband", "label"]
    uri: str
    location: str = ""

    @field_validator("uri")
    @classmethod
    def _ipp_uri(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("ipp", "ipps", "tcp", "snmp") or not parts.hostname or not parts.port:
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


class Site(_Model):
    id: Slug
    name: str
    hsa_id: str
    printers: list[Printer] = []
    command_centre: dict[str, Person | None] = {}
    users: list[User] = []

    @field_validator("hsa_id")
    @classmethod
    def _hsa(cls, value: str) -> str:
        return _identity(check_hsa_id, value)


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
    id: Slug
    title: str
    p95_ms: float = Field(gt=0)
    max_error_ratio: float = Field(0.01, ge=0, le=1)


class LoadProfile(_Model):
    users: int = Field(gt=0)
    spawn_rate: float = Field(gt=0)
    duration_s: float = Field(gt=0)
    paths: list[LoadPath] = Field(min_length=1)


class Criterion(_Model):
    """One line of the go/no-go scorecard; tests feed it through their `criterion` label."""

    id: Slug
    title: str
    kind: Literal["all_pass", "success_rate", "device_readiness", "load_slo", "run_complete"]
    aspect: Aspect | None = None
    per_site: bool = False
    threshold: float | None = Field(None, ge=0, le=1)
    severity: Severity = "critical"
    description: str = ""

    @model_validator(mode="after")
    def _threshold_when_needed(self) -> Criterion:
        if self.kind in ("success_rate", "device_readiness") and self.threshold is None:
            raise ValueError(f"kind {self.kind} needs a threshold between 0 and 1")
        return self


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
    transition: list[TransitionActivity] = []

    @model_validator(mode="after")
    def _unique_ids(self) -> Plan:
        for label, ids in (
            ("sites", [s.id for s in self.sites]),
            ("printers", [p.id for s in self.sites for p in s.printers]),
            ("criteria", [c.id for c in self.criteria]),
        ):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{label}: duplicate id {', '.join(dupes)}")
        return self

    def site(self, site_id: str) -> Site:
        for site in self.sites:
            if site.id == site_id:
                return site
        raise UsageError(f"plan has no site {site_id!r} (sites: {', '.join(s.id for s in self.sites)})")

    def criterion(self, criterion_id: str) -> Criterion | None:
        return next((c for c in self.criteria if c.id == criterion_id), None)


class LoadedPlan(BaseModel):
    """A validated plan together with where it came from (for run.json and messages)."""

    model_config = ConfigDict(frozen=True)
    plan: Plan
    path: Path
    sha256: str


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


def load_plan(path: str | Path) -> LoadedPlan:
    """Read and validate a plan; raise PlanError listing every problem with its line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanError([f"{path}: cannot read plan: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise PlanError([f"{path}:1: (file): not UTF-8 text ({exc.reason})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlanError([f"{path}:{line}: (yaml): {problem}"]) from None
    if not isinstance(data, dict):
        raise PlanError([f"{path}:1: (plan): expected a mapping of plan fields, got {type(data).__name__}"])
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError([_describe(path, root, err) for err in exc.errors()]) from None
    return LoadedPlan(plan=plan, path=path, sha256=hashlib.sha256(raw).hexdigest())


def _describe(path: Path, root: yaml.Node | None, err: Any) -> str:
    loc = tuple(err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    head, sep, rest = message.partition(": ")
    if not loc and sep and head in Plan.model_fields:  # whole-plan checks name their field first
        loc, message = (head,), rest
    field = ".".join(str(p) for p in loc) or "(plan)"
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


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """Walk the YAML node tree along a pydantic location; the deepest node found gives the line."""
    node, line = root, (root.start_mark.line + 1 if root else 1)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, _ in node.value if k.value == str(part)), None)
            if match is None:
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
