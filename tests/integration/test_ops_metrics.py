"""The scrape-time metrics against real Kafka and PostgreSQL: quota left, Kafka group lag, projection lag."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest
from aiokafka import TopicPartition

from infra.consumer_lag import KafkaOffsets
from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings
from processors.clock import SystemClock
from processors.quota import PgQuota, Priority, QuotaPolicy
from projections.metrics import REGISTRY, ProjectionsProbe
from projections.settings import ProjectionsSettings
from tests.conftest import TopicFactory

pytestmark = pytest.mark.integration


async def _produce(settings: KafkaSettings, topic: str, partition: int, count: int) -> None:
    producer = make_producer(settings, "test-ops-metrics")
    await producer.start()
    try:
        for n in range(count):
            await producer.send_and_wait(topic, value=b"v%d" % n, key=b"k", partition=partition)
    finally:
        await producer.stop()


async def test_quota_left_counts_the_grants_in_each_window(db_pool: asyncpg.Pool) -> None:
    quota = PgQuota(db_pool, QuotaPolicy(per_minute=100, per_day=10_000), SystemClock(), "metrics-test")
    for _ in range(3):
        assert (await quota.try_acquire(Priority.LIVE)).granted
    assert await quota.left() == {"minute": 97, "day": 9_997}


async def test_group_lag_is_end_minus_committed_per_partition(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, group_id: str
) -> None:
    topic = await topic_factory(partitions=2)
    await _produce(kafka_settings, topic, 0, 5)
    await _produce(kafka_settings, topic, 1, 2)
    committer = make_consumer(kafka_settings, "test-ops-metrics", group_id)
    await committer.start()
    try:
        committer.assign([TopicPartition(topic, 0)])
        await committer.commit({TopicPartition(topic, 0): 3})
    finally:
        await committer.stop()
    offsets = await KafkaOffsets.start(kafka_settings, "test-ops-metrics")
    try:
        assert await offsets.ready()
        lags = await offsets.group_lag(group_id, [topic])
    finally:
        await offsets.stop()
    # partition 1 was never committed: all of it is still to consume
    assert lags == {TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 2}


async def test_projection_lag_reads_the_offsets_stored_in_postgres(
    kafka_settings: KafkaSettings,
    topic_factory: TopicFactory,
    db_pool: asyncpg.Pool,
    unique: Callable[[str], str],
) -> None:
    topic = await topic_factory("wear.records.v1", partitions=1)
    group = unique("projections")
    await _produce(kafka_settings, topic, 0, 6)
    await db_pool.execute(
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, 0, 4)",
        group,
        topic,
    )
    settings = ProjectionsSettings(group_id=group, records_topic=topic, activity_topics=())
    offsets = await KafkaOffsets.start(kafka_settings, "test-ops-metrics")
    try:
        probe = ProjectionsProbe(db_pool, offsets, settings)
        await probe.refresh()
        assert await probe.readiness() == {"postgres": True, "kafka": True}
    finally:
        await offsets.stop()
    sample = REGISTRY.get_sample_value(
        "projections_consumer_lag", {"group": group, "topic": topic, "partition": "0"}
    )
    assert sample == 2
