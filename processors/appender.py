"""The Kafka append port of the fetcher and its aiokafka adapter.

``append`` returns only once the broker acknowledged every record (``acks=all``, idempotent
producer from ``infra.kafka``), or raises :class:`AppendFailed` (retriable): the caller then
keeps its work (a task row, an uncommitted offset) and tries again later.

An idempotent producer that lost its sequence state (``OutOfOrderSequenceNumber`` and kin, e.g.
after a broker lost its producer state in a restart) stays broken for good; the adapter then
replaces it with a fresh producer (a new producer id), so the next attempt can succeed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)

from infra.errors import PipelineError
from infra.kafka import make_producer
from infra.settings import KafkaSettings

__all__ = ["AppendFailed", "Appender", "KafkaAppender"]

logger = logging.getLogger(__name__)

_FATAL = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
    ProducerClosed,
)


class AppendFailed(PipelineError):
    """Kafka did not acknowledge an append in time."""

    retriable: ClassVar[bool] = True


class Appender(Protocol):
    """Durable appends."""

    async def append(
        self, topic: str, records: Sequence[tuple[bytes, bytes]], headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """Append ``(key, value)`` records (each with ``headers``); return once all are acknowledged."""
        ...


class KafkaAppender:
    """:class:`Appender` on one aiokafka producer (the process's only one)."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        timeout_s: float = 15.0,
        factory: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._factory = factory
        self._replacing = asyncio.Lock()
        self.replaced = 0

    @classmethod
    async def start(cls, settings: KafkaSettings, name: str = "fetcher") -> KafkaAppender:
        producer = make_producer(settings, name)
        await producer.start()
        return cls(producer, factory=lambda: make_producer(settings, name))

    async def stop(self) -> None:
        await self._producer.stop()

    async def append(
        self, topic: str, records: Sequence[tuple[bytes, bytes]], headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        if not records:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                deliveries = [
                    await (
                        self._producer.send(topic, value=value, key=key, headers=list(headers))
                        if headers
                        else self._producer.send(topic, value=value, key=key)
                    )
                    for key, value in records
                ]
                await asyncio.gather(*deliveries)
        except TimeoutError as exc:
            raise AppendFailed(
                f"Kafka did not acknowledge {len(records)} records on {topic} in time"
            ) from exc
        except KafkaError as exc:
            logger.warning("append to %s failed: %s", topic, type(exc).__name__)
            if isinstance(exc, _FATAL):
                try:
                    await self._replace(self._producer)
                except KafkaError as again:  # the broker is still away: the next append tries again
                    logger.warning("replacing the producer failed: %s", type(again).__name__)
            raise AppendFailed(f"Kafka refused an append to {topic}: {type(exc).__name__}") from exc

    async def _replace(self, broken: AIOKafkaProducer) -> None:
        """Swap a producer whose idempotence state is lost for a fresh one (once per broken producer)."""
        if self._factory is None:
            return
        async with self._replacing:
            if self._producer is not broken:
                return  # another append already replaced it
            fresh = self._factory()
            await fresh.start()
            self._producer = fresh
            self.replaced += 1
            logger.warning("the Kafka producer lost its sequence state: replaced by a fresh one")
        try:
            await broken.stop()
        except KafkaError as exc:
            logger.info("stopping the broken producer: %s", type(exc).__name__)
