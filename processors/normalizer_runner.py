"""The normalizer's I/O shell: ``whoop.documents.v1`` in, ``wear.records.v1`` out, failures to the DLQ.

``run_normalizer`` consumes documents in batches, turns each into records with the pure
``processors.normalize``, produces them keyed ``<user_id>:<resource type>:<resource id>`` (a
recovery's resource id is its cycle id; the partition follows the user), waits until Kafka has
acknowledged every record of the batch, and only then commits the batch's offsets: at-least-once.
Records are deterministic (``normalize.record_event_id``), so a batch redone after a crash or a
rebalance produces byte-identical duplicates, which the projections ignore.

Throughput (``BENCHMARKS.md``, Normalizer): batches of up to 2,000 documents; the batch's member keys
and the generations registry are asked of PostgreSQL at once; a record batch goes to the producer as
soon as it is full, so the broker appends it while the rest of the batch is normalized; and a batch's
commit (its records all acknowledged) runs while the next batch is fetched and normalized, one commit
at a time, in order. CPU per document is what bounds one process: it scales out by processes in one
consumer group, up to one per partition.

Records generations (``processors.generations``): the live normalizer also writes each record and
tombstone to every registered generation not dropped (``generations``, read once per batch), in the
same produce-then-commit step, so a re-normalized generation gets the documents that arrive while
and after it is filled, and the older ones stay complete for a rollback. A renormalizer is this
runner with a consumer group of its own, one generation as its target, and, with ``since``, the
documents stored before that instant skipped (``processors.renormalize``).

Each record carries ``causation_id`` = the document's ``event_id`` and an ``origin`` header
``<topic>[<partition>]@<offset>`` naming the document it came from; the document's ``trace_id``
(the webhook's, in its envelope and Kafka header) goes into the record's envelope and its
``trace_id`` header. With ``LOG_RECORDS``, a line per record says it was normalized (type, id, trace).
A tombstone on the document log (an erasure) is forwarded as a tombstone with the same key.

Documents and records are sealed with their member's data key (``infra.member_keys``, ADR 0004): the
runner opens each document before the pure step and seals each record after it. A sealed document
whose member has no key any more belongs to an erased member: it is skipped (counted in
``erased``), there is nothing left to read. A document written before sealing existed (plaintext)
is read as it is, and its records are sealed when the member has a key.

What cannot be decoded or normalized is never dropped and never retried forever: it goes to
``<source>.dlq`` as a ``DeadLetter``, and the documents after it keep flowing
(``processors.normalizer_messages``: the pure per-message step and ``failure_action``). Broker
trouble (a produce that fails) is retried: the batch is rewound and redone after a bounded back-off,
without committing.

Why plain aiokafka (``infra.kafka``) and not faust: "produce, await every ack, then commit" must be
explicit here, and the runner is one task in the caller's event loop beside the fetcher (ADR 0002's
fallback; ADR 0008 compares the consumer styles).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, MessageSizeTooLargeError

from infra.kafka import make_consumer, make_producer
from infra.logs import header_value, log_record, progress_logger
from infra.member_keys import Erased, PooledKeys
from infra.settings import KafkaSettings
from processors.metrics import NORMALIZER_DEAD_LETTERS, count_records
from processors.normalize import NORMALIZER_VERSION
from processors.normalizer_messages import (
    STAGE,
    Action,
    Outgoing,
    check_size,
    dead_letter,
    failure_action,
    normalize_message,
    open_document,
    seal_record,
)
from processors.outbox import Outbox
from schemas.keys import user_of_key
from schemas.topics import DLQ_SUFFIX

__all__ = [
    "DEFAULT_MAX_BATCH",
    "Counts",
    "GenerationTopics",
    "run_normalizer",
]

logger = logging.getLogger(__name__)
progress = progress_logger(__name__)

DEFAULT_MAX_BATCH = 2000  # documents per poll, so per produce-then-commit step
_BATCH_BYTES = 512 * 1024  # one record batch per partition and poll, in practice
_YIELD_EVERY = 50  # messages normalized between two yields to the event loop (~10 ms of CPU)
_BACKOFF_FIRST_S = 0.2
_BACKOFF_MAX_S = 10.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class GenerationTopics(Protocol):
    """The records generations to write besides the target (``processors.generations.LiveGenerations``)."""

    async def topics(self) -> Sequence[str]: ...


@dataclass
class Counts:
    """What a normalizer did: documents committed, records produced (once per document, whatever the
    number of generations), dead letters, documents of erased members and documents skipped as older
    than ``since``. A batch redone after a failed commit is counted again."""

    documents: int = 0
    records: int = 0
    dead_lettered: int = 0
    erased: int = 0
    skipped: int = 0


async def run_normalizer(
    settings: KafkaSettings,
    stop: asyncio.Event,
    *,
    group_id: str = "normalizer",
    source: str = "whoop.documents.v1",
    target: str = "wear.records.v1",
    dlq: str | None = None,
    normalizer_version: int = NORMALIZER_VERSION,
    max_batch: int = DEFAULT_MAX_BATCH,
    clock: Callable[[], datetime] = _utc_now,
    keys: PooledKeys | None = None,
    generations: GenerationTopics | None = None,
    since: datetime | None = None,
    counts: Counts | None = None,
    on_commit: Callable[[Mapping[TopicPartition, int]], None] | None = None,
) -> None:
    """Normalize ``source`` into ``target`` until ``stop`` is set; failures go to ``dlq`` (default
    ``<source>.dlq``). ``keys`` opens and seals values (without it, a sealed document is
    dead-lettered). Returns once the last batch is committed.

    ``generations`` names more records topics, read once per batch: each record (and each tombstone)
    goes to ``target`` and to every one of them, and the batch is committed once all acknowledged.
    With ``since``, a document Kafka stored before it is skipped (committed, nothing produced).
    ``counts`` is updated after each committed batch, and ``on_commit`` called with its offsets."""
    runner = _Runner(
        target=target,
        dlq=dlq or f"{source}{DLQ_SUFFIX}",
        normalizer_version=normalizer_version,
        clock=clock,
        keys=keys,
        generations=generations,
        since_ms=None if since is None else int(since.timestamp() * 1000),
        counts=counts or Counts(),
        on_commit=on_commit,
    )
    producer = make_producer(settings, STAGE, max_batch_size=_BATCH_BYTES)
    consumer = make_consumer(settings, STAGE, group_id, source, max_poll_records=max_batch)
    await producer.start()
    try:
        await consumer.start()
        try:
            logger.info(
                "normalizer started: %s -> %s%s (group %s)",
                source,
                target,
                " and the records generations" if generations is not None else "",
                group_id,
            )
            await runner.loop(consumer, producer, stop)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    logger.info("normalizer stopped")


@dataclass
class _Runner:
    target: str
    dlq: str
    normalizer_version: int
    clock: Callable[[], datetime]
    keys: PooledKeys | None = None
    generations: GenerationTopics | None = None
    since_ms: int | None = None
    counts: Counts = field(default_factory=Counts)
    on_commit: Callable[[Mapping[TopicPartition, int]], None] | None = None
    _partitions: dict[str, int] = field(default_factory=dict)

    @property
    def erased(self) -> int:
        """Documents skipped because their member was erased."""
        return self.counts.erased

    async def loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        """Deliver batch after batch. A batch's commit runs while the next batch is fetched and
        normalized (its records are all acknowledged already); commits stay one at a time, in order."""
        backoff = _BACKOFF_FIRST_S
        committing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await consumer.getmany(
                    timeout_ms=200
                )
                if not batch:
                    continue
                messages = [m for messages in batch.values() for m in messages]
                try:
                    done = await self._deliver(producer, messages)
                except Exception as exc:  # the broker's trouble (retriable): redo the batch, commit nothing
                    if failure_action(exc) is not Action.RETRY:
                        raise  # a bug in this shell, not in a record: fail loudly rather than loop
                    logger.warning(
                        "produce failed (%s); batch rewound, retry in %.1f s", type(exc).__name__, backoff
                    )
                    _rewind(consumer, batch)
                    await _pause(stop, backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
                    continue
                backoff = _BACKOFF_FIRST_S
                offsets = {tp: messages[-1].offset + 1 for tp, messages in batch.items()}
                if committing is not None:
                    await committing
                committing = asyncio.create_task(self._commit(consumer, offsets, len(messages), done))
        finally:
            if committing is not None:
                await committing

    async def _commit(
        self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], documents: int, done: Counts
    ) -> None:
        if not await _commit(consumer, offsets):
            return
        logger.debug("batch committed: %d messages", documents)
        self.counts.documents += documents
        self.counts.records += done.records
        self.counts.dead_lettered += done.dead_lettered
        self.counts.erased += done.erased
        self.counts.skipped += done.skipped
        if self.on_commit is not None:
            self.on_commit(offsets)

    async def _lookups(
        self, messages: Sequence[ConsumerRecord[bytes, bytes]], users: Sequence[str | None]
    ) -> tuple[dict[str, bytes], tuple[str, ...]]:
        """The batch's member keys and the extra generation topics, both asked of PostgreSQL at once."""
        keys: dict[str, bytes] = {}
        extra: tuple[str, ...] = ()

        async def fetch_keys() -> None:
            nonlocal keys
            if self.keys is not None:
                values = zip(users, (message.value for message in messages), strict=True)
                keys = await self.keys.fetch((u for u in users if u is not None), values)

        async def read_generations() -> None:
            nonlocal extra
            if self.generations is not None:  # once per batch: a generation registered now gets the next one
                extra = tuple(topic for topic in await self.generations.topics() if topic != self.target)

        for result in await asyncio.gather(fetch_keys(), read_generations(), return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
        return keys, extra

    async def _deliver(
        self, producer: AIOKafkaProducer, messages: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> Counts:
        """Produce every output of ``messages`` (to every generation) and wait for all acknowledgements.

        Record batches go to the producer as soon as they are full (``processors.outbox``), so the broker
        appends the first ones while the rest are normalized; then every ack is awaited."""
        done = Counts()
        users = [_user_of(message.key) for message in messages]
        keys, extra = await self._lookups(messages, users)
        targets = (self.target, *extra)
        outbox = Outbox(producer, self._partitions)
        log_each = progress.isEnabledFor(logging.INFO)  # once per batch: the loop below is the hot path
        produced: list[bytes | None] = []  # the records' keys, counted once per batch
        try:
            await outbox.resolve(*targets)
            for index, (message, user) in enumerate(zip(messages, users, strict=True), 1):
                if index % _YIELD_EVERY == 0:  # the loop is shared (fetcher, heartbeats, the outbox)
                    await asyncio.sleep(0)
                if self.since_ms is not None and message.timestamp < self.since_ms:
                    done.skipped += 1  # older than --since: the copied records stand for it
                    continue
                try:
                    outs = self._records(message, user, keys)
                except Exception as exc:  # failure_action decides: raised or dead-lettered, never swallowed
                    if failure_action(exc) is Action.RETRY:
                        raise
                    done.dead_lettered += 1
                    NORMALIZER_DEAD_LETTERS.inc()
                    await outbox.resolve(self.dlq)
                    letter = self._dead_letter(message, exc)
                    outbox.add(self.dlq, letter.key, letter.value, letter.headers)
                    continue
                if outs is None:
                    done.erased += 1  # the member's key was destroyed: nothing left to read
                    continue
                done.records += len(outs)
                produced.extend([out.key for out in outs])
                if log_each:
                    for out in outs:
                        log_record(progress, "record normalized", out.key, header_value(out.headers))
                for topic in targets:
                    for out in outs:
                        outbox.add(topic, out.key, out.value, out.headers)
            count_records(produced)
            await outbox.acks()
        except BaseException:
            await outbox.abandon()
            raise
        return done

    def _records(
        self, message: ConsumerRecord[bytes, bytes], user: str | None, keys: dict[str, bytes]
    ) -> list[Outgoing] | None:
        """One message's records, sealed when its member has a key; None for an erased member's document."""
        value = open_document(self.keys, keys, user, message.value)
        if isinstance(value, Erased):
            return None
        outs = normalize_message(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            value,
            target=self.target,
            normalizer_version=self.normalizer_version,
        )
        key = None if user is None else keys.get(user)
        if key is not None and user is not None:
            outs = [seal_record(key, user, out) for out in outs]
        for out in outs:
            check_size(out)
        return outs

    def _dead_letter(self, message: ConsumerRecord[bytes, bytes], exc: Exception) -> Outgoing:
        logger.warning(
            "dead-lettered %s[%d]@%d: %s",
            message.topic,
            message.partition,
            message.offset,
            type(exc).__name__,
            extra={"trace_id": header_value(message.headers), "user_id": _user_of(message.key)},
        )
        letter = dead_letter(message, exc, dlq=self.dlq, failed_at=self.clock())
        try:
            check_size(letter)
        except MessageSizeTooLargeError:
            return dead_letter(message, exc, dlq=self.dlq, failed_at=self.clock(), omit_value=True)
        return letter


def _user_of(key: bytes | None) -> str | None:
    if key is None:
        return None
    return user_of_key(key).decode("utf-8", "replace")


def _rewind(
    consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
) -> None:
    for tp, messages in batch.items():
        try:
            consumer.seek(tp, messages[0].offset)
        except IllegalStateError:  # revoked meanwhile: its new owner redoes it from the committed offset
            logger.info("partition %s revoked before its batch could be rewound", tp)


async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> bool:
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as exc:  # a rebalance: the new owner redoes the batch
        logger.warning(
            "commit failed (%s): the batch will be redone, duplicates are harmless", type(exc).__name__
        )
        return False
    return True


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
