"""The ``consumer_offsets`` table (its owner): where ``infra.exactly_once`` stores each group's next offsets.

A consumer group's position on a topic lives in PostgreSQL, next to the effects it covers, so both
commit in one transaction. ``claim_offsets`` locks and advances the rows of one batch and returns its
records not applied yet; ``load_offsets`` and ``forget_offsets`` read and reset a group's position
(the projections' switch, rebuild and status read them through here).
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Batch", "Connection", "claim_offsets", "forget_offsets", "load_offsets"]

Connection = asyncpg.Connection | PoolConnectionProxy
Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


def _columns(partitions: Iterable[TopicPartition]) -> tuple[list[str], list[int]]:
    topics: list[str] = []
    numbers: list[int] = []
    for tp in partitions:
        topics.append(tp.topic)
        numbers.append(tp.partition)
    return topics, numbers


_LOCK_OFFSETS = """
SELECT o.topic, o.partition, o.next_offset
FROM consumer_offsets o JOIN unnest($2::text[], $3::int[]) AS k(topic, partition)
    ON o.topic = k.topic AND o.partition = k.partition
WHERE o.consumer_group = $1
ORDER BY o.topic, o.partition
FOR UPDATE OF o
"""
_STORE_OFFSETS = """
INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
SELECT $1, k.topic, k.partition, k.next_offset
FROM unnest($2::text[], $3::int[], $4::bigint[]) AS k(topic, partition, next_offset)
ON CONFLICT (consumer_group, topic, partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
"""


async def load_offsets(connection: Connection, group: str, topic: str) -> dict[int, int]:
    """The stored next offset of every partition of ``topic`` for ``group``."""
    rows = await connection.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
        group,
        topic,
    )
    return {row["partition"]: row["next_offset"] for row in rows}


async def forget_offsets(connection: Connection, group: str) -> None:
    """Delete every stored offset of ``group``: its consumers start again from the log start."""
    await connection.execute("DELETE FROM consumer_offsets WHERE consumer_group = $1", group)


async def claim_offsets(
    connection: Connection, batch: Batch, group: str
) -> list[ConsumerRecord[bytes, bytes]]:
    """Lock the offsets of the batch's partitions, store the new ones; the records not yet applied.

    Two statements whatever the number of partitions: the stored rows are locked in
    (topic, partition) order, as every consumer of the group locks them, so two never deadlock.
    """
    parts = sorted(batch.items(), key=lambda item: (item[0].topic, item[0].partition))
    topics, numbers = _columns(tp for tp, _ in parts)
    rows = await connection.fetch(_LOCK_OFFSETS, group, topics, numbers)
    stored = {(row["topic"], row["partition"]): row["next_offset"] for row in rows}
    fresh: list[ConsumerRecord[bytes, bytes]] = []
    claimed: list[TopicPartition] = []
    next_offsets: list[int] = []
    for tp, records in parts:
        start = stored.get((tp.topic, tp.partition), 0)
        new = [record for record in records if record.offset >= start]
        if new:
            fresh.extend(new)
            claimed.append(tp)
            next_offsets.append(new[-1].offset + 1)
    if claimed:
        await connection.execute(_STORE_OFFSETS, group, *_columns(claimed), next_offsets)
    return fresh
