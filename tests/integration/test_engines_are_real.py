"""Proof that the engines are real: durable produce, and exactly-once effects across SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import asyncpg
from aiokafka import TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings
from schemas.keys import partition_for, record_key
from tests.conftest import TopicFactory


async def test_acks_all_idempotent_produce_and_consume_back(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, group_id: str
) -> None:
    name = await topic_factory("whoop.webhooks.v1", partitions=3)
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    # the broker assigned an idempotent producer id, and every send waits for all in-sync replicas
    assert producer._txn_manager is not None and producer._txn_manager.producer_id >= 0
    assert producer._sender._acks == -1
    try:
        sent: dict[bytes, bytes] = {}
        for i in range(300):
            key = record_key(f"user{i % 7}", "webhook", str(i))
            meta = await producer.send_and_wait(name, value=f"v{i}".encode(), key=key)
            assert meta.partition == partition_for(key, 3)  # the user decides the partition
            sent[key] = f"v{i}".encode()
    finally:
        await producer.stop()
    consumer = make_consumer(kafka_settings, "test", group_id, name)
    await consumer.start()
    received: dict[bytes, bytes] = {}
    try:
        while len(received) < len(sent):
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "no record arrived within 5 s"
            for records in batch.values():
                received.update({r.key: r.value for r in records})
    finally:
        await consumer.stop()
    assert received == sent


async def _count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM applied_messages")
    return count


async def _wait_until_applied(pool: asyncpg.Pool, at_least: int, timeout_s: float = 60.0) -> None:
    """Poll the table until it holds ``at_least`` rows (the worker's progress is observable only there)."""
    deadline = time.monotonic() + timeout_s
    while await _count(pool) < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} rows applied after {timeout_s}s"
        await asyncio.sleep(0.05)


async def test_consumer_sigkilled_mid_stream_applies_every_message_exactly_once(
    kafka_settings: KafkaSettings,
    topic_factory: TopicFactory,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    total = 6000  # room enough that a worker killed at 1/5 and 1/2 has not finished on a loaded machine
    name = await topic_factory("wear.records.v1", partitions=3)
    await db_pool.execute(
        "CREATE TABLE applied_messages (message_id text NOT NULL, kafka_partition int, kafka_offset bigint)"
    )
    producer = make_producer(kafka_settings, "test", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(name, value=str(i).encode(), key=record_key(f"u{i % 11}", "m", str(i)))
            for i in range(total)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    argv = [
        sys.executable,
        "-m",
        "tests.integration.workers.exactly_once_worker",
        kafka_settings.kafka_bootstrap_servers,
        database_url,
        pg_schema,
        name,
        group_id,
    ]
    kills = 0
    for threshold in (total // 5, total // 2):
        worker = await asyncio.create_subprocess_exec(*argv)
        try:
            await _wait_until_applied(db_pool, threshold)
        finally:
            worker.send_signal(signal.SIGKILL)
            await asyncio.wait_for(worker.wait(), 30)
        kills += 1
        applied = await _count(db_pool)
        assert applied < total, "the worker finished before it was killed: the test proves nothing"

    worker = await asyncio.create_subprocess_exec(*argv)
    try:
        await _wait_until_applied(db_pool, total, timeout_s=90)
        # let it idle a moment on an empty topic: nothing more may appear
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert await _count(db_pool) == total
            await asyncio.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 30)

    assert kills == 2
    rows = await db_pool.fetch("SELECT message_id, count(*) AS n FROM applied_messages GROUP BY message_id")
    assert len(rows) == total
    assert {row["n"] for row in rows} == {1}
    assert {int(row["message_id"]) for row in rows} == set(range(total))
    stored = {
        row["partition"]: row["next_offset"]
        for row in await db_pool.fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1", name
        )
    }
    consumer = make_consumer(kafka_settings, "test", None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(name, p) for p in range(3)])
    finally:
        await consumer.stop()
    assert stored == {tp.partition: end for tp, end in ends.items()}
