"""Read HSA/KiV: over LDAP (ldap3) or from an LDIF export, into one snapshot of units and people.

The directory reconciliation compares what the new EHR has (Organizations with HSA-ids)
with what the region's directory says. Regions hand over either access to the LDAP
directory (KiV) or a file export; both become the same :class:`DirectorySnapshot`, so the
check does not care which it got.

An entry counts when it carries an ``hsaIdentity``. Its kind is ``site`` (a unit right
below the base DN), ``unit`` (a unit below another) or ``person`` (``inetOrgPerson`` /
``person``); ``site_hsa_id`` names the site-level unit above it, for per-site lists.

Errors: :class:`DirectoryError` (a TargetError) names the source and what failed.
"""

from __future__ import annotations

import base64
import math
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal import silence
from rehearsal.errors import TargetError
from rehearsal.plan import Plan

HSA_ATTRIBUTE = "hsaIdentity"
_PERSON_CLASSES = {"person", "inetorgperson", "organizationalperson", "hsaperson"}
_HEX = re.compile(r"\\([0-9A-Fa-f]{2})")


class DirectoryError(TargetError):
    """The directory could not be read (unreachable, refused, not LDIF)."""


@dataclass(frozen=True)
class DirectoryEntry:
    """One unit or person with an HSA-id."""

    dn: str
    kind: str  # site | unit | person
    hsa_id: str
    name: str
    site_hsa_id: str | None
    parent_hsa_id: str | None
    title: str = ""


@dataclass(frozen=True)
class DirectorySnapshot:
    """Everything with an HSA-id below the base DN, from one source (an ldap:// URI or a file)."""

    source: str
    base_dn: str
    entries: tuple[DirectoryEntry, ...]

    def units(self) -> list[DirectoryEntry]:
        return [e for e in self.entries if e.kind in ("site", "unit")]

    def people(self) -> list[DirectoryEntry]:
        return [e for e in self.entries if e.kind == "person"]

    def by_hsa_id(self) -> dict[str, DirectoryEntry]:
        return {e.hsa_id: e for e in self.entries}

    def of_site(self, site_hsa_id: str) -> list[DirectoryEntry]:
        """The site-level unit itself and everything below it."""
        return [e for e in self.entries if e.site_hsa_id == site_hsa_id]


# -- DNs -------------------------------------------------------------------------------------------


def dn_parts(dn: str) -> tuple[tuple[str, str], ...]:
    """``ou=A\\, B,o=VGR,c=SE`` (or ``\\2C``) → (("ou", "A, B"), ("o", "VGR"), ("c", "SE")), unescaped.

    Attribute names are lower-cased and values compared case-insensitively by callers;
    multi-valued RDNs keep their first value (the directory we build has none).
    """
    parts: list[str] = []
    current: list[str] = []
    escaped = other_value = False  # after an unescaped "+": the RDN's further values, skipped
    for char in dn.strip():
        if escaped:
            if not other_value:
                current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current, other_value = [], False
        elif char == "+":
            other_value = True
        elif not other_value:
            current.append(char)
    parts.append("".join(current))
    out = []
    for part in parts:
        name, _, value = part.partition("=")
        out.append((name.strip().lower(), _unescape(value.strip())))
    return tuple(out)


def _unescape(value: str) -> str:
    data = bytearray()
    i = 0
    while i < len(value):
        match = _HEX.match(value, i)
        if match:
            data.append(int(match.group(1), 16))
            i = match.end()
        elif value[i] == "\\" and i + 1 < len(value):
            data += value[i + 1].encode("utf-8")
            i += 2
        else:
            data += value[i].encode("utf-8")
            i += 1
    return data.decode("utf-8", errors="replace")


