"""The durable Kafka append of every stage: acknowledged by the broker, or a clear, retriable error.

``DurableAppender.append`` returns only once the broker acknowledged every record (``acks=all``,
idempotent producer partitioned by user from ``infra.kafka``) and raises :class:`AppendFailed`
(retriable) when that does not happen within its bound: the caller then keeps its work (a task row,
an uncommitted offset) or answers 503, and tries again later. One appender (one producer) per process;
concurrent appends share its batches (``linger.ms``), which is what makes ``acks=all`` cheap.

An idempotent producer can break for good: when a broker restart loses a batch the producer had in
flight, the broker answers the next sequence number with ``OutOfOrderSequenceNumber`` and aiokafka's
sender stops, failing every later append (``_BROKEN_FOR_GOOD`` lists the errors that mean this). The
appender then fails that append and replaces the producer in the background (a new producer id,
sequences from zero); appends meanwhile keep failing until the new one is started, and a replacement
that cannot start is tried again by the next such failure.

An append made inside ``infra.logs.trace_context`` carries the trace id as the Kafka header
``trace_id`` (unless the caller's headers name one already), so the trace follows the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

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
from aiokafka.structs import RecordMetadata
from prometheus_client import CollectorRegistry, Histogram

from infra.errors import PipelineError
from infra.kafka import make_producer
from infra.logs import TRACE_HEADER, current_trace
from infra.settings import KafkaSettings

__all__ = ["AppendFailed", "Appender", "DurableAppender", "append_histogram", "traced"]

logger = logging.getLogger(__name__)

# errors after which this producer (its id, epoch and sequence numbers, or its sender) can never append
# again: aiokafka's sender stops on the first two kinds, and a closed producer refuses every send
_BROKEN_FOR_GOOD = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
    ProducerClosed,
)
_STOP_BROKEN_S = 5.0


def traced(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]] | None:
    """``headers`` with the current trace id's header added (unless one is there); None when empty."""
    trace = current_trace()
    if trace is None or not trace.trace_id or any(name == TRACE_HEADER for name, _ in headers):
        return list(headers) or None
    return [*headers, (TRACE_HEADER, trace.trace_id.encode())]


def append_histogram(name: str, what: str, registry: CollectorRegistry) -> Histogram:
    """A stage's append latency: send to broker acknowledgement (acks=all) of one append of ``what``."""
    return Histogram(
        name,
        f"Time from send to broker acknowledgement (acks=all) of one append of {what}.",
        buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        registry=registry,
    )


class AppendFailed(PipelineError):
    """Kafka did not acknowledge an append in time, or refused it; ``code`` is safe to show.

    ``code``: ``kafka_timeout`` (no acknowledgement within the bound) or ``kafka_error``.
    """

    retriable: ClassVar[bool] = True

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class Appender(Protocol):
    """Durable appends (the port of every stage that writes to Kafka)."""

    async def append(
        self, topic: str, records: Sequence[tuple[bytes, bytes]], headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """Append ``(key, value)`` records (each with ``headers``); return once all are acknowledged."""
        ...


class DurableAppender:
    """:class:`Appender` on one aiokafka producer, replaced by a new one (from ``make``) when it breaks."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        timeout_s: float = 15.0,
        make: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._make = make
        self._replacing: asyncio.Task[None] | None = None
        self._closing = False
        self.replaced = 0
        self.observe: Callable[[float], None] | None = None
        """Called with the seconds each acknowledged ``append`` took (a stage's latency histogram)."""

    @classmethod
    async def start(
        cls, settings: KafkaSettings, name: str, *, timeout_s: float = 15.0, **overrides: object
    ) -> DurableAppender:
        """Build and start the producer (``infra.kafka.make_producer(settings, name, **overrides)``)."""

        def make() -> AIOKafkaProducer:
            return make_producer(settings, name, **overrides)

        producer = make()
        await producer.start()
        return cls(producer, timeout_s, make)

    async def stop(self) -> None:
        """Flush what is pending and close the producer (a replacement under way finishes first)."""
        self._closing = True
        if self._replacing is not None:
            await self._replacing
        await self._producer.stop()

    @property
    def replacing(self) -> asyncio.Task[None] | None:
        """The replacement of a broken producer under way (or the last one), if any."""
        return self._replacing

    async def append(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None]],
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Append ``(key, value)`` records (a None value is a tombstone); return once all are acknowledged."""
        started = time.perf_counter()
        if len(records) == 1:
            key, value = records[0]
            await self.append_one(topic, key, value, headers)
        elif records:
            await self._append_many(topic, records, headers)
        if self.observe is not None and records:
            self.observe(time.perf_counter() - started)

    async def _append_many(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None]],
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        producer = self._producer
        listed = traced(headers)
        try:
            async with asyncio.timeout(self._timeout_s):
                deliveries: list[asyncio.Future[Any]] = [
                    await producer.send(topic, value=value, key=key, headers=listed) for key, value in records
                ]
                await asyncio.gather(*deliveries)
        except (TimeoutError, KafkaError) as exc:
            raise self._failure(exc, producer, topic, len(records)) from exc

    async def append_one(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> RecordMetadata:
        """Append one record (the edge's hot path); return where it landed once it is acknowledged."""
        producer = self._producer
        try:
            async with asyncio.timeout(self._timeout_s):
                delivery = await producer.send(topic, value=value, key=key, headers=traced(headers))
                return await delivery
        except (TimeoutError, KafkaError) as exc:
            raise self._failure(exc, producer, topic, 1) from exc

    def _failure(self, exc: Exception, producer: AIOKafkaProducer, topic: str, count: int) -> AppendFailed:
        """The error an append raises for ``exc``; a producer broken for good starts being replaced."""
        if isinstance(exc, TimeoutError):
            return AppendFailed(
                "kafka_timeout", f"Kafka did not acknowledge {count} records on {topic} in time"
            )
        logger.warning("kafka append to %s failed: %s", topic, type(exc).__name__)
        if isinstance(exc, _BROKEN_FOR_GOOD):
            self._replace(producer)
        return AppendFailed("kafka_error", f"Kafka refused an append to {topic}: {type(exc).__name__}")

    async def ready(self) -> bool:
        """True when the cluster answers a metadata request (within 2 s)."""
        try:
            async with asyncio.timeout(2.0):
                metadata = await self._producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError):
            return False
        return bool(metadata.brokers())

    def _replace(self, broken: AIOKafkaProducer) -> None:
        """Start replacing ``broken`` unless it was replaced already or a replacement is under way."""
        if self._make is None or self._closing or broken is not self._producer:
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
