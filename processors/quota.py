"""One WHOOP quota for every fetcher process: sliding minute and day windows kept in PostgreSQL.

WHOOP counts requests per app (``whoop-api-v2.md`` §9: 100 per minute, 10,000 per day by default).
A classic token bucket refilling at 100/60 s would let up to 200 requests into one WHOOP minute
(a full bucket, then its refill), so the budget here is an exact *sliding window*: a request may
go only when the request granted ``allowed`` grants earlier is older than the window. Grants are
numbered (``seq``) in one row-locked bucket, so every process agrees on the order; checking
"grant ``seq - allowed`` is outside the window" is one primary-key lookup per window. Both windows
get ``FETCHER_QUOTA_WINDOW_MARGIN_S`` added, which absorbs clock skew and network latency.

Priorities (live webhook > pending re-fetch > reconciliation > backfill) are reserves: a priority
may only take a request while more than its reserve share of each window is left, so backfill
can never eat the budget that live webhooks need. A refused caller gets the time after which
trying again can succeed; it defers its task (never drops it) and picks up higher-priority work.

A 429 from WHOOP pauses the whole bucket until ``X-RateLimit-Reset`` has passed (``pause``).

:class:`PgQuota` is the adapter; :class:`MemoryQuota` runs the same pure decision in memory (tests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Protocol

import asyncpg

from infra.vault import Executor
from processors.settings import FetcherSettings

__all__ = [
    "MemoryQuota",
    "PgQuota",
    "Priority",
    "Quota",
    "QuotaPolicy",
    "Usage",
    "Verdict",
    "decide",
    "quota_policy",
    "usage",
]

MINUTE_S = 60.0
DAY_S = 86_400.0
_PRUNE_EVERY = 500


class Priority(IntEnum):
    """Who is asking for a WHOOP request; lower is more urgent."""

    LIVE = 0
    REFETCH = 1
    RECONCILE = 2
    BACKFILL = 3


@dataclass(frozen=True)
class QuotaPolicy:
    """The budget: capacity per window and each priority's reserve (a share of the capacity)."""

    per_minute: int
    per_day: int
    margin_s: float = 1.0
    reserve_refetch: float = 0.05
    reserve_reconcile: float = 0.15
    reserve_backfill: float = 0.30

    def reserve(self, priority: Priority) -> float:
        return {
            Priority.LIVE: 0.0,
            Priority.REFETCH: self.reserve_refetch,
            Priority.RECONCILE: self.reserve_reconcile,
            Priority.BACKFILL: self.reserve_backfill,
        }[priority]

    def windows(self, priority: Priority) -> list[tuple[float, int]]:
        """``(window seconds, grants allowed in it for this priority)`` per window."""
        share = self.reserve(priority)
        out = []
        for window, capacity in ((MINUTE_S, self.per_minute), (DAY_S, self.per_day)):
            allowed = max(1, capacity - math.floor(capacity * share))
            out.append((window + self.margin_s, allowed))
        return out

    @property
    def keep(self) -> int:
        """How many past grants the decision may look at."""
        return max(self.per_minute, self.per_day)


def quota_policy(fetcher: FetcherSettings) -> QuotaPolicy:
    """The policy ``FETCHER_QUOTA_*`` describe."""
    return QuotaPolicy(
        per_minute=fetcher.quota_per_minute,
        per_day=fetcher.quota_per_day,
        margin_s=fetcher.quota_window_margin_s,
        reserve_refetch=fetcher.quota_reserve_refetch,
        reserve_reconcile=fetcher.quota_reserve_reconcile,
        reserve_backfill=fetcher.quota_reserve_backfill,
    )


@dataclass(frozen=True)
class Verdict:
    """Granted, or how long to wait before asking again (``until``: the moment, on the quota's clock).

    Every caller refused for want of the same grant gets the same ``until``: deferred work becomes
    due together, and the claim order (priority, then backfill member by member) picks who goes.
    """

    granted: bool
    wait_s: float = 0.0
    until: datetime | None = None


def needed_seqs(policy: QuotaPolicy, priority: Priority, next_seq: int) -> list[int]:
    """The past grants :func:`decide` needs to see."""
    return [next_seq - allowed for _, allowed in policy.windows(priority) if next_seq - allowed >= 0]


def decide(
    policy: QuotaPolicy,
    priority: Priority,
    now: datetime,
    next_seq: int,
    past: Mapping[int, datetime],
    paused_until: datetime | None,
) -> Verdict:
    """Whether grant ``next_seq`` may happen at ``now`` (pure).

    ``past`` maps the seqs of :func:`needed_seqs` to their grant times (a missing seq was
    pruned long ago, so it is outside every window).
    """
    until = paused_until if paused_until is not None and paused_until > now else None
    for window_s, allowed in policy.windows(priority):
        granted_at = past.get(next_seq - allowed)
        if granted_at is None:
            continue
        free_at = granted_at + timedelta(seconds=window_s)
        if free_at > now and (until is None or free_at > until):
            until = free_at
    return Verdict(True) if until is None else Verdict(False, (until - now).total_seconds(), until)


class Quota(Protocol):
    """The shared budget, as the WHOOP client uses it."""

    async def try_acquire(self, priority: Priority) -> Verdict:
        """Take one request from the budget now, or say how long to wait."""
        ...

    async def pause(self, seconds: float) -> None:
        """Nobody may send for ``seconds`` (WHOOP answered 429)."""
        ...


class _Now(Protocol):
    def now(self) -> datetime: ...


