"""Reading a topic from its start up to end offsets captured beforehand, outside any consumer group.

:func:`spans` captures, now, the first and end offset of every partition of a topic; :func:`read_spans`
yields its records in batches, in offset order per partition, up to those ends (records appended
later are not read), and fails with :class:`ReadStalled` when the broker went away meanwhile. The
dry-run diff reads the document log and a records generation this way, and ``--since`` copies a
generation with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra.errors import PipelineError
from infra.kafka import make_consumer
from infra.log_bounds import log_bounds
from infra.settings import KafkaSettings

__all__ = ["ReadStalled", "Span", "read_spans", "spans", "total"]


class ReadStalled(PipelineError):
    """No record arrived for too long although some were still due."""


@dataclass(frozen=True)
class Span:
    """The offsets of one partition to read: from ``first`` up to ``end`` (excluded)."""

    partition: int
    first: int
    end: int


def total(of: Sequence[Span]) -> int:
    """The offsets to read (records, less the gaps of a compacted topic)."""
    return sum(span.end - span.first for span in of)


async def spans(settings: KafkaSettings, topic: str) -> list[Span]:
    """The first and end offsets, now, of every partition of ``topic``."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id_prefix}-renormalize-admin",
    )
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0 or not described["partitions"]:
        raise PipelineError(f"topic {topic} cannot be read (Kafka error {described['error_code']})")
    tps = [
        TopicPartition(topic, p["partition"])
        for p in sorted(described["partitions"], key=lambda p: p["partition"])
    ]
    firsts, ends = await log_bounds(settings, "renormalize-offsets", tps)
    return [Span(tp.partition, firsts[tp], ends[tp]) for tp in tps]


async def read_spans(
    settings: KafkaSettings,
    topic: str,
    of: Sequence[Span],
    *,
    idle_s: float = 5.0,
    stall_s: float = 30.0,
    batch: int = 2000,
) -> AsyncGenerator[list[ConsumerRecord[bytes, bytes]], None]:
    """The records of ``of`` in batches, in offset order per partition.

    When nothing arrives for ``idle_s`` seconds while offsets are due, the broker is asked for the end
    offsets: if it answers (within ``stall_s``), the missing offsets were cleaned by compaction and the
    read is over; if not, ReadStalled.
    """
    due: Mapping[TopicPartition, int] = {
        TopicPartition(topic, span.partition): span.end for span in of if span.end > span.first
    }
    if not due:
        return
    consumer = make_consumer(settings, "renormalize-reader", None, max_poll_records=batch)
    await consumer.start()
    try:
        consumer.assign(list(due))
        for span in of:
            if span.end > span.first:
                consumer.seek(TopicPartition(topic, span.partition), span.first)
        remaining = dict(due)
        last = time.monotonic()
        while remaining:
            got = await consumer.getmany(*remaining, timeout_ms=500)
            records = [
                record
                for tp, items in got.items()
                for record in items
                if tp in remaining and record.offset < remaining[tp]
            ]
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
                    consumer.pause(tp)
            if records:
                last = time.monotonic()
                yield records
            elif remaining and time.monotonic() - last > idle_s:
                # offsets are due but nothing comes: either the compacted tail of a partition (its last
                # records were cleaned away: nothing is left to read) or a broker gone; it tells which
                try:
                    await asyncio.wait_for(consumer.end_offsets(list(remaining)), stall_s)
                except (KafkaError, TimeoutError) as exc:
                    raise ReadStalled(f"{topic} cannot be read (Kafka unreachable?)") from exc
                remaining.clear()
    finally:
        await consumer.stop()
