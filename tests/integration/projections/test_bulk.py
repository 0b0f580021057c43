"""The bulk load on a real PostgreSQL: the same batches give the same tables as the live upserts.

Each case applies one sequence of batches twice: through ``ReadModelStore`` (the live path) into one
version, and through ``BulkStore`` then ``finish`` into a bulk version; ``versions.checksums`` must be
equal for all seven tables. The logs hold re-scored and re-normalized versions, ties, duplicates,
stale replays, deletions, Kafka tombstones (erasures) and re-creation after them, recoveries whose
sleep and cycle arrive before or after them, and sleeps that move to another day.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.appender import DurableAppender
from infra.dead_letters import DeadLetters
from infra.kafka import make_producer
from infra.member_keys import MemberKeys
from infra.settings import KafkaSettings
from projections import versions
from projections.bulk import BulkStore, StagingLost
from projections.fold import Changes, plan_batch
from projections.read_model_ddl import VERSIONED_TABLES
from projections.rows import Projectable, Purge, decoded_of
from projections.runner import ProjectionWorker, projection_consumer
from projections.settings import Settings
from projections.store import ReadModelStore
from schemas.keys import record_key
from tests.integration.projections.conftest import projection_settings
from tests.integration.projections.helpers import Raw, end_offsets, produce, stored_offsets, wait_for
from tests.unit.projections.factory import (
    Member,
    cycle_deleted,
    history,
    mixed_log,
    recovery,
    recovery_deleted,
    sleep,
    sleep_deleted,
    workout,
    workout_deleted,
)

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL = Member(530001), Member(530002), Member(530003)
Batches = Sequence[Sequence[Projectable]]


async def _live(pool: asyncpg.Pool, batches: Batches) -> versions.Version:
    """A new version written by the live upserts, one transaction per batch."""
    store = ReadModelStore()
    async with pool.acquire() as connection:
        async with connection.transaction():
            version = await versions.create(connection, records_topic=None, bulk=False)
        for batch in batches:
            async with connection.transaction():
                await versions.use(connection, version)
                await store.apply_changes(connection, plan_batch(batch))
    return version


async def _bulk(pool: asyncpg.Pool, batches: Batches, store: BulkStore | None = None) -> versions.Version:
    """A new bulk version: the batches staged, one transaction each, then finished."""
    store = store or BulkStore()
    async with pool.acquire() as connection:
        async with connection.transaction():
            version = await versions.create(connection, records_topic=None, bulk=True)
        for batch in batches:
            async with connection.transaction():
                await versions.use(connection, version)
                await store.apply_changes(connection, plan_batch(batch))
        async with connection.transaction():
            await store.finish(connection, version)
    return version


async def _sums(pool: asyncpg.Pool, version: versions.Version) -> dict[str, versions.TableSum]:
    async with pool.acquire() as connection:
        return await versions.checksums(connection, version)


async def _drop(pool: asyncpg.Pool, *made: versions.Version) -> None:
    async with pool.acquire() as connection, connection.transaction():
        for version in made:
            await versions.drop(connection, version.number)


def _cut(items: Sequence[Projectable], cuts: int, rng: random.Random) -> list[list[Projectable]]:
    points = sorted(rng.sample(range(1, len(items)), cuts))
    return [list(items[i:j]) for i, j in zip([0, *points], [*points, len(items)], strict=True)]


def _variants(member: Member, days: int = 3) -> list[Projectable]:
    """A member's days, and for each: newer, re-normalized, tied, moved, deleted and erased versions."""
    items: list[Projectable] = []
    for day in history(member, days, seed=5):
        rec, slp, cyc = day.recovery, day.sleep, day.cycle
        later = slp.whoop_updated_at + timedelta(hours=2)
        items += day.records()
        items += [
            recovery(member, rec.cycle_id, rec.sleep_id, later, score=11.0, day=rec.local_date),
            recovery(  # the same WHOOP version, re-normalized: replaces it
                member, rec.cycle_id, rec.sleep_id, rec.whoop_updated_at, score=12.0, normalizer_version=2
            ),
            recovery(  # a tie with the original: the first one applied stays
                member, rec.cycle_id, rec.sleep_id, rec.whoop_updated_at, score=13.0, day=rec.local_date
            ),
            sleep(  # moved a day later: its recovery and both days' summaries follow
                member,
                slp.sleep_id,
                slp.cycle_id,
                slp.start + timedelta(days=1),
                slp.end + timedelta(days=1),
                later,
            ),
            sleep_deleted(member, slp.sleep_id, later),  # ties with the move: the deletion wins
            sleep_deleted(member, slp.sleep_id, slp.whoop_updated_at - timedelta(hours=1)),  # older
            recovery_deleted(member, rec.cycle_id, rec.sleep_id, later + timedelta(hours=1)),
            cycle_deleted(member, cyc.cycle_id, cyc.whoop_updated_at + timedelta(hours=1)),
            Purge(member.user_id, "sleep", slp.sleep_id),
            Purge(member.user_id, "cycle", str(cyc.cycle_id)),
            Purge(member.user_id, "recovery", str(rec.cycle_id)),
        ]
        if day.workout is not None:
            wid = day.workout.workout_id
            items += [
                workout_deleted(member, wid, day.workout.whoop_updated_at + timedelta(minutes=1)),
                Purge(member.user_id, "workout", wid),
            ]
        if day.nap is not None:
            items.append(sleep_deleted(member, day.nap.sleep_id, later))
    return items


