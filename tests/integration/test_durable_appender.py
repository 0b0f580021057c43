"""The one durable appender and the one dead-letter sender on the real broker.

A producer broken for good is replaced and the next append lands, for the fetcher's path (the
appender itself) and the edge's (``ingest.publisher.KafkaPublisher``). The broken state is a producer
closed under the appender: aiokafka then refuses every send with ``ProducerClosed``, as its stopped
sender refuses every send after ``OutOfOrderSequenceNumber`` (which needs a broker to lose a batch in
flight: tests/integration/ingest/test_kafka_outage.py stops the broker for that).
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from infra.appender import AppendFailed, DurableAppender
from infra.dead_letters import DeadLetters
from infra.kafka import make_producer
from infra.settings import KafkaSettings
from ingest.errors import AppendUnavailable
from ingest.publisher import KafkaPublisher
from schemas.events import DeadLetter
from schemas.keys import record_key
from schemas.serde import decode_as
from schemas.topics import DLQ_REDRIVE_OF_HEADER
from tests.conftest import TopicFactory
from tests.integration.projections.helpers import read_all

pytestmark = pytest.mark.integration

PARTITIONS = 3


class Producers:
    """The ``make`` of an appender: real durable producers, each kept so the test can break one."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.made: list[AIOKafkaProducer] = []

    def __call__(self) -> AIOKafkaProducer:
        self.made.append(make_producer(self.settings, f"test-appender-{len(self.made)}"))
        return self.made[-1]

    async def first(self) -> AIOKafkaProducer:
        producer = self()
        await producer.start()
        return producer


@pytest.fixture
async def webhooks(topic_factory: TopicFactory) -> str:
    """A webhooks-shaped topic and its ``.dlq`` twin."""
    return await topic_factory("whoop.webhooks.v1", partitions=PARTITIONS, with_dlq=True)


async def test_a_producer_broken_for_good_is_replaced_and_the_next_append_lands(
    kafka_settings: KafkaSettings, webhooks: str
) -> None:
    producers = Producers(kafka_settings)
    appender = DurableAppender(await producers.first(), timeout_s=10.0, make=producers)
    key = record_key("u1", "webhook", "1")
    try:
        await appender.append(webhooks, [(key, b"before")])
        await producers.made[0].stop()  # broken for good: every send on it fails
        with pytest.raises(AppendFailed) as failed:
            await appender.append(webhooks, [(key, b"lost")])
        assert failed.value.retriable
        assert appender.replacing is not None
        await appender.replacing
        assert appender.replaced == 1 and len(producers.made) == 2
        placed = await appender.append_one(webhooks, key, b"after")
        await appender.append(webhooks, [(key, b"after-2"), (key, b"after-3")], [("h", b"1")])
    finally:
        await appender.stop()
    on_topic = await read_all(kafka_settings, webhooks, PARTITIONS)
    assert [record.value for record in on_topic] == [b"before", b"after", b"after-2", b"after-3"]
    assert len({record.partition for record in on_topic}) == 1  # one user, one partition
    assert (placed.partition, placed.offset) == (on_topic[1].partition, on_topic[1].offset)
    assert [record.headers for record in on_topic[2:]] == [(("h", b"1"),)] * 2


async def test_the_edge_answers_unavailable_then_appends_through_the_new_producer(
    kafka_settings: KafkaSettings, webhooks: str
) -> None:
    producers = Producers(kafka_settings)
    publisher = KafkaPublisher(DurableAppender(await producers.first(), timeout_s=10.0, make=producers))
    key = record_key("u2", "webhook", "1")
    try:
        await publisher.append(webhooks, key, b"before")  # the topic's metadata is known from here on
        await producers.made[0].stop()
        with pytest.raises(AppendUnavailable) as refused:
            await publisher.append(webhooks, key, b"lost")
        assert refused.value.code == "kafka_error"
        assert publisher.appender.replacing is not None
        await publisher.appender.replacing
        await publisher.append(webhooks, key, b"after")
        assert await publisher.ready()
    finally:
        await publisher.stop()
    on_topic = await read_all(kafka_settings, webhooks, PARTITIONS)
    assert [record.value for record in on_topic] == [b"before", b"after"]


async def test_a_dead_letter_lands_on_the_twin_keyed_with_its_headers(
    kafka_settings: KafkaSettings, webhooks: str
) -> None:
    appender = await DurableAppender.start(kafka_settings, "test-dead-letters")
    letters = DeadLetters(appender, "fetcher")
    origin_key = record_key("u3", "webhook", "9")
    try:

        class Origin:
            topic, partition, offset, key, value = webhooks, 1, 7, origin_key, b"{not json"

        sent = await letters.send(Origin(), ValueError("no"), error_type="SchemaError", reason="not JSON")
        other_key = record_key("u3", "sleep", str(uuid.uuid4()))
        await letters.send(Origin(), KeyError("k"), key=other_key, headers=[(DLQ_REDRIVE_OF_HEADER, b"0:4")])
    finally:
        await appender.stop()
    assert letters.sent == 2
    first, second = await read_all(kafka_settings, f"{webhooks}.dlq", PARTITIONS)
    assert (first.key, second.key) == (origin_key, other_key)
    assert decode_as(DeadLetter, first.value) == sent
    assert (sent.origin_topic, sent.origin_partition, sent.origin_offset) == (webhooks, 1, 7)
    assert (sent.error_type, sent.reason, sent.stage) == ("SchemaError", "not JSON", "fetcher")
    letter = decode_as(DeadLetter, second.value)
    assert (letter.error_type, letter.reason) == ("KeyError", "'k'")
    assert second.headers == ((DLQ_REDRIVE_OF_HEADER, b"0:4"),)
