"""Free TCP ports for test servers (private RabbitMQ nodes, chaos proxies, service processes).

The kernel picks the port (bind to port 0), so two callers never race each other inside one
process; between processes there is the usual tiny window between close and re-bind, which the
servers started here tolerate by failing loudly rather than silently sharing a port.
"""

from __future__ import annotations

import socket

__all__ = ["free_port", "free_ports"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct free ports.

    All sockets are held open until every port is chosen: asking one at a time could hand out
    the same port twice (the kernel may reuse a port as soon as its socket is closed).
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
