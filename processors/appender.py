"""The Kafka append port of the fetcher and its aiokafka adapter.

``append`` returns only once the broker acknowledged every record (``acks=all``, idempotent
producer from ``infra.kafka``), or raises :class:`AppendFailed` (retriable): the caller then
keeps its work (a task row, an uncommitted offset) and tries again later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import ClassVar, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from infra.errors import PipelineError
from infra.kafka import make_producer
from infra.settings import KafkaSettings

__all__ = ["AppendFailed", "Appender", "KafkaAppender"]

logger = logging.getLogger(__name__)


class AppendFailed(PipelineError):
    """Kafka did not acknowledge an append in time."""

    retriable: ClassVar[bool] = True


class Appender(Protocol):
    """Durable appends."""

    async def append(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Append ``(key, value)`` records; return once all are acknowledged."""
        ...


class KafkaAppender:
    """:class:`Appender` on one aiokafka producer (the process's only one)."""

    def __init__(self, producer: AIOKafkaProducer, timeout_s: float = 15.0) -> None:
        self._producer = producer
        self._timeout_s = timeout_s

    @classmethod
    async def start(cls, settings: KafkaSettings, name: str = "fetcher") -> KafkaAppender:
        producer = make_producer(settings, name)
        await producer.start()
        return cls(producer)

    async def stop(self) -> None:
        await self._producer.stop()

    async def append(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        if not records:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                deliveries = [
                    await self._producer.send(topic, value=value, key=key) for key, value in records
                ]
                await asyncio.gather(*deliveries)
        except TimeoutError as exc:
            raise AppendFailed(
                f"Kafka did not acknowledge {len(records)} records on {topic} in time"
            ) from exc
        except KafkaError as exc:
            logger.warning("append to %s failed: %s", topic, type(exc).__name__)
            raise AppendFailed(f"Kafka refused an append to {topic}: {type(exc).__name__}") from exc