class MemoryQuota:
    """:class:`Quota` in memory (one process; tests)."""

    def __init__(self, policy: QuotaPolicy, clock: _Now) -> None:
        self.policy = policy
        self._clock = clock
        self.grants: list[datetime] = []
        self.granted_by: dict[Priority, int] = dict.fromkeys(Priority, 0)
        self.paused_until: datetime | None = None

    async def try_acquire(self, priority: Priority) -> Verdict:
        now = self._clock.now()
        seq = len(self.grants)
        past = {s: self.grants[s] for s in needed_seqs(self.policy, priority, seq)}
        verdict = decide(self.policy, priority, now, seq, past, self.paused_until)
        if verdict.granted:
            self.grants.append(max(now, self.grants[-1]) if self.grants else now)
            self.granted_by[priority] += 1
        return verdict

    async def pause(self, seconds: float) -> None:
        until = self._clock.now() + timedelta(seconds=seconds)
        self.paused_until = until if self.paused_until is None else max(self.paused_until, until)


class PgQuota:
    """:class:`Quota` in PostgreSQL (tables ``fetcher_quota`` and ``fetcher_quota_grants``)."""

    def __init__(self, pool: asyncpg.Pool, policy: QuotaPolicy, clock: _Now, bucket: str = "whoop") -> None:
        self._pool = pool
        self.policy = policy
        self._clock = clock
        self._bucket = bucket
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            await self._pool.execute(
                "INSERT INTO fetcher_quota (bucket) VALUES ($1) ON CONFLICT (bucket) DO NOTHING", self._bucket
            )
            self._ready = True

    async def try_acquire(self, priority: Priority) -> Verdict:
        await self._ensure()
        async with self._pool.acquire() as connection, connection.transaction():
            now = self._clock.now()
            row = await connection.fetchrow(
                "SELECT next_seq, last_granted_at, paused_until FROM fetcher_quota WHERE bucket = $1 "
                "FOR UPDATE",
                self._bucket,
            )
            if row is None:  # deleted behind our back: recreate it next time
                self._ready = False
                return Verdict(False, 0.1)
            next_seq: int = row["next_seq"]
            seqs = needed_seqs(self.policy, priority, next_seq)
            past = {
                r["seq"]: r["granted_at"]
                for r in await connection.fetch(
                    "SELECT seq, granted_at FROM fetcher_quota_grants WHERE bucket = $1 AND seq = ANY($2)",
                    self._bucket,
                    seqs,
                )
            }
            verdict = decide(self.policy, priority, now, next_seq, past, row["paused_until"])
            if not verdict.granted:
                return verdict
            last = row["last_granted_at"]
            granted_at = now if last is None or now > last else last
            await connection.execute(
                "INSERT INTO fetcher_quota_grants (bucket, seq, granted_at, priority) "
                "VALUES ($1, $2, $3, $4)",
                self._bucket,
                next_seq,
                granted_at,
                int(priority),
            )
            await connection.execute(
                "UPDATE fetcher_quota SET next_seq = $2, last_granted_at = $3, updated_at = now() "
                "WHERE bucket = $1",
                self._bucket,
                next_seq + 1,
                granted_at,
            )
            if next_seq % _PRUNE_EVERY == 0:
                await connection.execute(
                    "DELETE FROM fetcher_quota_grants WHERE bucket = $1 AND seq < $2",
                    self._bucket,
                    next_seq - self.policy.keep - _PRUNE_EVERY,
                )
            return verdict

    async def left(self) -> dict[str, int]:
        """Requests left now in each window (``minute``, ``day``) for live work (``/metrics``)."""
        now = self._clock.now()
        row = await self._pool.fetchrow(
            "SELECT count(*) FILTER (WHERE granted_at > $2) AS minute, count(*) AS day "
            "FROM fetcher_quota_grants WHERE bucket = $1 AND granted_at > $3",
            self._bucket,
            now - timedelta(seconds=MINUTE_S + self.policy.margin_s),
            now - timedelta(seconds=DAY_S + self.policy.margin_s),
        )
        used = {"minute": row["minute"], "day": row["day"]} if row is not None else {"minute": 0, "day": 0}
        capacity = {"minute": self.policy.per_minute, "day": self.policy.per_day}
        return {window: max(0, capacity[window] - used[window]) for window in capacity}

    async def pause(self, seconds: float) -> None:
        await self._ensure()
        until = self._clock.now() + timedelta(seconds=seconds)
        await self._pool.execute(
            "UPDATE fetcher_quota SET paused_until = GREATEST(COALESCE(paused_until, $2), $2), "
            "updated_at = now() WHERE bucket = $1",
            self._bucket,
            until,
        )


@dataclass(frozen=True)
class Usage:
    """A bucket as stored: grants per priority in each window (``minute``, ``day``), and its pause."""

    used: dict[str, dict[int, int]]
    paused_until: datetime | None


async def usage(db: Executor, bucket: str, policy: QuotaPolicy, now: datetime) -> Usage:
    """The grants of ``bucket`` per priority in the windows ending at ``now`` (``wear status``)."""
    rows = await db.fetch(
        "SELECT priority, count(*) FILTER (WHERE granted_at > $2) AS minute, count(*) AS day "
        "FROM fetcher_quota_grants WHERE bucket = $1 AND granted_at > $3 GROUP BY priority",
        bucket,
        now - timedelta(seconds=MINUTE_S + policy.margin_s),
        now - timedelta(seconds=DAY_S + policy.margin_s),
    )
    used = {
        "minute": {row["priority"]: row["minute"] for row in rows},
        "day": {row["priority"]: row["day"] for row in rows},
    }
    paused = await db.fetchval("SELECT paused_until FROM fetcher_quota WHERE bucket = $1", bucket)
    return Usage(used, paused)
