"""The reference hospital's print witness: its simulated printers keep every label they took.

The reference hospital lists them at ``{web_base}/_reference/devices/printed?printer=ID``, so
the check is "one more label than before, with this patient's identity on it" — stronger than
any real printer can say (see :class:`rehearsal.adapters.print_witness.StandardsPrintWitness`),
and only here: no real printer or EHR has that endpoint. A printer the endpoint does not list
falls back to ``~HS`` on its raw port (ready: no paper out, head open, ribbon out or pause).
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from rehearsal.clients.http import GuardedClient, HttpError
from rehearsal.plan import Plan, Printer
from rehearsal.probes.zpl import probe_zpl

ADMIN = "/_reference/devices/printed"


class ReferencePrintWitness:
    """``adapter(plan)``; ``mark`` is the number of labels the printer keeps (None: it keeps no list)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        env = plan.environment
        field = "environment.web_base"
        self._http = GuardedClient(env.web_base, env.timeouts, env.allowed_hosts, field=field)

    def close(self) -> None:
        self._http.close()

    def labels(self, printer: Printer) -> list[str] | None:
        """Every label the printer took, when it can tell (a simulated one); None otherwise."""
        try:
            response = self._http.request("GET", ADMIN, params={"printer": printer.id})
        except HttpError:
            return None
        if response.status_code != 200:
            return None
        entry = response.json().get(printer.id) or {}
        return [*entry.get("printed", []), *entry.get("queued", [])]

    def mark(self, printer: Printer) -> int | None:
        found = self.labels(printer)
        return None if found is None else len(found)

    def confirm(self, printer: Printer, mark: object, expect: str, within_s: float = 2.0) -> str:
        """The printer's own confirmation that it took a job with ``expect`` in it; AssertionError if not."""
        if not isinstance(mark, int):
            return self._ready(printer)
        before = mark
        deadline = time.monotonic() + within_s
        while True:
            found = self.labels(printer) or []
            new = found[before:]
            if any(expect in label for label in new):
                return f"{printer.id} tog emot {len(new)} ny(a) etikett(er) med {expect}"
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"skrivaren {printer.id} ({printer.uri}) har inte tagit emot någon etikett med {expect} "
                    f"(före: {before}, nu: {len(found)}; nya: {[label[:80] for label in new]})"
                )
            time.sleep(0.1)

    def _ready(self, printer: Printer) -> str:
        scheme = urlsplit(printer.uri).scheme
        if scheme != "tcp":
            return f"{printer.id}: ({scheme}) bekräftas av journalens utskriftskvitto"
        readiness = asyncio.run(probe_zpl(printer.uri, self.plan.environment.timeouts.device, identify=False))
        if not readiness.ready:
            raise AssertionError(
                f"skrivaren {printer.id} ({printer.uri}) är inte redo efter jobbet: {readiness}"
            )
        return f"{printer.id} svarar ~HS: redo (ingen pappersbrist, lucka stängd, inte pausad)"
