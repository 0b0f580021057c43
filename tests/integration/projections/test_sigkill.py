"""``python -m projections`` SIGKILLed mid-batch, again and again: the read models end identical to a rebuild.

The stream holds a few thousand canonical records of several members with re-scored versions,
stale replays, duplicates, deletions, erasures (Kafka tombstones) and records the projection must
dead-letter. The real worker process runs with small batches; each time it has applied a share of
the stream, the test waits until PostgreSQL shows one of its transactions open with writes, and
SIGKILLs it right then. After the last life finishes, the tables are compared (md5 of the ordered
rows of every read model) with a clean rebuild from offset 0 by a fresh process in another schema.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg
import msgspec

from infra.settings import KafkaSettings
from schemas.keys import record_key
from tests.integration.projections.conftest import PoolFactory, with_search_path
from tests.integration.projections.helpers import (
    Raw,
    checksums,
    end_offsets,
    key_of,
    produce,
    read_all,
    stored_offsets,
    wait_for,
)
from tests.unit.projections.factory import Member, mixed_log

MEMBERS = [Member(1000 + i) for i in range(24)]
# a transaction of the worker with writes: one of its backends (started after the process) holding a
# transaction id, busy on a read-model statement (other projections may share the database)
_OPEN_WRITE = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_start >= $1 AND backend_xid IS NOT NULL AND state <> 'idle' AND query ILIKE '%rm\\_%'"
)


def _stream() -> tuple[list[msgspec.Struct | Raw], int]:
    log = mixed_log(MEMBERS, days=60, seed=11)
    stream: list[msgspec.Struct | Raw] = list(log)
    # erasures of a few resources, then an older version of one of them again
    erased = [r for r in log if r.event_type == "WorkoutRecorded"][:5]
    for record in erased:
        stream.append((key_of(record), None))
    stream.append(erased[0])
    junk = [(record_key(MEMBERS[0].user_id, "sleep", "junk"), b"{not json"), (b"no-separators", None)]
    stream[len(stream) // 3 : len(stream) // 3] = junk
    return stream, len(junk)


def _env(
    kafka_settings: KafkaSettings, database_url: str, schema: str, topic: str, group: str, batch: int
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
            "DATABASE_URL": with_search_path(database_url, schema),
            "PROJECTIONS_RECORDS_TOPIC": topic,
            "PROJECTIONS_GROUP_ID": group,
            "PROJECTIONS_GROUP_INSTANCE_ID": f"{group}-0",
            "PROJECTIONS_ACTIVITY_TOPICS": "",
            "PROJECTIONS_BATCH_MAX_RECORDS": str(batch),
            "PROJECTIONS_LOG_LEVEL": "WARNING",
            "PROJECTIONS_METRICS_PORT": "0",
        }
    )
    return env


async def _applied(pool: asyncpg.Pool, group: str, topic: str) -> int:
    return sum((await stored_offsets(pool, group, topic)).values())


async def test_sigkill_mid_batch_repeatedly_ends_identical_to_a_clean_rebuild(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    extra_pool: PoolFactory,
) -> None:
    stream, junk = _stream()
    await produce(kafka_settings, records_topic, stream)
    ends = await end_offsets(kafka_settings, records_topic)
    total = sum(ends.values())
    argv = [sys.executable, "-m", "projections"]
    env = _env(kafka_settings, database_url, pg_schema, records_topic, group_id, batch=40)
    monitor = await asyncpg.connect(database_url)
    kills_mid_transaction = 0
    try:
        for share in (0.1, 0.25, 0.4, 0.55, 0.7):
            spawned = await monitor.fetchval("SELECT clock_timestamp()")
            worker = await asyncio.create_subprocess_exec(*argv, env=env)
            try:

                async def past_share(share: float = share) -> bool:
                    return await _applied(db_pool, group_id, records_topic) >= share * total

                await wait_for(past_share, 60, f"{share:.0%} of the stream applied")

                async def writing(spawned: object = spawned) -> bool:
                    return bool(await monitor.fetchval(_OPEN_WRITE, spawned))

                await wait_for(writing, 30, "a transaction of the worker with writes")
            finally:
                worker.send_signal(signal.SIGKILL)
                await asyncio.wait_for(worker.wait(), 30)
            kills_mid_transaction += 1
            assert await _applied(db_pool, group_id, records_topic) < total, "finished before the kill"
    finally:
        await monitor.close()

    worker = await asyncio.create_subprocess_exec(*argv, env=env)
    try:

        async def caught_up() -> bool:
            return await stored_offsets(db_pool, group_id, records_topic) == ends

        await wait_for(caught_up, 90, "the last life catching up")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 30) == 0, "SIGTERM must stop the worker cleanly"
    assert kills_mid_transaction == 5

    rebuild_pool, rebuild_schema = await extra_pool()
    rebuild_group = group_id + "-rebuild"
    env = _env(kafka_settings, database_url, rebuild_schema, records_topic, rebuild_group, batch=5000)
    rebuild = await asyncio.create_subprocess_exec(*argv, env=env)
    try:

        async def rebuilt() -> bool:
            return await stored_offsets(rebuild_pool, rebuild_group, records_topic) == ends

        await wait_for(rebuilt, 90, "the clean rebuild")
    finally:
        rebuild.send_signal(signal.SIGTERM)
        await asyncio.wait_for(rebuild.wait(), 30)

    survived, clean = await checksums(db_pool), await checksums(rebuild_pool)
    assert survived == clean
    assert all(not value.startswith("0:") for name, value in clean.items())
    # every record that cannot be projected was dead-lettered (at least once per life that met it)
    letters = await read_all(kafka_settings, records_topic + ".dlq")
    assert len({(r.partition, r.key) for r in letters}) == junk
