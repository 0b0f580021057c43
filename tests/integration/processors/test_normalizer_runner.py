"""The normalizer runner on a real broker: documents in, records out; poison and garbage to the DLQ.

Each test makes its own uuid topics shaped like ``whoop.documents.v1``, ``wear.records.v1`` and
``whoop.documents.v1.dlq`` (3 partitions), runs ``run_normalizer`` as a task in the test's loop and
watches the output topics until what it expects is there (with a deadline), then stops it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings
from processors.normalize import normalize_document, record_resource_id
from processors.normalizer_runner import run_normalizer
from schemas.events import DeadLetter
from schemas.identity import user_id_for_whoop_member
from schemas.keys import partition_for, record_key
from schemas.records import DocumentFetched, RecoveryRecorded, ResourceType
from schemas.serde import decode, decode_as, encode
from simulator.generator import generate_member
from tests.conftest import TopicFactory

PARTITIONS = 3
FETCHED_AT = dt.datetime(2025, 11, 20, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Sent:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


@dataclass(frozen=True)
class Topics:
    source: str
    target: str
    dlq: str


def documents(members: int, days: int) -> list[DocumentFetched]:
    """Realistic documents of several members, as the fetcher logs them (recoveries with their sleep)."""
    docs: list[DocumentFetched] = []
    for index in range(members):
        member = generate_member(5, index, days, dt.date(2025, 11, 19), current_state="PENDING_SCORE")
        sleeps = {s["id"]: s for s in member.sleeps}
        items: list[tuple[ResourceType, str, dict[str, Any], dict[str, Any]]] = [
            ("cycle", str(c["id"]), c, {}) for c in member.cycles
        ]
        items += [("sleep", s["id"], s, {}) for s in member.sleeps]
        items += [("workout", w["id"], w, {}) for w in member.workouts]
        items += [
            ("recovery", str(r["cycle_id"]), r, {"sleep": sleeps[r["sleep_id"]]}) for r in member.recoveries
        ]
        for n, (resource_type, resource_id, body, context) in enumerate(items):
            docs.append(
                DocumentFetched(
                    event_id=f"doc-{member.user_id}-{n}",
                    occurred_at=FETCHED_AT,
                    user_id=user_id_for_whoop_member(member.user_id),
                    source="fetcher",
                    whoop_user_id=member.user_id,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    fetched_at=FETCHED_AT,
                    document=body,
                    context=context,
                )
            )
    return docs


def doc_key(doc: DocumentFetched) -> bytes:
    return record_key(doc.user_id, doc.resource_type, doc.resource_id)


async def produce(
    settings: KafkaSettings, topic: str, items: Sequence[tuple[bytes | None, bytes | None]]
) -> list[Sent]:
    producer = make_producer(settings, "test-documents", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in items]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Sent(key, value, m.partition, m.offset) for (key, value), m in zip(items, metas, strict=True)]


async def read(settings: KafkaSettings, topic: str, count: int, timeout_s: float = 60.0) -> list[Any]:
    """The first ``count`` records of ``topic`` (all partitions), waiting up to ``timeout_s`` for them."""
    consumer = make_consumer(settings, "test-reader", None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count:
            assert time.monotonic() < deadline, (
                f"{len(found)} of {count} records on {topic} after {timeout_s}s"
            )
            batch = await consumer.getmany(timeout_ms=500)
            found += [record for records in batch.values() for record in records]
        return found
    finally:
        await consumer.stop()


async def end_offsets(settings: KafkaSettings, topic: str) -> dict[int, int]:
    consumer = make_consumer(settings, "test-ends", None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def committed(settings: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets (0 where it never committed: an empty partition)."""
    consumer = make_consumer(settings, "test-committed", group)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


