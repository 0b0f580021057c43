"""Gathering what ``wear status`` shows, from Kafka (admin API, end offsets) and PostgreSQL (read only).

The pipeline's consumer groups come from the settings every stage reads (``FETCHER_*``,
``PROCESSORS_*``, ``PROJECTIONS_*``) and from the registries in PostgreSQL: the read-model versions
(``projections.versions``: each one not retired has its offsets in ``consumer_offsets``) and the records
generations being filled (``processors.generations``: the renormalizer commits to Kafka in
``<normalizer group>-g<N>``). Offsets stored in PostgreSQL are read with the owner's
``infra.exactly_once.load_offsets``; the quota with the policy of ``processors.quota``.

The few tables without an owner function to read them (quota grants, connections, pull jobs) are
read here with plain ``SELECT`` s: this module never writes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra import connections
from infra.db import create_pool
from infra.exactly_once import Connection, load_offsets
from infra.kafka import make_consumer
from infra.settings import KafkaSettings, PostgresSettings, SettingsBundle
from processors import generations
from processors.quota import QuotaPolicy
from processors.settings import FetcherSettings, ProcessorsSettings
from projections import versions
from projections.commands import Failed
from projections.settings import ProjectionsSettings
from projections.topic_offsets import active_members
from schemas.topics import DLQ_SUFFIX
from wear.common import fail
from wear.status_model import (
    Backfill,
    DlqCount,
    GroupLag,
    Kind,
    Quota,
    Reauth,
    Rebuild,
    Status,
    partition_lag,
    quota_windows,
    sorted_groups,
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


@dataclass(frozen=True)
class StatusSettings(SettingsBundle):
    """The settings of every stage whose groups, topics and quota ``wear status`` shows."""

    kafka: KafkaSettings
    postgres: PostgresSettings
    fetcher: FetcherSettings
    processors: ProcessorsSettings
    projections: ProjectionsSettings


@dataclass(frozen=True)
class _Wanted:
    """A consumer group to report: its stage, where its offsets live, the topics it reads."""

    stage: str
    group: str
    kind: Kind
    topics: tuple[str, ...]
    kafka_group: str  # the Kafka consumer group whose members say whether it runs


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
        self._consumer = consumer
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

    async def _bounds(self, tps: Sequence[TopicPartition]) -> tuple[dict[TopicPartition, int], ...]:
        if not tps:
            return {}, {}
        starts = await self._consumer.beginning_offsets(list(tps))
        ends = await self._consumer.end_offsets(list(tps))
        return starts, ends

    async def _members(self, groups: Iterable[str]) -> dict[str, int]:
        try:
            return await _retrying(lambda: active_members(self._admin, sorted(set(groups))))
        except Failed as exc:
            fail(str(exc))

    async def _committed(self, group: str) -> dict[TopicPartition, int]:
        offsets = await _retrying(lambda: self._admin.list_consumer_group_offsets(group))
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    # --- PostgreSQL -----------------------------------------------------------------------------

    async def _wanted(self, connection: Connection) -> tuple[list[_Wanted], list[Rebuild]]:
        """The groups to report, and the version/generation rows in progress (totals filled later)."""
        s = self.settings
        own = s.projections
        wanted = [
            _Wanted(
                "fetcher",
                s.fetcher.group_id,
                "kafka",
                (s.fetcher.webhooks_topic, s.fetcher.connections_topic),
                s.fetcher.group_id,
            ),
            _Wanted(
                "normalizer",
                s.processors.normalizer_group_id,
                "kafka",
                (s.fetcher.documents_topic,),
                s.processors.normalizer_group_id,
            ),
        ]
        rebuilds: list[Rebuild] = []
        for version in await versions.all_versions(connection):
            if version.state == "retired":
                continue
            serving = version.state == "serving"
            wanted.append(
                _Wanted(
                    f"projection v{version.number} ({version.state})",
                    version.group(own.group_id),
                    "postgres",
                    (version.topic(own.records_topic),),
                    own.group_id if serving else f"{own.group_id}-rebuild",
                )
            )
            if version.state == "building":
                rebuilds.append(
                    Rebuild(
                        "read-model version",
                        version.number,
                        version.state,
                        version.topic(own.records_topic),
                        0,
                        0,
                        version.created_at,
                    )
                )
        if own.activity_topics:
            wanted.append(
                _Wanted(
                    "sync activity",
                    own.activity_group_id,
                    "postgres",
                    tuple(own.activity_topics),
                    own.activity_group_id,
                )
            )
        for generation in await generations.all_generations(connection):
            if generation.state != "filling":
                continue
            group = f"{s.processors.normalizer_group_id}-g{generation.number}"
            source = generation.documents_topic or s.fetcher.documents_topic
            wanted.append(_Wanted(f"renormalizer g{generation.number}", group, "kafka", (source,), group))
            rebuilds.append(
                Rebuild(
                    "records generation",
                    generation.number,
                    generation.state,
                    generation.topic_or(s.processors.records_topic),
                    0,
                    0,
                    generation.created_at,
                )
            )
        return wanted, rebuilds

    async def _quota(self, connection: Connection, now: datetime) -> Quota:
        f = self.settings.fetcher
        policy = QuotaPolicy(
            per_minute=f.quota_per_minute,
            per_day=f.quota_per_day,
            margin_s=f.quota_window_margin_s,
            reserve_refetch=f.quota_reserve_refetch,
            reserve_reconcile=f.quota_reserve_reconcile,
            reserve_backfill=f.quota_reserve_backfill,
        )
        minute_since = now - timedelta(seconds=60 + policy.margin_s)
        day_since = now - timedelta(seconds=86_400 + policy.margin_s)
        rows = await connection.fetch(
            "SELECT priority, count(*) FILTER (WHERE granted_at > $2) AS minute, count(*) AS day "
            "FROM fetcher_quota_grants WHERE bucket = $1 AND granted_at > $3 GROUP BY priority",
            f.quota_bucket,
            minute_since,
            day_since,
        )
        used = {
            "minute": {row["priority"]: row["minute"] for row in rows},
            "day": {row["priority"]: row["day"] for row in rows},
        }
        paused = await connection.fetchval(
            "SELECT paused_until FROM fetcher_quota WHERE bucket = $1", f.quota_bucket
        )
        return Quota(f.quota_bucket, quota_windows(policy, used), paused if paused and paused > now else None)

    async def _reauth(self, connection: Connection) -> tuple[list[Reauth], int]:
        total = await connections.count_needs_reauth(connection)
        rows = await connections.needs_reauth(connection, REAUTH_SHOWN)
        return [Reauth(r["user_id"], r["whoop_user_id"], r["updated_at"]) for r in rows], total

    async def _backfills(self, connection: Connection) -> list[Backfill]:
        rows = await connection.fetch(
            """
            SELECT j.job_id, j.user_id, j.status, j.resource_types, j.created_at,
                   count(p.resource_type) FILTER (WHERE p.status = 'done') AS types_done,
                   coalesce(sum(p.pages), 0) AS pages, coalesce(sum(p.records), 0) AS records
            FROM pull_jobs j LEFT JOIN fetcher_backfill_progress p ON p.job_id = j.job_id
            WHERE j.status IN ('requested', 'running')
            GROUP BY j.job_id ORDER BY j.created_at, j.job_id
            """
        )
        return [
            Backfill(
                r["job_id"],
                r["user_id"],
                r["status"],
                tuple(r["resource_types"]),
                int(r["types_done"]),
                int(r["pages"]),
                int(r["records"]),
                r["created_at"],
            )
            for r in rows
        ]

    # --- everything -----------------------------------------------------------------------------

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
        s = self.settings
        main_topics = {
            s.fetcher.webhooks_topic,
            s.fetcher.connections_topic,
            s.fetcher.documents_topic,
            s.processors.records_topic,
            s.projections.records_topic,
            *(topic for want in wanted for topic in want.topics),
            *(rebuild.topic for rebuild in rebuilds),
        }
        dlq_topics = sorted(topic + DLQ_SUFFIX for topic in main_topics if not topic.endswith(DLQ_SUFFIX))
        tps, missing = await self._partitions([*main_topics, *dlq_topics])
        starts, ends = await self._bounds(tps)
        members = await self._members(want.kafka_group for want in wanted)
        groups: list[GroupLag] = []
        for want in wanted:
            if want.kind == "kafka":
                committed = await self._committed(want.group)
                position = {(tp.topic, tp.partition): offset for tp, offset in committed.items()}
            else:
                position = {
                    (topic, partition): offset
                    for topic in want.topics
                    for partition, offset in stored[(want.group, topic)].items()
                }
            partitions = tuple(
                partition_lag(
                    tp.topic, tp.partition, position.get((tp.topic, tp.partition)), starts[tp], ends[tp]
                )
                for tp in tps
                if tp.topic in want.topics
            )
            groups.append(
                GroupLag(
                    want.stage,
                    want.group,
                    want.kind,
                    members.get(want.kafka_group, 0),
                    partitions,
                    tuple(sorted(set(want.topics) & missing)),
                )
            )
        dlqs = tuple(
            DlqCount(
                topic,
                None if topic in missing else sum(ends[tp] - starts[tp] for tp in tps if tp.topic == topic),
            )
            for topic in dlq_topics
        )
        filled = []
        for rebuild in rebuilds:
            behind = next(
                (
                    g
                    for g in groups
                    if (
                        rebuild.kind == "read-model version"
                        and g.stage.startswith(f"projection v{rebuild.number} ")
                    )
                    or (rebuild.kind == "records generation" and g.stage == f"renormalizer g{rebuild.number}")
                ),
                None,
            )
            total = done = 0
            if behind is not None:
                total = sum(p.end - starts[TopicPartition(p.topic, p.partition)] for p in behind.partitions)
                done = total - behind.lag
            filled.append(
                Rebuild(
                    rebuild.kind,
                    rebuild.number,
                    rebuild.state,
                    rebuild.topic,
                    done,
                    total,
                    rebuild.created_at,
                )
            )
        return Status(
            taken_at=now,
            groups=sorted_groups(groups),
            dlqs=dlqs,
            quota=quota,
            reauth=tuple(reauth),
            reauth_total=reauth_total,
            backfills=tuple(backfills),
            rebuilds=tuple(filled),
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
