"""The intake acknowledges a webhook only once its work is stored, stop or no stop.

A real fetcher (faust agents on real Kafka, PostgreSQL, the simulator as WHOOP) is stopped, as
SIGTERM stops it, while it handles a webhook. Either the handling ends first (the work row is in
PostgreSQL, then the offset is committed), or it cannot end (PostgreSQL unreachable): then the
offset is not committed and the next fetcher of the group gets the webhook again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from aiokafka import TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings, PostgresSettings
from ingest.payload import WhoopWebhook, parse_webhook, to_record
from processors.fetcher import Fetcher
from processors.intake import Incoming
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import Harness, eventually, harness


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
        kafka_settings, postgres_settings, db_pool, pg_schema, topic_factory, group_id, members=1, days=2
    ) as w:
        yield w


async def _send_webhook(world: Harness, member: int, workout_id: str) -> tuple[int, int]:
    """Append a ``workout.updated`` as the edge would; its (partition, offset)."""
    parsed = parse_webhook(
        orjson.dumps(
            {"user_id": member, "id": workout_id, "type": "workout.updated", "trace_id": uuid.uuid4().hex}
        )
    )
    assert isinstance(parsed, WhoopWebhook)
    key, value = to_record(
        parsed, timestamp_ms=int(world.clock.now().timestamp() * 1000), now=datetime.now(UTC)
    )
    producer = make_producer(world.kafka, "test-edge")
    await producer.start()
    try:
        sent = await producer.send_and_wait(world.topics.webhooks, key=key, value=value)
    finally:
        await producer.stop()
    return sent.partition, sent.offset


async def _committed(world: Harness, partition: int) -> int | None:
    consumer = make_consumer(world.kafka, "test-committed", world.group_id)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(world.topics.webhooks, partition))
        return offset
    finally:
        await consumer.stop()


Handle = Callable[[Incoming], Awaitable[None]]


def _intercept(
    fetcher: Fetcher, topic: str, replacement: Callable[[Handle, Incoming], Awaitable[None]]
) -> None:
    """Route the intake's handling of ``topic``'s records through ``replacement``."""
    original: Handle = fetcher.intake.handle

    async def handle(record: Incoming) -> None:
        if record.topic == topic:
            await replacement(original, record)
        else:
            await original(record)

    fetcher.intake.handle = handle  # type: ignore[method-assign]


async def _workout_row(world: Harness, workout_id: str) -> bool:
    found: bool = await world.pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM fetcher_tasks WHERE kind = 'workout' AND resource_id = $1)", workout_id
    )
    return found


async def test_a_webhook_being_handled_at_stop_is_handled_to_the_end_then_committed(world: Harness) -> None:
    member = (await world.members())[0]
    await world.connect(member)
    await world.switches(enabled=False)
    workout = (await world.scenario("new-workout", user_id=member))["record"]
    fetcher = await world.start_fetcher()
    entered, proceed = asyncio.Event(), asyncio.Event()

    async def slow(original: Handle, record: Incoming) -> None:
        entered.set()
        await proceed.wait()
        await original(record)

    _intercept(fetcher, world.topics.webhooks, slow)
    partition, offset = await _send_webhook(world, member, str(workout["id"]))
    await asyncio.wait_for(entered.wait(), 30)
    stopping = asyncio.create_task(world.stop_fetchers())
    await eventually(lambda: bool(fetcher.app.should_stop), "faust stopping (waiting for its streams)")
    proceed.set()
    await asyncio.wait_for(stopping, 30)
    assert await _workout_row(world, str(workout["id"]))  # the work is queued durably...
    assert await _committed(world, partition) == offset + 1  # ...and only then acknowledged


async def test_a_webhook_not_handled_at_stop_is_not_committed_and_comes_again(world: Harness) -> None:
    member = (await world.members())[0]
    await world.connect(member)
    await world.switches(enabled=False)
    workout = (await world.scenario("new-workout", user_id=member))["record"]
    first = await world.start_fetcher()
    attempts = 0

    async def unreachable(original: Handle, record: Incoming) -> None:
        nonlocal attempts
        attempts += 1
        raise OSError("PostgreSQL is unreachable")  # retriable: the intake holds the record

    _intercept(first, world.topics.webhooks, unreachable)
    partition, offset = await _send_webhook(world, member, str(workout["id"]))
    await eventually(lambda: attempts >= 2, "the webhook retried")
    await world.stop_fetchers()  # SIGTERM while the webhook cannot be stored
    assert not await _workout_row(world, str(workout["id"]))
    committed = await _committed(world, partition)
    assert committed is None or committed <= offset  # not acknowledged: not committed
    async with world.documents_reader() as docs:
        await world.start_fetcher()  # the next fetcher of the group gets the webhook again
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout fetched")
    assert attempts >= 2
