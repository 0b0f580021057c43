"""The normalizer's shell without a broker: per-message outputs, dead letters, the policy, and the
produce-then-commit order (a failed produce rewinds the batch and commits nothing)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)

from infra.errors import PipelineError
from processors.errors import NormalizationError
from processors.normalize import normalize_document
from processors.normalizer_messages import Action, dead_letter, failure_action, normalize_message
from processors.normalizer_runner import _Runner
from schemas.events import DeadLetter
from schemas.keys import partition_for, record_key
from schemas.records import SleepRecorded
from schemas.serde import SchemaError, decode, decode_as, encode
from tests.unit.processors.test_normalize import fetched, load

SOURCE = "whoop.documents.v1"
TARGET = "wear.records.v1"
DLQ = "whoop.documents.v1.dlq"
NOW = datetime(2025, 10, 16, 8, 0, tzinfo=UTC)


def message(offset: int, value: bytes | None, key: bytes | None = b"u:sleep:x", partition: int = 0) -> Any:
    return ConsumerRecord(
        topic=SOURCE,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=(),
    )


def sleep_doc(event_id: str = "doc-1") -> bytes:
    return encode(fetched("sleep", load("sleep_main_scored.json"), event_id=event_id))


# --- pure parts ---------------------------------------------------------------------------------


def test_a_document_gives_its_records_keyed_by_resource_with_its_origin_and_trace() -> None:
    doc = fetched("recovery", load("recovery_scored.json"))
    [out] = normalize_message(SOURCE, 2, 41, b"k", encode(doc), target=TARGET)
    assert out.topic == TARGET
    assert out.key == record_key("user-482913", "recovery", "1093387651")  # keyed by the cycle
    assert doc.trace_id == "trace-1"  # the webhook's trace id goes on in the record's header
    assert out.headers == (("origin", b"whoop.documents.v1[2]@41"), ("trace_id", b"trace-1"))
    assert out.value == encode(normalize_document(doc)[0])


def test_a_document_without_a_trace_gives_records_without_a_trace_header() -> None:
    doc = msgspec.structs.replace(fetched("recovery", load("recovery_scored.json")), trace_id=None)
    [out] = normalize_message(SOURCE, 2, 41, b"k", encode(doc), target=TARGET)
    assert out.headers == (("origin", b"whoop.documents.v1[2]@41"),)


def test_a_tombstone_is_forwarded_with_its_key() -> None:
    [out] = normalize_message(SOURCE, 0, 7, b"u1:sleep:abc", None, target=TARGET)
    assert (out.topic, out.key, out.value) == (TARGET, b"u1:sleep:abc", None)
    for key in (None, b"u1", b"u1:webhook:abc", b"u1::abc"):
        with pytest.raises(ValueError, match="tombstone"):
            normalize_message(SOURCE, 0, 7, key, None, target=TARGET)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"\x00\xffnot json", SchemaError),
        (b"[1, 2]", SchemaError),
        (orjson.dumps({"event_type": "WebhookReceived"}), SchemaError),
        (
            encode(fetched("cycle", {**load("cycle_scored.json"), "score": {"strain": 99}})),
            NormalizationError,
        ),
    ],
)
def test_what_cannot_be_read_raises_for_the_policy_to_judge(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        normalize_message(SOURCE, 0, 0, b"k", raw, target=TARGET)


class _Retriable(PipelineError):
    retriable = True


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (NormalizationError("bad"), Action.DEAD_LETTER),
        (SchemaError("not JSON"), Action.DEAD_LETTER),
        (ValueError("tombstone"), Action.DEAD_LETTER),
        (KeyError("a bug in a pure step"), Action.DEAD_LETTER),
        (MessageSizeTooLargeError(), Action.DEAD_LETTER),
        (_Retriable(), Action.RETRY),
        (KafkaConnectionError(), Action.RETRY),
        (KafkaTimeoutError(), Action.RETRY),
    ],
)
def test_one_policy_decides_dead_letter_or_retry(exc: BaseException, action: Action) -> None:
    assert failure_action(exc) is action


def test_a_dead_letter_carries_origin_raw_value_type_and_reason() -> None:
    raw = b"\x00garbage"
    out = dead_letter(
        message(17, raw, key=b"u:sleep:\xff"), SchemaError("not JSON: x"), dlq=DLQ, failed_at=NOW
    )
    assert (out.topic, out.key) == (DLQ, b"u:sleep:\xff")
    letter = decode_as(DeadLetter, out.value or b"")
    assert (letter.origin_topic, letter.origin_partition, letter.origin_offset) == (SOURCE, 0, 17)
    assert base64.b64decode(letter.value_b64) == raw
    assert (letter.error_type, letter.reason, letter.stage) == ("SchemaError", "not JSON: x", "normalizer")
    assert letter.key == "u:sleep:\\xff" and letter.failed_at == NOW
    long = dead_letter(message(1, raw), NormalizationError("x" * 5000), dlq=DLQ, failed_at=NOW)
    assert len(decode_as(DeadLetter, long.value or b"").reason) == 2000
    omitted = decode_as(
        DeadLetter,
        dead_letter(message(1, raw), KeyError("k"), dlq=DLQ, failed_at=NOW, omit_value=True).value or b"",
    )
    assert (
        omitted.value_b64 == "" and "8 bytes omitted" in omitted.reason and omitted.error_type == "KeyError"
    )


# --- the loop with a fake consumer and producer ---------------------------------------------------


@dataclass
class FakeConsumer:
    batches: Iterator[dict[TopicPartition, list[Any]]]
    stop: asyncio.Event
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    revoked: bool = False  # a rebalance took the partitions away: seek and commit fail

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0)
        batch = next(self.batches, None)
        if batch is None:
            self.stop.set()
            return {}
        return batch

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if self.revoked:
            raise IllegalStateError(f"{tp} is not assigned")
        self.seeks.append((tp, offset))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.revoked:
            raise CommitFailedError("rebalanced")
        self.commits.append(dict(offsets))


@dataclass
class FakeBatch:
    records: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    limit: int = 3  # records per batch, to exercise a full batch

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: None, headers: Any) -> Any:
        if len(self.records) >= self.limit:
            return None
        self.records.append((key, value))
        return object()


@dataclass
class FakeProducer:
    failures: list[BaseException]  # the next batches fail with these, in order (their futures do)
    sent: list[tuple[str, bytes | None, bytes | None]] = field(default_factory=list)
    partitions: list[tuple[str, int, bytes | None]] = field(default_factory=list)

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failures:
            future.set_exception(self.failures.pop(0))
        else:
            self.sent += [(topic, key, value) for key, value in batch.records]
            self.partitions += [(topic, partition, key) for key, _ in batch.records]
            future.set_result(None)
        return future


def _runner() -> _Runner:
    return _Runner(target=TARGET, dlq=DLQ, normalizer_version=1, clock=lambda: NOW)


async def test_a_failed_produce_rewinds_the_batch_and_commits_only_after_every_ack() -> None:
    tp = TopicPartition(SOURCE, 0)
    batch = {tp: [message(10, sleep_doc("a")), message(11, b"garbage"), message(12, sleep_doc("b"))]}
    stop = asyncio.Event()
    # the first delivery fails (broker trouble), the redo of the same batch succeeds
    consumer = FakeConsumer(iter([batch, batch]), stop)
    producer = FakeProducer(failures=[KafkaConnectionError()])
    await asyncio.wait_for(_runner().loop(consumer, producer, stop), 10)
    assert consumer.seeks == [(tp, 10)]  # rewound to the batch's first offset
    assert consumer.commits == [{tp: 13}]  # one commit, after the successful redo
    topics = [topic for topic, _, _ in producer.sent]
    assert topics.count(TARGET) >= 2 and topics.count(DLQ) >= 1  # the redo produced everything again
    records = [decode(value) for topic, _, value in producer.sent[-3:] if topic == TARGET and value]
    assert [r.causation_id for r in records] == ["a", "b"]
    assert all(isinstance(r, SleepRecorded) for r in records)


async def test_poison_and_garbage_go_to_the_dlq_and_the_rest_flows() -> None:
    tp = TopicPartition(SOURCE, 1)
    poison = encode(fetched("sleep", {**load("sleep_main_scored.json"), "timezone_offset": "EST"}))
    batch = {tp: [message(0, poison), message(1, b"{}"), message(2, sleep_doc("ok"))]}
    stop = asyncio.Event()
    consumer = FakeConsumer(iter([batch]), stop)
    producer = FakeProducer(failures=[])
    await asyncio.wait_for(_runner().loop(consumer, producer, stop), 10)
    assert [topic for topic, _, _ in producer.sent] == [DLQ, DLQ, TARGET]
    letters = [decode_as(DeadLetter, value or b"") for topic, _, value in producer.sent if topic == DLQ]
    assert [(x.origin_offset, x.error_type) for x in letters] == [
        (0, "NormalizationError"),
        (1, "SchemaError"),
    ]
    assert "timezone_offset" in letters[0].reason
    assert consumer.commits == [{tp: 3}]


async def test_a_record_too_large_for_the_dlq_is_dead_lettered_without_its_raw_value() -> None:
    tp = TopicPartition(SOURCE, 0)
    huge = b"x" * 800_000  # not JSON, and too large for the broker once in base64
    stop = asyncio.Event()
    consumer = FakeConsumer(iter([{tp: [message(5, huge)]}]), stop)
    producer = FakeProducer(failures=[])
    await asyncio.wait_for(_runner().loop(consumer, producer, stop), 10)
    [(topic, _, value)] = producer.sent
    letter = decode_as(DeadLetter, value or b"")
    assert topic == DLQ and letter.origin_offset == 5 and letter.value_b64 == ""
    assert "800000 bytes omitted" in letter.reason
    assert consumer.commits == [{tp: 6}]


async def test_outputs_keep_their_order_per_partition_across_full_batches() -> None:
    tp = TopicPartition(SOURCE, 0)
    docs = [fetched("sleep", load("sleep_main_scored.json"), event_id=f"e{n}") for n in range(8)]
    stop = asyncio.Event()
    consumer = FakeConsumer(iter([{tp: [message(n, encode(d)) for n, d in enumerate(docs)]}]), stop)
    producer = FakeProducer(failures=[])
    await asyncio.wait_for(_runner().loop(consumer, producer, stop), 10)
    assert [decode(value or b"").causation_id for _, _, value in producer.sent] == [f"e{n}" for n in range(8)]
    key = record_key("user-482913", "sleep", "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13")
    assert {(t, p, k) for t, p, k in producer.partitions} == {(TARGET, partition_for(key, 3), key)}


async def test_a_retriable_error_of_our_own_rewinds_instead_of_dead_lettering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def flaky(topic: str, partition: int, offset: int, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append(offset)
        if len(calls) == 1:
            raise _Retriable("try again")
        return normalize_message(topic, partition, offset, *args, **kwargs)

    monkeypatch.setattr("processors.normalizer_runner.normalize_message", flaky)
    tp = TopicPartition(SOURCE, 0)
    batch = {tp: [message(3, sleep_doc("a"))]}
    stop = asyncio.Event()
    consumer = FakeConsumer(iter([batch, batch]), stop)
    producer = FakeProducer(failures=[])
    await asyncio.wait_for(_runner().loop(consumer, producer, stop), 10)
    assert calls == [3, 3] and consumer.seeks == [(tp, 3)] and consumer.commits == [{tp: 4}]
    assert [topic for topic, _, _ in producer.sent] == [TARGET]  # nothing dead-lettered


async def test_a_rebalance_mid_batch_neither_crashes_nor_loses_the_batch() -> None:
    tp = TopicPartition(SOURCE, 0)
    stop = asyncio.Event()
    consumer = FakeConsumer(iter([{tp: [message(0, sleep_doc())]}, {tp: [message(1, sleep_doc())]}]), stop)
    consumer.revoked = True  # the commit fails: the partition's new owner redoes the batch from its offset
    producer = FakeProducer(
        failures=[KafkaConnectionError()]
    )  # and the first produce fails: no seek possible
    await asyncio.wait_for(_runner().loop(consumer, producer, stop), 10)
    assert consumer.seeks == [] and consumer.commits == []
    assert len(producer.sent) == 1  # the second batch was still produced


async def test_a_bug_in_the_shell_itself_fails_loudly_instead_of_looping() -> None:
    class Broken(FakeProducer):
        def create_batch(self) -> FakeBatch:
            raise TypeError("a bug")

    tp = TopicPartition(SOURCE, 0)
    stop = asyncio.Event()
    consumer = FakeConsumer(iter([{tp: [message(0, sleep_doc())]}]), stop)
    with pytest.raises(TypeError, match="a bug"):
        await asyncio.wait_for(_runner().loop(consumer, Broken(failures=[]), stop), 10)
    assert consumer.commits == [] and consumer.seeks == []
