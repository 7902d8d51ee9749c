"""python-hl7's own asyncio MLLP server on loopback, as a third-party peer for the HL7 tests.

Why: the lab tests (test_adapter_hl7.py, test_lab_nak.py) judge our MLLP client against an
implementation of the protocol that is not ours (``hl7.mllp.start_hl7_server``). Running it in
a thread with a loop of its own, on a port the kernel picks, and stopping it cleanly is the
same for every such peer; what it answers is each test's own (``handle``).

    class Echo(Hl7Server):
        async def handle(self, reader, writer) -> None: ...

    with Echo() as peer:
        mllp.send_message(peer.uri, text, 3.0)

Test-only: nothing in ``src/`` uses it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Self

import hl7.mllp


class Hl7Server:
    """A python-hl7 MLLP server on 127.0.0.1 in a thread of its own; a context manager."""

    port: int = 0

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def handle(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        """One connection: read messages, write answers (the subclass's behaviour)."""
        raise NotImplementedError

    def encoding(self) -> tuple[str, str]:
        """How the server decodes what it reads: (codec, errors), taken when it starts."""
        return "utf-8", "strict"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            codec, errors = self.encoding()
            self._server = await hl7.mllp.start_hl7_server(
                self.handle, host="127.0.0.1", port=0, encoding=codec, encoding_errors=errors
            )
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            async with self._server:
                await self._server.serve_forever()

        try:
            self._loop.run_until_complete(serve())
        except asyncio.CancelledError:
            pass

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10), "python-hl7 server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        for task in asyncio.all_tasks(self._loop):
            self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout=5)

    @property
    def uri(self) -> str:
        return f"mllp://127.0.0.1:{self.port}"


__all__ = ["Hl7Server"]
