"""Keep the kernel from handing our fixed service ports to outgoing connections.

Some fixed loopback ports (the third cluster broker 39092/39093, PostgreSQL 54329) lie inside
Linux's ephemeral range (``net.ipv4.ip_local_port_range``, 32768-60999 by default). While such a
service is down, a client that keeps dialling it can be given that very port as its source port
and connect to itself (TCP simultaneous open); the socket, and then its TIME_WAIT entry, holds the
port and the service fails to bind with "Address already in use". Listing the ports in
``net.ipv4.ip_local_reserved_ports`` stops the kernel from choosing them. Writing the list needs
root; without it the launchers go on and rely on their retry instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["merge_port_list", "parse_port_list", "reserve_ports"]

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def parse_port_list(text: str) -> set[int]:
    """The ports named by a sysctl list such as ``"8080,39092-39093"``."""
    ports: set[int] = set()
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        low, _, high = item.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def merge_port_list(current: str, ports: Iterable[int]) -> str | None:
    """The sysctl list with ``ports`` added, or None when it already holds them all."""
    have = parse_port_list(current)
    wanted = have | set(ports)
    if wanted == have:
        return None
    return ",".join(str(port) for port in sorted(wanted))


def _ephemeral(ports: Iterable[int]) -> list[int]:
    try:
        low, high = (int(part) for part in _RANGE.read_text().split())
    except (OSError, ValueError):
        return []
    return [port for port in ports if low <= port <= high]


def reserve_ports(ports: Iterable[int]) -> bool:
    """Reserve those of ``ports`` that are ephemeral; True when none is left unprotected."""
    exposed = _ephemeral(ports)
    if not exposed:
        return True
    try:
        merged = merge_port_list(_RESERVED.read_text(), exposed)
        if merged is not None:
            _RESERVED.write_text(merged + "\n")
    except (OSError, ValueError):
        return False
    return True
