"""Exactly-once effects from Kafka into PostgreSQL: effects and offsets in one transaction.

``ExactlyOnceConsumer`` never commits offsets to Kafka. For each batch it opens one PostgreSQL
transaction, locks the stored offset row of every partition in the batch, drops records below
the stored offset (already applied, e.g. by a previous life of this process or a zombie
consumer), applies the rest through the injected ``apply`` function, and stores the next offset.
On start and after every rebalance it seeks each assigned partition to its stored offset. A
process killed at any instant therefore resumes exactly where its last committed transaction
ended: nothing is lost and nothing is applied twice. The offsets table and its SQL are
``infra.consumer_offsets``.

Where a batch goes can change while the consumer runs: an optional ``router`` resolves, inside
each batch transaction, the :class:`Route` (the offsets' group key and the one topic to consume;
``projections.runner`` routes to the served read-model version). When the route differs from the
one the consumer follows, the batch is not applied: the consumer subscribes to the route's topic
(or, for the same topic, seeks to the route's stored offsets) and goes on, so a switch of versions
neither skips nor repeats a record.

A batch that fails with a retriable error (PostgreSQL or Kafka unreachable, a serialization
failure, a ``PipelineError`` marked retriable) rolled back as a whole: ``run`` waits with a bounded
exponential backoff, seeks every assigned partition back to its stored offset and goes on; the
batch is fetched and applied again. Any other error ends ``run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar, Unpack

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from infra.consumer_offsets import Batch, Connection, claim_offsets, forget_offsets, load_offsets
from infra.errors import PipelineError

__all__ = [
    "ApplyBatch",
    "Batch",
    "Connection",
    "ExactlyOnceConsumer",
    "PipelinedConsumer",
    "Route",
    "Router",
    "forget_offsets",
    "is_retriable",
    "load_offsets",
    "records_of",
]

_MAX_BACKOFF_S = 30.0

logger = logging.getLogger(__name__)

ApplyBatch = Callable[[Connection, Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True)
class Route:
    """Where a batch goes: the group its offsets are stored under, and the topic to consume."""

    group: str
    topic: str


Router = Callable[[Connection], Awaitable[Route]]
"""Resolves the route inside a batch's transaction (and may prepare that transaction, e.g. its
``search_path``)."""


class _Rerouted(Exception):
    """The route changed: the batch was not applied, the consumer must follow the new route."""

    def __init__(self, route: Route) -> None:
        super().__init__(f"rerouted to {route.topic} ({route.group})")
        self.route = route


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
        router: Router | None = None,
    ) -> None:
        self._consumer = consumer
        self._pool = pool
        self._group = group
        self._topics = tuple(topics)
        self._router = router
        self._apply = apply
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._retry_backoff_s = retry_backoff_s
        self.applied = 0
        self.retries = 0

    @property
    def group(self) -> str:
        """The group the offsets are stored under (the route's, once routed)."""
        return self._group

    async def _route(self, connection: Connection) -> str:
        """The offsets' group for this transaction; raises _Rerouted when the route moved."""
        if self._router is None:
            return self._group
        route = await self._router(connection)
        if route.group != self._group or (route.topic,) != self._topics:
            raise _Rerouted(route)
        return route.group

    async def _follow(self, route: Route) -> None:
        """Follow a new route: subscribe to its topic, or seek to its stored offsets on the same topic."""
        logger.info(
            "following %s (offsets %s) instead of %s (%s)",
            route.topic,
            route.group,
            self._topics,
            self._group,
        )
        same_topic = (route.topic,) == self._topics
        self._group, self._topics = route.group, (route.topic,)
        if same_topic:
            await self.rewind(list(self._consumer.assignment()))
        else:
            self._consumer.unsubscribe()
            self._consumer.subscribe(self._topics, listener=_SeekToStored(self))

    async def _recheck(self) -> None:
        """When no batch came: follow the route if it moved (a switch to a version of another topic
        would otherwise wait for a record on the old one)."""
        if self._router is None:
            return
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                route = await self._router(connection)
        except Exception as exc:
            if not is_retriable(exc):
                raise
            return  # PostgreSQL away: the next batch (or the next idle poll) asks again
        if route.group != self._group or (route.topic,) != self._topics:
            await self._follow(route)

    async def _subscribe(self) -> None:
        if self._router is not None:  # start on the route as it is now
            async with self._pool.acquire() as connection, connection.transaction():
                route = await self._router(connection)
            self._group, self._topics = route.group, (route.topic,)
        self._consumer.subscribe(self._topics, listener=_SeekToStored(self))

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
        await self._subscribe()
        backoff = self._retry_backoff_s
        while not stop.is_set():
            batch = await self._consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._max_records
            )
            if not batch:
                await self._recheck()
                continue
            try:
                await self.apply_batch(batch)
            except _Rerouted as moved:
                await self._follow(moved.route)
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                backoff = await self._retry(exc, stop, backoff)
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

    async def apply_batch(self, batch: Batch) -> None:
        """Apply one fetched batch and store its offsets, in one transaction."""
        async with self._pool.acquire() as connection, connection.transaction():
            fresh = await claim_offsets(connection, batch, await self._route(connection))
            if fresh:
                await self._apply(connection, fresh)
        self.applied += len(fresh)

    async def _retry(self, exc: Exception, stop: asyncio.Event, backoff: float) -> float:
        """After a retriable failure: wait, rewind to the stored offsets; returns the next backoff."""
        self.retries += 1
        logger.warning(
            "batch of %s failed (%s), retrying from the stored offsets in %.1f s",
            self._topics,
            type(exc).__name__,
            backoff,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        await self.rewind(list(self._consumer.assignment()))
        return min(backoff * 2, _MAX_BACKOFF_S)


def records_of(batch: Batch) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of a batch in the order they are applied (by topic and partition, then offset)."""
    return [
        record
        for _, records in sorted(batch.items(), key=lambda item: (item[0].topic, item[0].partition))
        for record in records
    ]


class _Options(TypedDict, total=False):
    """The keyword options of :class:`ExactlyOnceConsumer`, passed on as they are."""

    max_records: int
    poll_timeout_ms: int
    retry_backoff_s: float
    router: Router | None


class PipelinedConsumer(ExactlyOnceConsumer, Generic[T]):
    """An ``ExactlyOnceConsumer`` that prepares the next batch while the current one is applied.

    ``prepare`` (e.g. decoding) runs outside any transaction, on every record of a batch, as soon as
    the batch is fetched, so that its CPU work overlaps PostgreSQL's work on the previous batch;
    it must yield to the event loop now and then. ``apply`` then gets, inside the transaction that
    stores the offsets, the records not applied yet and what ``prepare`` made of the whole batch.
    Batches are still applied one after the other, in order; a failed batch discards the batch
    prepared after it (it is fetched again after the rewind).
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        group: str,
        topics: Sequence[str],
        prepare: Callable[[Sequence[ConsumerRecord[bytes, bytes]]], Coroutine[Any, Any, T]],
        apply: Callable[[Connection, Sequence[ConsumerRecord[bytes, bytes]], T], Awaitable[None]],
        **options: Unpack[_Options],
    ) -> None:
        super().__init__(consumer, pool, group, topics, self._unprepared, **options)
        self._prepare = prepare
        self._apply_prepared = apply

    async def _unprepared(
        self, connection: Connection, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> None:
        await self._apply_prepared(connection, records, await self._prepare(records))

    async def _fetch(self) -> tuple[Batch, asyncio.Task[T]] | None:
        batch = await self._consumer.getmany(timeout_ms=self._poll_timeout_ms, max_records=self._max_records)
        if not batch:
            return None
        return batch, asyncio.create_task(self._prepare(records_of(batch)))

    async def _apply_with(self, batch: Batch, preparing: asyncio.Task[T]) -> None:
        prepared = await preparing
        async with self._pool.acquire() as connection, connection.transaction():
            fresh = await claim_offsets(connection, batch, await self._route(connection))
            if fresh:
                await self._apply_prepared(connection, fresh, prepared)
        self.applied += len(fresh)

    async def run(self, stop: asyncio.Event) -> None:
        """Subscribe and apply batches until ``stop`` is set, preparing each next batch meanwhile."""
        await self._subscribe()
        backoff = self._retry_backoff_s
        upcoming: tuple[Batch, asyncio.Task[T]] | None = None
        try:
            while not stop.is_set():
                current = upcoming or await self._fetch()
                upcoming = None
                if current is None:
                    await self._recheck()
                    continue
                applying = asyncio.create_task(self._apply_with(*current))
                try:
                    upcoming = await self._fetch()  # fetched and prepared while ``current`` is applied
                except BaseException:
                    await asyncio.wait([applying])  # its transaction commits or rolls back first
                    if not applying.cancelled():
                        applying.exception()  # retrieved: the fetch's error is the one that propagates
                    raise
                try:
                    await applying
                except _Rerouted as moved:
                    if upcoming is not None:  # fetched on the old route: fetched again on the new one
                        upcoming[1].cancel()
                        upcoming = None
                    await self._follow(moved.route)
                except Exception as exc:
                    if upcoming is not None:
                        upcoming[1].cancel()
                        upcoming = None
                    if not is_retriable(exc):
                        raise
                    backoff = await self._retry(exc, stop, backoff)
                else:
                    backoff = self._retry_backoff_s
        finally:
            if upcoming is not None:
                upcoming[1].cancel()
