"""GNU Health's own JSON-RPC (Tryton's ``/DB/``), the way its web client talks to it.

Test data goes in only through here (never the database): the same access rules and defaults
apply as to a clinician in SAO, so a seeded record is one GNU Health itself accepts.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import httpx


class RpcError(RuntimeError):
    """GNU Health refused a call; the message is its own (e.g. an access error naming the model)."""


class Rpc:
    """A logged-in session: ``rpc.model("party.party", "create", [{...}])``."""

    def __init__(self, base: str, database: str, login: str, password: str, timeout: float = 60) -> None:
        self.url = f"{base.rstrip('/')}/{database}/"
        self.http = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)
        self.context: dict[str, Any] = {}
        uid, session = self.call("common.db.login", login, {"password": password}, "en")
        token = base64.b64encode(f"{login}:{uid}:{session}".encode()).decode()
        self.http.headers["Authorization"] = f"Session {token}"
        self.uid = uid
        self.context = self.call("model.res.user.get_preferences", True, {})

    def call(self, method: str, *params: Any) -> Any:
        answer = self.http.post(
            self.url, json={"id": next(self._ids), "method": method, "params": list(params)}
        )
        answer.raise_for_status()
        body = answer.json()
        if body.get("error"):
            error = body["error"]  # [exception name, its arguments]
            said = " ".join(str(e) for e in error) if isinstance(error, list) else str(error)
            raise RpcError(f"{method}: {said}")
        return body["result"]

    def model(self, model: str, method: str, *args: Any) -> Any:
        return self.call(f"model.{model}.{method}", *args, self.context)

    def create(self, model: str, values: dict[str, Any]) -> int:
        return int(self.model(model, "create", [values])[0])

    def search_read(self, model: str, domain: list[Any], fields: list[str]) -> list[dict[str, Any]]:
        return list(self.model(model, "search_read", domain, 0, None, None, fields))

    def one(self, model: str, domain: list[Any]) -> int:
        found = self.model(model, "search", domain, 0, None, None)
        if len(found) != 1:
            raise RpcError(f"{model} {domain}: {len(found)} records, expected 1")
        return int(found[0])

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Rpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
