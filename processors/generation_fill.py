"""Filling a records generation: the ``--since`` copy, and the renormalizer that runs beside the live one.

:func:`copy_generation` copies a generation's records as they are (key, sealed value, headers,
partition) into the new one. :func:`live_settled` waits until the live normalizer has committed past
the document offsets it may have been working on when the generation was registered, so a copy taken
after it holds every record a batch begun before the registration wrote. :class:`Renormalizer` is
``run_normalizer`` with a consumer group of its own (``<normalizer group>-g<N>``, so a second run
resumes where the first stopped), the document log as its source and the new generation as its only
target; it tracks the offsets it committed, so the caller can wait until it reached given ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime

from aiokafka import TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.member_keys import PooledKeys
from infra.settings import KafkaSettings
from processors.log_reader import Span, read_spans
from processors.normalizer_runner import Counts, run_normalizer

__all__ = ["Renormalizer", "committed_offsets", "copy_generation", "live_settled"]

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
_POLL_S = 0.2
_IDLE_S = 5.0  # no commit for this long while offsets are due: look whether anything is left to read


async def committed_offsets(
    settings: KafkaSettings, group: str, topic: str, partitions: Sequence[int]
) -> dict[int, int]:
    """The offsets ``group`` committed on ``topic`` (partitions it never committed are left out)."""
    consumer = make_consumer(settings, "renormalize-committed", group)
    await consumer.start()
    try:
        found: dict[int, int] = {}
        for partition in partitions:
            offset = await consumer.committed(TopicPartition(topic, partition))
            if offset is not None:
                found[partition] = offset
        return found
    finally:
        await consumer.stop()


async def live_settled(
    settings: KafkaSettings, group: str, topic: str, ends: Sequence[Span], *, patience_s: float = 10.0
) -> bool:
    """Wait until ``group`` committed ``ends`` of ``topic`` (True), or its commits stopped moving for
    ``patience_s`` (False: it is not running, or stuck; its next batch reads the registry anyway)."""
    due = [span for span in ends if span.end > span.first]
    last: dict[int, int] | None = None
    moved = time.monotonic()
    while True:
        now = await committed_offsets(settings, group, topic, [span.partition for span in due])
        if all(now.get(span.partition, 0) >= span.end for span in due):
            return True
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > patience_s:
            return False
        await asyncio.sleep(_POLL_S)


async def copy_generation(
    settings: KafkaSettings,
    source: str,
    target: str,
    of: Sequence[Span],
    progress: Progress,
    stop: asyncio.Event,
) -> int:
    """Copy the records of ``of`` from ``source`` to ``target`` as they are; the number copied."""
    producer = make_producer(settings, "renormalize-copy", linger_ms=5)
    await producer.start()
    copied = 0
    try:
        async with contextlib.aclosing(read_spans(settings, source, of)) as batches:
            async for batch in batches:
                futures = [
                    await producer.send(
                        target,
                        value=record.value,
                        key=record.key,
                        partition=record.partition,
                        headers=list(record.headers),
                    )
                    for record in batch
                ]
                await asyncio.gather(*futures)
                copied += len(batch)
                progress(copied)
                if stop.is_set():
                    break
    finally:
        await producer.stop()
    return copied


@dataclass(eq=False)
class Renormalizer:
    """``run_normalizer`` from the document log into one generation, in the background."""

    settings: KafkaSettings
    _: KW_ONLY
    group: str
    source: str
    target: str
    keys: PooledKeys
    normalizer_version: int
    since: datetime | None
    counts: Counts = field(default_factory=Counts, init=False)
    committed: dict[int, int] = field(default_factory=dict, init=False)
    _halt: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _last_commit: float = field(default_factory=time.monotonic, init=False)

    async def start(self, partitions: Sequence[int]) -> None:
        """Learn what this group committed before (a resumed run), then start normalizing."""
        self.committed = await committed_offsets(self.settings, self.group, self.source, partitions)
        self._task = asyncio.create_task(
            run_normalizer(
                self.settings,
                self._halt,
                group_id=self.group,
                source=self.source,
                target=self.target,
                keys=self.keys,
                normalizer_version=self.normalizer_version,
                since=self.since,
                counts=self.counts,
                on_commit=self._on_commit,
            ),
            name=f"renormalizer {self.target}",
        )

    def _on_commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            self.committed[tp.partition] = max(self.committed.get(tp.partition, 0), offset)
        self._last_commit = time.monotonic()

    def done(self, ends: Sequence[Span]) -> int:
        """The offsets of ``ends`` committed so far."""
        return sum(min(max(self.committed.get(s.partition, s.first), s.first), s.end) - s.first for s in ends)

    def reached(self, ends: Sequence[Span]) -> bool:
        return all(self.committed.get(s.partition, s.first) >= s.end for s in ends if s.end > s.first)

    async def wait_until(self, ends: Sequence[Span], progress: Progress, stop: asyncio.Event) -> bool:
        """Wait until the committed offsets reach ``ends`` (True) or ``stop`` is set (False).

        A renormalizer that ended raises what ended it. When no commit comes for a while, the offsets
        still due are read: a compacted tail (nothing left there) counts as reached.
        """
        while True:
            progress(self.done(ends))
            if self.reached(ends):
                return True
            if stop.is_set():
                return False
            if self._task is not None and self._task.done():
                self._task.result()  # raises what ended it
                raise RuntimeError("the renormalizer stopped on its own")
            if time.monotonic() - self._last_commit > _IDLE_S:
                await self._skip_compacted_tails(ends)
                self._last_commit = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _POLL_S)

    async def _skip_compacted_tails(self, ends: Sequence[Span]) -> None:
        lagging = [
            Span(s.partition, self.committed.get(s.partition, s.first), s.end)
            for s in ends
            if self.committed.get(s.partition, s.first) < s.end
        ]
        async with contextlib.aclosing(read_spans(self.settings, self.source, lagging)) as batches:
            async for _ in batches:
                return  # records are still due: the renormalizer gets to them
        for span in lagging:  # nothing left before the ends: their last records were compacted away
            self.committed[span.partition] = max(self.committed.get(span.partition, 0), span.end)

    async def stop(self) -> None:
        """Stop after the batch under way is committed."""
        self._halt.set()
        if self._task is not None:
            await self._task