@asynccontextmanager
async def normalizer(settings: KafkaSettings, topics: Topics, group: str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_normalizer(
            settings, stop, group_id=group, source=topics.source, target=topics.target, dlq=topics.dlq
        )
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def make_topics(topic_factory: TopicFactory) -> Topics:
    return Topics(
        await topic_factory("whoop.documents.v1", partitions=PARTITIONS),
        await topic_factory("wear.records.v1", partitions=PARTITIONS),
        await topic_factory("whoop.documents.v1.dlq", partitions=PARTITIONS),
    )


async def test_documents_become_records_and_poison_goes_to_the_dlq_while_the_rest_flows(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, group_id: str
) -> None:
    topics = await make_topics(topic_factory)
    docs = documents(members=4, days=6)
    first = docs[0]
    poison = msgspec.structs.replace(
        first, event_id="poison", document={**(first.document or {}), "timezone_offset": "EST"}
    )
    garbage = b"\x00\x01 not a document"
    tombstone_key = record_key(first.user_id, first.resource_type, first.resource_id)
    # the poison and the garbage sit in the middle of the first member's partition: what follows must flow
    items: list[tuple[bytes | None, bytes | None]] = [(doc_key(d), encode(d)) for d in docs[:10]]
    items += [(doc_key(poison), encode(poison)), (doc_key(first), garbage)]
    items += [(doc_key(d), encode(d)) for d in docs[10:]]
    items += [(tombstone_key, None)]
    sent = await produce(kafka_settings, topics.source, items)
    good = [s for s in sent if s.value not in (garbage, encode(poison)) and s.value is not None]
    assert len(good) == len(docs)

    async with normalizer(kafka_settings, topics, group_id):
        records = await read(kafka_settings, topics.target, len(docs) + 1)
        letters = await read(kafka_settings, topics.dlq, 2)

    # every good document gave exactly its record, keyed by resource, on its user's partition
    by_event = {d.event_id: d for d in docs}
    origins = {(s.partition, s.offset): s for s in sent}
    seen: set[str] = set()
    for out in records:
        assert out.partition == partition_for(out.key, PARTITIONS)
        headers = dict(out.headers)
        origin = headers["origin"].decode()
        partition, offset = origin.removeprefix(f"{topics.source}[").split("]@")
        source = origins[(int(partition), int(offset))]
        if out.value is None:  # the forwarded tombstone
            assert source.value is None and out.key == tombstone_key
            continue
        record = decode(out.value)
        assert record.causation_id is not None
        doc = by_event[record.causation_id]
        seen.add(doc.event_id)
        assert out.key == record_key(doc.user_id, doc.resource_type, record_resource_id(record))  # type: ignore[arg-type]
        assert out.key == source.key  # same resource key on both topics
        assert record == normalize_document(doc)[0]
        if isinstance(record, RecoveryRecorded):
            assert record.local_date is not None and out.key.endswith(f":recovery:{record.cycle_id}".encode())
    assert seen == set(by_event)
    assert await end_offsets(kafka_settings, topics.target) == {
        p: sum(1 for r in records if r.partition == p) for p in range(PARTITIONS)
    }

    # the poison and the garbage (and nothing else) are in the DLQ with their origin, raw value and reason
    assert sum((await end_offsets(kafka_settings, topics.dlq)).values()) == 2
    dead = sorted((decode_as(DeadLetter, x.value) for x in letters), key=lambda x: x.origin_offset)
    bad = [s for s in sent if s.value in (garbage, encode(poison))]
    assert [(x.origin_topic, x.origin_partition, x.origin_offset) for x in dead] == [
        (topics.source, s.partition, s.offset) for s in bad
    ]
    assert [base64.b64decode(x.value_b64) for x in dead] == [s.value for s in bad]
    assert [x.error_type for x in dead] == ["NormalizationError", "SchemaError"]
    assert "timezone_offset" in dead[0].reason and "not JSON" in dead[1].reason
    assert all(x.stage == "normalizer" and x.key == doc_key(first).decode() for x in dead)

    # and everything consumed was committed
    assert await committed(kafka_settings, group_id, topics.source) == await end_offsets(
        kafka_settings, topics.source
    )


async def test_a_rerun_over_the_same_input_gives_identical_records(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, unique: Any
) -> None:
    topics = await make_topics(topic_factory)
    rerun = Topics(topics.source, await topic_factory("wear.records.v1", partitions=PARTITIONS), topics.dlq)
    docs = documents(members=3, days=5)
    await produce(kafka_settings, topics.source, [(doc_key(d), encode(d)) for d in docs])

    async with normalizer(kafka_settings, topics, unique("first")):
        first = await read(kafka_settings, topics.target, len(docs))
    async with normalizer(kafka_settings, rerun, unique("second")):  # a replay: a new group from the start
        second = await read(kafka_settings, rerun.target, len(docs))

    def per_partition(records: list[Any]) -> dict[int, list[tuple[bytes, bytes]]]:
        out: dict[int, list[tuple[bytes, bytes]]] = {}
        for r in records:
            out.setdefault(r.partition, []).append((r.key, r.value))
        return out

    # byte-identical records, in the same order on the same partitions
    assert per_partition(first) == per_partition(second)
    assert len({decode(r.value).event_id for r in first}) == len(docs)


async def test_a_restart_resumes_after_the_committed_offsets(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, group_id: str
) -> None:
    topics = await make_topics(topic_factory)
    docs = documents(members=3, days=4)
    half = len(docs) // 2
    await produce(kafka_settings, topics.source, [(doc_key(d), encode(d)) for d in docs[:half]])
    async with normalizer(kafka_settings, topics, group_id):
        await read(kafka_settings, topics.target, half)
    await produce(kafka_settings, topics.source, [(doc_key(d), encode(d)) for d in docs[half:]])
    async with normalizer(kafka_settings, topics, group_id):
        records = await read(kafka_settings, topics.target, len(docs))
        deadline = time.monotonic() + 30
        while await committed(kafka_settings, group_id, topics.source) != await end_offsets(
            kafka_settings, topics.source
        ):
            assert time.monotonic() < deadline, "the second run never committed the whole input"
            await asyncio.sleep(0.1)
    # a clean stop commits what it produced: the second run did not redo the first run's documents
    assert sum((await end_offsets(kafka_settings, topics.target)).values()) == len(docs)
    assert sorted(str(decode(r.value).causation_id) for r in records) == sorted(d.event_id for d in docs)
