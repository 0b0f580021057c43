"""Exactly-once effects from Kafka into PostgreSQL: effects and offsets in one transaction.

``ExactlyOnceConsumer`` never commits offsets to Kafka. For each batch it opens one PostgreSQL
transaction, locks the stored offset row of every partition in the batch, drops records below
the stored offset (already applied, e.g. by a previous life of this process or a zombie
consumer), applies the rest through the injected ``apply`` function, and stores the next offset.
On start and after every rebalance it seeks each assigned partition to its stored offset. A
process killed at any instant therefore resumes exactly where its last committed transaction
ended: nothing is lost and nothing is applied twice.

A batch that fails with a retriable error (PostgreSQL or Kafka unreachable, a serialization
failure, a ``PipelineError`` marked retriable) rolled back as a whole: ``run`` waits with a bounded
exponential backoff, seeks every assigned partition back to its stored offset and goes on; the
batch is fetched and applied again. Any other error ends ``run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from asyncpg.pool import PoolConnectionProxy

from infra.errors import PipelineError

__all__ = ["ApplyBatch", "ExactlyOnceConsumer", "is_retriable", "load_offsets"]

_MAX_BACKOFF_S = 30.0

logger = logging.getLogger(__name__)

Connection = asyncpg.Connection | PoolConnectionProxy
ApplyBatch = Callable[[Connection, Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[None]]


async def load_offsets(connection: Connection, group: str, topic: str) -> dict[int, int]:
    """The stored next offset of every partition of ``topic`` for ``group``."""
    rows = await connection.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
        group,
        topic,
    )
    return {row["partition"]: row["next_offset"] for row in rows}


def is_retriable(exc: BaseException) -> bool:
    """True when applying the batch again later can succeed (the service was away, not the data wrong)."""
    if isinstance(exc, PipelineError | KafkaError):
        return bool(exc.retriable)
    return isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.TransactionRollbackError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.OperatorInterventionError
        | OSError
        | TimeoutError,
    )


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc] # aiokafka is untyped
    def __init__(self, owner: ExactlyOnceConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to flush: every applied batch already stored its offsets."""

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._owner.rewind(assigned)


class ExactlyOnceConsumer:
    """Consume ``topics`` in ``group`` and apply each batch exactly once to PostgreSQL."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        group: str,
        topics: Sequence[str],
        apply: ApplyBatch,
        *,
        max_records: int = 500,
        poll_timeout_ms: int = 500,
        retry_backoff_s: float = 1.0,
    ) -> None:
        self._consumer = consumer
        self._pool = pool
        self._group = group
        self._topics = tuple(topics)
        self._apply = apply
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._retry_backoff_s = retry_backoff_s
        self.applied = 0
        self.retries = 0

    async def seek_to_stored(self, partitions: Sequence[TopicPartition]) -> None:
        """Seek each partition to its stored next offset, or to the beginning when none is stored."""
        async with self._pool.acquire() as connection:
            stored = {topic: await load_offsets(connection, self._group, topic) for topic in self._topics}
        for tp in partitions:
            offset = stored.get(tp.topic, {}).get(tp.partition)
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
        logger.info("assigned %s partition(s) of %s, seeked to stored offsets", len(partitions), self._topics)

    async def run(self, stop: asyncio.Event) -> None:
        """Subscribe and apply batches until ``stop`` is set. The consumer must be started."""
        self._consumer.subscribe(self._topics, listener=_SeekToStored(self))
        backoff = self._retry_backoff_s
        while not stop.is_set():
            batch = await self._consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._max_records
            )
            if not batch:
                continue
            try:
                await self.apply_batch(batch)
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                self.retries += 1
                logger.warning(
                    "batch of %s failed (%s), retrying from the stored offsets in %.1f s",
                    self._topics,
                    type(exc).__name__,
                    backoff,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                await self.rewind(list(self._consumer.assignment()))
            else:
                backoff = self._retry_backoff_s

    async def rewind(self, assigned: Sequence[TopicPartition]) -> None:
        """Seek ``assigned`` to the stored offsets; to the beginning when PostgreSQL cannot say them."""
        try:
            await self.seek_to_stored(assigned)
        except Exception as exc:
            if not is_retriable(exc):
                raise
            # without the stored offsets, restart the partitions from the beginning: records below
            # the stored offset are dropped inside the next transaction, so this costs reads only
            logger.warning("stored offsets unavailable (%s): rewinding to the beginning", type(exc).__name__)
            for tp in assigned:
                await self._consumer.seek_to_beginning(tp)

    async def apply_batch(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Apply one fetched batch and store its offsets, in one transaction."""
        async with self._pool.acquire() as connection, connection.transaction():
            fresh: list[ConsumerRecord[bytes, bytes]] = []
            for tp, records in sorted(batch.items(), key=lambda item: (item[0].topic, item[0].partition)):
                stored = await connection.fetchval(
                    "SELECT next_offset FROM consumer_offsets"
                    " WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
                    self._group,
                    tp.topic,
                    tp.partition,
                )
                start = stored if stored is not None else 0
                new = [record for record in records if record.offset >= start]
                if not new:
                    continue
                fresh.extend(new)
                await connection.execute(
                    "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)"
                    " VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (consumer_group, topic, partition)"
                    " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                    self._group,
                    tp.topic,
                    tp.partition,
                    new[-1].offset + 1,
                )
            if fresh:
                await self._apply(connection, fresh)
        self.applied += len(fresh)
