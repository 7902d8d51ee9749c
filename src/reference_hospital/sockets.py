"""The listening socket every server of the hospital starts from: bound before it starts, so a
taken port is one line naming the component and the port, not a traceback from inside asyncio.
Its own module so that parts the hospital imports (the print server) can use it without a cycle."""

from __future__ import annotations

import errno
import socket

from rehearsal.errors import TargetError


def bind_socket(host: str, port: int, what: str) -> socket.socket:
    """A listening-ready TCP socket on host:port; TargetError naming ``what`` and the port otherwise."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on such sockets (else ~40 ms per reply)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise TargetError(
                f"cannot listen on {host}:{port} for {what}: port {port} is already in use"
            ) from None
        raise TargetError(f"cannot listen on {host}:{port} for {what}: {exc.strerror or exc}") from None
    return sock