async def test_a_mixed_log_in_any_batches_gives_the_tables_of_the_live_path(db_pool: asyncpg.Pool) -> None:
    log: list[Projectable] = list(mixed_log([ALICE, BOB, CAROL], days=10))
    days = history(ALICE, 10)
    # an erasure and the resource's re-creation after it; a recovery arriving before its sleep and cycle
    log += [Purge(ALICE.user_id, "sleep", days[3].sleep.sleep_id), days[3].sleep]
    log += [Purge(BOB.user_id, "workout", "nothing-there")]
    early = history(Member(530004), 2)[1]
    log = [early.recovery, *log, early.sleep, early.cycle]
    rng = random.Random(11)
    for cuts in (0, 5, 40):
        batches = _cut(log, cuts, rng) if cuts else [log]
        live, bulk = await _live(db_pool, batches), await _bulk(db_pool, batches)
        expected = await _sums(db_pool, live)
        assert await _sums(db_pool, bulk) == expected, f"{cuts} cuts"
        assert all(expected[table].rows > 0 for table in VERSIONED_TABLES)
        await _drop(db_pool, live, bulk)


async def test_ties_and_edge_cases_across_batches_give_the_tables_of_the_live_path(
    db_pool: asyncpg.Pool,
) -> None:
    day, other = history(ALICE, 2, seed=9)
    rec, slp, o_rec, o_slp = day.recovery, day.sleep, other.recovery, other.sleep
    later = o_slp.whoop_updated_at + timedelta(hours=2)
    tie = recovery(
        ALICE, o_rec.cycle_id, o_rec.sleep_id, o_rec.whoop_updated_at, score=13.0, day=o_rec.local_date
    )
    twin = sleep(  # a second main sleep of the same day, starting at the same time
        ALICE, "00000000-0000-4000-8000-00000000000f", slp.cycle_id, slp.start, slp.end, slp.whoop_updated_at
    )
    moved = sleep(  # starts 30 minutes after its cycle: the recovery's window follows the sleep
        ALICE, o_slp.sleep_id, o_slp.cycle_id, o_slp.start + timedelta(minutes=30), o_slp.end, later
    )
    # a recovery of day 0's sleep that says it belongs to day 1: two recoveries on day 1
    extra = recovery(ALICE, 1, slp.sleep_id, later, score=22.0, day=o_rec.local_date)
    w1 = workout(ALICE, "w-erased", slp.end, slp.end + timedelta(hours=1), later)
    w2 = workout(ALICE, "w-deleted", slp.end, slp.end + timedelta(hours=1), later)
    batches: list[list[Projectable]] = [
        [rec, o_rec],  # recoveries before their sleeps and cycles
        [tie, decoded_of(other.cycle)._replace(whoop_user_id=7)],  # a tie: the first applied stays
        [slp, twin, day.cycle, other.cycle, moved, extra, w1, w2, decoded_of(rec)._replace(whoop_user_id=9)],
        [
            o_slp,
            workout_deleted(ALICE, w2.workout_id, later),
        ],  # a stale sleep; a deletion tying the live version
        [
            workout_deleted(ALICE, w2.workout_id, later - timedelta(hours=1)),  # an older deletion
            Purge(ALICE.user_id, "sleep", twin.sleep_id),
            Purge(ALICE.user_id, "workout", w1.workout_id),
        ],
        [twin, w1],  # re-created after their erasure
        [decoded_of(slp)._replace(whoop_user_id=8)],
    ]
    live, bulk = await _live(db_pool, batches), await _bulk(db_pool, batches)
    expected = await _sums(db_pool, live)
    assert await _sums(db_pool, bulk) == expected
    async with db_pool.acquire() as connection, connection.transaction():
        await versions.use(connection, bulk)
        score = "SELECT recovery_score_pct FROM rm_recoveries WHERE cycle_id = $1"
        assert await connection.fetchval(score, o_rec.cycle_id) == o_rec.recovery_score_pct
        assert await connection.fetchval("SELECT whoop_user_id FROM rm_sync_status") == 8
        assert await connection.fetchval("SELECT count(*) FROM rm_sleeps") == 3
        assert [r[0] for r in await connection.fetch("SELECT workout_id FROM rm_workouts")] == [w1.workout_id]
        assert (
            await connection.fetchval("SELECT count(*) FROM rm_recoveries WHERE day = $1", o_rec.local_date)
            == 2
        )