def _key(parts: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((a, v.lower()) for a, v in parts)


# -- LDIF ------------------------------------------------------------------------------------------


def parse_ldif(text: str) -> list[dict[str, list[str]]]:
    """LDIF content records (RFC 2849): continuation lines, ``::`` base64 values, comments.

    Each record is ``{"dn": [dn], attribute: [values…]}`` with attribute names as written.
    Change records (``changetype:``) are refused: an export has none.
    """
    records: list[dict[str, list[str]]] = []
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw.startswith(" ") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    record: dict[str, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if record:
                records.append(record)
                record = {}
            continue
        if line.startswith("#") or (line.startswith("version:") and not record):
            continue
        name, sep, rest = line.partition(":")
        if not sep:
            raise ValueError(f"line {number}: not 'attribute: value': {line[:60]!r}")
        if rest.startswith(":"):
            value = _base64_value(rest[1:].strip(), number)
        elif rest.startswith("<"):
            raise ValueError(f"line {number}: URL values are not supported in an export")
        else:
            value = rest.strip()
        if name.lower() == "changetype":
            raise ValueError(f"line {number}: change records are not an export")
        if not record and name.lower() != "dn":
            raise ValueError(f"line {number}: a record must start with dn:")
        record.setdefault("dn" if name.lower() == "dn" else name, []).append(value)
    if record:
        records.append(record)
    return records


def _base64_value(text: str, number: int) -> str:
    """A ``::`` value: UTF-8 text as text; binary (``userCertificate;binary``, a photo) kept as
    its base64, since only names and HSA-ids are compared and one certificate must not make
    the whole export unreadable."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"line {number}: not base64 after '::'") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return text


def _get(record: dict[str, Any], name: str) -> list[str]:
    for key, values in record.items():
        if key.lower() == name.lower():
            return [str(v) for v in (values if isinstance(values, list) else [values])]
    return []


def snapshot(source: str, base_dn: str, records: list[dict[str, Any]]) -> DirectorySnapshot:
    """Records (dn + attributes) → a snapshot of everything with an HSA-id below ``base_dn``."""
    base = _key(dn_parts(base_dn))
    by_dn: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for record in records:
        dn = _get(record, "dn")
        if dn:
            by_dn[_key(dn_parts(dn[0]))] = record
    entries = []
    for key, record in by_dn.items():
        hsa = _get(record, HSA_ATTRIBUTE)
        if not hsa or key[-len(base) :] != base or len(key) <= len(base):
            continue
        classes = {c.lower() for c in _get(record, "objectClass")}
        depth = len(key) - len(base)
        site_key = key[len(key) - len(base) - 1 :]
        site_hsa = next(iter(_get(by_dn.get(site_key, {}), HSA_ATTRIBUTE)), None)
        parent_hsa = next(iter(_get(by_dn.get(key[1:], {}), HSA_ATTRIBUTE)), None)
        if classes & _PERSON_CLASSES:
            kind, name = "person", (_get(record, "displayName") or _get(record, "cn") or [""])[0]
        else:
            kind = "site" if depth == 1 else "unit"
            name = (_get(record, "ou") or _get(record, "o") or _get(record, "cn") or [""])[0]
        entries.append(
            DirectoryEntry(
                dn=_get(record, "dn")[0],
                kind=kind,
                hsa_id=hsa[0],
                name=name,
                site_hsa_id=site_hsa,
                parent_hsa_id=parent_hsa,
                title=(_get(record, "title") or [""])[0],
            )
        )
    entries.sort(key=lambda e: (len(dn_parts(e.dn)), e.dn))
    return DirectorySnapshot(source, base_dn, tuple(entries))


def read_ldif(path: str | Path, base_dn: str) -> DirectorySnapshot:
    """An LDIF export file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read the directory export: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DirectoryError(f"{path}: the directory export is not UTF-8") from None
    try:
        records = parse_ldif(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DirectoryError(f"{path}: not an LDIF export: {exc}") from None
    return snapshot(str(path), base_dn, records)


def read_ldap(
    uri: str, base_dn: str, timeout: float = 5.0, connect_timeout: float | None = None
) -> DirectorySnapshot:
    """Everything with an HSA-id below ``base_dn``, by an anonymous subtree search.

    Given ``connect_timeout`` (default ``timeout``) plus ``timeout`` seconds in all. ldap3 packs
    its receive timeout as whole seconds (a plan's 2.5 s would become 3, and its bind and
    search each wait that long), so the search runs in a helper thread that is given up at the
    plan's bound; the thread itself ends at ldap3's own (rounded-up) timeout.
    """
    connect = timeout if connect_timeout is None else connect_timeout
    try:
        silence.check(uri)  # a directory that timed out earlier in this run is not waited for again
    except silence.Silent as exc:
        raise DirectoryError(str(exc)) from None
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rehearsal-ldap")
    future = worker.submit(_search_ldap, uri, base_dn, connect, timeout)
    worker.shutdown(wait=False)
    try:
        return future.result(timeout=connect + timeout)
    except FutureTimeout:
        raise DirectoryError(
            silence.timed_out(uri, connect + timeout, f"LDAP search below {base_dn!r}")
        ) from None


def _search_ldap(uri: str, base_dn: str, connect: float, timeout: float) -> DirectorySnapshot:
    with warnings.catch_warnings():  # ldap3 2.9 imports names pyasn1 0.6 calls deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        import ldap3
        from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError

    seconds = max(1, math.ceil(timeout))  # ldap3 packs its socket timeouts as whole seconds
    try:
        server = ldap3.Server(uri, connect_timeout=connect, get_info=ldap3.NONE)
        with ldap3.Connection(server, auto_bind=True, receive_timeout=seconds, read_only=True) as conn:
            found = conn.search(
                base_dn,
                f"({HSA_ATTRIBUTE}=*)",
                search_scope=ldap3.SUBTREE,
                attributes=[HSA_ATTRIBUTE, "objectClass", "ou", "o", "cn", "displayName", "title"],
            )
            if not found and conn.result.get("result") not in (0, 32):
                raise DirectoryError(
                    f"{uri}: search below {base_dn!r} failed: {conn.result.get('description')}"
                )
            records: list[dict[str, Any]] = [
                {"dn": [e["dn"]], **{k: list(v) for k, v in e["attributes"].items()}}
                for e in conn.response or []
                if e.get("type") == "searchResEntry"
            ]
    except LDAPException as exc:
        if "timed out" in str(exc) and isinstance(exc, LDAPSocketOpenError):
            raise DirectoryError(silence.timed_out(uri, connect, "LDAP connect", "no connection")) from None
        if "timed out" in str(exc):  # ldap3's own (rounded-up) receive timeout came first
            raise DirectoryError(silence.timed_out(uri, seconds, f"LDAP search below {base_dn!r}")) from None
        raise DirectoryError(f"{uri}: {exc.__class__.__name__}: {exc}") from None
    return snapshot(uri, base_dn, records)


def read_directory(
    where: str,
    base_dn: str,
    timeout: float = 5.0,
    relative_to: str | Path | None = None,
    connect_timeout: float | None = None,
) -> DirectorySnapshot:
    """``ldap://host:port`` (or ldaps) → LDAP; anything else is the path of an LDIF export."""
    if where.startswith(("ldap://", "ldaps://")):
        return read_ldap(where, base_dn, timeout, connect_timeout)
    path = Path(where)
    if not path.is_absolute() and relative_to is not None:
        path = Path(relative_to) / path
    return read_ldif(path, base_dn)


def for_plan(plan: Plan, relative_to: str | Path | None = None) -> DirectorySnapshot:
    """The plan's directory (``environment.directory``, ``coexistence.directory_base_dn``)."""
    where = plan.environment.directory
    if where is None:
        raise DirectoryError("the plan names no directory (environment.directory)")
    timeouts = plan.environment.timeouts
    return read_directory(
        where, plan.coexistence.directory_base_dn, timeouts.read, relative_to, timeouts.connect
    )
