"""Fakes shared by the fetcher's unit tests: a manual clock and a recording quota."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processors.quota import Priority, Verdict

T0 = datetime(2025, 10, 15, 12, 0, tzinfo=UTC)


class ManualClock:
    """Time that moves only when told to; ``sleep`` advances it and records the wait."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


class RecordingQuota:
    """Grants everything (or refuses with ``refuse_for``) and records grants and pauses."""

    def __init__(self, refuse_for: float | None = None) -> None:
        self.refuse_for = refuse_for
        self.granted: list[Priority] = []
        self.pauses: list[float] = []

    async def try_acquire(self, priority: Priority) -> Verdict:
        if self.refuse_for is not None:
            return Verdict(False, self.refuse_for)
        self.granted.append(priority)
        return Verdict(True)

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
