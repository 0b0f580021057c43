"""The first and end offsets of Kafka partitions, now, read by a short-lived consumer of no group."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition

from infra.kafka import make_consumer
from infra.settings import KafkaSettings

__all__ = ["log_bounds"]


async def log_bounds(
    settings: KafkaSettings, name: str, tps: Sequence[TopicPartition]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """The log start offset and the end offset of each of ``tps`` (consumer client id ``name``)."""
    consumer = make_consumer(settings, name, None)
    await consumer.start()
    try:
        firsts: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return firsts, ends
