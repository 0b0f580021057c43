"""The projection workers in-process on real Kafka and PostgreSQL: dead letters, retries, activity."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from infra.appender import DurableAppender
from infra.dead_letters import DeadLetters
from infra.kafka import make_producer
from infra.member_keys import MemberKeys
from infra.settings import KafkaSettings
from projections.runner import (
    ActivityWorker,
    ProjectionWorker,
    activity_consumer_for,
    projection_consumer,
)
from projections.settings import Settings
from schemas.events import DeadLetter, Envelope, WebhookReceived
from schemas.keys import record_key
from schemas.records import DocumentFetched
from schemas.serde import decode_as, encode
from tests.conftest import TopicFactory
from tests.integration.projections.conftest import PoolFactory, projection_settings
from tests.integration.projections.helpers import (
    Raw,
    apply_batches,
    checksums,
    end_offsets,
    key_of,
    produce,
    read_all,
    stored_offsets,
    wait_for,
)
from tests.unit.projections.factory import T0, Member, cycle, history, mixed_log

MEMBERS = [Member(482913), Member(777001), Member(31337), Member(4242)]


@asynccontextmanager
async def running_projection(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[DeadLetters]:
    """A ProjectionWorker running in this event loop until the context ends."""
    consumer = projection_consumer(settings)
    producer = make_producer(settings.kafka, "test-dlq")
    await producer.start()
    await consumer.start()
    letters = DeadLetters(DurableAppender(producer), "projections")
    worker = ProjectionWorker(
        consumer, pool, settings.projections, letters, keys=MemberKeys(settings.vault.keyring())
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield letters
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
        await producer.stop()


async def _caught_up(pool: asyncpg.Pool, kafka_settings: KafkaSettings, group: str, topic: str) -> None:
    ends = await end_offsets(kafka_settings, topic)

    async def done() -> bool:
        return await stored_offsets(pool, group, topic) == ends

    await wait_for(done, 60, "the projection catching up with the topic")


async def test_the_worker_projects_the_topic_and_dead_letters_what_cannot_be_stored(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    extra_pool: PoolFactory,
) -> None:
    valid = mixed_log(MEMBERS[:2], days=10)
    alice = MEMBERS[0]
    nul = history(alice, 1, start=T0 - timedelta(days=30))[0].sleep
    nul = msgspec.structs.replace(nul, document={**nul.document, "note": "a\x00b"})  # rejected when read
    refused = next(d.workout for d in history(alice, 10, start=T0 - timedelta(days=60), seed=7) if d.workout)
    refused = msgspec.structs.replace(refused, sport_name="refused by a check")
    # PostgreSQL refuses that one: the batch is applied again record by record, only it is dead-lettered
    await db_pool.execute(
        "ALTER TABLE rm_workouts ADD CONSTRAINT test_refuses CHECK (sport_name <> 'refused by a check')"
    )
    huge = msgspec.structs.replace(cycle(alice, 1, T0, None, T0), cycle_id=2**63)  # one past bigint
    webhook = WebhookReceived(
        event_id="e1",
        occurred_at=T0,
        user_id=alice.user_id,
        source="test",
        whoop_user_id=alice.whoop_user_id,
        whoop_event_type="sleep.updated",
        resource_id="x",
        whoop_trace_id="t",
        signature_timestamp_ms=1,
    )
    key = record_key(alice.user_id, "sleep", "junk")
    junk: list[msgspec.Struct | Raw] = [
        (key, b"not json"),
        (key, encode(webhook)),
        (key_of(nul), encode(nul)),
        (key_of(refused), encode(refused)),
        (record_key(alice.user_id, "cycle", "1"), encode(huge)),
        (record_key(alice.user_id, "nonsense", "1"), None),
    ]
    stream: list[msgspec.Struct | Raw] = [*valid[:40], *junk, *valid[40:]]
    await produce(kafka_settings, records_topic, stream)

    settings = projection_settings(
        kafka_settings,
        database_url,
        pg_schema,
        records_topic=records_topic,
        group_id=group_id,
        batch_max_records=64,
    )
    async with running_projection(settings, db_pool) as letters:
        await _caught_up(db_pool, kafka_settings, group_id, records_topic)
    assert letters.sent == len(junk)

    dead = [decode_as(DeadLetter, r.value) for r in await read_all(kafka_settings, records_topic + ".dlq")]
    alice_partition = {
        r.partition for r in await read_all(kafka_settings, records_topic) if r.key == key
    }.pop()
    assert sorted(d.error_type for d in dead) == ["RecordRejected"] * len(junk)
    assert {d.origin_partition for d in dead} == {alice_partition}
    assert [base64.b64decode(d.value_b64) for d in sorted(dead, key=lambda d: d.origin_offset)][:2] == [
        b"not json",
        encode(webhook),
    ]
    assert all(d.stage == "projections" and d.origin_topic == records_topic for d in dead)
    assert any("refused" in d.reason for d in dead)  # the check went through the record-by-record path
    assert any("document cannot be stored (NUL)" in d.reason for d in dead)

    reference, _ = await extra_pool()
    await apply_batches(reference, [valid])
    assert await checksums(db_pool) == await checksums(reference)


async def test_the_worker_retries_when_postgres_drops_its_connections(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    pg_schema: str,
    database_url: str,
    extra_pool: PoolFactory,
) -> None:
    valid = mixed_log(MEMBERS, days=25)
    await produce(kafka_settings, records_topic, valid)
    (
        _,
        schema,
    ) = await extra_pool()  # migrated; the worker gets a pool of its own on it, whose backends we know
    backends: set[int] = set()

    async def remember(connection: asyncpg.Connection) -> None:
        backends.add(connection.get_server_pid())

    worker_pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=4, server_settings={"search_path": schema}, init=remember
    )
    settings = projection_settings(
        kafka_settings,
        database_url,
        pg_schema,
        records_topic=records_topic,
        group_id=group_id,
        batch_max_records=25,
        retry_backoff_s=0.05,
    )
    monitor = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    terminated = 0
    try:
        async with running_projection(settings, worker_pool):
            ends = await end_offsets(kafka_settings, records_topic)
            while await stored_offsets(monitor, group_id, records_topic) != ends:
                # end the worker's transaction from the server side, mid-batch, a few times (only this
                # worker's backends: other projections may share the database)
                if terminated < 5:
                    killed = await monitor.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE pid = ANY($1::int[]) AND backend_xid IS NOT NULL",
                        list(backends),
                    )
                    terminated += killed
                await asyncio.sleep(0.01)
    finally:
        await monitor.close()
    assert terminated >= 3, "the test did not manage to break the worker's transactions"

    reference, _ = await extra_pool()
    await apply_batches(reference, [valid])
    try:
        assert await checksums(worker_pool) == await checksums(reference)
    finally:
        await worker_pool.close()


async def test_the_activity_worker_keeps_the_last_webhook_and_fetch_per_member(
    kafka_settings: KafkaSettings,
    topic_factory: TopicFactory,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    webhooks = await topic_factory("whoop.webhooks.v1", partitions=3)
    documents = await topic_factory("whoop.documents.v1", partitions=3)
    alice, bob = MEMBERS[:2]
    events: list[tuple[str, Envelope]] = []
    for i in range(5):
        for member in (alice, bob):
            at = datetime(2025, 10, 1, 8, i, tzinfo=UTC)
            events.append(
                (
                    webhooks,
                    WebhookReceived(
                        event_id=f"w{i}{member.whoop_user_id}",
                        occurred_at=at,
                        user_id=member.user_id,
                        source="ingest",
                        whoop_user_id=member.whoop_user_id,
                        whoop_event_type="sleep.updated",
                        resource_id=str(i),
                        whoop_trace_id=f"t{i}",
                        signature_timestamp_ms=i,
                    ),
                )
            )
            events.append(
                (
                    documents,
                    DocumentFetched(
                        event_id=f"d{i}{member.whoop_user_id}",
                        occurred_at=at + timedelta(seconds=5),
                        user_id=member.user_id,
                        source="fetcher",
                        whoop_user_id=member.whoop_user_id,
                        resource_type="sleep",
                        resource_id=str(i),
                        fetched_at=at + timedelta(seconds=3),
                        document={"id": str(i)},
                    ),
                )
            )
    await _produce_to(kafka_settings, events)
    settings = projection_settings(
        kafka_settings,
        database_url,
        pg_schema,
        activity_topics=f"{webhooks},{documents}",
        activity_group_id=group_id,
    )
    consumer = activity_consumer_for(settings)
    await consumer.start()
    worker = ActivityWorker(consumer, db_pool, settings.projections)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:

        async def both_seen() -> bool:
            count = await db_pool.fetchval(
                "SELECT coalesce(sum(webhooks_seen + documents_seen), 0) FROM rm_sync_activity"
            )
            return bool(count == 20)

        await wait_for(both_seen, 60, "the activity projection")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
    row = await db_pool.fetchrow("SELECT * FROM rm_sync_activity WHERE user_id = $1", alice.user_id)
    assert row is not None
    assert row["last_webhook_at"] == datetime(2025, 10, 1, 8, 4, tzinfo=UTC)
    assert row["last_fetch_at"] == datetime(2025, 10, 1, 8, 4, 3, tzinfo=UTC)
    assert (row["webhooks_seen"], row["documents_seen"]) == (5, 5)


async def _produce_to(kafka_settings: KafkaSettings, events: Sequence[tuple[str, Envelope]]) -> None:
    producer = make_producer(kafka_settings, "test-activity")
    await producer.start()
    try:
        for topic, event in events:
            user = event.user_id
            await producer.send_and_wait(topic, encode(event), key=record_key(user, "x", "1"))
    finally:
        await producer.stop()