@given(
    picks=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=80),
    cuts=st.integers(min_value=0, max_value=20),
    seed=st.integers(min_value=0, max_value=2**16),
)
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_any_log_in_any_batches_gives_the_tables_of_the_live_path(
    db_pool: asyncpg.Pool, picks: list[int], cuts: int, seed: int
) -> None:
    pool = _VARIANTS
    log = [pool[pick % len(pool)] for pick in picks]
    rng = random.Random(seed)
    batches = _cut(log, min(cuts, len(log) - 1), rng) if len(log) > 1 else [log]
    live, bulk = await _live(db_pool, batches), await _bulk(db_pool, batches)
    try:
        assert await _sums(db_pool, bulk) == await _sums(db_pool, live)
    finally:
        await _drop(db_pool, live, bulk)


_VARIANTS = _variants(ALICE, 2) + _variants(BOB, 1)  # few resources: the picks meet often


async def test_the_live_path_catches_up_a_finished_version(db_pool: asyncpg.Pool) -> None:
    log: list[Projectable] = list(mixed_log([ALICE, BOB], days=8))
    batches = _cut(log, 6, random.Random(3))
    loaded, caught_up = batches[:4], batches[4:]
    bulk = await _bulk(db_pool, loaded)
    store = ReadModelStore()
    async with db_pool.acquire() as connection:
        for batch in caught_up:
            async with connection.transaction():
                await versions.use(connection, bulk)
                await store.apply_changes(connection, plan_batch(batch))
    live = await _live(db_pool, batches)
    assert await _sums(db_pool, bulk) == await _sums(db_pool, live)


async def test_a_rolled_back_batch_stages_nothing(db_pool: asyncpg.Pool) -> None:
    days = history(ALICE, 4)
    store = BulkStore()
    async with db_pool.acquire() as connection:
        async with connection.transaction():
            version = await versions.create(connection, records_topic=None, bulk=True)
        staging = f'"{version.schema}".bulk_batches'
        for first in (True, False):
            with pytest.raises(RuntimeError, match="rolled back"):
                async with connection.transaction():
                    await versions.use(connection, version)
                    await store.apply_changes(connection, plan_batch(days[2].records()))
                    raise RuntimeError("rolled back")
            if first:  # not even the staging tables of the first batch are left
                assert await connection.fetchval("SELECT to_regclass($1)", staging) is None
                async with connection.transaction():
                    await versions.use(connection, version)
                    await store.apply_changes(connection, plan_batch(days[0].records()))
        counts = {
            table: await connection.fetchval(f'SELECT count(*) FROM "{version.schema}".{table}')  # noqa: S608
            for table in ("bulk_batches", "bulk_batches_staged", "bulk_rm_sleeps", "bulk_status")
        }
        assert counts == {"bulk_batches": 1, "bulk_batches_staged": 1, "bulk_rm_sleeps": 1, "bulk_status": 1}
        async with connection.transaction():
            await store.finish(connection, version)
    assert await _sums(db_pool, version) == await _sums(db_pool, await _live(db_pool, [days[0].records()]))


