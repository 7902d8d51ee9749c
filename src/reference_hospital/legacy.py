"""The legacy EHR: the system the units that have not gone live still work in.

A separate application with its own SQLite database and its own port
(``environment.legacy_base``), with a plain JSON API under ``/api`` and one HTML page at
``/`` that shows what it holds. Its units are the plan's sites with ``system: legacy``
(and their sub-units); its patients are the plan's test identities and nobody else.

What it does, as a legacy system on the coexistence boundary would:

- **referrals** out (written here, carried by the bridge to the new EHR) and in (from the
  new EHR via the bridge), each with status ``new → sent/received → answered``; every
  change bumps a change counter (``seq``) the bridge reads from (``?since=``);
- **lab orders** out: sent to the lab as ORM^O01 over MLLP at once, the ACK recorded;
- **results** in: ORU^R01 content posted by the bridge, filed on the order and published;
- **published records** (NPÖ): results, referral answers and notes, read by the bridge's
  NPÖ-like endpoint;
- the **migration extract** (``/api/extract/{patients,bookings,referrals}.csv``) of the
  units that go live, from :mod:`reference_hospital.migration`.
"""

from __future__ import annotations

import html
import sqlite3
import threading
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reference_hospital.bridge import LEGACY_APP, SiteMap, pnr_digits, pnr_display, utcnow
from reference_hospital.hospital import (
    Component,
    Hospital,
    LoopThread,
    bind_socket,
    endpoint_address,
    serve_http,
    stop_http,
)
from reference_hospital.lab import analysis
from rehearsal.clients import hl7 as mllp
from rehearsal.errors import TargetError

