"""The HSA/KiV directory: the plan's units and people as LDIF, served over LDAP by Debian's slapd.

Before a go-live the region checks that HSA/KiV (Katalog i Väst, an LDAP directory)
matches the organisation built in the new EHR. The reference hospital publishes what the
plan says: under ``coexistence.directory_base_dn`` one organizational unit per site
(``hsaIdentity`` = the site's HSA-id), below it one per sub-unit (``sites[].units``), and
one ``inetOrgPerson`` per plan user (``title`` = role) under their site.

``environment.directory`` decides how it is served:

- ``ldap://127.0.0.1:PORT``: a private ``slapd`` (Debian package ``slapd``) with its own
  config, schema and MDB database under ``<workdir>/directory/``, loaded with ``slapadd``,
  listening on that loopback port only, anonymous read. No system service is involved and
  it runs as whoever starts the hospital. If slapd is not installed the start fails in one
  line saying so (use an LDIF path instead).
- a path (relative to the plan file): the LDIF file alone is written there; readers use
  it as an export (:mod:`rehearsal.clients.directory` reads both).

The HSA schema itself (Inera's) is not public in machine-readable form; ``hsaIdentity``
and the auxiliary class ``hsaObject`` are declared here under OpenLDAP's experimental
OID arc as a stand-in with the same attribute name.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from reference_hospital.hospital import Component, Hospital, bind_socket, endpoint_address
from rehearsal.errors import TargetError, UsageError
from rehearsal.lifetime import die_with_parent, end_process
from rehearsal.plan import Plan

SCHEMA = """\
# Stand-in for the HSA schema: the attribute name HSA/KiV use, an experimental OID.
attributetype ( 1.3.6.1.4.1.4203.666.100.1 NAME 'hsaIdentity'
  DESC 'HSA-id of a unit or person'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{31} SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.100.2 NAME 'hsaObject'
  DESC 'an entry with an HSA-id' AUXILIARY MAY ( hsaIdentity ) )
"""
SCHEMA_DIRS = ("/etc/ldap/schema", "/usr/local/etc/openldap/schema", "/etc/openldap/schema")
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib/x86_64-linux-gnu/ldap", "/usr/lib64/openldap", "/usr/lib/openldap")
_SEARCH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")
_RDN_CLASSES = {"o": "organization", "ou": "organizationalUnit", "c": "country", "dc": "dcObject"}


def _escape_rdn_value(value: str) -> str:
    """RFC 4514 escaping of an attribute value in a DN."""
    out = value
    for char in ("\\", ",", "+", '"', "<", ">", ";", "="):
        out = out.replace(char, "\\" + char)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def _line(name: str, value: str) -> str:
    """One LDIF attribute line, base64 (``::``) when the value is not safe ASCII (RFC 2849)."""
    safe = (
        value.isascii() and value == value.strip() and not value.startswith((":", "<")) and "\n" not in value
    )
    if safe:
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def _entry(dn: str, attributes: list[tuple[str, str]]) -> str:
    return "\n".join([_line("dn", dn), *(_line(k, v) for k, v in attributes)]) + "\n"


def build_ldif(plan: Plan) -> str:
    """The plan's HSA/KiV tree as LDIF (base entry, sites, sub-units, people), in load order."""
    base = plan.coexistence.directory_base_dn
    attr, _, value = base.split(",", 1)[0].partition("=")
    attr = attr.strip().lower()
    if attr not in _RDN_CLASSES:
        raise UsageError(
            f"coexistence.directory_base_dn {base!r}: its first part must be o=, ou=, dc= or c= "
            "(the reference directory creates that entry)"
        )
    base_attrs = [("objectClass", _RDN_CLASSES[attr]), (attr, value.strip())]
    if attr == "dc":
        base_attrs = [
            ("objectClass", "dcObject"),
            ("objectClass", "organization"),
            ("dc", value.strip()),
            ("o", value.strip()),
        ]
    entries = [_entry(base, base_attrs)]
    seen_people: set[str] = set()
    for site in plan.sites:
        site_dn = f"ou={_escape_rdn_value(site.name)},{base}"
        entries.append(
            _entry(
                site_dn,
                [
                    ("objectClass", "organizationalUnit"),
                    ("objectClass", "hsaObject"),
                    ("ou", site.name),
                    ("hsaIdentity", site.hsa_id),
                    ("businessCategory", "site"),
                    ("description", site.id),
                ],
            )
        )
        for unit in site.units:
            entries.append(
                _entry(
                    f"ou={_escape_rdn_value(unit.name)},{site_dn}",
                    [
                        ("objectClass", "organizationalUnit"),
                        ("objectClass", "hsaObject"),
                        ("ou", unit.name),
                        ("hsaIdentity", unit.hsa_id),
                        ("businessCategory", "unit"),
                        ("description", unit.id),
                    ],
                )
            )
        names: set[str] = set()
        for user in site.users:
            if user.hsa_id in seen_people:
                continue
            seen_people.add(user.hsa_id)
            given, _, family = user.name.rpartition(" ")
            cn = user.name if user.name not in names else f"{user.name} ({user.hsa_id})"
            names.add(cn)
            attrs = [
                ("objectClass", "inetOrgPerson"),
                ("objectClass", "hsaObject"),
                ("cn", cn),
                ("sn", family or user.name),
            ]
            if given:
                attrs.append(("givenName", given))
            attrs += [("hsaIdentity", user.hsa_id), ("title", user.role), ("ou", site.name)]
            entries.append(_entry(f"cn={_escape_rdn_value(cn)},{site_dn}", attrs))
    return "\n".join(entries)


