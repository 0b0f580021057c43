"""Gathering what ``wear status`` shows, from Kafka (admin API, end offsets) and PostgreSQL (read only).

The pipeline's consumer groups come from the settings every stage reads (``FETCHER_*``,
``PROCESSORS_*``, ``PROJECTIONS_*``) and from the registries in PostgreSQL: the read-model versions
(``projections.versions``: each one not retired has its offsets in ``consumer_offsets``) and the records
generations being filled (``processors.generations``: the renormalizer commits to Kafka in
``<normalizer group>-g<N>``). Which groups and topics, and how offsets add up to lags, is the pure
``wear.status_plan``. Every table is read through its owner's functions: offsets stored in PostgreSQL
with ``infra.consumer_offsets.load_offsets``, the quota with ``processors.quota.usage``, connections
with ``infra.connections``, backfills with ``infra.pull_jobs`` and ``processors.backfill``. This module
never writes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra import connections, pull_jobs
from infra.consumer_lag import KafkaOffsets
from infra.consumer_offsets import Connection, load_offsets
from infra.db import create_pool
from infra.kafka import make_consumer
from processors import generations
from processors.backfill import BackfillTotals, progress_totals
from processors.quota import quota_policy
from processors.quota import usage as quota_usage
from projections import versions
from projections.commands import Failed
from projections.topic_offsets import active_members
from wear.common import fail
from wear.status_model import Backfill, Quota, Reauth, Rebuild, Status, quota_windows, sorted_groups
from wear.status_plan import (
    StatusSettings,
    Wanted,
    dlq_counts,
    filled_rebuilds,
    group_lag,
    wanted_groups,
    watched_topics,
)

__all__ = ["StatusSettings", "StatusSources", "open_sources"]

REAUTH_SHOWN = 20
"""Connections needing re-authorization listed by name (all are counted)."""

_UNKNOWN_TOPIC = 3  # Kafka's UNKNOWN_TOPIC_OR_PARTITION
_ATTEMPTS = 5
T = TypeVar("T")


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, tried again after a retriable Kafka error (a group coordinator still loading), a
    few times within about 3 s; the last error propagates."""
    for attempt in range(_ATTEMPTS):
        try:
            return await call()
        except KafkaError as exc:
            if not exc.retriable or attempt == _ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


