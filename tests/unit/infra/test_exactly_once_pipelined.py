"""PipelinedConsumer with a fake Kafka consumer and a fake PostgreSQL: overlap, order, retries, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from infra.exactly_once import PipelinedConsumer, records_of

TOPIC = "t"
TP = TopicPartition(TOPIC, 0)


def _record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", str(offset).encode(), None, 1, 1, ())


class FakeConsumer:
    """Hands out the scripted batches, then nothing; records seeks."""

    def __init__(self, batches: list[list[int] | Exception]) -> None:
        self.batches = batches
        self.seeks: list[tuple[TopicPartition, int]] = []

    def subscribe(self, topics: Sequence[str], listener: Any) -> None:
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.seeks.append((tp, 0))

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0)
        if not self.batches:
            await asyncio.sleep(0.001)
            return {}
        item = self.batches.pop(0)
        if isinstance(item, Exception):
            raise item
        return {TP: [_record(offset) for offset in item]}


@dataclass
class FakeDatabase:
    """Offsets in a dict; a transaction commits them when its block ends without an error."""

    offsets: dict[tuple[str, str, int], int] = field(default_factory=dict)
    pending: dict[tuple[str, str, int], int] = field(default_factory=dict)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeDatabase]:
        yield self

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self.pending = {}
        try:
            yield
        except BaseException:
            self.pending = {}
            raise
        self.offsets.update(self.pending)

    def _current(self, key: tuple[str, str, int]) -> int | None:
        return self.pending.get(key, self.offsets.get(key))

    async def execute(
        self, sql: str, group: str, topics: list[str], partitions: list[int], offsets: list[int]
    ) -> None:
        for topic, partition, offset in zip(topics, partitions, offsets, strict=True):
            self.pending[(group, topic, partition)] = offset

    async def fetch(self, sql: str, group: str, *where: Any) -> list[dict[str, Any]]:
        if len(where) == 2:  # the claim: the stored offsets of these partitions
            keys = [(group, t, p) for t, p in zip(*where, strict=True)]
            return [
                {"topic": t, "partition": p, "next_offset": self._current((g, t, p))}
                for g, t, p in keys
                if self._current((g, t, p)) is not None
            ]
        (topic,) = where
        return [
            {"partition": p, "next_offset": o}
            for (g, t, p), o in self.offsets.items()
            if (g, t) == (group, topic)
        ]


class Recorder:
    """prepare/apply callbacks that log what happened, in order."""

    def __init__(self, fail_apply: list[Exception | None] | None = None) -> None:
        self.events: list[str] = []
        self.applied: list[int] = []
        self.fail_apply = fail_apply or []
        self.release = asyncio.Event()

    async def prepare(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[int]:
        self.events.append(f"prepare {records[0].offset}")
        await asyncio.sleep(0)
        return [record.offset for record in records]

    async def apply(
        self, connection: Any, records: Sequence[ConsumerRecord[bytes, bytes]], prepared: list[int]
    ) -> None:
        self.events.append(f"apply {records[0].offset} start")
        await asyncio.sleep(0.01)  # the database works; the next batch gets prepared meanwhile
        failure = self.fail_apply.pop(0) if self.fail_apply else None
        if failure is not None:
            self.events.append(f"apply {records[0].offset} failed")
            raise failure
        assert [r.offset for r in records] == [o for o in prepared if o >= records[0].offset]
        self.applied.extend(record.offset for record in records)
        self.events.append(f"apply {records[0].offset} done")


def _consumer(fake: FakeConsumer, db: FakeDatabase, recorder: Recorder) -> PipelinedConsumer[list[int]]:
    pool: asyncpg.Pool = db  # type: ignore[assignment]
    return PipelinedConsumer(
        fake,
        pool,
        "g",
        [TOPIC],
        recorder.prepare,
        recorder.apply,
        poll_timeout_ms=1,
        retry_backoff_s=0.001,
    )


async def _run_until(consumer: PipelinedConsumer[list[int]], done: Any, seconds: float = 5.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        async with asyncio.timeout(seconds):
            while not done():
                if task.done():
                    task.result()
                await asyncio.sleep(0.001)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_the_next_batch_is_prepared_while_the_current_one_is_applied_and_order_holds() -> None:
    fake, db, recorder = FakeConsumer([[0, 1, 2], [3, 4], [5]]), FakeDatabase(), Recorder()
    consumer = _consumer(fake, db, recorder)
    await _run_until(consumer, lambda: len(recorder.applied) == 6)
    assert recorder.applied == [0, 1, 2, 3, 4, 5]
    assert db.offsets == {("g", TOPIC, 0): 6}
    events = recorder.events
    assert events.index("prepare 3") < events.index("apply 0 done")  # overlapped
    assert events.index("apply 0 done") < events.index("apply 3 start")  # but applied in order
    assert consumer.applied == 6


async def test_a_retriable_failure_discards_the_prepared_batch_and_rewinds() -> None:
    # [4] is fetched while [2, 3] fails: it is discarded, and Kafka delivers from 2 again after the rewind
    fake = FakeConsumer([[0, 1], [2, 3], [4], [2, 3], [4]])
    db, recorder = FakeDatabase(), Recorder(fail_apply=[None, ConnectionResetError("gone")])
    consumer = _consumer(fake, db, recorder)
    await _run_until(consumer, lambda: len(recorder.applied) == 5)
    assert recorder.applied == [0, 1, 2, 3, 4]  # nothing twice, nothing lost
    assert (TP, 2) in fake.seeks  # rewound to the stored offset after the failure
    assert consumer.retries == 1


async def test_records_already_applied_are_dropped_inside_the_transaction() -> None:
    fake, db, recorder = FakeConsumer([[0, 1, 2], [1, 2, 3]]), FakeDatabase(), Recorder()
    consumer = _consumer(fake, db, recorder)
    await _run_until(consumer, lambda: len(recorder.applied) == 4)
    assert recorder.applied == [0, 1, 2, 3]


async def test_other_failures_end_the_run() -> None:
    fake, db = FakeConsumer([[0], [1]]), FakeDatabase()
    consumer = _consumer(fake, db, Recorder(fail_apply=[ValueError("a bug")]))
    with pytest.raises(ValueError, match="a bug"):
        await consumer.run(asyncio.Event())
    assert db.offsets == {}


async def test_a_failed_fetch_lets_the_batch_in_flight_finish_first() -> None:
    fake, db, recorder = FakeConsumer([[0, 1], RuntimeError("broker")]), FakeDatabase(), Recorder()
    consumer = _consumer(fake, db, recorder)
    with pytest.raises(RuntimeError, match="broker"):
        await consumer.run(asyncio.Event())
    assert recorder.applied == [0, 1] and db.offsets == {("g", TOPIC, 0): 2}


async def test_a_batch_is_prepared_in_partition_order() -> None:
    batch = {TopicPartition("b", 1): [_record(5)], TopicPartition("a", 2): [_record(7)], TP: [_record(1)]}
    assert [record.value for record in records_of(batch)] == [b"7", b"5", b"1"]  # by topic, then partition