def find_program(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *_SEARCH]))


def _first_dir(candidates: tuple[str, ...], must_have: str) -> str | None:
    return next((d for d in candidates if Path(d, must_have).exists()), None)


class Directory(Component):
    """The LDIF export, and slapd serving it when ``environment.directory`` is an ldap:// URI."""

    name = "directory"

    def __init__(self, hospital: Hospital) -> None:
        self.plan = hospital.plan
        where = hospital.plan.environment.directory
        assert where is not None
        self.where = where
        self.folder = hospital.workdir / "directory"
        self.ldap = "://" in where
        if self.ldap:
            self.host, self.port = endpoint_address("directory", where, ("ldap",))
            self.ldif_path = self.folder / "kiv.ldif"
        else:
            path = Path(where)
            if not path.is_absolute():
                path = (hospital.plan_dir or Path.cwd()) / path
            self.ldif_path = path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def describe(self) -> str:
        return f"directory ({self.where})"

    def ports(self) -> list[int]:
        return [self.port] if self.ldap else []

    def bind(self) -> None:
        if self.ldap:  # slapd binds it itself; make sure it is free now, so a clash names us
            bind_socket(self.host, self.port, f"the HSA/KiV directory ({self.where})").close()

    def start(self) -> None:
        ldif = build_ldif(self.plan)
        self.ldif_path.parent.mkdir(parents=True, exist_ok=True)
        self.ldif_path.write_text(ldif, encoding="utf-8")
        if self.ldap:
            self._start_slapd()

    def _start_slapd(self) -> None:
        slapd, slapadd = find_program("slapd"), find_program("slapadd")
        if slapd is None or slapadd is None:
            raise TargetError(
                f"{self.describe()}: Debian's slapd is not installed (scripts/setup.sh installs it); "
                "or set environment.directory to an LDIF path to use the file alone"
            )
        schemas = _first_dir(SCHEMA_DIRS, "core.schema")
        modules = _first_dir(MODULE_DIRS, "back_mdb.la") or _first_dir(MODULE_DIRS, "back_mdb.so")
        if schemas is None:
            raise TargetError(
                f"{self.describe()}: no OpenLDAP schema folder (looked in {', '.join(SCHEMA_DIRS)})"
            )
        database = self.folder / "db"
        shutil.rmtree(database, ignore_errors=True)
        database.mkdir(parents=True)
        (self.folder / "hsa.schema").write_text(SCHEMA, encoding="ascii")
        base = self.plan.coexistence.directory_base_dn
        config = [
            *(f"include {schemas}/{s}.schema" for s in ("core", "cosine", "inetorgperson")),
            f"include {self.folder / 'hsa.schema'}",
            f"pidfile {self.folder / 'slapd.pid'}",
            f"argsfile {self.folder / 'slapd.args'}",
            *([f"modulepath {modules}", "moduleload back_mdb"] if modules else []),
            "database mdb",
            "maxsize 16777216",
            f'suffix "{base}"',
            f'rootdn "cn=admin,{base}"',
            f"directory {database}",
            "index hsaIdentity eq",
            "index objectClass eq",
            "access to * by * read",
        ]
        conf = self.folder / "slapd.conf"
        conf.write_text("\n".join(config) + "\n", encoding="utf-8")
        loaded = subprocess.run(
            [slapadd, "-f", str(conf), "-l", str(self.ldif_path)], capture_output=True, text=True, timeout=30
        )
        if loaded.returncode != 0:
            last = (loaded.stderr or loaded.stdout).strip().splitlines()[-1:] or ["no output"]
            raise TargetError(f"{self.describe()}: slapadd refused the LDIF: {last[0]}")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._log = open(self.folder / "slapd.log", "wb")  # closed in stop()
        self._proc = subprocess.Popen(
            [slapd, "-f", str(conf), "-h", f"ldap://{host}:{self.port}/", "-d", "0"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),  # kill -9 of the hospital takes slapd along
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self._proc.poll() is not None:
                raise TargetError(f"{self.describe()}: slapd stopped at start: {self._last_log_line()}")
            if time.monotonic() > deadline:
                raise TargetError(f"{self.describe()}: slapd not answering on port {self.port} after 10 s")
            time.sleep(0.05)

    def _last_log_line(self) -> str:
        try:
            lines = (self.folder / "slapd.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        return lines[-1] if lines else "no output"

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            end_process(proc, 5.0)
        if self._log is not None:
            self._log.close()
            self._log = None

    def health(self) -> dict[str, Any]:
        if not self.ldap:
            return {"ok": self.ldif_path.exists(), "mode": "ldif", "ldif": str(self.ldif_path)}
        running = self._proc is not None and self._proc.poll() is None
        return {
            "ok": running and self._answers(),
            "mode": "ldap",
            "url": self.where,
            "ldif": str(self.ldif_path),
        }


def components(hospital: Hospital) -> list[Component]:
    return [Directory(hospital)] if hospital.plan.environment.directory else []