class StatusSources:
    """One admin client, one consumer (offsets only) and one pool, kept across ``--watch`` refreshes."""

    def __init__(
        self,
        settings: StatusSettings,
        admin: AIOKafkaAdminClient,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
    ) -> None:
        self.settings = settings
        self._admin = admin
        self._offsets = KafkaOffsets(consumer, admin)
        self._pool = pool

    # --- Kafka ----------------------------------------------------------------------------------

    async def _partitions(self, topics: Iterable[str]) -> tuple[list[TopicPartition], set[str]]:
        """The partitions of those of ``topics`` that exist, and the names of those that do not."""
        names = sorted(set(topics))
        if not names:
            return [], set()
        tps: list[TopicPartition] = []
        missing: set[str] = set()
        for described in await self._admin.describe_topics(names):
            if described["error_code"] == _UNKNOWN_TOPIC:
                missing.add(described["topic"])
            elif described["error_code"] != 0:
                fail(f"Kafka cannot describe topic {described['topic']} (error {described['error_code']})")
            else:
                tps.extend(
                    TopicPartition(described["topic"], p["partition"]) for p in described["partitions"]
                )
        return sorted(tps, key=lambda tp: (tp.topic, tp.partition)), missing

    async def _members(self, groups: Iterable[str]) -> dict[str, int]:
        try:
            return await _retrying(lambda: active_members(self._admin, sorted(set(groups))))
        except Failed as exc:
            fail(str(exc))

    async def _committed(self, group: str) -> dict[TopicPartition, int]:
        return await _retrying(lambda: self._offsets.committed(group))

    # --- PostgreSQL -----------------------------------------------------------------------------

    async def _wanted(self, connection: Connection) -> tuple[list[Wanted], list[Rebuild]]:
        """The groups to report, and the version/generation rows in progress (totals filled later)."""
        registered = await versions.all_versions(connection)
        return wanted_groups(self.settings, registered, await generations.all_generations(connection))

    async def _quota(self, connection: Connection, now: datetime) -> Quota:
        f = self.settings.fetcher
        policy = quota_policy(f)
        stored = await quota_usage(connection, f.quota_bucket, policy, now)
        paused = stored.paused_until
        return Quota(
            f.quota_bucket, quota_windows(policy, stored.used), paused if paused and paused > now else None
        )

    async def _reauth(self, connection: Connection) -> tuple[list[Reauth], int]:
        total = await connections.count_needs_reauth(connection)
        rows = await connections.needs_reauth(connection, REAUTH_SHOWN)
        return [Reauth(r["user_id"], r["whoop_user_id"], r["updated_at"]) for r in rows], total

    async def _backfills(self, connection: Connection) -> list[Backfill]:
        """The active pull jobs (``infra.pull_jobs``) with the fetcher's totals (``processors.backfill``)."""
        jobs = await pull_jobs.active_jobs(connection)
        totals = await progress_totals(connection, [job.job_id for job in jobs])
        none = BackfillTotals(0, 0, 0)
        return [
            Backfill(
                job.job_id,
                job.user_id,
                job.status,
                job.resource_types,
                totals.get(job.job_id, none).types_done,
                totals.get(job.job_id, none).pages,
                totals.get(job.job_id, none).records,
                job.created_at or datetime.min.replace(tzinfo=UTC),  # a stored job always has one
            )
            for job in jobs
        ]

    # --- everything -----------------------------------------------------------------------------

    async def _position(
        self, want: Wanted, stored: Mapping[tuple[str, str], dict[int, int]]
    ) -> dict[tuple[str, int], int]:
        """The group's next offset per (topic, partition): committed in Kafka, or stored in PostgreSQL."""
        if want.kind == "kafka":
            committed = await self._committed(want.group)
            return {(tp.topic, tp.partition): offset for tp, offset in committed.items()}
        return {
            (topic, partition): offset
            for topic in want.topics
            for partition, offset in stored[(want.group, topic)].items()
        }

    async def take(self) -> Status:
        """Everything ``wear status`` shows, now."""
        now = datetime.now(UTC)
        async with self._pool.acquire() as connection:
            wanted, rebuilds = await self._wanted(connection)
            stored = {
                (want.group, topic): await load_offsets(connection, want.group, topic)
                for want in wanted
                if want.kind == "postgres"
                for topic in want.topics
            }
            quota = await self._quota(connection, now)
            reauth, reauth_total = await self._reauth(connection)
            backfills = await self._backfills(connection)
        main_topics, dlq_topics = watched_topics(self.settings, wanted, rebuilds)
        tps, missing = await self._partitions([*main_topics, *dlq_topics])
        bounds = await self._offsets.spans(tps)
        members = await self._members(want.kafka_group for want in wanted)
        groups = [
            group_lag(want, await self._position(want, stored), tps, bounds, members, missing)
            for want in wanted
        ]
        return Status(
            taken_at=now,
            groups=sorted_groups(groups),
            dlqs=dlq_counts(dlq_topics, tps, bounds, missing),
            quota=quota,
            reauth=tuple(reauth),
            reauth_total=reauth_total,
            backfills=tuple(backfills),
            rebuilds=filled_rebuilds(rebuilds, groups, bounds[0]),
        )


@contextlib.asynccontextmanager
async def open_sources(settings: StatusSettings) -> AsyncIterator[StatusSources]:
    """The clients ``wear status`` reads with, closed on exit. PostgreSQL is opened first, unmigrated."""
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(settings.postgres, migrate=False, max_size=2)
        stack.push_async_callback(pool.close)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka.kafka_bootstrap_servers,
            client_id=f"{settings.kafka.kafka_client_id_prefix}-wear-status",
            request_timeout_ms=15_000,
        )
        await admin.start()
        stack.push_async_callback(admin.close)
        consumer = make_consumer(settings.kafka, "wear-status", None, request_timeout_ms=15_000)
        await consumer.start()
        stack.push_async_callback(consumer.stop)
        yield StatusSources(settings, admin, consumer, pool)