async def test_an_empty_load_finishes_with_empty_tables_keys_and_indexes(
    db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    catalog = (
        "SELECT tablename, indexname, regexp_replace(indexdef, ' ON [^ ]+\\.', ' ON ') FROM pg_indexes"
        " WHERE schemaname = $1 AND tablename = ANY($2::text[]) ORDER BY indexname"
    )
    tables = list(VERSIONED_TABLES)
    async with db_pool.acquire() as connection:
        async with connection.transaction():
            version = await versions.create(connection, records_topic=None, bulk=True)
        async with connection.transaction():
            await versions.use(connection, version)
            await BulkStore().apply_changes(connection, Changes())  # a batch of erased members only
        async with connection.transaction():
            await BulkStore().finish(connection, version)
        indexes = [tuple(r) for r in await connection.fetch(catalog, version.schema, tables)]
        assert indexes == [tuple(r) for r in await connection.fetch(catalog, pg_schema, tables)]
        assert len(indexes) == 20  # 7 primary keys, 13 indexes
        left = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", version.schema
        )
        assert [r["tablename"] for r in left] == sorted(tables)  # no staging left
        assert (
            await connection.fetchval("SELECT to_regclass($1)", f'"{version.schema}".bulk_batch_numbers')
            is None
        )
        sums = await versions.checksums(connection, version)
    assert all(s == versions.TableSum(0, "0") for s in sums.values())


async def test_staging_lost_in_a_crash_of_postgresql_fails_the_finish(db_pool: asyncpg.Pool) -> None:
    store = BulkStore()
    async with db_pool.acquire() as connection:
        async with connection.transaction():
            version = await versions.create(connection, records_topic=None, bulk=True)
        for day in history(ALICE, 3):
            async with connection.transaction():
                await versions.use(connection, version)
                await store.apply_changes(connection, plan_batch(day.records()))
        # what crash recovery does to unlogged tables: empties them (the logged batch count stays)
        unlogged = await connection.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relpersistence = 'u' AND c.relkind = 'r'",
            version.schema,
        )
        assert {r["relname"] for r in unlogged} >= {"bulk_rm_sleeps", "bulk_batches_staged"}
        for row in unlogged:
            await connection.execute(f'TRUNCATE "{version.schema}".{row["relname"]}')
        with pytest.raises(StagingLost, match="3 of 3 staged batches are gone"):
            async with connection.transaction():
                await store.finish(connection, version)


async def test_logged_staging_and_synchronous_commit_give_the_same_tables(db_pool: asyncpg.Pool) -> None:
    batches = _cut(list(mixed_log([ALICE], days=10)), 4, random.Random(5))
    plain = BulkStore(unlogged=False, synchronous_commit=True, work_mem="4MB", maintenance_work_mem="64MB")
    bulk, live = await _bulk(db_pool, batches, plain), await _live(db_pool, batches)
    assert await _sums(db_pool, bulk) == await _sums(db_pool, live)
    with pytest.raises(ValueError, match="not a memory setting"):
        BulkStore(work_mem="1GB'; DROP TABLE x; --")


async def test_a_value_the_final_table_refuses_is_refused_when_staged(db_pool: asyncpg.Pool) -> None:
    changes = plan_batch(history(ALICE, 1)[0].records())
    key, (version_of, row) = next(iter(changes.sleeps.upserts.items()))
    changes.sleeps.upserts[key] = (version_of, (*row[:5], None, *row[6:]))  # score_state is NOT NULL
    async with db_pool.acquire() as connection:
        async with connection.transaction():
            version = await versions.create(connection, records_topic=None, bulk=True)
        with pytest.raises(asyncpg.NotNullViolationError):
            async with connection.transaction():
                await versions.use(connection, version)
                await BulkStore().apply_changes(connection, changes)


async def test_two_workers_starting_at_once_create_the_staging_once(db_pool: asyncpg.Pool) -> None:
    days = history(ALICE, 2)
    store = BulkStore()
    async with db_pool.acquire() as first, db_pool.acquire() as second:
        async with first.transaction():
            version = await versions.create(first, records_topic=None, bulk=True)
        waiting = first.transaction()
        await waiting.start()
        await versions.use(first, version)
        await store.apply_changes(first, plan_batch(days[0].records()))  # creates the staging, uncommitted

        async def other() -> None:
            async with second.transaction():
                await versions.use(second, version)
                await store.apply_changes(second, plan_batch(days[1].records()))

        task = asyncio.create_task(other())

        async def blocked() -> bool:
            return bool(
                await db_pool.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1",
                    second.get_server_pid(),
                )
            )

        await wait_for(blocked, 10, "the second worker waiting for the first's staging tables")
        await waiting.commit()
        await asyncio.wait_for(task, 10)
        async with first.transaction():
            await store.finish(first, version)
    live = await _live(db_pool, [days[0].records(), days[1].records()])
    assert await _sums(db_pool, version) == await _sums(db_pool, live)


