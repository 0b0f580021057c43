"""Time as a port: the wall clock and the async sleeper are injected so tests never wait.

Everything time-based in the simulator (token expiry, code TTLs, quota windows, webhook retry
schedules, late scoring) reads a :class:`Clock` and sleeps through a :data:`Sleeper`. Tests pass a
:class:`ManualClock` and a sleeper that advances it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["Clock", "ManualClock", "Sleeper", "SystemClock", "asyncio_sleeper"]

Sleeper = Callable[[float], Awaitable[None]]


class Clock(Protocol):
    """A source of wall-clock time in integer milliseconds since the Unix epoch."""

    def now_ms(self) -> int: ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start_ms: int) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self._now_ms += round(seconds * 1000)

    async def sleep(self, seconds: float) -> None:
        """A :data:`Sleeper` that advances this clock instead of waiting, then yields once."""
        self.advance(seconds)
        await asyncio.sleep(0)


async def asyncio_sleeper(seconds: float) -> None:
    """The real sleeper."""
    await asyncio.sleep(seconds)
