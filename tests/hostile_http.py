"""Hostile HTTP peers on loopback for the hosts and deadline tests (real sockets, not mocks).

- :class:`Listener`: a bare TCP listener on another loopback address (``127.0.0.2``) that
  counts connections and keeps the head of every request: the proof that nothing, and no
  credentials, went to a host the client must not talk to.
- :class:`Scripted`: an HTTP server on ``127.0.0.1`` answering every request with what a
  test sets (status, headers, body), recording each request's path and Authorization.
- :class:`Dripping`: accepts, reads the request, then sends its answer one byte every
  ``interval`` seconds, for ever (headers too, unless ``head_at_once``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ELSEWHERE = "127.0.0.2"  # another loopback address: another host as far as allowed_hosts goes


class Listener:
    """Counts who connects to ``host`` and keeps the first bytes (the request head) of each."""

    def __init__(self, host: str = ELSEWHERE, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.heads: list[bytes] = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="listener", daemon=True)
        self._thread.start()

    @property
    def host_port(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.count += 1
            conn.settimeout(0.5)
            try:
                self.heads.append(conn.recv(65536))
            except OSError:
                self.heads.append(b"")
            conn.close()

    def authorizations(self) -> list[bytes]:
        return [
            line
            for head in self.heads
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"authorization")
        ]

    def assert_live(self) -> None:
        """Positive control: the listener does see a connection when one is made."""
        before = self.count
        socket.create_connection(self.sock.getsockname(), timeout=2).close()
        deadline = time.monotonic() + 2
        while self.count == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.count == before + 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


Answer = tuple[int, dict[str, str], bytes]


class Scripted:
    """An HTTP/1.1 server on 127.0.0.1; ``answer(path) -> (status, headers, body)`` decides each reply."""

    def __init__(self, answer: Callable[[str], Answer]) -> None:
        self.answer = answer
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path, self.headers.get("Authorization")))
                status, headers, body = outer.answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _reply

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="scripted", daemon=True
        )
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2)


def fhir_json(data: dict[str, Any], status: int = 200, **headers: str) -> Answer:
    return status, {"Content-Type": "application/fhir+json", **headers}, json.dumps(data).encode()


class Dripping:
    """Accepts on 127.0.0.1 ``ports``; each connection gets its answer one byte per ``interval`` s, for ever.

    The answer is a valid start (``HTTP/1.1 200 OK``, a large Content-Length) that never
    ends; with ``head_at_once`` the head comes at once and only the body drips. ``sent``
    counts the bytes dripped, so a test can tell "cut off while it dripped" from "silent".
    """

    HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"

    def __init__(self, ports: list[int], interval: float = 1.0, head_at_once: bool = False) -> None:
        self.interval, self.head_at_once = interval, head_at_once
        self.accepted = 0
        self.sent = 0
        self._stop = threading.Event()
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        for port in ports:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(256)
            sock.settimeout(0.05)
            self._listeners.append(sock)
        self.ports = [s.getsockname()[1] for s in self._listeners]

    def __enter__(self) -> Dripping:
        for sock in self._listeners:
            thread = threading.Thread(target=self._accept, args=(sock,), name="dripping", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in self._listeners:
            sock.close()

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        with conn:
            try:
                conn.recv(65536)  # the request (its head at least); what it asks does not matter
                if self.head_at_once:
                    conn.sendall(self.HEAD)
                stream = b"" if self.head_at_once else self.HEAD
                i = 0
                while not self._stop.wait(self.interval):
                    conn.sendall(stream[i : i + 1] if i < len(stream) else b" ")
                    self.sent += 1
                    i += 1
            except OSError:  # the client gave up: what the test wants
                return