async def test_finish_is_not_cut_by_the_pools_command_timeout(
    db_pool: asyncpg.Pool, database_url: str, pg_schema: str
) -> None:
    batches = [day.records() for day in history(ALICE, 3)]
    async with db_pool.acquire() as connection:
        async with connection.transaction():
            version = await versions.create(connection, records_topic=None, bulk=True)
        for batch in batches:
            async with connection.transaction():
                await versions.use(connection, version)
                await BulkStore().apply_changes(connection, plan_batch(batch))

    # a pool's command timeout is meant for batches: here it cuts any statement at once
    def connect() -> Awaitable[asyncpg.Connection]:
        return asyncpg.connect(database_url, command_timeout=1e-6, server_settings={"search_path": pg_schema})

    probe = await connect()
    with pytest.raises(TimeoutError):
        await probe.execute("SELECT 1")
    await probe.close(timeout=10)
    hasty = await connect()
    try:
        await hasty.execute("BEGIN", timeout=10)
        await BulkStore().finish(hasty, version)
        await hasty.execute("COMMIT", timeout=10)
    finally:
        await hasty.close(timeout=10)
    assert await _sums(db_pool, version) == await _sums(db_pool, await _live(db_pool, batches))


@asynccontextmanager
async def _projecting(
    settings: Settings, pool: asyncpg.Pool, version: versions.Version, store: BulkStore | None
) -> AsyncIterator[ProjectionWorker]:
    """A ProjectionWorker writing ``version`` through ``store`` until the block ends."""
    consumer = projection_consumer(settings)
    producer = make_producer(settings.kafka, "test-dlq")
    await producer.start()
    await consumer.start()
    keys = MemberKeys(settings.vault.keyring())
    worker = ProjectionWorker(
        consumer,
        pool,
        settings.projections,
        DeadLetters(DurableAppender(producer), "projections"),
        store,
        keys=keys,
        version=version.number,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
        await producer.stop()


async def test_the_worker_loads_a_bulk_version_stopped_midway_like_the_live_path(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    days = history(ALICE, 10)
    erasures: list[Raw] = [
        (record_key(ALICE.user_id, "sleep", days[3].sleep.sleep_id), None),
        (record_key(ALICE.user_id, "cycle", str(days[4].cycle.cycle_id)), None),
    ]
    await produce(
        kafka_settings, records_topic, [*mixed_log([ALICE, BOB, CAROL], days=10), *erasures, days[3].sleep]
    )
    ends = await end_offsets(kafka_settings, records_topic)
    async with db_pool.acquire() as connection, connection.transaction():
        bulk = await versions.create(connection, records_topic=records_topic, bulk=True)
        live = await versions.create(connection, records_topic=records_topic, bulk=False)

    def settings(run: str) -> Settings:
        return projection_settings(
            kafka_settings,
            database_url,
            pg_schema,
            records_topic=records_topic,
            group_id=f"{group_id}-{run}",
            batch_max_records=7,
        )

    async def stored(version: versions.Version) -> dict[int, int]:
        return await stored_offsets(db_pool, str(version.offsets_group), records_topic)

    async with _projecting(settings("first"), db_pool, bulk, BulkStore()):  # stopped after a batch or so

        async def started() -> bool:
            return bool(await stored(bulk))

        await wait_for(started, 60, "the bulk load's first batch")
    assert sum((await stored(bulk)).values()) < sum(ends.values())
    async with _projecting(settings("second"), db_pool, bulk, BulkStore()):  # resumes from the stored offsets

        async def loaded() -> bool:
            return await stored(bulk) == ends

        await wait_for(loaded, 60, "the bulk load reaching the end")
    async with db_pool.acquire() as connection, connection.transaction():
        await BulkStore().finish(connection, bulk)
    async with _projecting(settings("live"), db_pool, live, None):

        async def projected() -> bool:
            return await stored(live) == ends

        await wait_for(projected, 60, "the live projection reaching the end")
    expected = await _sums(db_pool, live)
    assert await _sums(db_pool, bulk) == expected
    assert expected["rm_sync_status"].rows == 3
