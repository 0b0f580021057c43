"""Backfill is claimed member by member: a long pull queued first does not hold back a short one.

The claim query runs on PostgreSQL as the workers run it, with the quota as it binds: one WHOOP
request frees up per slot; a row that got its page is due again at once (``handle_backfill``);
every row refused for want of budget is deferred to the moment the next request frees up, the
same moment for all (``Verdict.until``). Before the claim took turns by member, those ties went
by due time and task id: member A's rows, queued first, took every slot, and member B's 30-day
backfill waited for all of A's ten-year pull.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from processors.backfill import end_turn
from processors.quota import Priority
from processors.task_queue import TaskQueue

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SLOT = timedelta(seconds=10)
A_PAGES, B_PAGES = 40, 1  # pages per collection: a ten-year pull, a 30-day one
COLLECTIONS = ("cycle", "sleep", "workout")


async def _queue_pull(queue: TaskQueue, pool: asyncpg.Pool, user: str, at: datetime, pages: int) -> None:
    for collection in COLLECTIONS:
        await queue.enqueue(
            pool,
            user_id=user,
            whoop_user_id=1 if user == "a" else 2,
            kind="backfill",
            resource_id=f"job-{user}:{collection}",
            priority=Priority.BACKFILL,
            due_at=at,
            payload={"pages_left": pages},
        )


async def _slot(queue: TaskQueue, pool: asyncpg.Pool, now: datetime) -> str | None:
    """One quota slot: the first row claimed gets the request, the rest wait for the next slot."""
    served = None
    while (task := await queue.claim(now)) is not None:
        if served is not None:  # no budget left in this slot: deferred (QuotaDeferred)
            await queue.reschedule(task, due_at=now + SLOT)
            continue
        served = task.user_id
        left = int(task.payload["pages_left"]) - 1
        await end_turn(pool, task.user_id, now)
        if left:  # due again at once (it is claimed again, and waits for the next slot like the others)
            await queue.reschedule(task, due_at=now, payload={"pages_left": left})
        else:
            await queue.complete(task)
    return served


async def _pages_left(pool: asyncpg.Pool, user: str) -> int:
    value: int = await pool.fetchval(
        "SELECT coalesce(sum((payload->>'pages_left')::int), 0) FROM fetcher_tasks WHERE user_id = $1", user
    )
    return value


async def test_a_short_backfill_queued_behind_a_long_one_takes_turns_with_it(db_pool: asyncpg.Pool) -> None:
    queue = TaskQueue(db_pool, "worker-1", lease_s=60)
    await _queue_pull(queue, db_pool, "a", T0, A_PAGES)
    # A's pull has been running for a while when B connects
    served: list[str | None] = [await _slot(queue, db_pool, T0 + SLOT * k) for k in range(5)]
    assert served == ["a"] * 5
    await _queue_pull(queue, db_pool, "b", T0 + SLOT * 5 - timedelta(seconds=1), B_PAGES)
    k = 5
    while await _pages_left(db_pool, "b"):
        served.append(await _slot(queue, db_pool, T0 + SLOT * k))
        k += 1
        assert k < 5 + len(COLLECTIONS) * B_PAGES * 2 + 2, f"B still waits after {k - 5} slots: {served[5:]}"
    # B took every other slot: one page of A between two of B's, never a run of A's
    assert served[5:] == ["b", "a", "b", "a", "b"], served[5:]
    assert await _pages_left(db_pool, "a") == len(COLLECTIONS) * A_PAGES - 7  # A goes on, slowed by half


async def test_a_member_never_served_goes_first_then_members_alternate(db_pool: asyncpg.Pool) -> None:
    queue = TaskQueue(db_pool, "worker-1", lease_s=60)
    await _queue_pull(queue, db_pool, "a", T0, A_PAGES)
    await _queue_pull(queue, db_pool, "b", T0, A_PAGES)
    await end_turn(db_pool, "a", T0)
    order = [await _slot(queue, db_pool, T0 + SLOT * (k + 1)) for k in range(6)]
    assert order == ["b", "a", "b", "a", "b", "a"]
    # live work still comes before any backfill
    await queue.enqueue(
        db_pool,
        user_id="a",
        whoop_user_id=1,
        kind="workout",
        resource_id="w1",
        priority=Priority.LIVE,
        due_at=T0 + SLOT * 7,
    )
    task = await queue.claim(T0 + SLOT * 7)
    assert task is not None and task.kind == "workout"
