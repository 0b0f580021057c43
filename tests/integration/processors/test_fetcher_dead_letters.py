"""What the fetcher cannot act on goes to the dead-letter topic, with its origin; the rest keeps flowing."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.kafka import make_producer
from infra.settings import KafkaSettings, PostgresSettings
from infra.topic_admin import ensure_topics
from schemas.events import DeadLetter, WebhookReceived
from schemas.identity import user_id_for_whoop_member
from schemas.keys import record_key
from schemas.serde import decode_as, encode
from schemas.topics import topic
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import (
    PARTITIONS,
    Harness,
    TopicReader,
    harness,
)


@pytest.fixture
async def dead_letters(kafka_settings: KafkaSettings, world: Harness) -> AsyncIterator[str]:
    """The webhook topic's dead-letter twin (``<topic>.dlq``), deleted after the test."""
    name = world.topics.webhooks + ".dlq"
    report = await ensure_topics(
        kafka_settings, [replace(topic("whoop.webhooks.v1.dlq"), name=name, partitions=PARTITIONS)]
    )
    assert name in report.created
    try:
        yield name
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([name])
        finally:
            await admin.close()


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    topic_factory: TopicFactory,
    group_id: str,
) -> AsyncIterator[Harness]:
    async with harness(kafka_settings, postgres_settings, db_pool, pg_schema, topic_factory, group_id) as w:
        yield w


async def test_garbage_and_v1_ids_are_dead_lettered_and_the_next_webhook_is_fetched(
    world: Harness, dead_letters: str
) -> None:
    dlq = dead_letters
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.start_fetcher()
    v1 = WebhookReceived(
        event_id="v1-event",
        occurred_at=datetime.now(UTC),
        user_id=user_id_for_whoop_member(member),
        source="ingest",
        whoop_user_id=member,
        whoop_event_type="recovery.updated",
        resource_id="1093387651",
        whoop_trace_id="4e8b1d3f-6a2c-4f97-a0e5-8d2b7c1f9e03",
        signature_timestamp_ms=1760437512345,
    )
    key = record_key(user_id, "webhook", "x")
    producer = make_producer(world.kafka, "test-edge")
    await producer.start()
    try:
        garbage = await producer.send_and_wait(world.topics.webhooks, key=key, value=b"{not json")
        await producer.send_and_wait(world.topics.webhooks, key=key, value=encode(v1))
    finally:
        await producer.stop()
    async with (
        TopicReader(world.kafka, dlq, lambda raw: decode_as(DeadLetter, raw)) as letters,
        world.documents_reader() as docs,
    ):
        workout = (await world.scenario("new-workout", user_id=member))["record"]
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the next workout")
        await letters.wait_until(lambda: len(letters.records) == 2, "two dead letters")
    first, second = sorted(letters.records, key=lambda letter: letter.origin_offset)
    assert first.origin_topic == world.topics.webhooks and first.stage == "fetcher"
    assert (first.origin_partition, first.origin_offset) == (garbage.partition, garbage.offset)
    assert base64.b64decode(first.value_b64) == b"{not json" and first.error_type == "SchemaError"
    assert second.error_type == "Rejected" and "not a v2 UUID" in second.reason
