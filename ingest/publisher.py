"""The Kafka append port of the edge and its aiokafka adapter.

``Publisher.append`` returns only once the broker acknowledged the record (``acks=all``,
idempotent producer from ``infra.kafka``) and raises :class:`~ingest.errors.AppendUnavailable`
when that does not happen within the configured bound, so a route can answer 503 instead of
a 204 that would be a lie. One producer per process; concurrent appends share its batches
(``linger.ms``), which is what makes acks=all cheap under load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from infra.kafka import UserPartitioner, make_producer
from infra.settings import KafkaSettings
from ingest.errors import AppendUnavailable
from schemas.keys import user_of_key

__all__ = ["CachedUserPartitioner", "KafkaPublisher", "Publisher"]

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Append records durably; say whether the log is reachable."""

    async def append(self, topic: str, key: bytes, value: bytes) -> None:
        """Return after the broker acknowledged the record; raise AppendUnavailable otherwise."""
        ...

    async def ready(self) -> bool:
        """True when the cluster answers a metadata request."""
        ...


class CachedUserPartitioner:
    """``infra.kafka.UserPartitioner``'s placement (murmur2 of the key's user part), memoized per user.

    The pure-Python murmur2 costs ~8 µs per record; members repeat, so the edge caches it.
    """

    def __init__(self) -> None:
        self._fallback = UserPartitioner()
        self._cache: dict[tuple[bytes, tuple[int, ...]], int] = {}

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        if key is None:
            return self._fallback(key, all_partitions, available)
        cache_key = (user_of_key(key), tuple(all_partitions))
        partition = self._cache.get(cache_key)
        if partition is None:
            if len(self._cache) >= 100_000:
                self._cache.clear()
            partition = self._cache[cache_key] = self._fallback(key, all_partitions, available)
        return partition


class KafkaPublisher:
    """:class:`Publisher` on one aiokafka producer."""

    def __init__(self, producer: AIOKafkaProducer, timeout_s: float) -> None:
        self._producer = producer
        self._timeout_s = timeout_s

    @classmethod
    async def start(cls, settings: KafkaSettings, *, timeout_s: float, linger_ms: int) -> KafkaPublisher:
        """Build and start the producer (durable settings from ``infra.kafka``)."""
        producer = make_producer(settings, "ingest", linger_ms=linger_ms, partitioner=CachedUserPartitioner())
        await producer.start()
        return cls(producer, timeout_s)

    async def stop(self) -> None:
        """Flush what is pending and close the producer."""
        await self._producer.stop()

    async def append(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                delivery = await self._producer.send(topic, value=value, key=key)
                await delivery
        except TimeoutError as exc:
            raise AppendUnavailable("kafka_timeout", "Kafka did not acknowledge the append in time") from exc
        except KafkaError as exc:
            logger.warning("kafka append to %s failed: %s", topic, type(exc).__name__)
            raise AppendUnavailable("kafka_error", "Kafka refused the append") from exc

    async def ready(self) -> bool:
        try:
            async with asyncio.timeout(2.0):
                metadata = await self._producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError):
            return False
        return bool(metadata.brokers())
