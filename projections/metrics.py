"""Prometheus metrics of the projection workers, served on ``PROJECTIONS_METRICS_PORT``.

The batch metrics live on this module's :data:`REGISTRY` (one per process); a worker's apply step is
wrapped by :func:`timed`, so the workers only name their projection. Labels take bounded values
(projection names, groups, topics, partitions), never a user id or health data.

:class:`ProjectionsProbe` refreshes the consumer lag on scrape, from the offsets the workers store in
PostgreSQL with their writes (``consumer_offsets``, exactly once) and the end offsets Kafka reports,
and answers ``/readyz`` (``infra.ops_server``): ready when PostgreSQL and Kafka answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence, Sized
from typing import ParamSpec, cast

import asyncpg
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Histogram

from infra.consumer_lag import KafkaOffsets, lag_gauge, lag_of, set_lag
from infra.db import pool_answers
from infra.exactly_once import Connection, load_offsets

from . import versions
from .settings import ProjectionsSettings

__all__ = [
    "BATCH_SECONDS",
    "CONSUMER_LAG",
    "RECORDS_APPLIED",
    "REGISTRY",
    "ProjectionsProbe",
    "timed",
]

P = ParamSpec("P")

REGISTRY = CollectorRegistry(auto_describe=True)

BATCH_SECONDS = Histogram(
    "projections_batch_apply_seconds",
    "Time to write one batch into the read models, inside its transaction, by projection.",
    ["projection"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
RECORDS_APPLIED = Counter(
    "projections_records_applied",
    "Records applied to the read models (rate() of it: records/s), by projection.",
    ["projection"],
    registry=REGISTRY,
)
CONSUMER_LAG = lag_gauge("projections_consumer_lag", REGISTRY, "PostgreSQL")


def timed(projection: str, apply: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
    """``apply(connection, records, ...)`` timed into :data:`BATCH_SECONDS`, its records counted."""
    seconds = BATCH_SECONDS.labels(projection)
    applied = RECORDS_APPLIED.labels(projection)

    async def timed_apply(*args: P.args, **kwargs: P.kwargs) -> None:
        started = time.perf_counter()
        await apply(*args, **kwargs)
        seconds.observe(time.perf_counter() - started)
        applied.inc(len(cast("Sized", args[1])))  # apply(connection, records, ...)

    return timed_apply


class ProjectionsProbe:
    """Refreshes the lag gauges and answers readiness for the projection workers."""

    def __init__(self, pool: asyncpg.Pool, offsets: KafkaOffsets, settings: ProjectionsSettings) -> None:
        self._pool = pool
        self._offsets = offsets
        self._settings = settings

    async def refresh(self) -> None:
        """The lag of the served read-model version's group and of the sync-activity group."""
        own = self._settings
        async with self._pool.acquire() as connection:
            served = await versions.serving(connection)
            groups = {served.group(own.group_id): [served.topic(own.records_topic)]}
            if own.activity_topics:
                groups[own.activity_group_id] = list(own.activity_topics)
            stored = {group: await _stored(connection, group, topics) for group, topics in groups.items()}
        for group, topics in groups.items():
            starts, ends = await self._offsets.spans(await self._offsets.partitions(topics))
            set_lag(CONSUMER_LAG, group, lag_of(starts, ends, stored[group]))

    async def readiness(self) -> Mapping[str, bool]:
        """``postgres`` and ``kafka``: whether each answers now."""
        postgres, kafka = await asyncio.gather(pool_answers(self._pool), self._offsets.ready())
        return {"postgres": postgres, "kafka": kafka}


async def _stored(connection: Connection, group: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    found: dict[TopicPartition, int] = {}
    for topic in topics:
        for partition, offset in (await load_offsets(connection, group, topic)).items():
            found[TopicPartition(topic, partition)] = offset
    return found
