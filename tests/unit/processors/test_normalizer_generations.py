"""The normalizer writes every records generation: one registry read per batch, all acknowledged, then
the commit; tombstones too; a retriable registry failure rewinds the batch; --since skips older documents."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import TopicPartition

from processors.generations import GenerationsUnavailable
from processors.normalizer_runner import Counts, _Runner
from schemas.serde import decode
from tests.unit.processors.test_normalize_runner import (
    DLQ,
    NOW,
    SOURCE,
    TARGET,
    FakeConsumer,
    FakeProducer,
    message,
    sleep_doc,
)


@dataclass
class Registry:
    answers: list[Sequence[str] | Exception]
    reads: int = 0
    last: Sequence[str] = ()

    async def topics(self) -> Sequence[str]:
        self.reads += 1
        answer = self.answers.pop(0) if self.answers else self.last
        if isinstance(answer, Exception):
            raise answer
        self.last = answer
        return answer


@dataclass
class Committed:
    seen: list[dict[TopicPartition, int]] = field(default_factory=list)

    def __call__(self, offsets: object) -> None:
        assert isinstance(offsets, dict)
        self.seen.append(dict(offsets))


def runner(registry: Registry | None = None, since: datetime | None = None, **kwargs: object) -> _Runner:
    return _Runner(
        target=TARGET,
        dlq=DLQ,
        normalizer_version=1,
        clock=lambda: NOW,
        generations=registry,
        since_ms=None if since is None else int(since.timestamp() * 1000),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_each_record_and_tombstone_goes_to_every_generation_read_once_per_batch() -> None:
    tp = TopicPartition(SOURCE, 0)
    first = {tp: [message(0, sleep_doc("a")), message(1, None, key=b"u:sleep:gone"), message(2, b"junk")]}
    second = {tp: [message(3, sleep_doc("b"))]}
    stop = asyncio.Event()
    consumer = FakeConsumer(iter([first, second]), stop)
    producer = FakeProducer(failures=[])
    # generation 2 registered between the two batches; the target named again is not written twice
    registry = Registry([["t.g2"], ["t.g2", "t.g3", TARGET]])
    counts, committed = Counts(), Committed()
    await asyncio.wait_for(
        runner(registry, counts=counts, on_commit=committed).loop(consumer, producer, stop), 10
    )
    assert registry.reads == 2
    sent = [(topic, key, value) for topic, key, value in producer.sent]
    first_batch = [(t, k) for t, k, _ in sent[:5]]
    assert sorted(first_batch, key=str) == sorted(
        [
            (TARGET, b"user-482913:sleep:3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13"),
            ("t.g2", b"user-482913:sleep:3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13"),
            (TARGET, b"u:sleep:gone"),
            ("t.g2", b"u:sleep:gone"),
            (DLQ, b"u:sleep:x"),
        ],
        key=str,
    )
    assert [t for t, _, _ in sent[5:]] == [TARGET, "t.g2", "t.g3"]
    # the same sealed-or-plain bytes on every generation
    values = {t: v for t, _, v in sent[5:]}
    assert (
        values[TARGET] == values["t.g2"] == values["t.g3"]
        and decode(values[TARGET] or b"").causation_id == "b"
    )
    assert consumer.commits == [{tp: 3}, {tp: 4}] and committed.seen == consumer.commits
    assert (counts.documents, counts.records, counts.dead_lettered) == (4, 3, 1)


async def test_a_registry_that_does_not_answer_rewinds_the_batch_and_commits_nothing() -> None:
    tp = TopicPartition(SOURCE, 0)
    batch = {tp: [message(5, sleep_doc("a"))]}
    stop = asyncio.Event()
    consumer = FakeConsumer(iter([batch, batch]), stop)
    producer = FakeProducer(failures=[])
    registry = Registry([GenerationsUnavailable("PostgreSQL away"), ["t.g2"]])
    await asyncio.wait_for(runner(registry).loop(consumer, producer, stop), 10)
    assert consumer.seeks == [(tp, 5)] and consumer.commits == [{tp: 6}]
    assert [t for t, _, _ in producer.sent] == [TARGET, "t.g2"]


async def test_since_skips_documents_stored_before_it_and_commits_them() -> None:
    tp = TopicPartition(SOURCE, 1)
    old, new = message(0, sleep_doc("old")), message(1, sleep_doc("new"))
    old.timestamp = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    new.timestamp = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)
    stop = asyncio.Event()
    consumer = FakeConsumer(iter([{tp: [old, new]}]), stop)
    producer = FakeProducer(failures=[])
    counts = Counts()
    since = datetime(2025, 2, 1, tzinfo=UTC)
    await asyncio.wait_for(runner(since=since, counts=counts).loop(consumer, producer, stop), 10)
    assert [decode(v or b"").causation_id for _, _, v in producer.sent] == ["new"]
    assert consumer.commits == [{tp: 2}] and (counts.skipped, counts.records, counts.documents) == (1, 1, 2)
