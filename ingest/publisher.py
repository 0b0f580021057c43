"""The Kafka append port of the edge and its aiokafka adapter.

``Publisher.append`` returns only once the broker acknowledged the record (``acks=all``,
idempotent producer from ``infra.kafka``) and raises :class:`~ingest.errors.AppendUnavailable`
when that does not happen within the configured bound, so a route can answer 503 instead of
a 204 that would be a lie. One producer per process; concurrent appends share its batches
(``linger.ms``), which is what makes acks=all cheap under load.

An idempotent producer can break for good: when a broker restart loses a batch the producer had in
flight, the broker answers the next sequence number with ``OutOfOrderSequenceNumber`` and aiokafka's
sender stops, failing every later append. The publisher then answers that append 503 and replaces the
producer in the background (a new producer id, sequences from zero); the appends meanwhile keep
answering 503 until the new one is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from infra.kafka import UserPartitioner, make_producer
from infra.settings import KafkaSettings
from ingest.errors import AppendUnavailable
from schemas.keys import user_of_key

__all__ = ["CachedUserPartitioner", "KafkaPublisher", "Publisher"]

logger = logging.getLogger(__name__)

# errors after which this producer (its id and sequence numbers) can no longer append
_BROKEN_PRODUCER = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)
_STOP_BROKEN_S = 5.0


class Publisher(Protocol):
    """Append records durably; say whether the log is reachable."""

    async def append(self, topic: str, key: bytes, value: bytes | None) -> None:
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
    """:class:`Publisher` on one aiokafka producer, replaced by a new one (from ``make``) when it breaks."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        timeout_s: float,
        make: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._make = make
        self._replacing: asyncio.Task[None] | None = None
        self.replaced = 0

    @classmethod
    async def start(cls, settings: KafkaSettings, *, timeout_s: float, linger_ms: int) -> KafkaPublisher:
        """Build and start the producer (durable settings from ``infra.kafka``)."""

        def make() -> AIOKafkaProducer:
            return make_producer(settings, "ingest", linger_ms=linger_ms, partitioner=CachedUserPartitioner())

        producer = make()
        await producer.start()
        return cls(producer, timeout_s, make)

    async def stop(self) -> None:
        """Flush what is pending and close the producer."""
        if self._replacing is not None:
            await self._replacing
        await self._producer.stop()

    @property
    def replacing(self) -> asyncio.Task[None] | None:
        """The replacement of a broken producer under way (or the last one), if any."""
        return self._replacing

    async def append(self, topic: str, key: bytes, value: bytes | None) -> None:
        producer = self._producer
        try:
            async with asyncio.timeout(self._timeout_s):
                delivery = await producer.send(topic, value=value, key=key)
                await delivery
        except TimeoutError as exc:
            raise AppendUnavailable("kafka_timeout", "Kafka did not acknowledge the append in time") from exc
        except KafkaError as exc:
            logger.warning("kafka append to %s failed: %s", topic, type(exc).__name__)
            if isinstance(exc, _BROKEN_PRODUCER):
                self._replace(producer)
            raise AppendUnavailable("kafka_error", "Kafka refused the append") from exc

    async def ready(self) -> bool:
        try:
            async with asyncio.timeout(2.0):
                metadata = await self._producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError):
            return False
        return bool(metadata.brokers())

    def _replace(self, broken: AIOKafkaProducer) -> None:
        """Start replacing ``broken`` unless it was replaced already or a replacement is under way."""
        if self._make is None or broken is not self._producer:
            return
        if self._replacing is not None and not self._replacing.done():
            return
        self._replacing = asyncio.create_task(self._replacement(self._make, broken), name="replace-producer")

    async def _replacement(self, make: Callable[[], AIOKafkaProducer], broken: AIOKafkaProducer) -> None:
        fresh = make()
        try:
            await fresh.start()
        except (KafkaError, OSError) as exc:  # not replaced: the next broken append tries again
            logger.warning("could not start a new Kafka producer: %s", type(exc).__name__)
            with contextlib.suppress(Exception):
                await fresh.stop()
            return
        self._producer = fresh
        self.replaced += 1
        logger.warning("replaced the Kafka producer after an unrecoverable append error")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_STOP_BROKEN_S):
                await broken.stop()
