"""infra.cached_check: a check run at most once per interval, callers meanwhile sharing one run."""

from __future__ import annotations

import asyncio

import pytest

from infra.cached_check import CachedCheck


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let every ready task run (a bounded number of loop turns; no wall-clock wait)."""
    for _ in range(20):
        await asyncio.sleep(0)


class Check:
    """Counts its runs; each run waits for ``gate`` so callers can pile up meanwhile."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def __call__(self) -> int:
        self.runs += 1
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("down")
        return self.runs


async def test_callers_during_a_run_share_it_and_later_ones_reuse_it_until_it_expires() -> None:
    clock, check = Clock(), Check()
    cached = CachedCheck(check, ttl_s=2.0, clock=clock)
    check.gate.clear()
    waiting = [asyncio.ensure_future(cached.result()) for _ in range(50)]
    await settle()
    assert check.runs == 1
    check.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 50
    assert [await cached.result() for _ in range(100)] == [1] * 100
    assert check.runs == 1
    clock.now += 1.99
    assert await cached.result() == 1
    clock.now += 0.02
    assert await cached.result() == 2 and check.runs == 2


async def test_a_failed_check_is_not_remembered() -> None:
    clock, check = Clock(), Check()
    cached = CachedCheck(check, ttl_s=10.0, clock=clock)
    check.fail = True
    with pytest.raises(ConnectionError):
        await cached.result()
    check.fail = False
    assert await cached.result() == 2 and await cached.result() == 2


async def test_a_caller_that_gives_up_leaves_the_run_to_the_others() -> None:
    check = Check()
    cached = CachedCheck(check, ttl_s=10.0)
    check.gate.clear()
    impatient = asyncio.ensure_future(cached.result())
    patient = asyncio.ensure_future(cached.result())
    await settle()
    assert check.runs == 1
    impatient.cancel()
    check.gate.set()
    assert await patient == 1
    assert impatient.cancelled()


async def test_a_zero_interval_runs_the_check_on_every_call() -> None:
    check = Check()
    cached = CachedCheck(check, ttl_s=0)
    assert [await cached.result() for _ in range(3)] == [1, 2, 3]
