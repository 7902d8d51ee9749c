"""A small FHIR resource store on SQLite: resources as JSON plus an index of search values.

Every resource type goes through the same three operations (create, read, search), so
adding Encounter, Task or DiagnosticReport later means declaring its search parameters,
not writing new tables. Search parameters are declared by the caller (the EHR) as
:class:`SearchParam` with a function that pulls the indexed values out of a resource;
the store indexes them on write and answers FHIR token/reference searches from the index.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Resource = dict[str, Any]
IndexValue = tuple[str | None, str]  # (system or None, value)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resource (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (type, id)
);
CREATE TABLE IF NOT EXISTS search_index (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS search_by_value ON search_index (type, param, value);
"""

_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class UnknownSearchParam(ValueError):
    """A search named a parameter the resource type does not declare."""


def _same(value: str) -> str:
    return value


@dataclass(frozen=True)
class SearchParam:
    """One FHIR search parameter of a resource type and how to find its values in a resource.

    ``normalize`` is applied to values both when indexing and when searching, so e.g. a
    personnummer matches with or without its dash. For ``reference`` parameters,
    ``target`` is the resource type a bare id refers to (``patient=123`` → ``Patient/123``).
    """

    name: str
    type: Literal["token", "reference"]
    extract: Callable[[Resource], Iterable[IndexValue]]
    documentation: str = ""
    normalize: Callable[[str], str] = field(default=_same)
    target: str | None = None

    def query_value(self, raw: str) -> tuple[str | None, str | None]:
        """Parse one search value: ``system|code``, ``|code``, ``code`` or ``system|`` for tokens."""
        if self.type == "reference":
            ref = raw.strip()
            match = re.search(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$", ref)
            if match:
                return None, f"{match.group(1)}/{match.group(2)}"
            return None, f"{self.target}/{ref}" if self.target else ref
        if "|" in raw:
            system, _, value = raw.partition("|")
            if not value:
                return system, None  # any value within the system
            return (system or ""), self.normalize(value)
        return None, self.normalize(raw)


def now() -> str:
    """FHIR instant (UTC, milliseconds), used for meta.lastUpdated and authoredOn."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ResourceStore:
    """FHIR resources in one SQLite database; one instance is shared by the threads of the server."""

    def __init__(self, path: Path | str, params: Mapping[str, Sequence[SearchParam]]) -> None:
        self.path = str(path)
        self._params = {rtype: {p.name: p for p in plist} for rtype, plist in params.items()}
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)

    # -- schema ------------------------------------------------------------------------------

    def types(self) -> list[str]:
        return list(self._params)

    def params(self, rtype: str) -> dict[str, SearchParam]:
        return dict(self._params.get(rtype, {}))

    def register(self, rtype: str, params: Sequence[SearchParam]) -> None:
        """Add a resource type after construction (later modules bring their own types)."""
        self._params[rtype] = {p.name: p for p in params}

    # -- operations --------------------------------------------------------------------------

    def create(self, resource: Resource, id: str | None = None) -> Resource:
        """Store a new resource (server-assigned id unless given); returns it with id and meta."""
        rtype = resource.get("resourceType")
        if rtype not in self._params:
            raise ValueError(f"resource type {rtype!r} is not stored here")
        rid = id or str(uuid.uuid4())
        if not _FHIR_ID.match(rid):
            raise ValueError(f"not a valid FHIR id: {rid!r}")
        stamp = now()
        stored = {"resourceType": rtype, "id": rid, "meta": {"versionId": "1", "lastUpdated": stamp}}
        stored.update({k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")})
        rows = [
            (rtype, rid, param.name, system, param.normalize(value))
            for param in self._params[rtype].values()
            for system, value in param.extract(stored)
        ]
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO resource (type, id, version, last_updated, body) VALUES (?, ?, 1, ?, ?)",
                (rtype, rid, stamp, json.dumps(stored, ensure_ascii=False)),
            )
            self._db.executemany(
                "INSERT INTO search_index (type, id, param, system, value) VALUES (?, ?, ?, ?, ?)", rows
            )
        return stored

    def read(self, rtype: str, rid: str) -> Resource | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM resource WHERE type = ? AND id = ?", (rtype, rid)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def exists(self, rtype: str, rid: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM resource WHERE type = ? AND id = ?", (rtype, rid)
            ).fetchone()
        return row is not None

    def search(
        self, rtype: str, criteria: Sequence[tuple[str, str]] = (), limit: int | None = None
    ) -> list[Resource]:
        """Resources of one type matching every criterion (AND); comma-separated values are OR.

        ``_id`` is always available; any other name must be a declared SearchParam,
        otherwise UnknownSearchParam names the ones that are.
        """
        declared = self._params.get(rtype)
        if declared is None:
            raise ValueError(f"resource type {rtype!r} is not stored here")
        clauses: list[str] = ["r.type = ?"]
        args: list[Any] = [rtype]
        for name, raw in criteria:
            values = [v for v in raw.split(",") if v != ""]
            if name == "_id":
                clauses.append(f"r.id IN ({', '.join('?' * len(values))})" if values else "0")
                args += values
                continue
            param = declared.get(name)
            if param is None:
                known = ", ".join(["_id", *declared]) or "_id"
                raise UnknownSearchParam(
                    f"unknown search parameter {name!r} for {rtype} (supported: {known})"
                )
            alternatives: list[str] = []
            alt_args: list[str | None] = []
            for value in values:
                system, code = param.query_value(value)
                if code is None:
                    alternatives.append("(i.system = ?)")
                    alt_args.append(system)
                elif system is None:
                    alternatives.append("(i.value = ?)")
                    alt_args.append(code)
                elif system == "":
                    alternatives.append("(i.system IS NULL AND i.value = ?)")
                    alt_args.append(code)
                else:
                    alternatives.append("(i.system = ? AND i.value = ?)")
                    alt_args += [system, code]
            if not alternatives:
                clauses.append("0")
                continue
            clauses.append(
                "EXISTS (SELECT 1 FROM search_index i WHERE i.type = r.type AND i.id = r.id "
                f"AND i.param = ? AND ({' OR '.join(alternatives)}))"
            )
            args += [name, *alt_args]
        sql = f"SELECT r.body FROM resource r WHERE {' AND '.join(clauses)} ORDER BY r.seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(body) for (body,) in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
