"""Peers that accept and never answer: the target of the bounded-time tests.

A component that refuses a connection is easy (the preflight and every client say so at
once); the hard case is one that accepts and then stays silent, like a hung server or a
firewall that lets the handshake through. These are real sockets on loopback: TCP
listeners that accept every connection, read and discard what comes, and never send a
byte; UDP sockets that take datagrams and never reply.
"""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType


class SilentPeers:
    """TCP and UDP ports on 127.0.0.1 that accept and never answer, served by one thread."""

    def __init__(self, tcp_ports: list[int], udp_ports: list[int] = ()) -> None:  # type: ignore[assignment]
        self.tcp_ports = sorted(set(tcp_ports))
        self.udp_ports = sorted(set(udp_ports))
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="silent-peers", daemon=True)
        self.accepted = 0

    def __enter__(self) -> SilentPeers:
        for port in self.tcp_ports:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(1024)
            listener.setblocking(False)
            self._sockets.append(listener)
            self._selector.register(listener, selectors.EVENT_READ, "listen")
        for port in self.udp_ports:
            datagrams = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            datagrams.bind(("127.0.0.1", port))
            datagrams.setblocking(False)
            self._sockets.append(datagrams)
            self._selector.register(datagrams, selectors.EVENT_READ, "drain")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "stop")
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()
        self._wake_r.close()
        self._wake_w.close()
        self._selector.close()

    def _serve(self) -> None:
        while True:
            for key, _ in self._selector.select():
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if key.data == "stop":
                    return
                if key.data == "listen":
                    try:
                        conn, _ = sock.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    self._sockets.append(conn)
                    self._selector.register(conn, selectors.EVENT_READ, "drain")
                    self.accepted += 1
                    continue
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data and sock.type == socket.SOCK_STREAM:  # the client gave up: forget it
                    self._selector.unregister(sock)
                    self._sockets.remove(sock)
                    sock.close()
