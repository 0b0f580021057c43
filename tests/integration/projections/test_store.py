"""The read-model store against real PostgreSQL: versions, deletions, derived state, batch independence."""

from __future__ import annotations

import random
from datetime import timedelta

import asyncpg
import orjson

from projections.rows import Projectable, Purge
from tests.integration.projections.helpers import READ_MODELS, apply_batches, checksums
from tests.unit.projections.factory import (
    T0,
    Member,
    cycle,
    history,
    mixed_log,
    recovery,
    recovery_deleted,
    sleep,
    sleep_deleted,
    workout,
    workout_deleted,
)

ALICE = Member(482913)
BOB = Member(777001)


async def test_a_history_projects_into_every_read_model(db_pool: asyncpg.Pool) -> None:
    days = history(ALICE, 10, seed=3)
    await apply_batches(db_pool, [[record for day in days for record in day.records()]])

    assert await db_pool.fetchval("SELECT count(*) FROM rm_cycles") == 10
    assert await db_pool.fetchval("SELECT count(*) FROM rm_recoveries") == 10
    naps = sum(day.nap is not None for day in days)
    workouts = sum(day.workout is not None for day in days)
    assert await db_pool.fetchval("SELECT count(*) FROM rm_sleeps") == 10 + naps
    assert await db_pool.fetchval("SELECT count(*) FROM rm_workouts") == workouts
    day = days[4]
    row = await db_pool.fetchrow(
        "SELECT * FROM rm_daily_summaries WHERE user_id = $1 AND local_date = $2",
        ALICE.user_id,
        day.sleep.local_date,
    )
    assert row is not None
    assert row["recovery_score_pct"] == day.recovery.recovery_score_pct
    assert row["hrv_rmssd_ms"] == day.recovery.hrv_rmssd_ms
    assert row["resting_heart_rate_bpm"] == day.recovery.resting_heart_rate_bpm
    assert row["sleep_performance_pct"] == day.sleep.performance_pct
    assert row["sleep_duration_ms"] == day.sleep.asleep_ms
    assert row["day_strain"] == day.cycle.strain
    assert row["energy_kcal"] == day.cycle.energy_kcal
    status = await db_pool.fetchrow("SELECT * FROM rm_sync_status WHERE user_id = $1", ALICE.user_id)
    assert status is not None and status["records_applied"] == sum(len(d.records()) for d in days)
    # the recovery is ordered and windowed by its sleep
    rec = await db_pool.fetchrow(
        "SELECT start_at, end_at, day FROM rm_recoveries WHERE cycle_id = $1", day.cycle.cycle_id
    )
    assert rec is not None
    assert (rec["start_at"], rec["end_at"], rec["day"]) == (
        day.sleep.start,
        day.sleep.end,
        day.sleep.local_date,
    )


async def test_duplicates_and_replays_change_nothing(db_pool: asyncpg.Pool) -> None:
    records = [record for day in history(ALICE, 8) for record in day.records()]
    await apply_batches(db_pool, [records])
    before = await checksums(db_pool)
    await apply_batches(db_pool, [records, records[::-1], records + records])
    after = await checksums(db_pool)
    del before["rm_sync_status"], after["rm_sync_status"]  # it counts what was applied: 4 more times
    assert after == before


async def test_out_of_order_versions_keep_the_latest(db_pool: asyncpg.Pool) -> None:
    day = history(ALICE, 1)[0]
    later = day.recovery.whoop_updated_at + timedelta(hours=2)
    newer = recovery(
        ALICE, day.recovery.cycle_id, day.recovery.sleep_id, later, score=22.0, day=day.sleep.local_date
    )
    await apply_batches(db_pool, [[day.sleep, newer], [day.recovery]])  # the older version arrives last

    row = await db_pool.fetchrow("SELECT recovery_score_pct, version, document FROM rm_recoveries")
    assert row is not None
    assert row["recovery_score_pct"] == 22.0 and row["version"] == later
    assert row["document"] == orjson.dumps(newer.document).decode()  # json: the text as the record had it
    summary = await db_pool.fetchval("SELECT recovery_score_pct FROM rm_daily_summaries")
    assert summary == 22.0


