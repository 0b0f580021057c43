"""Is a Kafka broker there? A raw ApiVersions request on a socket, with no Kafka client.

``deploy.kafka_local`` asks it before starting a node (is one already serving, or is the port taken by
something else?) and while waiting for one to come up.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["api_versions_ok", "port_in_use"]


def _dial(host: str, port: int, timeout: float) -> socket.socket | None:
    """A connected socket, or None when nothing listens (a self-connected socket counts as nothing).

    SO_REUSEADDR keeps the probe's TIME_WAIT entry from blocking the broker's own bind later.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
        if sock.getsockname() == sock.getpeername():
            sock.close()
            return None
    except OSError:
        sock.close()
        return None
    return sock


def port_in_use(port: int) -> bool:
    """True when something listens on 127.0.0.1:``port``."""
    sock = _dial("127.0.0.1", port, 0.5)
    if sock is None:
        return False
    sock.close()
    return True


def api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the broker at host:port answers an ApiVersions v0 request without error."""
    client_id = b"ready-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    sock = _dial(host, port, timeout)
    if sock is None:
        return False
    try:
        with sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exactly(sock, 4)
            if header is None:
                return False
            (size,) = struct.unpack(">i", header)
            data = _recv_exactly(sock, size)
            if data is None or len(data) < 6:
                return False
            correlation, error = struct.unpack(">ih", data[:6])
            return bool(correlation == 7 and error == 0)
    except OSError:
        return False


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
