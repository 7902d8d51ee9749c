"""Which addresses a tree of processes listens on, read from /proc (no psutil, no ss).

Issue #8 asks that everything the harness and the reference hospital start listens on
loopback only. Ports alone cannot say who opened them, so this follows the process tree
from a root pid, collects the socket inodes of every descendant's open files, and looks
them up in /proc/net/{tcp,tcp6,udp,udp6}: TCP sockets in LISTEN, UDP sockets bound to a
port (an unconnected UDP socket is a listener too: snmpsim answers on one).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from rehearsal import lifetime

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


@dataclass(frozen=True)
class Listener:
    protocol: str
    address: str
    port: int
    pid: int
    command: str

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback

    def __str__(self) -> str:
        return f"{self.protocol} {self.address}:{self.port} (pid {self.pid}, {self.command})"


def descendants(root: int) -> set[int]:
    """``root`` and every live process below it (the harness's own walk of /proc)."""
    return {root, *lifetime.descendants(root)}


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(hex_address, 16)))
    words = struct.unpack("<4I", raw)  # /proc prints IPv6 as four host-order 32-bit words
    address = ipaddress.IPv6Address(struct.pack(">4I", *words))
    return str(address.ipv4_mapped or address)


def listeners(root: int) -> list[Listener]:
    """Every listening socket held by ``root`` or one of its descendants."""
    owners: dict[str, int] = {}
    for pid in descendants(root):
        for inode in _socket_inodes(pid):
            owners[inode] = pid
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        state = TCP_LISTEN if protocol.startswith("tcp") else UDP_UNCONNECTED
        try:
            lines = Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != state or fields[9] not in owners:
                continue
            address, port = fields[1].rsplit(":", 1)
            pid = owners[fields[9]]
            try:
                command = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                command = "?"
            found.append(Listener(protocol, _address(address), int(port, 16), pid, command))
    return found