async def test_a_renormalization_of_the_same_version_replaces_it(db_pool: asyncpg.Pool) -> None:
    day = history(ALICE, 1)[0]
    c = day.cycle
    fixed = cycle(
        ALICE,
        c.cycle_id,
        c.start,
        c.end,
        c.whoop_updated_at,
        strain=c.strain,
        kilojoule=4184.0,
        normalizer_version=2,
    )
    await apply_batches(db_pool, [[c], [fixed], [c]])
    row = await db_pool.fetchrow("SELECT energy_kcal, normalizer_version FROM rm_cycles")
    assert row is not None and row["normalizer_version"] == 2 and row["energy_kcal"] == 1000.0


async def test_deletes_stick_and_a_newer_version_comes_back(db_pool: asyncpg.Pool) -> None:
    day = history(ALICE, 2)[1]
    await apply_batches(db_pool, [day.records()])
    deleted_at = day.sleep.whoop_updated_at + timedelta(hours=1)
    await apply_batches(
        db_pool,
        [
            [
                sleep_deleted(ALICE, day.sleep.sleep_id, deleted_at),
                recovery_deleted(ALICE, day.cycle.cycle_id, day.sleep.sleep_id, deleted_at),
            ],
            [day.sleep, day.recovery],  # stale replays: must not resurrect anything
        ],
    )
    assert (
        await db_pool.fetchval("SELECT count(*) FROM rm_sleeps WHERE sleep_id = $1", day.sleep.sleep_id) == 0
    )
    assert await db_pool.fetchval("SELECT count(*) FROM rm_recoveries") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM rm_tombstones") == 2
    summary = await db_pool.fetchrow(
        "SELECT * FROM rm_daily_summaries WHERE local_date = $1", day.sleep.local_date
    )
    assert summary is not None  # the cycle is still there
    assert summary["recovery_score_pct"] is None and summary["sleep_id"] is None
    assert summary["day_strain"] == day.cycle.strain

    # WHOOP re-scores the cycle with a new sleep: a newer recovery for the same cycle is live again
    later = deleted_at + timedelta(hours=5)
    rescored = recovery(ALICE, day.cycle.cycle_id, "0f0f0f0f-0000-4000-8000-000000000001", later, score=40.0)
    await apply_batches(db_pool, [[rescored]])
    assert await db_pool.fetchval("SELECT recovery_score_pct FROM rm_recoveries") == 40.0


async def test_a_deletion_older_than_the_live_version_removes_nothing(db_pool: asyncpg.Pool) -> None:
    w = workout(
        ALICE, "3b0c9a2e-1111-4e6f-9a1b-2c7d5e8f0a13", T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    )
    await apply_batches(db_pool, [[w, workout_deleted(ALICE, w.workout_id, T0 + timedelta(hours=1))]])
    assert await db_pool.fetchval("SELECT count(*) FROM rm_workouts") == 1


async def test_batch_boundaries_and_order_do_not_change_the_tables(db_pool: asyncpg.Pool) -> None:
    log: list[Projectable] = list(mixed_log([ALICE, BOB]))
    await apply_batches(db_pool, [log])
    reference = await checksums(db_pool)
    assert await db_pool.fetchval("SELECT count(*) FROM rm_tombstones") >= 4

    rng = random.Random(7)
    for attempt in range(3):
        await _reset(db_pool)
        items = list(log)
        if attempt > 0:  # without erasures, the order does not matter either
            rng.shuffle(items)
        cuts = sorted(rng.sample(range(1, len(items)), 12))
        batches = [items[i:j] for i, j in zip([0, *cuts], [*cuts, len(items)], strict=True)]
        await apply_batches(db_pool, batches)
        assert await checksums(db_pool) == reference, f"attempt {attempt}"


