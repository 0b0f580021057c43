"""Live work on one resource in PostgreSQL: merges keep the earliest due time, and a webhook merged
into a row whose fetch is in flight makes it run again after the coalescing window, not at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from processors.quota import Priority
from processors.task_queue import TaskQueue

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=0.25)


async def _live(queue: TaskQueue, pool: asyncpg.Pool, trace: str, due_at: datetime, **busy: Any) -> None:
    await queue.enqueue(
        pool,
        user_id="u1",
        whoop_user_id=1,
        kind="workout",
        resource_id="w1",
        wants=["workout"],
        priority=Priority.LIVE,
        due_at=due_at,
        event_at=due_at,
        caused_by=[f"event-{trace}"],
        trace_ids=[trace],
        **busy,
    )


async def _row(pool: asyncpg.Pool) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT due_at, generation, lease_owner FROM fetcher_tasks")
    assert row is not None
    return row


async def test_a_queued_row_keeps_its_earliest_due_time(db_pool: asyncpg.Pool) -> None:
    queue = TaskQueue(db_pool, "worker-a", lease_s=60)
    await _live(queue, db_pool, "t1", NOW)  # an idle resource: due at once
    await _live(queue, db_pool, "t2", NOW + WINDOW, busy_due_at=NOW + WINDOW, now=NOW)
    row = await _row(db_pool)
    assert row["due_at"] == NOW  # the second webhook rides along with the first, one call for both
    assert await db_pool.fetchval("SELECT count(*) FROM fetcher_tasks") == 1


async def test_a_webhook_during_a_fetch_makes_it_run_again_after_the_window(db_pool: asyncpg.Pool) -> None:
    queue = TaskQueue(db_pool, "worker-a", lease_s=60)
    await _live(queue, db_pool, "t1", NOW)
    task = await queue.claim(NOW)
    assert task is not None
    during = NOW + timedelta(seconds=0.05)
    await _live(queue, db_pool, "t2", during, busy_due_at=during + WINDOW, now=during)
    row = await _row(db_pool)
    assert row["due_at"] == during + WINDOW and row["generation"] == task.generation + 1
    later = NOW + timedelta(seconds=0.1)  # more of the burst: the same next run, not a later one
    await _live(queue, db_pool, "t3", later, busy_due_at=later + WINDOW, now=later)
    assert (await _row(db_pool))["due_at"] == during + WINDOW
    # the fetch finishes: newer work was merged, so the row stays, due after the window
    assert not await queue.complete(task)
    assert await queue.claim(during + WINDOW - timedelta(milliseconds=1)) is None
    again = await queue.claim(during + WINDOW)
    assert again is not None and set(again.trace_ids) == {"t1", "t2", "t3"}


async def test_without_busy_due_at_a_merge_into_a_fetch_in_flight_runs_right_after(
    db_pool: asyncpg.Pool,
) -> None:
    queue = TaskQueue(db_pool, "worker-a", lease_s=60)
    await _live(queue, db_pool, "t1", NOW + WINDOW)  # the scheduling before: every fetch waits
    task = await queue.claim(NOW + WINDOW)
    assert task is not None
    during = NOW + WINDOW + timedelta(seconds=0.05)
    await _live(queue, db_pool, "t2", during + WINDOW)
    assert (await _row(db_pool))["due_at"] == NOW + WINDOW


async def test_a_duplicate_during_a_fetch_adds_no_run(db_pool: asyncpg.Pool) -> None:
    queue = TaskQueue(db_pool, "worker-a", lease_s=60)
    await _live(queue, db_pool, "t1", NOW)
    task = await queue.claim(NOW)
    assert task is not None
    during = NOW + timedelta(seconds=0.05)
    await _live(queue, db_pool, "t1", during, busy_due_at=during + WINDOW, now=during)  # same trace
    assert (await _row(db_pool))["generation"] == task.generation
    assert await queue.complete(task)  # nothing new: the row is done
    assert await db_pool.fetchval("SELECT count(*) FROM fetcher_tasks") == 0


async def test_an_expired_lease_is_not_a_fetch_in_flight(db_pool: asyncpg.Pool) -> None:
    queue = TaskQueue(db_pool, "worker-a", lease_s=1)
    await _live(queue, db_pool, "t1", NOW)
    assert await queue.claim(NOW) is not None  # its worker dies; the lease runs out
    after = NOW + timedelta(seconds=5)
    await _live(queue, db_pool, "t2", after, busy_due_at=after + WINDOW, now=after)
    assert (await _row(db_pool))["due_at"] == NOW  # still due: the next worker takes it at once
