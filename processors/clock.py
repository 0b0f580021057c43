"""Time as a port: the fetcher reads the time and sleeps only through a :class:`Clock`.

Every time-based decision (quota windows, token expiry, re-fetch back-off, leases, reconciliation)
reads ``clock.now()``; every wait goes through ``clock.sleep()``. Production uses
:class:`SystemClock`; tests and the benchmark inject a faster one (:class:`ScaledClock`) so a
simulated day runs in minutes with every window and schedule scaled alike.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    """Aware UTC time, and a sleep measured on the same clock."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """A clock that runs ``factor`` times faster than the wall clock from ``start``.

    Two processes built with the same ``start``, ``anchor`` (a ``time.time()`` value) and
    ``factor`` read the same time.
    """

    def __init__(self, start: datetime, factor: float, anchor: float | None = None) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.start = start
        self.factor = factor
        self.anchor = time.time() if anchor is None else anchor

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self.factor)

    def now_ms(self) -> int:
        """Milliseconds since the epoch (the simulator's clock port)."""
        return int(self.now().timestamp() * 1000)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)
