"""Helpers of the projection integration tests: read-model checksums, producing and reading records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import msgspec
from aiokafka import ConsumerRecord, TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings
from projections.fold import plan_batch
from projections.read_model_ddl import VERSIONED_TABLES
from projections.rows import Projectable
from projections.store import ReadModelStore
from schemas.keys import record_key
from schemas.serde import encode

READ_MODELS = VERSIONED_TABLES
Raw = tuple[bytes, bytes | None]


async def checksums(
    db: asyncpg.Pool | asyncpg.Connection, tables: Sequence[str] = READ_MODELS
) -> dict[str, str]:
    """md5 of every table's rows in a fixed order (row text), with the row count."""
    result: dict[str, str] = {}
    for table in tables:
        digest = "md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
        row = await db.fetchrow(f"SELECT count(*) AS n, {digest} AS h FROM {table} t")  # noqa: S608 - fixed names
        assert row is not None
        result[table] = f"{row['n']}:{row['h']}"
    return result


async def apply_batches(pool: asyncpg.Pool, batches: Sequence[Sequence[Projectable]]) -> None:
    """Apply each batch in its own transaction, as the worker does (without Kafka)."""
    store = ReadModelStore()
    for batch in batches:
        async with pool.acquire() as connection, connection.transaction():
            await store.apply_changes(connection, plan_batch(batch))


def key_of(record: msgspec.Struct) -> bytes:
    """The Kafka key of a canonical record: ``<user_id>:<type>:<id>`` (a recovery's id is its cycle)."""
    data = msgspec.to_builtins(record)  # the wire form: event_type included
    event_type: str = data["event_type"]
    kind = event_type.removesuffix("Recorded").removesuffix("Deleted").lower()
    ids = {"cycle": "cycle_id", "sleep": "sleep_id", "recovery": "cycle_id", "workout": "workout_id"}
    return record_key(data["user_id"], kind, str(data[ids[kind]]))


async def produce(kafka_settings: KafkaSettings, topic: str, records: Sequence[msgspec.Struct | Raw]) -> None:
    """Produce records in order, keyed like the normalizer keys them.

    ``(key, value)`` pairs are sent as they are; a None value is a Kafka tombstone.
    """
    producer = make_producer(kafka_settings, "test-records", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for record in records:
            if isinstance(record, tuple):
                futures.append(await producer.send(topic, value=record[1], key=record[0]))
            else:
                futures.append(await producer.send(topic, value=encode(record), key=key_of(record)))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def end_offsets(kafka_settings: KafkaSettings, topic: str, partitions: int = 3) -> dict[int, int]:
    """The end offset of every partition of ``topic`` that holds records (the others store no offset)."""
    consumer = make_consumer(kafka_settings, "test-offsets", None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items() if offset > 0}


async def stored_offsets(db: asyncpg.Pool | asyncpg.Connection, group: str, topic: str) -> dict[int, int]:
    """The next offsets the projection stored for ``group`` on ``topic``."""
    rows = await db.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
        group,
        topic,
    )
    return {row["partition"]: row["next_offset"] for row in rows}


async def read_all(
    kafka_settings: KafkaSettings, topic: str, partitions: int = 3
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its current end."""
    ends = await end_offsets(kafka_settings, topic, partitions)
    consumer = make_consumer(kafka_settings, "test-reader", None)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while len(records) < sum(ends.values()):
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "no record arrived within 5 s"
            for items in batch.values():
                records.extend(items)
    finally:
        await consumer.stop()
    return records


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout_s: float = 60.0, what: str = "the condition"
) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not hold within {timeout_s} s"
        await asyncio.sleep(0.05)
