"""Consumer lag per partition: the records a consumer group has not consumed yet, for ``/metrics``.

``lag = end offset - next offset to consume``. The next offset comes from Kafka for a group that
commits there (:meth:`KafkaOffsets.committed`: the fetcher, the normalizer) or from PostgreSQL for a
projection (``consumer_offsets``, read by its owner); a partition the group never committed counts
from the log start (what a fresh group reads first). :class:`KafkaOffsets` asks Kafka with a
group-less consumer and an admin client of its own, so it never disturbs the group it measures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Gauge

from infra.kafka import make_consumer
from infra.settings import KafkaSettings

__all__ = ["KafkaOffsets", "lag_gauge", "lag_of", "set_lag"]

_READY_TIMEOUT_S = 2.0


def lag_of(
    starts: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
    next_offsets: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """The lag of every partition of ``ends`` (pure); one without a next offset counts from its start."""
    lags = {}
    for tp, end in ends.items():
        start = starts.get(tp, 0)
        consumed = max(next_offsets.get(tp, start), start)
        lags[tp] = max(0, end - consumed)
    return lags


def lag_gauge(name: str, registry: CollectorRegistry, committed_where: str) -> Gauge:
    """The lag gauge of a stage (labels ``group``, ``topic``, ``partition``), read on scrape."""
    return Gauge(
        name,
        f"Records not consumed yet (end offset - offset committed in {committed_where}), by group, topic "
        "and partition; read on scrape.",
        ["group", "topic", "partition"],
        registry=registry,
    )


def set_lag(gauge: Gauge, group: str, lags: Mapping[TopicPartition, int]) -> None:
    """Write ``lags`` into ``gauge`` (labels ``group``, ``topic``, ``partition``)."""
    for tp, lag in lags.items():
        gauge.labels(group, tp.topic, str(tp.partition)).set(lag)


class KafkaOffsets:
    """Partitions, log start and end offsets, and groups' committed offsets, asked of Kafka."""

    def __init__(self, consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient) -> None:
        self._consumer = consumer
        self._admin = admin

    @classmethod
    async def start(cls, settings: KafkaSettings, name: str) -> KafkaOffsets:
        """Start the clients (``name`` goes into their client ids); close with :meth:`stop`."""
        consumer = make_consumer(settings, name, None)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=f"{settings.kafka_client_id_prefix}-{name}-admin",
        )
        await consumer.start()
        try:
            await admin.start()
        except BaseException:
            await consumer.stop()
            raise
        return cls(consumer, admin)

    async def stop(self) -> None:
        try:
            await self._admin.close()
        finally:
            await self._consumer.stop()

    async def ready(self) -> bool:
        """True when the cluster answers a metadata request within 2 s."""
        try:
            async with asyncio.timeout(_READY_TIMEOUT_S):
                await self._consumer.topics()
        except (TimeoutError, KafkaError, OSError):
            return False
        return True

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        """Every partition of ``topics`` (a topic Kafka does not know has none)."""
        tps: list[TopicPartition] = []
        for described in await self._admin.describe_topics(sorted(set(topics))):
            if described["error_code"] == 0:
                name = described["topic"]
                tps.extend(TopicPartition(name, p["partition"]) for p in described["partitions"])
        return tps

    async def spans(
        self, tps: Sequence[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """The log start and end offset of each partition."""
        if not tps:
            return {}, {}
        starts = await self._consumer.beginning_offsets(list(tps))
        ends = await self._consumer.end_offsets(list(tps))
        return dict(starts), dict(ends)

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        """The offsets ``group`` committed in Kafka (its next offsets)."""
        found = await self._admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}

    async def group_lag(self, group: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
        """The lag of a group that commits its offsets in Kafka, on ``topics``."""
        starts, ends = await self.spans(await self.partitions(topics))
        return lag_of(starts, ends, await self.committed(group))
