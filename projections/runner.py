"""The projection workers: Kafka batches into the read models, exactly once (``ExactlyOnceConsumer``).

:class:`ProjectionWorker` consumes the records topic. Each batch is decoded (``decode.decode_record``),
folded into reduced changes (``fold.plan_batch``) and written (``store.ReadModelStore``) in the
transaction that also stores the consumed offsets. A record that is not a valid canonical record
goes to ``<topic>.dlq`` before that transaction commits. When PostgreSQL refuses the batch for its
data (a value out of range, a violated constraint), the batch is applied again record by record, each
in a savepoint, and only the refused records go to the dead-letter topic: one bad record never
blocks a partition, and the outcome is the same as applying the records one after the other.

Each batch writes one read-model version (``projections.versions``): the served one for the live
worker, which follows a switch from the stored offsets of the version switched to (its records topic
too, when the version projects another generation); a fixed one for a rebuild.

:class:`ActivityWorker` consumes the webhook and document topics in a consumer group of its own and
keeps, per member, the time of the last webhook and of the last fetch (the sync status).

Records and documents are sealed with their member's data key (``infra.member_keys``, ADR 0004). A
record whose member's key was destroyed is skipped: the member was erased. Both workers admit the
members of a batch through the erasure gate (``infra.erasure_gate``) inside its transaction, so
nothing of a member whose erasure has begun is written back.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from infra import erasure_gate
from infra.dead_letters import DeadLetters
from infra.exactly_once import Connection, ExactlyOnceConsumer, PipelinedConsumer, Route
from infra.kafka import make_consumer
from infra.logs import header_value, log_record, progress_logger, trace_context
from infra.member_keys import ERASED, Erased, MemberKeys, PooledKeys, open_with
from infra.sealing import SealError, is_sealed
from schemas.keys import user_of_key

from . import versions
from .activity import Activity, plan_activity, read_activity
from .decode import decode_record
from .errors import RecordRejected
from .fold import Changes, plan_batch
from .metrics import timed
from .rows import Decoded, Projectable, Purge
from .settings import ProjectionsSettings, Settings
from .store import ReadModelStore

__all__ = [
    "ActivityWorker",
    "ChangesStore",
    "ProjectionWorker",
    "activity_consumer_for",
    "projection_consumer",
]

logger = logging.getLogger(__name__)
progress = progress_logger(__name__)

_REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
_CHUNK = 50  # records decoded between two yields: the batch being applied waits at most that long


def _options(own: ProjectionsSettings) -> dict[str, object]:
    return {
        "max_poll_records": own.batch_max_records,
        "fetch_max_bytes": own.fetch_max_bytes,
        "max_partition_fetch_bytes": own.max_partition_fetch_bytes,
        "session_timeout_ms": own.session_timeout_ms,
        "heartbeat_interval_ms": own.session_timeout_ms // 4,
    }


def projection_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The consumer of the read-model projection (not started; never auto-commits)."""
    own = settings.projections
    return make_consumer(
        settings.kafka, "projections", own.group_id, group_instance_id=own.group_instance_id, **_options(own)
    )


def activity_consumer_for(settings: Settings) -> AIOKafkaConsumer:
    """The consumer of the sync-activity projection (not started)."""
    own = settings.projections
    instance = None if own.group_instance_id is None else f"{own.group_instance_id}-activity"
    return make_consumer(
        settings.kafka,
        "projections-activity",
        own.activity_group_id,
        group_instance_id=instance,
        **_options(own),
    )


class ChangesStore(Protocol):
    """Writes a batch's reduced changes in the batch's transaction (``ReadModelStore``, a bulk store)."""

    async def apply_changes(self, connection: Connection, changes: Changes) -> None: ...


