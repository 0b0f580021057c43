"""The shared quota's decision: exact sliding windows, priorities as reserves, pauses after a 429."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.quota import DAY_S, MINUTE_S, MemoryQuota, Priority, QuotaPolicy, decide, needed_seqs
from tests.unit.processors.fetch_fakes import T0, ManualClock


def _quota(**policy: float) -> tuple[MemoryQuota, ManualClock]:
    clock = ManualClock()
    options = {"per_minute": 5, "per_day": 1000, "margin_s": 0.0, **policy}
    return MemoryQuota(QuotaPolicy(**options), clock), clock  # type: ignore[arg-type]


async def test_the_minute_window_admits_its_capacity_then_says_when_the_oldest_grant_leaves_it() -> None:
    quota, clock = _quota()
    for _ in range(5):
        assert (await quota.try_acquire(Priority.LIVE)).granted
        clock.advance(1)
    refused = await quota.try_acquire(Priority.LIVE)
    assert not refused.granted
    assert refused.wait_s == pytest.approx(55.0)  # the first grant (t=0) leaves the window at t=60
    clock.advance(refused.wait_s - 0.001)
    assert not (await quota.try_acquire(Priority.LIVE)).granted
    clock.advance(0.001)
    assert (await quota.try_acquire(Priority.LIVE)).granted


async def test_everyone_refused_for_want_of_the_same_grant_is_told_the_same_moment() -> None:
    quota, clock = _quota()
    for _ in range(5):
        assert (await quota.try_acquire(Priority.LIVE)).granted
        clock.advance(1)
    first = await quota.try_acquire(Priority.LIVE)
    clock.advance(0.3)  # a later caller, still waiting for the same grant to leave the window
    second = await quota.try_acquire(Priority.LIVE)
    assert first.until == second.until == T0 + timedelta(seconds=60)  # deferred work comes due together
    assert first.wait_s == pytest.approx(55.0) and second.wait_s == pytest.approx(54.7)
    assert (await quota.try_acquire(Priority.LIVE)).until == first.until
    await quota.pause(120)
    assert (await quota.try_acquire(Priority.LIVE)).until == clock.now() + timedelta(seconds=120)


async def test_the_margin_widens_both_windows() -> None:
    quota, _ = _quota(margin_s=2.0)
    for _ in range(5):
        assert (await quota.try_acquire(Priority.LIVE)).granted
    assert (await quota.try_acquire(Priority.LIVE)).wait_s == pytest.approx(62.0)


async def test_the_day_window_binds_even_when_minutes_are_free() -> None:
    quota, clock = _quota(per_minute=100, per_day=7)
    for _ in range(7):
        assert (await quota.try_acquire(Priority.LIVE)).granted
        clock.advance(61)
    refused = await quota.try_acquire(Priority.LIVE)
    assert not refused.granted
    assert refused.wait_s == pytest.approx(DAY_S - 7 * 61)


async def test_lower_priorities_leave_their_reserve_to_live_webhooks() -> None:
    quota, _ = _quota(per_minute=10, reserve_refetch=0.1, reserve_reconcile=0.2, reserve_backfill=0.4)
    backfill = [(await quota.try_acquire(Priority.BACKFILL)).granted for _ in range(10)]
    assert backfill == [True] * 6 + [False] * 4  # 40 % of the minute stays free
    assert (await quota.try_acquire(Priority.RECONCILE)).granted  # 7th of 10: within its 80 %
    assert (await quota.try_acquire(Priority.RECONCILE)).granted  # 8th
    assert not (await quota.try_acquire(Priority.RECONCILE)).granted
    assert (await quota.try_acquire(Priority.REFETCH)).granted  # 9th: within 90 %
    assert not (await quota.try_acquire(Priority.REFETCH)).granted
    assert (await quota.try_acquire(Priority.LIVE)).granted  # the 10th is live's
    assert not (await quota.try_acquire(Priority.LIVE)).granted
    assert quota.granted_by == {
        Priority.LIVE: 1,
        Priority.REFETCH: 1,
        Priority.RECONCILE: 2,
        Priority.BACKFILL: 6,
    }


async def test_a_pause_after_a_429_stops_every_priority_until_it_ends() -> None:
    quota, clock = _quota()
    await quota.pause(17)
    refused = await quota.try_acquire(Priority.LIVE)
    assert not refused.granted and refused.wait_s == pytest.approx(17)
    await quota.pause(5)  # a shorter pause never shortens the running one
    clock.advance(16.9)
    assert not (await quota.try_acquire(Priority.LIVE)).granted
    clock.advance(0.1)
    assert (await quota.try_acquire(Priority.LIVE)).granted


def test_the_decision_reads_only_the_grants_it_needs() -> None:
    policy = QuotaPolicy(per_minute=100, per_day=10_000, margin_s=1.0, reserve_backfill=0.3)
    assert needed_seqs(policy, Priority.LIVE, 150) == [50]  # the day window has no grant 150-10000
    assert needed_seqs(policy, Priority.BACKFILL, 20_000) == [20_000 - 70, 20_000 - 7000]
    assert policy.windows(Priority.LIVE) == [(MINUTE_S + 1.0, 100), (DAY_S + 1.0, 10_000)]
    verdict = decide(policy, Priority.LIVE, T0, 150, {50: T0 - timedelta(seconds=30)}, None)
    assert not verdict.granted and verdict.wait_s == pytest.approx(31.0)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), min_size=1, max_size=300),
    priorities=st.lists(st.sampled_from(list(Priority)), min_size=1, max_size=300),
)
async def test_no_sixty_second_span_ever_holds_more_grants_than_the_minute_capacity(
    gaps: list[float], priorities: list[Priority]
) -> None:
    quota, clock = _quota(per_minute=7, per_day=40)
    window: deque[float] = deque()
    day: deque[float] = deque()
    elapsed = 0.0
    for i, gap in enumerate(gaps):
        clock.advance(gap)
        elapsed += gap
        if (await quota.try_acquire(priorities[i % len(priorities)])).granted:
            window.append(elapsed)
            day.append(elapsed)
        while window and window[0] <= elapsed - MINUTE_S:
            window.popleft()
        while day and day[0] <= elapsed - DAY_S:
            day.popleft()
        assert len(window) <= 7
        assert len(day) <= 40


async def test_a_classic_token_bucket_would_let_twice_the_capacity_into_one_minute() -> None:
    """Why the quota is a sliding window: a full bucket of 100 plus its refill is 200 in 60 s."""
    capacity, rate = 100.0, 100 / 60
    tokens, sent = capacity, 0
    for second in range(60):
        tokens = min(capacity, tokens + (rate if second else 0))
        while tokens >= 1:
            tokens -= 1
            sent += 1
    assert sent > 150
    quota, clock = _quota(per_minute=100, per_day=10_000)
    granted = 0
    for _ in range(60):
        while (await quota.try_acquire(Priority.LIVE)).granted:
            granted += 1
        clock.advance(1)
    assert granted == 100
