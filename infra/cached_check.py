"""An async check whose result is reused for a short while: ``/readyz`` of ingest and of the query API.

Unauthenticated callers may ask ``/readyz`` as often as they like; with :class:`CachedCheck` the
dependencies (Kafka, PostgreSQL) are asked at most once per ``ttl_s``, and callers arriving while a
check runs wait for that one (single flight). A check that raises is not remembered. The clock is
injected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["CachedCheck"]

T = TypeVar("T")


class CachedCheck(Generic[T]):
    """``await cached.result()``: the result of ``check``, run again once ``ttl_s`` has passed since
    the last one ended (0: every call not joining a running check runs it)."""

    def __init__(
        self, check: Callable[[], Awaitable[T]], ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._clock = clock
        self._result: tuple[T, float] | None = None  # (value, until)
        self._running: asyncio.Task[T] | None = None

    async def result(self) -> T:
        remembered = self._result
        if remembered is not None and self._clock() < remembered[1]:
            return remembered[0]
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
            self._running.add_done_callback(_retrieve)
        return await asyncio.shield(self._running)  # a caller that gives up leaves the check to others

    async def _run(self) -> T:
        try:
            value = await self._check()
        finally:
            self._running = None
        self._result = (value, self._clock() + self._ttl_s)
        return value


def _retrieve(task: asyncio.Task[T]) -> None:
    """Mark the exception of a check nobody waited for as seen (no "never retrieved" warning)."""
    if not task.cancelled():
        task.exception()
