"""A small FHIR resource store on SQLite: resources as JSON plus an index of search values.

Every resource type goes through the same operations (create, update, read, search, and
a batch of writes applied all-or-nothing), so a new resource type means declaring its
search parameters, not writing new tables. Search parameters are declared by the caller
(the EHR) as :class:`SearchParam` with a function that pulls the indexed values out of a
resource; the store indexes them on every write and answers FHIR token, reference and
string searches from the index, plus ``_id`` and ``_lastUpdated`` from the resource row.

Text is stored exactly as given (JSON with ``ensure_ascii=False`` in a UTF-8 database):
what a clinician wrote comes back byte-identical, å/ä/ö and combining marks included.
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
CREATE INDEX IF NOT EXISTS search_by_resource ON search_index (type, id);
"""

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_PREFIXES = {"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


class UnknownSearchParam(ValueError):
    """A search named a parameter the resource type does not declare."""


class BadSearchValue(ValueError):
    """A search value that cannot be understood (e.g. ``_lastUpdated=yesterday``)."""


class VersionConflict(ValueError):
    """An update said which version it changes (If-Match) and that is no longer the current one."""


def _same(value: str) -> str:
    return value


@dataclass(frozen=True)
class SearchParam:
    """One FHIR search parameter of a resource type and how to find its values in a resource.

    ``normalize`` is applied to values both when indexing and when searching, so e.g. a
    personnummer matches with or without its dash. For ``reference`` parameters,
    ``target`` is the resource type a bare id refers to (``patient=123`` → ``Patient/123``).
    ``string`` parameters match case-insensitively from the start of the value.
    """

    name: str
    type: Literal["token", "reference", "string"]
    extract: Callable[[Resource], Iterable[IndexValue]]
    documentation: str = ""
    normalize: Callable[[str], str] = field(default=_same)
    target: str | None = None

    def index_value(self, value: str) -> str:
        value = self.normalize(value)
        return value.casefold() if self.type == "string" else value

    def query_value(self, raw: str) -> tuple[str | None, str | None]:
        """Parse one search value: ``system|code``, ``|code``, ``code`` or ``system|`` for tokens."""
        if self.type == "reference":
            ref = raw.strip()
            match = re.search(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$", ref)
            if match:
                return None, f"{match.group(1)}/{match.group(2)}"
            return None, f"{self.target}/{ref}" if self.target else ref
        if self.type == "string":
            return None, self.index_value(raw)
        if "|" in raw:
            system, _, value = raw.partition("|")
            if not value:
                return system, None  # any value within the system
            return (system or ""), self.normalize(value)
        return None, self.normalize(raw)


@dataclass(frozen=True)
class Write:
    """One write of a batch: ``create`` (id optional) or ``update`` (id required, creates if absent).

    ``if_match`` is the version the writer last saw (``update`` only); a different current
    version makes the whole batch fail with :class:`VersionConflict`.
    """

    action: Literal["create", "update"]
    resource: Resource
    id: str | None = None
    if_match: str | None = None


@dataclass(frozen=True)
class Written:
    """What a write did: the stored resource and whether it was new (201) or a new version (200)."""

    resource: Resource
    created: bool


def now() -> str:
    """FHIR instant (UTC, milliseconds), used for meta.lastUpdated and authoredOn."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def instant(value: str) -> str:
    """A FHIR date/dateTime/instant as the store's UTC instant text, for ``_lastUpdated`` comparisons."""
    text = value.strip()
    if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", text):
        text = (text + "-01-01"[len(text) - 4 :]) + "T00:00:00+00:00"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadSearchValue(f"not a FHIR date or instant: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ResourceStore:
    """FHIR resources in one SQLite database; one instance is shared by the threads of the server."""

    def __init__(self, path: Path | str, params: Mapping[str, Sequence[SearchParam]]) -> None:
        self.path = str(path)
        self._params = {rtype: {p.name: p for p in plist} for rtype, plist in params.items()}
        self._lock = threading.Lock()
        if not Path(self.path).exists():  # a write-ahead log left by a crash must not replay onto a new file
            for stale in ("-wal", "-shm"):
                Path(self.path + stale).unlink(missing_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # WAL with NORMAL sync: a commit is one append, not an fsync per write (~15 ms → well under 1 ms);
        # the database is rebuilt from the plan at every start, so the last commits before a power cut may go.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # -- schema ------------------------------------------------------------------------------

    def types(self) -> list[str]:
        return list(self._params)

    def params(self, rtype: str) -> dict[str, SearchParam]:
        return dict(self._params.get(rtype, {}))

    def register(self, rtype: str, params: Sequence[SearchParam]) -> None:
        """Add a resource type after construction (later modules bring their own types)."""
        self._params[rtype] = {p.name: p for p in params}

    # -- writes ------------------------------------------------------------------------------

    def create(self, resource: Resource, id: str | None = None) -> Resource:
        """Store a new resource (server-assigned id unless given); returns it with id and meta."""
        return self.apply([Write("create", resource, id)])[0].resource

    def update(self, resource: Resource, id: str, if_match: str | None = None) -> Written:
        """Store a new version of ``Type/id`` (or its first version, when it does not exist yet)."""
        return self.apply([Write("update", resource, id, if_match)])[0]

    def apply(self, writes: Sequence[Write]) -> list[Written]:
        """Apply every write in one SQLite transaction: all of them happen, or none (then it raises).

        Raises ValueError for an unknown type, a bad id or a create of an id that exists,
        and VersionConflict for a stale ``if_match``; the database is unchanged then.
        """
        stamp = now()
        done: list[Written] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for write in writes:
                    done.append(self._write(write, stamp))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return done

    def _write(self, write: Write, stamp: str) -> Written:
        resource = write.resource
        rtype = resource.get("resourceType")
        if rtype not in self._params:
            raise ValueError(f"resource type {rtype!r} is not stored here")
        if write.action == "update" and not write.id:
            raise ValueError("an update needs the id of the resource it changes")
        rid = write.id or str(uuid.uuid4())
        if not FHIR_ID.match(rid):
            raise ValueError(f"not a valid FHIR id: {rid!r}")
        row = self._db.execute(
            "SELECT version FROM resource WHERE type = ? AND id = ?", (rtype, rid)
        ).fetchone()
        if row is not None and write.action == "create":
            raise ValueError(f"{rtype}/{rid} already exists")
        if write.if_match is not None and str(row[0] if row else 0) != write.if_match:
            raise VersionConflict(
                f"{rtype}/{rid} is at version {row[0] if row else 'none'}, not {write.if_match}"
            )
        version = row[0] + 1 if row else 1
        stored: Resource = {
            "resourceType": rtype,
            "id": rid,
            "meta": {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": stamp},
        }
        stored.update({k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")})
        body = json.dumps(stored, ensure_ascii=False)
        if row is None:
            self._db.execute(
                "INSERT INTO resource (type, id, version, last_updated, body) VALUES (?, ?, ?, ?, ?)",
                (rtype, rid, version, stamp, body),
            )
        else:
            self._db.execute(
                "UPDATE resource SET version = ?, last_updated = ?, body = ? WHERE type = ? AND id = ?",
                (version, stamp, body, rtype, rid),
            )
            self._db.execute("DELETE FROM search_index WHERE type = ? AND id = ?", (rtype, rid))
        rows = {
            (rtype, rid, param.name, system, param.index_value(value))
            for param in self._params[rtype].values()
            for system, value in param.extract(stored)
        }
        self._db.executemany(
            "INSERT INTO search_index (type, id, param, system, value) VALUES (?, ?, ?, ?, ?)", list(rows)
        )
        return Written(stored, row is None)

    # -- reads -------------------------------------------------------------------------------

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

    def count(self, rtype: str) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM resource WHERE type = ?", (rtype,)).fetchone()[0]
            )

    def search(
        self, rtype: str, criteria: Sequence[tuple[str, str]] = (), limit: int | None = None
    ) -> list[Resource]:
        """Resources of one type matching every criterion (AND); comma-separated values are OR.

        ``_id`` and ``_lastUpdated`` (with prefixes ``gt``, ``ge``, ``lt``, ``le``, ``eq``) are
        always available; any other name must be a declared SearchParam, otherwise
        UnknownSearchParam names the ones that are. Oldest first: in the order they were
        created, or — when ``_lastUpdated`` is a criterion — in the order they last changed,
        so a poller that pages with ``_count`` and a ``_lastUpdated=ge…`` cursor misses nothing.
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
            if name == "_lastUpdated":
                for value in values:
                    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
                    moment = instant(value[2:] if value[:2] in _PREFIXES else value)
                    clauses.append(f"r.last_updated {_PREFIXES[prefix]} ?")
                    args.append(moment)
                continue
            param = declared.get(name)
            if param is None:
                known = ", ".join(["_id", "_lastUpdated", *declared])
                raise UnknownSearchParam(
                    f"unknown search parameter {name!r} for {rtype} (supported: {known})"
                )
            alternatives: list[str] = []
            alt_args: list[Any] = []
            for value in values:
                system, code = param.query_value(value)
                if param.type == "string":
                    alternatives.append("(substr(i.value, 1, ?) = ?)")
                    alt_args += [len(code or ""), code]
                elif code is None:
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
        by_time = any(name == "_lastUpdated" for name, _ in criteria)
        order = "r.last_updated, r.seq" if by_time else "r.seq"
        sql = f"SELECT r.body FROM resource r WHERE {' AND '.join(clauses)} ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(body) for (body,) in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
