"""Reading the dead-letter topics for ``wear dlq``: which they are, how many letters, the letters.

A dead letter is named by its place in its DLQ topic, ``<partition>:<offset>`` (stable: a DLQ is an
append-only log). Its value is a ``schemas.events.DeadLetter`` (origin topic, partition and offset,
the raw value in base64, the stage, the error type and reason); a letter that a redrive sent back
carries the header ``wear-redrive-of`` naming the letter it was redriven from. Reading is done
outside any consumer group (partitions assigned, nothing committed), up to the end offsets taken
when the command starts, so letters appended while it runs are not read.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.settings import KafkaSettings
from schemas.events import DeadLetter
from schemas.serde import SchemaError, decode_as
from schemas.topics import DLQ_REDRIVE_OF_HEADER, DLQ_SUFFIX
from wear.common import fail, usage

__all__ = [
    "REDRIVE_OF_HEADER",
    "Letter",
    "Snapshot",
    "counts",
    "dlq_topics",
    "letter_id",
    "parse_id",
    "partitions",
    "read_letters",
    "resolve_dlq",
    "snapshot",
]

REDRIVE_OF_HEADER = DLQ_REDRIVE_OF_HEADER
_POLL_MS = 500
_EMPTY_POLLS = 20  # 10 s without a record below the end offset: the broker is not delivering


@dataclass(frozen=True)
class Letter:
    """One record of a DLQ topic: its id, when it was written, and the dead letter (or why not)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    letter: DeadLetter | None
    unreadable: str | None = None
    redrive_of: str | None = None

    @property
    def id(self) -> str:
        return letter_id(self.partition, self.offset)

    @property
    def written_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def raw(self) -> bytes | None:
        """The value the stage failed on (None: a tombstone, or a value the DLQ did not keep)."""
        if self.letter is None or not self.letter.value_b64:
            return None
        return base64.b64decode(self.letter.value_b64)

    def summary(self) -> dict[str, object]:
        """The letter as a JSON object, without its raw value."""
        letter = self.letter
        return {
            "id": self.id,
            "topic": self.topic,
            "written_at": self.written_at.isoformat(),
            "key": self.key,
            "user_id": None if self.key is None else self.key.split(":", 1)[0],
            "stage": None if letter is None else letter.stage,
            "error_type": "UnreadableDeadLetter" if letter is None else letter.error_type,
            "reason": self.unreadable if letter is None else letter.reason,
            "origin": None
            if letter is None
            else f"{letter.origin_topic}[{letter.origin_partition}]@{letter.origin_offset}",
            "failed_at": None if letter is None else letter.failed_at.isoformat(),
            "redrive_of": self.redrive_of,
        }


def letter_id(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


def parse_id(text: str) -> tuple[int, int]:
    """``<partition>:<offset>`` as numbers; :class:`wear.common.Usage` otherwise."""
    partition, sep, offset = text.strip().partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        usage(f"bad id {text[:40]!r}: a letter id is <partition>:<offset>, e.g. 0:12")
    return int(partition), int(offset)


def _letter(record: ConsumerRecord[bytes, bytes]) -> Letter:
    headers = {name: value for name, value in record.headers or ()}
    redrive_of = headers.get(REDRIVE_OF_HEADER)
    key = None if record.key is None else record.key.decode("utf-8", "replace")
    common = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp,
        "key": key,
        "redrive_of": None if redrive_of is None else redrive_of.decode("utf-8", "replace"),
    }
    try:
        letter = decode_as(DeadLetter, record.value or b"", record.topic, record.partition, record.offset)
    except SchemaError as exc:
        return Letter(letter=None, unreadable=f"not a DeadLetter: {exc.reason}"[:300], **common)
    return Letter(letter=letter, **common)


async def dlq_topics(consumer: AIOKafkaConsumer, pipeline: Iterable[str]) -> list[str]:
    """The DLQ twins of the ``pipeline`` topics, and of their records generations, that exist on Kafka."""
    existing = await consumer.topics()
    wanted = {name if name.endswith(DLQ_SUFFIX) else name + DLQ_SUFFIX for name in pipeline}
    bases = {name.removesuffix(DLQ_SUFFIX) for name in wanted}
    for name in existing:  # wear.records.v1.g2.dlq, ...: a generation's twin
        if name.endswith(DLQ_SUFFIX) and name.removesuffix(DLQ_SUFFIX).rpartition(".g")[0] in bases:
            wanted.add(name)
    return sorted(name for name in wanted if name in existing)