class ProjectionWorker:
    """The read-model projection of the records topic into a read-model version.

    ``version=None`` (the live worker) writes the served version and follows a switch: a batch
    transaction that finds another version served is not applied, the worker goes on from that
    version's stored offsets on its records topic. ``version=N`` (a rebuild) always writes version N.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        settings: ProjectionsSettings,
        dead_letters: DeadLetters,
        store: ChangesStore | None = None,
        *,
        keys: MemberKeys,
        version: int | None = None,
    ) -> None:
        self._dead_letters = dead_letters
        self._store: ChangesStore = store or ReadModelStore()
        self._keys = PooledKeys(pool, keys)
        self._settings = settings
        self._version = version
        self._fixed: versions.Version | None = None
        self.erased = 0
        self.exactly_once: PipelinedConsumer[_Prepared] = PipelinedConsumer(
            consumer,
            pool,
            settings.group_id,
            [settings.records_topic],
            self._prepare,
            timed("read_models", self._apply),
            max_records=settings.batch_max_records,
            poll_timeout_ms=settings.poll_timeout_ms,
            retry_backoff_s=settings.retry_backoff_s,
            router=self._route,
        )

    async def _route(self, connection: Connection) -> Route:
        """The version this batch writes, its tables made the transaction's (``versions.use``).

        Without a fixed ``version``, the served one, its row read FOR SHARE: a switch waits for
        this batch, and the batches after it write the version switched to.
        """
        if self._version is None:
            version = await versions.serving(connection, lock="share")
        else:
            if self._fixed is None:
                self._fixed = await versions.get(connection, self._version)
            version = self._fixed
        await versions.use(connection, version)
        own = self._settings
        return Route(version.group(own.group_id), version.topic(own.records_topic))

    async def run(self, stop: asyncio.Event) -> None:
        """Apply batches until ``stop`` is set (the consumer must be started)."""
        _fewer_collections()
        await self.exactly_once.run(stop)

    async def _prepare(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> _Prepared:
        """Decode and fold a whole batch outside any transaction, yielding to the event loop now and then."""
        prepared = _Prepared(len(records))
        users = [_user_of(record.key) for record in records]
        sealed = {u for u, r in zip(users, records, strict=True) if u is not None and is_sealed(r.value)}
        values = zip(users, (record.value for record in records), strict=True)
        keys = await self._keys.fetch(sealed, values) if sealed else {}
        for start in range(0, len(records), _CHUNK):
            if start:
                await asyncio.sleep(0)  # let the batch being applied make progress
            chunk: list[Decoded | Purge] = []
            for record, user in zip(
                records[start : start + _CHUNK], users[start : start + _CHUNK], strict=True
            ):
                key = (record.topic, record.partition, record.offset)
                try:
                    value = open_with(keys, user, record.value, self._keys.keys.unopenable)
                    if isinstance(value, Erased):
                        prepared.items[key] = ERASED
                        continue
                    item = decode_record(record.key, value, record.topic, record.partition, record.offset)
                except SealError as exc:
                    prepared.items[key] = RecordRejected(str(exc))
                except RecordRejected as exc:
                    prepared.items[key] = exc
                else:
                    chunk.append(item)
                    prepared.items[key] = item
            plan_batch(chunk, into=prepared.plan)
        return prepared

    async def _apply(
        self, connection: Connection, records: Sequence[ConsumerRecord[bytes, bytes]], prepared: _Prepared
    ) -> None:
        items: list[tuple[ConsumerRecord[bytes, bytes], Projectable]] = []
        rejected: list[tuple[ConsumerRecord[bytes, bytes], Exception]] = []
        for record in records:
            item = prepared.items[(record.topic, record.partition, record.offset)]
            if isinstance(item, Erased):
                self.erased += 1
            elif isinstance(item, RecordRejected):
                rejected.append((record, item))
            else:
                items.append((record, item))
        users = {item.user_id for _, item in items}
        admitted = await erasure_gate.admit(connection, users)
        if admitted != users:  # members whose erasure began since the batch was prepared
            self.erased += sum(1 for _, item in items if item.user_id not in admitted)
            items = [(record, item) for record, item in items if item.user_id in admitted]
            changes = plan_batch(item for _, item in items)
        elif len(records) == prepared.count:  # the plan of the whole batch holds (no record applied yet)
            changes = prepared.plan
        else:
            changes = plan_batch(item for _, item in items)
        try:
            async with connection.transaction():
                await self._store.apply_changes(connection, changes)
        except _REFUSED as exc:
            logger.warning("PostgreSQL refused a batch (%s): applying it record by record", exc.sqlstate)
            for record, item in items:
                try:
                    async with connection.transaction():
                        await self._store.apply_changes(connection, plan_batch([item]))
                except _REFUSED as refused:
                    rejected.append((record, RecordRejected(f"PostgreSQL refused it ({refused.sqlstate})")))
        if progress.isEnabledFor(logging.INFO):
            _log_written(items, {id(record) for record, _ in rejected})
        for record, error in sorted(rejected, key=lambda pair: (pair[0].partition, pair[0].offset)):
            with trace_context(header_value(record.headers), user_id=_user_of(record.key)):
                await self._dead_letters.send(record, error)  # its line and its letter carry the trace


def _log_written(
    items: Sequence[tuple[ConsumerRecord[bytes, bytes], Projectable]], refused: set[int]
) -> None:
    """One progress line per record written in the batch's transaction: its key's type and id, its trace."""
    for record, _ in items:
        if id(record) not in refused:
            log_record(progress, "read-model row written", record.key, header_value(record.headers))


def _fewer_collections() -> None:
    """Run the cyclic garbage collector less often: a batch allocates millions of short-lived objects.

    Decoded records hold no reference cycles; with CPython's default thresholds the collector walks
    the records of the batches in flight over and over (about a sixth of the decoding time).
    """
    gc.freeze()  # what the process holds at start is never scanned again
    threshold, *older = gc.get_threshold()
    gc.set_threshold(max(threshold, 50_000), *older)


@dataclass
class _Prepared:
    """A batch decoded and folded ahead of its transaction."""

    count: int
    items: dict[tuple[str, int, int], Projectable | RecordRejected | Erased] = field(default_factory=dict)
    plan: Changes = field(default_factory=Changes)


class ActivityWorker:
    """The sync-activity projection: last webhook and last fetch per member."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        settings: ProjectionsSettings,
        store: ReadModelStore | None = None,
    ) -> None:
        self._store = store or ReadModelStore()
        self.exactly_once = ExactlyOnceConsumer(
            consumer,
            pool,
            settings.activity_group_id,
            list(settings.activity_topics),
            timed("sync_activity", self._apply),
            max_records=settings.batch_max_records,
            poll_timeout_ms=settings.poll_timeout_ms,
            retry_backoff_s=settings.retry_backoff_s,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self.exactly_once.run(stop)

    async def _apply(self, connection: Connection, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        seen = [item for item in map(_activity, records) if item is not None]
        admitted = await erasure_gate.admit(connection, {item.user_id for item in seen})
        await self._store.apply_activity(connection, plan_activity(i for i in seen if i.user_id in admitted))


def _activity(record: ConsumerRecord[bytes, bytes]) -> Activity | None:
    """A webhook or a fetch; a sealed document counts as a fetch at the time Kafka stored it."""
    if is_sealed(record.value) and record.key is not None:
        return Activity(
            _user_of(record.key) or "", fetch_at=datetime.fromtimestamp(record.timestamp / 1000, UTC)
        )
    return read_activity(record.value)


def _user_of(key: bytes | None) -> str | None:
    return None if key is None else user_of_key(key).decode("utf-8", "replace")