async def test_an_erasure_forgets_the_resource_and_batches_still_do_not_matter(db_pool: asyncpg.Pool) -> None:
    day = history(ALICE, 3)[2]
    deleted_at = day.sleep.whoop_updated_at + timedelta(hours=1)
    log: list[Projectable] = [
        *day.records(),
        sleep_deleted(ALICE, day.sleep.sleep_id, deleted_at),
        Purge(ALICE.user_id, "sleep", day.sleep.sleep_id),  # erasure: the marker goes too
        Purge(ALICE.user_id, "cycle", str(day.cycle.cycle_id)),
        day.sleep,  # older than the forgotten deletion: applies again, nothing remembers it
    ]
    await apply_batches(db_pool, [log])
    reference = await checksums(db_pool)
    assert await db_pool.fetchval("SELECT count(*) FROM rm_tombstones") == 0
    assert (
        await db_pool.fetchval("SELECT count(*) FROM rm_sleeps WHERE sleep_id = $1", day.sleep.sleep_id) == 1
    )
    assert await db_pool.fetchval("SELECT count(*) FROM rm_cycles") == 0
    # the recovery lost its cycle: its window falls back to its sleep, which is back
    for size in (1, 2, 3):
        await _reset(db_pool)
        await apply_batches(db_pool, [log[i : i + size] for i in range(0, len(log), size)])
        assert await checksums(db_pool) == reference


async def test_a_recovery_before_its_sleep_is_placed_once_the_sleep_arrives(db_pool: asyncpg.Pool) -> None:
    day = history(ALICE, 1)[0]
    await apply_batches(db_pool, [[day.recovery]])
    row = await db_pool.fetchrow("SELECT start_at, end_at FROM rm_recoveries")
    assert row is not None and row["end_at"] is None  # no sleep yet: WHOOP's created_at, open
    await apply_batches(db_pool, [[day.cycle]])
    assert await db_pool.fetchval("SELECT start_at FROM rm_recoveries") == day.cycle.start
    await apply_batches(db_pool, [[day.sleep]])
    row = await db_pool.fetchrow("SELECT start_at, end_at FROM rm_recoveries")
    assert row is not None and (row["start_at"], row["end_at"]) == (day.sleep.start, day.sleep.end)
    await apply_batches(
        db_pool, [[sleep_deleted(ALICE, day.sleep.sleep_id, day.sleep.whoop_updated_at + timedelta(1))]]
    )
    row = await db_pool.fetchrow("SELECT start_at, end_at FROM rm_recoveries")
    assert row is not None and (row["start_at"], row["end_at"]) == (day.cycle.start, None)


async def test_two_main_sleeps_on_one_day_summarize_the_later_one(db_pool: asyncpg.Pool) -> None:
    day = history(ALICE, 1)[0]
    early = sleep(
        ALICE,
        "5e5e5e5e-0000-4000-8000-000000000001",
        day.cycle.cycle_id,
        day.sleep.start - timedelta(hours=3),
        day.sleep.start - timedelta(hours=2),
        day.sleep.whoop_updated_at,
        performance=12.0,
    )
    assert early.local_date == day.sleep.local_date
    await apply_batches(db_pool, [[early, *day.records()]])
    summary = await db_pool.fetchrow("SELECT sleep_id, sleep_performance_pct FROM rm_daily_summaries")
    assert summary is not None and summary["sleep_id"] == day.sleep.sleep_id


async def _reset(pool: asyncpg.Pool) -> None:
    await pool.execute(f"TRUNCATE {', '.join(READ_MODELS)}")


async def test_a_moved_sleep_moves_its_recovery_even_beside_a_stale_copy_of_it(db_pool: asyncpg.Pool) -> None:
    day = history(ALICE, 1)[0]
    await apply_batches(db_pool, [day.records()])
    s = day.sleep
    moved = sleep(
        ALICE,
        s.sleep_id,
        s.cycle_id,
        s.start + timedelta(minutes=30),
        s.end,
        s.whoop_updated_at + timedelta(hours=1),
    )
    await apply_batches(db_pool, [[moved, day.recovery]])  # the recovery copy is stale: ignored
    row = await db_pool.fetchrow("SELECT start_at, version FROM rm_recoveries")
    assert row is not None and row["start_at"] == moved.start
    assert row["version"] == day.recovery.whoop_updated_at