async def resolve_dlq(consumer: AIOKafkaConsumer, name: str) -> str:
    """The DLQ topic ``name`` names (``X.dlq``, or ``X`` for its twin); Usage when there is none on Kafka."""
    existing = await consumer.topics()
    for candidate in (name, name + DLQ_SUFFIX):
        if candidate.endswith(DLQ_SUFFIX) and candidate in existing:
            return candidate
    usage(f"unknown DLQ topic {name[:120]}: no such dead-letter topic on Kafka (wear dlq list shows them)")


@dataclass(frozen=True)
class Snapshot:
    """A DLQ topic's partitions with their first and end offsets, taken once."""

    topic: str
    starts: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.ends[p] - self.starts[p] for p in self.ends)

    def holds(self, partition: int, offset: int) -> bool:
        return partition in self.ends and self.starts[partition] <= offset < self.ends[partition]


async def partitions(settings: KafkaSettings, topics: Sequence[str]) -> dict[str, list[int]]:
    """The partitions of each of ``topics`` (asked of the cluster, not of a consumer's cached metadata)."""
    if not topics:
        return {}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id_prefix}-wear-dlq",
        request_timeout_ms=15_000,
    )
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    found: dict[str, list[int]] = {}
    for item in described:
        if item["error_code"] != 0:
            fail(f"Kafka cannot describe topic {item['topic']} (error {item['error_code']})")
        found[item["topic"]] = sorted(p["partition"] for p in item["partitions"])
    return found


async def snapshot(consumer: AIOKafkaConsumer, topic: str, numbers: Sequence[int]) -> Snapshot:
    """The first and end offsets of ``topic``'s partitions ``numbers``, now."""
    tps = [TopicPartition(topic, p) for p in numbers]
    starts = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    return Snapshot(
        topic,
        {tp.partition: offset for tp, offset in starts.items()},
        {tp.partition: offset for tp, offset in ends.items()},
    )


async def counts(
    settings: KafkaSettings, consumer: AIOKafkaConsumer, topics: Sequence[str]
) -> dict[str, int]:
    """How many letters each DLQ topic holds (end offset minus first offset, per partition)."""
    found = await partitions(settings, topics)
    return {topic: (await snapshot(consumer, topic, found[topic])).count for topic in topics}


async def read_letters(
    consumer: AIOKafkaConsumer, shot: Snapshot, wanted: Iterable[tuple[int, int]] | None = None
) -> AsyncIterator[list[Letter]]:
    """Batches of the letters of ``shot`` (all, or only the ``wanted`` ids), up to its end offsets.

    An id outside the snapshot raises :class:`wear.common.Usage` before anything is read.
    """
    todo: dict[int, set[int]] | None = None
    if wanted is not None:
        todo = {}
        for partition, offset in wanted:
            if not shot.holds(partition, offset):
                where = shot.topic
                usage(f"unknown id {letter_id(partition, offset)} in {where}: see wear dlq list {where}")
            todo.setdefault(partition, set()).add(offset)
    ranges = {
        p: (min(todo[p]) if todo is not None else shot.starts[p], shot.ends[p])
        for p in shot.ends
        if shot.ends[p] > shot.starts[p] and (todo is None or p in todo)
    }
    if not ranges:
        return
    tps = [TopicPartition(shot.topic, p) for p in ranges]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, ranges[tp.partition][0])
    left = dict(ranges)
    idle = 0
    while left:
        batch = await consumer.getmany(*[TopicPartition(shot.topic, p) for p in left], timeout_ms=_POLL_MS)
        found: list[Letter] = []
        for tp, records in batch.items():
            end = ranges[tp.partition][1]
            for record in records:
                if record.offset >= end:
                    break
                if todo is None or record.offset in todo[tp.partition]:
                    found.append(_letter(record))
            last = records[-1].offset if records else -1
            if last + 1 >= end or (todo is not None and last >= max(todo[tp.partition])):
                left.pop(tp.partition, None)
        idle = 0 if batch else idle + 1
        if idle >= _EMPTY_POLLS:
            missing = ", ".join(f"{p} up to {ranges[p][1]}" for p in left)
            fail(f"Kafka did not deliver {shot.topic} (partitions {missing}) within 10 s")
        if found:
            yield found
