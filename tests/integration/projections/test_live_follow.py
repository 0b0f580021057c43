"""The live projection follows the served read-model version: a switch, a generation, a rollback.

One live ``ProjectionWorker`` (``version=None``) runs throughout on real Kafka and PostgreSQL. A
rebuild-like worker (``version=N``) catches a new version up; after each switch the live worker's
batches land in the version served, from that version's stored offsets: on the same topic, on the
topic of another records generation, and back after a rollback. Nothing is skipped or applied twice:
each version ends checksum-equal to a clean projection of its topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import asyncpg

from infra.appender import DurableAppender
from infra.dead_letters import DeadLetters
from infra.kafka import make_producer
from infra.member_keys import MemberKeys
from infra.settings import KafkaSettings
from infra.topic_admin import ensure_topics
from projections import versions
from projections.runner import ProjectionWorker, projection_consumer
from projections.settings import Settings
from schemas.topics import topic
from tests.conftest import TopicFactory
from tests.integration.projections.conftest import projection_settings
from tests.integration.projections.helpers import end_offsets, produce, stored_offsets, wait_for
from tests.unit.projections.factory import Member, mixed_log

MEMBERS = [Member(910001), Member(910002), Member(910003)]


@asynccontextmanager
async def projecting(settings: Settings, pool: asyncpg.Pool, version: int | None) -> AsyncIterator[None]:
    """A ProjectionWorker writing ``version`` (None: the served one) until the context ends."""
    consumer = projection_consumer(settings)
    producer = make_producer(settings.kafka, "test-dlq")
    await producer.start()
    await consumer.start()
    worker = ProjectionWorker(
        consumer,
        pool,
        settings.projections,
        DeadLetters(DurableAppender(producer), "projections"),
        keys=MemberKeys(settings.vault.keyring()),
        version=version,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
        await producer.stop()


async def _reaches_end(pool: asyncpg.Pool, kafka: KafkaSettings, group: str, topic_name: str) -> None:
    ends = await end_offsets(kafka, topic_name)

    async def done() -> bool:
        return await stored_offsets(pool, group, topic_name) == ends

    await wait_for(done, 60, f"{group} reaching the end of {topic_name}")


async def _new_version(pool: asyncpg.Pool, records_topic: str | None) -> versions.Version:
    async with pool.acquire() as connection, connection.transaction():
        return await versions.create(connection, records_topic=records_topic, bulk=False)


async def _switch(pool: asyncpg.Pool, number: int) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await versions.switch(connection, number, force=True)


async def _sums(pool: asyncpg.Pool, number: int) -> dict[str, versions.TableSum]:
    async with pool.acquire() as connection:
        return await versions.checksums(connection, await versions.get(connection, number))


async def test_the_live_worker_follows_switches_generations_and_rollbacks(
    kafka_settings: KafkaSettings,
    records_topic: str,
    topic_factory: TopicFactory,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    generation = await topic_factory("wear.records.v1", partitions=3)
    await ensure_topics(
        kafka_settings, [replace(topic("wear.records.v1"), name=generation, partitions=3).dlq()]
    )
    log = mixed_log(MEMBERS, days=10)
    fifth = len(log) // 5
    live = projection_settings(
        kafka_settings,
        database_url,
        pg_schema,
        records_topic=records_topic,
        group_id=group_id,
        batch_max_records=32,
    )
    rebuilding = projection_settings(
        kafka_settings,
        database_url,
        pg_schema,
        records_topic=records_topic,
        group_id=f"{group_id}-rebuild",
        batch_max_records=32,
    )
    async with projecting(live, db_pool, None):
        await produce(kafka_settings, records_topic, log[:fifth])
        await _reaches_end(db_pool, kafka_settings, group_id, records_topic)

        # version 2 on the same topic: caught up by its own worker, switched while the live one runs
        two = await _new_version(db_pool, None)
        async with projecting(rebuilding, db_pool, two.number):
            await _reaches_end(db_pool, kafka_settings, "read-models-v2", records_topic)
        await _switch(db_pool, two.number)
        v1_offsets = await stored_offsets(db_pool, group_id, records_topic)
        await produce(kafka_settings, records_topic, log[fifth : 2 * fifth])
        await _reaches_end(db_pool, kafka_settings, "read-models-v2", records_topic)
        assert await stored_offsets(db_pool, group_id, records_topic) == v1_offsets  # v1 no longer written

        # version 3 on another records topic (a generation): the live worker subscribes to it
        three = await _new_version(db_pool, generation)
        await produce(kafka_settings, generation, log[: 2 * fifth])
        async with projecting(rebuilding, db_pool, three.number):
            await _reaches_end(db_pool, kafka_settings, "read-models-v3", generation)
        await _switch(db_pool, three.number)
        await produce(kafka_settings, generation, log[2 * fifth : 3 * fifth])
        await produce(kafka_settings, records_topic, log[2 * fifth : 3 * fifth])  # v2's, while v3 serves
        await _reaches_end(db_pool, kafka_settings, "read-models-v3", generation)

        # rollback: version 2 served again, the live worker resumes it from its stored offsets
        async with db_pool.acquire() as connection, connection.transaction():
            await versions.rollback(connection)
        await produce(kafka_settings, records_topic, log[3 * fifth :])
        await _reaches_end(db_pool, kafka_settings, "read-models-v2", records_topic)

    # clean projections of each topic, for comparison
    four = await _new_version(db_pool, None)
    five = await _new_version(db_pool, generation)
    async with projecting(rebuilding, db_pool, four.number), projecting(rebuilding, db_pool, five.number):
        await _reaches_end(db_pool, kafka_settings, "read-models-v4", records_topic)
        await _reaches_end(db_pool, kafka_settings, "read-models-v5", generation)
    assert await _sums(db_pool, two.number) == await _sums(db_pool, four.number)
    assert await _sums(db_pool, three.number) == await _sums(db_pool, five.number)
    assert (await _sums(db_pool, two.number))["rm_cycles"].rows > 0
    async with db_pool.acquire() as connection:
        assert (await versions.serving(connection)).number == two.number