SCHEMA = """
CREATE TABLE referral (
    id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, direction TEXT NOT NULL, personnummer TEXT NOT NULL,
    from_unit TEXT NOT NULL, to_unit TEXT NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL,
    answer TEXT, answered_by TEXT, external_id TEXT, created TEXT NOT NULL, changed TEXT NOT NULL
);
CREATE TABLE lab_order (
    id INTEGER PRIMARY KEY, placer TEXT UNIQUE NOT NULL, personnummer TEXT NOT NULL, unit TEXT NOT NULL,
    test TEXT NOT NULL, status TEXT NOT NULL, ack TEXT, error TEXT, created TEXT NOT NULL
);
CREATE TABLE result (
    id INTEGER PRIMARY KEY, placer TEXT NOT NULL, filler TEXT, personnummer TEXT NOT NULL,
    test_code TEXT, test_name TEXT, summary TEXT NOT NULL, received TEXT NOT NULL
);
CREATE TABLE record (
    id INTEGER PRIMARY KEY, personnummer TEXT NOT NULL, site TEXT, unit TEXT, kind TEXT NOT NULL,
    title TEXT NOT NULL, text TEXT NOT NULL, date TEXT NOT NULL
);
CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counter VALUES ('seq', 0);
"""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LegacyEhr(Component):
    """The legacy EHR's HTTP app and database."""

    name = "legacy"

    def __init__(self, hospital: Hospital) -> None:
        self.hospital = hospital
        plan = hospital.plan
        assert plan.environment.legacy_base is not None
        self.plan = plan
        self.url = plan.environment.legacy_base
        self.host, self.port = endpoint_address("legacy_base", self.url, ("http",))
        self.sites = SiteMap(plan)
        self.units = {
            hsa: name for hsa, name in self.sites.names().items() if self.sites.system_of(hsa) == "legacy"
        }
        self.database = hospital.workdir / "legacy.sqlite"
        self.loop = LoopThread("reference-legacy")
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._sock: Any = None
        self._server: Any = None

    # -- component -----------------------------------------------------------------------------

    def describe(self) -> str:
        return f"legacy EHR ({self.url})"

    def ports(self) -> list[int]:
        return [self.port]

    def bind(self) -> None:
        self._sock = bind_socket(self.host, self.port, f"the legacy EHR ({self.url})")

    def start(self) -> None:
        self.open(self.database)
        self.loop.start()
        self._server = self.loop.call(serve_http(self.asgi(), self._sock, self.describe()))

    def open(self, database: Path) -> None:
        """A fresh database for this start (the legacy EHR of a rehearsal starts empty)."""
        database.parent.mkdir(parents=True, exist_ok=True)
        for stale in (database, database.with_suffix(".sqlite-journal")):
            stale.unlink(missing_ok=True)
        self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._db.executescript(SCHEMA)

    def stop(self) -> None:
        if self.loop.running:
            try:
                self.loop.call(stop_http(self._server), timeout=10)
            except TargetError:
                pass
        self.loop.stop()
        self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None

    def health(self) -> dict[str, Any]:
        return {"ok": self._server is not None and self._server.started, "url": self.url}

    # -- storage -------------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        assert self._db is not None
        with self._lock:
            cursor = self._db.execute(sql, args)
            names = [c[0] for c in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        assert self._db is not None
        with self._lock:
            return int(self._db.execute(sql, args).lastrowid or 0)

    def _next_seq(self) -> int:
        assert self._db is not None
        with self._lock:
            self._db.execute("UPDATE counter SET value = value + 1 WHERE name = 'seq'")
            return int(self._db.execute("SELECT value FROM counter WHERE name = 'seq'").fetchone()[0])

    # -- rules ---------------------------------------------------------------------------------

    def patient(self, personnummer: Any) -> tuple[str, str]:
        """(display personnummer, name) of a test identity; 404 for anyone else."""
        digits = pnr_digits(str(personnummer or ""))
        name = self.sites.identity_name(digits)
        if name is None:
            raise ApiError(404, f"no patient {personnummer!r} here (only the plan's test identities exist)")
        return pnr_display(digits), name

    def own_unit(self, hsa: Any) -> str:
        if hsa not in self.units:
            raise ApiError(
                422, f"{hsa!r} is not a unit of this legacy EHR (units: {', '.join(self.units) or 'none'})"
            )
        return str(hsa)

    def known_unit(self, hsa: Any) -> str:
        if self.sites.site_of(str(hsa or "")) is None or hsa not in self.sites.names():
            raise ApiError(422, f"{hsa!r} is not the HSA-id of a unit in the plan")
        return str(hsa)

    def referral(self, rid: int) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM referral WHERE id = ?", (rid,))
        if not rows:
            raise ApiError(404, f"no referral {rid}")
        return rows[0]

    def create_referral(self, body: dict[str, Any], direction: str) -> dict[str, Any]:
        pnr, _ = self.patient(body.get("personnummer"))
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(422, "text: the referral needs a question (non-empty text)")
        if direction == "out":
            from_unit, to_unit = self.own_unit(body.get("from_unit")), self.known_unit(body.get("to_unit"))
        else:
            from_unit, to_unit = str(body.get("from_unit") or ""), self.own_unit(body.get("to_unit"))
        now = utcnow()
        rid = self._write(
            "INSERT INTO referral (seq, direction, personnummer, from_unit, to_unit, text, status,"
            " external_id, created, changed) VALUES (?, ?, ?, ?, ?, ?, 'new', ?, ?, ?)",
            (self._next_seq(), direction, pnr, from_unit, to_unit, text, body.get("external_id"), now, now),
        )
        return self.referral(rid)

    def set_status(self, rid: int, status: Any, external_id: Any = None) -> dict[str, Any]:
        row = self.referral(rid)
        allowed = {"out": {"sent", "received"}, "in": {"received"}}[row["direction"]]
        if status not in allowed:
            raise ApiError(
                422, f"status of a referral {row['direction']} can become {sorted(allowed)}, not {status!r}"
            )
        if row["status"] == "answered":
            raise ApiError(409, f"referral {rid} is already answered")
        self._write(
            "UPDATE referral SET status = ?, external_id = COALESCE(?, external_id), seq = ?, changed = ?"
            " WHERE id = ?",
            (status, external_id, self._next_seq(), utcnow(), rid),
        )
        return self.referral(rid)

    def answer(self, rid: int, text: Any, by: Any) -> dict[str, Any]:
        row = self.referral(rid)
        if not isinstance(text, str) or not text.strip():
            raise ApiError(422, "text: an answer needs text")
        if row["status"] == "answered":
            raise ApiError(409, f"referral {rid} is already answered")
        now = utcnow()
        self._write(
            "UPDATE referral SET status = 'answered', answer = ?, answered_by = ?, seq = ?, changed = ?"
            " WHERE id = ?",
            (text, str(by or ""), self._next_seq(), now, rid),
        )
        unit = row["to_unit"] if row["direction"] == "in" else row["from_unit"]
        self.publish(row["personnummer"], unit, "referral-answer", "Remissvar", text)
        return self.referral(rid)

    def publish(self, personnummer: str, unit: str, kind: str, title: str, text: str) -> int:
        site = self.sites.site_of(unit)
        return self._write(
            "INSERT INTO record (personnummer, site, unit, kind, title, text, date)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (personnummer, site.id if site else None, unit, kind, title, text, utcnow()),
        )

    async def order_lab(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Create the order and send it to the lab now; the order with the lab's ACK code."""
        pnr, name = self.patient(body.get("personnummer"))
        unit = self.own_unit(body.get("unit"))
        found = analysis(str(body.get("test") or ""))
        if found is None:
            raise ApiError(422, f"test: unknown analysis {body.get('test')!r}")
        oid = self._write(
            "INSERT INTO lab_order (placer, personnummer, unit, test, status, created)"
            " VALUES (?, ?, ?, ?, 'new', ?)",
            (f"tmp-{utcnow()}-{id(body)}", pnr, unit, found.npu, utcnow()),
        )
        placer = f"L{oid:06d}"
        self._write("UPDATE lab_order SET placer = ? WHERE id = ?", (placer, oid))
        lab = self.plan.coexistence.lab
        message = mllp.build_order(
            mllp.LabOrder(
                placer=placer,
                personnummer=pnr,
                patient_name=name,
                test_code=found.npu,
                test_name=f"{found.code} {found.name}",
                sending_application=LEGACY_APP,
                sending_facility=unit,
                orderer_hsa_id=str(body.get("orderer") or ""),
            ),
            receiver=(lab.application, lab.facility),
        )
        status, ack_code, error, code = "failed", None, "", 502
        uri = self.plan.environment.lab_mllp
        if uri is None:
            error = "no lab in the plan (environment.lab_mllp)"
        else:
            try:
                ack = await mllp.send_message_async(uri, message, self.plan.environment.timeouts.read)
                ack_code = mllp.ack_code(ack)
                status, code = ("sent", 201) if ack_code in ("AA", "CA") else ("rejected", 422)
                error = "" if code == 201 else mllp.ack_text(ack)
            except mllp.MllpError as exc:
                error = str(exc)
        self._write(
            "UPDATE lab_order SET status = ?, ack = ?, error = ? WHERE id = ?", (status, ack_code, error, oid)
        )
        return code, self._rows("SELECT * FROM lab_order WHERE id = ?", (oid,))[0]

    def file_result(self, body: dict[str, Any]) -> dict[str, Any]:
        placer = str(body.get("placer") or "")
        orders = self._rows("SELECT * FROM lab_order WHERE placer = ?", (placer,))
        if not orders:
            raise ApiError(404, f"no lab order {placer!r} here")
        pnr, _ = self.patient(body.get("personnummer"))
        values = body.get("values") or []
        summary = "; ".join(
            f"{v.get('name', '')} {v.get('value', '')} {v.get('unit', '')}".strip()
            for v in values
            if isinstance(v, dict)
        )
        rid = self._write(
            "INSERT INTO result (placer, filler, personnummer, test_code, test_name, summary, received)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                placer,
                body.get("filler"),
                pnr,
                body.get("test_code"),
                body.get("test_name"),
                summary,
                utcnow(),
            ),
        )
        self._write("UPDATE lab_order SET status = 'resulted' WHERE placer = ?", (placer,))
        self.publish(pnr, orders[0]["unit"], "lab-result", str(body.get("test_name") or "Labbsvar"), summary)
        return self._rows("SELECT * FROM result WHERE id = ?", (rid,))[0]

    # -- HTTP ----------------------------------------------------------------------------------

    def asgi(self) -> Starlette:
        def r(path: str, handler: Any, methods: list[str]) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._guarded(request, handler)

            return Route(path, endpoint, methods=methods)

        return Starlette(
            routes=[
                r("/", self.h_page, ["GET"]),
                r("/api/health", self.h_health, ["GET"]),
                r("/api/units", self.h_units, ["GET"]),
                r("/api/patients", self.h_patients, ["GET"]),
                r("/api/patients/{pnr}", self.h_patient, ["GET"]),
                r("/api/referrals", self.h_referrals, ["GET", "POST"]),
                r("/api/referrals/inbound", self.h_inbound, ["POST"]),
                r("/api/referrals/{rid:int}", self.h_referral, ["GET"]),
                r("/api/referrals/{rid:int}/status", self.h_status, ["POST"]),
                r("/api/referrals/{rid:int}/answer", self.h_answer, ["POST"]),
                r("/api/lab-orders", self.h_lab_orders, ["GET", "POST"]),
                r("/api/results", self.h_results, ["GET", "POST"]),
                r("/api/records", self.h_records, ["GET", "POST"]),
                r("/api/extract/{name}.csv", self.h_extract, ["GET"]),
            ]
        )

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "send a JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(400, "send a JSON object")
        return body

    async def _guarded(self, request: Request, handler: Any) -> Response:
        """Run a handler; ApiError becomes ``{"error": …}`` with its status, a bad number a 422."""
        try:
            result = await handler(request)
        except ApiError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        except ValueError as exc:
            return JSONResponse({"error": f"bad value: {exc}"}, 422)
        if isinstance(result, Response):
            return result
        code, body = result if isinstance(result, tuple) else (200, result)
        return JSONResponse(body, code)

    async def h_health(self, request: Request) -> Any:
        return {"status": "up", "units": len(self.units), "time": utcnow()}

    async def h_units(self, request: Request) -> Any:
        return [{"hsa_id": h, "name": n, "site": self.sites.site_of(h).id} for h, n in self.units.items()]

    async def h_patients(self, request: Request) -> Any:
        return [
            {"personnummer": pnr_display(pnr_digits(t.personnummer)), "name": t.name}
            for t in self.plan.test_identities
        ]

    async def h_patient(self, request: Request) -> Any:
        pnr, name = self.patient(request.path_params["pnr"])
        return {"personnummer": pnr, "name": name}

    async def h_referrals(self, request: Request) -> Any:
        if request.method == "POST":
            return 201, self.create_referral(await self._json(request), "out")
        q = request.query_params
        clauses, args = ["seq > ?"], [int(q.get("since", "0") or 0)]
        for key in ("direction", "status", "personnummer"):
            if q.get(key):
                clauses.append(f"{key} = ?")
                args.append(pnr_display(pnr_digits(q[key])) if key == "personnummer" else q[key])
        if q.get("unit"):
            clauses.append("(from_unit = ? OR to_unit = ?)")
            args += [q["unit"], q["unit"]]
        limit = min(int(q.get("limit", "500") or 500), 1000)
        sql = f"SELECT * FROM referral WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        return self._rows(sql, (*args, limit))

    async def h_inbound(self, request: Request) -> Any:
        body = await self._json(request)
        if body.get("external_id"):
            existing = self._rows(
                "SELECT * FROM referral WHERE external_id = ? AND direction = 'in'",
                (str(body["external_id"]),),
            )
            if existing:  # the bridge retried after a lost answer: the same referral, once
                return 200, existing[0]
        return 201, self.create_referral(body, "in")

    async def h_referral(self, request: Request) -> Any:
        return self.referral(request.path_params["rid"])

    async def h_status(self, request: Request) -> Any:
        body = await self._json(request)
        return self.set_status(request.path_params["rid"], body.get("status"), body.get("external_id"))

    async def h_answer(self, request: Request) -> Any:
        body = await self._json(request)
        return self.answer(request.path_params["rid"], body.get("text"), body.get("by"))

    async def h_lab_orders(self, request: Request) -> Any:
        if request.method == "POST":
            return await self.order_lab(await self._json(request))
        pnr = request.query_params.get("personnummer")
        if pnr:
            return self._rows(
                "SELECT * FROM lab_order WHERE personnummer = ? ORDER BY id", (self.patient(pnr)[0],)
            )
        return self._rows("SELECT * FROM lab_order ORDER BY id")

    async def h_results(self, request: Request) -> Any:
        if request.method == "POST":
            return 201, self.file_result(await self._json(request))
        pnr = request.query_params.get("personnummer")
        if pnr:
            return self._rows(
                "SELECT * FROM result WHERE personnummer = ? ORDER BY id", (self.patient(pnr)[0],)
            )
        return self._rows("SELECT * FROM result ORDER BY id")

    async def h_records(self, request: Request) -> Any:
        if request.method == "POST":
            body = await self._json(request)
            pnr, _ = self.patient(body.get("personnummer"))
            unit = self.own_unit(body.get("unit"))
            title, text = str(body.get("title") or "Anteckning"), str(body.get("text") or "")
            rid = self.publish(pnr, unit, "note", title, text)
            return 201, self._rows("SELECT * FROM record WHERE id = ?", (rid,))[0]
        pnr, _ = self.patient(request.query_params.get("personnummer"))
        return self._rows("SELECT * FROM record WHERE personnummer = ? ORDER BY id", (pnr,))

    async def h_extract(self, request: Request) -> Any:
        try:
            migration = self.hospital.component("migration")
        except Exception:  # noqa: BLE001
            raise ApiError(404, "no migration in this plan") from None
        name = request.path_params["name"]
        try:
            text = migration.extract_csv(name)
        except KeyError:
            raise ApiError(404, f"no extract {name!r} (extracts: patients, bookings, referrals)") from None
        return PlainTextResponse(text, media_type="text/csv; charset=utf-8")

    async def h_page(self, request: Request) -> Any:
        return HTMLResponse(self.page())

    def page(self) -> str:
        """One Swedish overview page: units, referrals, lab orders, results (for a person looking in)."""
        e = html.escape

        def table(caption: str, heads: list[str], rows: list[list[Any]]) -> str:
            head = "".join(f"<th>{e(h)}</th>" for h in heads)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(str(c or ''))}</td>" for c in row) + "</tr>" for row in rows
            )
            return f"<table><caption>{e(caption)}</caption><tr>{head}</tr>{body}</table>"

        names = self.sites.names()
        referrals = self._rows("SELECT * FROM referral ORDER BY id DESC LIMIT 200")
        orders = self._rows("SELECT * FROM lab_order ORDER BY id DESC LIMIT 200")
        results = self._rows("SELECT * FROM result ORDER BY id DESC LIMIT 200")
        parts = [
            table("Enheter", ["HSA-id", "Namn"], [[h, n] for h, n in self.units.items()]),
            table(
                "Remisser",
                ["Nr", "Riktning", "Patient", "Från", "Till", "Status", "Fråga", "Svar"],
                [
                    [
                        r["id"],
                        {"out": "utgående", "in": "inkommande"}[r["direction"]],
                        r["personnummer"],
                        names.get(r["from_unit"], r["from_unit"]),
                        names.get(r["to_unit"], r["to_unit"]),
                        r["status"],
                        r["text"],
                        r["answer"],
                    ]
                    for r in referrals
                ],
            ),
            table(
                "Labbeställningar",
                ["Nummer", "Patient", "Enhet", "Analys", "Status", "Kvittens"],
                [
                    [
                        o["placer"],
                        o["personnummer"],
                        names.get(o["unit"], o["unit"]),
                        o["test"],
                        o["status"],
                        o["ack"],
                    ]
                    for o in orders
                ],
            ),
            table(
                "Labbsvar",
                ["Beställning", "Patient", "Analys", "Resultat", "Mottaget"],
                [
                    [r["placer"], r["personnummer"], r["test_name"], r["summary"], r["received"]]
                    for r in results
                ],
            ),
        ]
        return (
            '<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>Journal (äldre system)</title>'
            "</head><body><h1>Journal (äldre system)</h1><p>Enheter som ännu inte gått över till den nya "
            "journalen.</p>" + "".join(parts) + "</body></html>"
        )


def components(hospital: Hospital) -> list[Component]:
    return [LegacyEhr(hospital)] if hospital.plan.environment.legacy_base else []
