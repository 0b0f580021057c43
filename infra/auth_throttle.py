"""Throttling of failed bearer authentications per client address (ingest and the query API).

A client address that failed ``limit`` authentications within ``window_s`` seconds is refused
(429 with ``Retry-After``) before any token lookup, so guessing tokens costs the database nothing.
Each address has a leaky bucket: a failure adds one, the bucket drains ``limit`` per ``window_s``
(a steady ``limit`` failures per window stay allowed; a burst of ``limit`` fills it). IPv6
addresses count per /64, the block one subscriber usually holds. Memory is bounded: at most
``max_clients`` addresses are remembered, the least recently failing forgotten first. The clock is
injected; nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable

__all__ = ["FailureThrottle", "client_key"]

MAX_CLIENTS = 10_000


def client_key(host: str | None) -> str:
    """The throttled unit of a client address: the IPv4 address, the IPv6 /64, or the host as given."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailureThrottle:
    """Failed authentications per client key; ``limit`` 0 disables the throttle."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if limit < 0 or window_s <= 0 or max_clients < 1:
            raise ValueError("limit >= 0, window_s > 0 and max_clients >= 1 are required")
        self._limit = limit
        self._drain_per_s = limit / window_s
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (level, when), least recent first

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        level, when = bucket
        return max(0.0, level - (now - when) * self._drain_per_s)

    def retry_after(self, key: str) -> int | None:
        """Seconds before ``key`` may try again (at least 1), or None when it may try now."""
        if self._limit == 0:
            return None
        level = self._level(key, self._clock())
        if level + 1 <= self._limit:
            return None
        return max(1, math.ceil((level + 1 - self._limit) / self._drain_per_s))

    def failed(self, key: str) -> None:
        """Count one failed authentication of ``key``."""
        if self._limit == 0:
            return
        now = self._clock()
        level = self._level(key, now)
        self._buckets.pop(key, None)
        if len(self._buckets) >= self._max_clients:
            del self._buckets[next(iter(self._buckets))]  # the least recently failing
        self._buckets[key] = (level + 1, now)
