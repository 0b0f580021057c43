"""Fair backfill on the real engines: a member's long pulls do not hold back another's short one.

The simulator (as WHOOP) and the fetcher share a clock 20 times faster than the wall clock, and
the quota binds: backfill may use 7 requests per (simulated) minute. Member A's backlog (three
pulls of their whole history, queued as the edge accepted them before it allowed one active pull
per member) is under way when member B's 3-day pull arrives; B's pages must come in turns with
A's, so B is done while most of A's backlog is still to go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import Harness, eventually, harness

SCALED: dict[str, Any] = {
    "concurrency": 2,
    "lease_s": 60.0,
    "poll_interval_s": 10.0,
    "quota_per_minute": 10,
    "quota_window_margin_s": 10.0,  # 0.5 s of wall time: see test_fetcher_quota.py
}


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    topic_factory: TopicFactory,
    group_id: str,
) -> AsyncIterator[Harness]:
    async with harness(
        kafka_settings,
        postgres_settings,
        db_pool,
        pg_schema,
        topic_factory,
        group_id,
        time_factor=20.0,
        members=2,
        days=100,
        webhooks_enabled=False,
    ) as w:
        yield w


async def _pull(world: Harness, user_id: str, job_id: str, days: int, record: bool = True) -> None:
    end = world.clock.now()
    await world.request_backfill(
        user_id, job_id, end - timedelta(days=days), end, requested_by="user", record=record
    )


async def _pages(world: Harness, job_id: str) -> int:
    value: int = await world.pool.fetchval(
        "SELECT coalesce(sum(pages), 0) FROM fetcher_backfill_progress WHERE job_id = $1", job_id
    )
    return value


async def _a_pages(world: Harness) -> int:
    value: int = await world.pool.fetchval(
        "SELECT coalesce(sum(pages), 0) FROM fetcher_backfill_progress WHERE job_id LIKE 'job-a%'"
    )
    return value


async def _status(world: Harness, job_id: str) -> str:
    value: str = await world.pool.fetchval("SELECT status FROM pull_jobs WHERE job_id = $1", job_id)
    return value


async def test_a_short_pull_is_not_held_back_by_a_long_one(world: Harness) -> None:
    member_a, member_b = await world.members()
    user_a, user_b = await world.connect(member_a), await world.connect(member_b)
    await world.start_fetcher(**SCALED)
    for job in ("job-a1", "job-a2", "job-a3"):  # A's backlog: three ten-year pulls, 9 rows to B's 3
        await _pull(world, user_a, job, days=3650, record=False)

    async def a_under_way() -> bool:
        return await _a_pages(world) >= 3

    await eventually(a_under_way, "A's pulls under way", timeout_s=60)
    await _pull(world, user_b, "job-b", days=3)

    async def b_queued() -> bool:
        return await _status(world, "job-b") != "requested"

    await eventually(b_queued, "B's pull queued")
    a_before = await _a_pages(world)

    async def b_done() -> bool:
        return await _status(world, "job-b") == "done"

    await eventually(b_done, "B's pull done", timeout_s=90)
    b_pages, a_during = await _pages(world, "job-b"), await _a_pages(world) - a_before
    assert b_pages == 4  # one page per collection, recoveries after sleeps
    # in turns: about one page of A's per page of B's (the claim before took rows in due order:
    # A's nine rows each went before B's, and B's 4 pages came with 22 to 27 of A's)
    assert a_during <= 2 * b_pages + SCALED["concurrency"], a_during
    assert await world.pool.fetchval(
        "SELECT count(*) FROM fetcher_backfill_progress WHERE job_id LIKE 'job-a%' AND status <> 'done'"
    )  # A's pulls go on
