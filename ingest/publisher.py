"""The Kafka append port of the edge, on the pipeline's one durable appender (``infra.appender``).

``Publisher.append`` returns only once the broker acknowledged the record and raises
:class:`~ingest.errors.AppendUnavailable` when that does not happen within the configured bound, so a
route can answer 503 instead of a 204 that would be a lie. ``KafkaPublisher`` is the durable appender
(acks=all, idempotent, partitioned by user with the cached partitioner, replaced in the background when
it breaks for good) with the edge's error: one producer per process, whose batches concurrent appends
share (``linger.ms``).
"""

from __future__ import annotations

from typing import Protocol

from infra.appender import AppendFailed, DurableAppender
from infra.settings import KafkaSettings
from ingest.errors import AppendUnavailable

__all__ = ["KafkaPublisher", "Publisher"]


class Publisher(Protocol):
    """Append records durably; say whether the log is reachable."""

    async def append(self, topic: str, key: bytes, value: bytes | None) -> None:
        """Return after the broker acknowledged the record; raise AppendUnavailable otherwise."""
        ...

    async def ready(self) -> bool:
        """True when the cluster answers a metadata request."""
        ...


class KafkaPublisher:
    """:class:`Publisher` on a :class:`~infra.appender.DurableAppender`."""

    def __init__(self, appender: DurableAppender) -> None:
        self.appender = appender

    @classmethod
    async def start(cls, settings: KafkaSettings, *, timeout_s: float, linger_ms: int) -> KafkaPublisher:
        """Build and start the edge's appender (durable settings from ``infra.kafka``)."""
        return cls(await DurableAppender.start(settings, "ingest", timeout_s=timeout_s, linger_ms=linger_ms))

    async def stop(self) -> None:
        """Flush what is pending and close the producer."""
        await self.appender.stop()

    async def append(self, topic: str, key: bytes, value: bytes | None) -> None:
        try:
            await self.appender.append_one(topic, key, value)
        except AppendFailed as exc:
            raise AppendUnavailable(exc.code, "Kafka did not take the append") from exc

    async def ready(self) -> bool:
        return await self.appender.ready()
