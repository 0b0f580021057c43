"""Per-app request quota (§9): fixed minute and day windows, ``X-RateLimit-*`` headers, 429 over the limit.

Besides enforcing, the quota keeps counters that tests and benchmarks read through the control API
to prove that a client never exceeded its budget: totals, 429s, the most requests accepted in one
fixed minute window, and the most requests *attempted* in any sliding 60-second span.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from simulator.clock import Clock

__all__ = ["Quota", "QuotaDecision"]

_MINUTE_MS = 60_000
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    """Whether the request may proceed, and the three headers every response carries."""

    allowed: bool
    headers: dict[str, str]


@dataclass
class _AppCounters:
    minute_start: int = -1
    minute_count: int = 0
    day_start: int = -1
    day_count: int = 0
    total: int = 0
    rejected: int = 0
    max_fixed_minute: int = 0
    max_sliding_60s: int = 0
    recent: deque[int] = field(default_factory=deque)


class Quota:
    """Fixed-window counters per client app."""

    def __init__(self, clock: Clock, *, per_minute: int, per_day: int, enabled: bool) -> None:
        self._clock = clock
        self.per_minute = per_minute
        self.per_day = per_day
        self.enabled = enabled
        self._apps: dict[str, _AppCounters] = {}

    def _roll(self, app: str, now: int) -> _AppCounters:
        counters = self._apps.get(app)
        if counters is None:
            counters = self._apps[app] = _AppCounters()
        minute_start = now - now % _MINUTE_MS
        if counters.minute_start != minute_start:
            counters.minute_start, counters.minute_count = minute_start, 0
        day_start = now - now % _DAY_MS
        if counters.day_start != day_start:
            counters.day_start, counters.day_count = day_start, 0
        return counters

    def _headers(self, counters: _AppCounters, now: int) -> dict[str, str]:
        minute_left = self.per_minute - counters.minute_count
        day_left = self.per_day - counters.day_count
        if day_left < minute_left:
            limit, left, reset_ms = self.per_day, day_left, counters.day_start + _DAY_MS - now
        else:
            limit, left, reset_ms = self.per_minute, minute_left, counters.minute_start + _MINUTE_MS - now
        return {
            "X-RateLimit-Limit": f"{limit}, {self.per_minute};window=60, {self.per_day};window=86400",
            "X-RateLimit-Remaining": str(max(left, 0)),
            "X-RateLimit-Reset": str(max(1, -(-reset_ms // 1000))),
        }

    def hit(self, app: str) -> QuotaDecision:
        """Count one request of ``app``; refuse it when a window is exhausted (and enforcement is on)."""
        now = self._clock.now_ms()
        counters = self._roll(app, now)
        counters.total += 1
        recent = counters.recent
        recent.append(now)
        while recent[0] <= now - _MINUTE_MS:
            recent.popleft()
        counters.max_sliding_60s = max(counters.max_sliding_60s, len(recent))
        exhausted = counters.minute_count >= self.per_minute or counters.day_count >= self.per_day
        if exhausted and self.enabled:
            counters.rejected += 1
            return QuotaDecision(False, self._headers(counters, now))
        counters.minute_count += 1
        counters.day_count += 1
        counters.max_fixed_minute = max(counters.max_fixed_minute, counters.minute_count)
        return QuotaDecision(True, self._headers(counters, now))

    def peek(self, app: str) -> dict[str, str]:
        """The headers for a response that is not counted (e.g. unauthenticated)."""
        now = self._clock.now_ms()
        return self._headers(self._roll(app, now), now)

    def reject(self, app: str) -> QuotaDecision:
        """A forced 429 (fault injection), counted as a rejection."""
        now = self._clock.now_ms()
        counters = self._roll(app, now)
        counters.rejected += 1
        headers = self._headers(counters, now)
        headers["X-RateLimit-Remaining"] = "0"
        return QuotaDecision(False, headers)

    def snapshot(self) -> dict[str, Any]:
        """Counters per app, for the control API."""
        return {
            "enabled": self.enabled,
            "per_minute": self.per_minute,
            "per_day": self.per_day,
            "apps": {
                app: {
                    "total_requests": c.total,
                    "rejected_429": c.rejected,
                    "max_accepted_in_fixed_minute": c.max_fixed_minute,
                    "max_attempted_in_any_60s": c.max_sliding_60s,
                    "minute_count": c.minute_count,
                    "day_count": c.day_count,
                }
                for app, c in self._apps.items()
            },
        }

    def reset(self) -> None:
        """Forget every counter and window."""
        self._apps.clear()
