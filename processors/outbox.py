"""One batch's outgoing Kafka records as record batches per (topic, partition), handed over in order.

The normalizer (``processors.normalizer_runner``) adds each record to its partition's open record
batch; partitions are the user partitioner's choice (``schemas.keys``), so one user's records keep
their order. A full record batch goes to the producer at once, from a task of its own: aiokafka's
``send_batch`` waits while the partition's previous batch is still queued (one request in flight per
broker), and that wait must not hold up the normalizing, while the broker can append what is full.
``acks`` hands over the rest and waits for every acknowledgement: the batch's offsets may be
committed after it returns, not before.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.keys import partition_for, user_of_key

__all__ = ["Outbox"]


class Outbox:
    """Record batches of one produce-then-commit step, and their acknowledgements."""

    def __init__(self, producer: AIOKafkaProducer, partitions: dict[str, int]) -> None:
        self._producer = producer
        self._partitions = partitions  # partition counts by topic, remembered across batches
        self._open: dict[tuple[str, int], Any] = {}
        self._queue: asyncio.Queue[tuple[Any, str, int] | None] = asyncio.Queue()
        self._acks: list[asyncio.Future[Any]] = []
        self._task = asyncio.create_task(self._ship())

    async def resolve(self, *topics: str) -> None:
        """Learn the partition counts of ``topics`` (before ``add``)."""
        for topic in topics:
            if topic not in self._partitions:
                self._partitions[topic] = len(await self._producer.partitions_for(topic))

    def add(
        self, topic: str, key: bytes | None, value: bytes | None, headers: tuple[tuple[str, bytes], ...]
    ) -> None:
        """Append a record to its partition's open record batch (a full one is handed over)."""
        partition = 0 if key is None else _partition(user_of_key(key), self._partitions[topic])
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[topic, partition] = self._producer.create_batch()
        listed = list(headers)
        if batch.append(key=key, value=value, timestamp=None, headers=listed) is None:
            self._queue.put_nowait((batch, topic, partition))
            batch = self._open[topic, partition] = self._producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=listed)

    async def _ship(self) -> None:
        while (item := await self._queue.get()) is not None:
            batch, topic, partition = item
            self._acks.append(await self._producer.send_batch(batch, topic, partition=partition))

    async def acks(self) -> None:
        """Hand over every open batch, wait until each is acknowledged; raise the first failure."""
        for (topic, partition), batch in self._open.items():
            self._queue.put_nowait((batch, topic, partition))
        self._open.clear()
        self._queue.put_nowait(None)
        await self._task
        for result in await asyncio.gather(*self._acks, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    async def abandon(self) -> None:
        """Hand over nothing more; wait for what was handed over (the batch is redone or the runner fails)."""
        self._task.cancel()
        await asyncio.gather(self._task, *self._acks, return_exceptions=True)


@functools.lru_cache(maxsize=65536)
def _partition(user: bytes, partitions: int) -> int:
    """The user partitioner's partition for a user (``schemas.keys``), remembered per user."""
    return partition_for(user, partitions)
