"""A real consumer process for the exactly-once test: applies messages with ExactlyOnceConsumer.

Each message becomes one row of ``applied_messages`` (no unique constraint, so a double apply
would show as a duplicate row). Run: python -m tests.integration.workers.exactly_once_worker
BOOTSTRAP DATABASE_URL SCHEMA TOPIC GROUP
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import asyncpg
from aiokafka import ConsumerRecord

from infra.db import create_pool
from infra.exactly_once import Connection, ExactlyOnceConsumer
from infra.kafka import make_consumer
from infra.settings import KafkaSettings, PostgresSettings


async def _apply(connection: Connection, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
    await connection.executemany(
        "INSERT INTO applied_messages (message_id, kafka_partition, kafka_offset) VALUES ($1, $2, $3)",
        [(record.value.decode(), record.partition, record.offset) for record in records],
    )


async def main(bootstrap: str, database_url: str, schema: str, topic: str, group: str) -> None:
    pool: asyncpg.Pool = await create_pool(PostgresSettings(database_url=database_url), schema=schema)
    consumer = make_consumer(
        KafkaSettings(kafka_bootstrap_servers=bootstrap), "exactly-once-worker", group, max_poll_records=50
    )
    await consumer.start()
    try:
        runner = ExactlyOnceConsumer(
            consumer, pool, group, [topic], _apply, max_records=50, poll_timeout_ms=200
        )
        await runner.run(asyncio.Event())
    finally:
        await consumer.stop()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
