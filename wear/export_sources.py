"""What ``wear export`` reads: a sealed topic up to its end offsets, or the served read-model version.

A topic (the served records generation, or ``whoop.documents.v1``) is read outside any consumer group
from its first offsets to the end offsets captured at the start (``processors.log_reader``), in
batches; only the partition of ``--user`` when one is given. Each value is opened with its member's
data key (``infra.member_keys``, one key lookup per batch): a tombstone, a value whose member key is
gone (erased) or does not open, and a value that is not a valid record are skipped and counted, never
an error. The read models are read in one read-only, repeatable-read transaction with a server-side
cursor per table, so counts and rows come from one snapshot of the served version.

:class:`Selection` (pure) decides what is kept: ``--user``, ``--types`` and the window
``--start``/``--end`` on each record's time (:func:`record_time`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from aiokafka import ConsumerRecord

from infra.errors import PipelineError
from infra.member_keys import ERASED, KeysUnavailable, PooledKeys, open_with
from infra.sealing import SealError, is_sealed
from infra.settings import KafkaSettings
from processors.log_reader import ReadStalled, Span, read_spans, spans
from projections import versions
from projections.rows import created_at_of
from projections.versions import Connection
from schemas.events import Envelope
from schemas.keys import partition_for, user_of_key
from schemas.records import (
    RECORD_TYPES,
    CycleRecorded,
    DocumentFetched,
    RecoveryRecorded,
    SleepRecorded,
    WorkoutRecorded,
)
from schemas.serde import SchemaError, decode_as, decode_one_of
from wear.common import fail
from wear.export_schemas import READ_MODEL_SCHEMAS

__all__ = [
    "READ_MODEL_OF",
    "RECORD_NAMES",
    "RESOURCE_TYPES",
    "Selection",
    "Tally",
    "document_time",
    "read_model_batches",
    "read_model_line",
    "read_model_total",
    "record_time",
    "topic_batches",
    "topic_spans",
]

RESOURCE_TYPES: Final = ("cycle", "sleep", "recovery", "workout")
RECORD_NAMES: Final[Mapping[str, tuple[str, str]]] = {
    "cycle": ("CycleRecorded", "CycleDeleted"),
    "sleep": ("SleepRecorded", "SleepDeleted"),
    "recovery": ("RecoveryRecorded", "RecoveryDeleted"),
    "workout": ("WorkoutRecorded", "WorkoutDeleted"),
}
"""The record types of each resource type (one Parquet file each)."""
READ_MODEL_OF: Final[Mapping[str, tuple[str, str, str]]] = {
    "cycle": ("rm_cycles", "cycle_id", "start_at"),
    "sleep": ("rm_sleeps", "sleep_id", "start_at"),
    "recovery": ("rm_recoveries", "cycle_id", "created_at"),
    "workout": ("rm_workouts", "workout_id", "start_at"),
}
"""The table of each resource type, its id column and the column ``--start``/``--end`` filter on."""
_RESOURCE_OF_NAME = {name: kind for kind, names in RECORD_NAMES.items() for name in names}
_RECORD_MODELS: tuple[type[Envelope], ...] = tuple(
    model for name, model in RECORD_TYPES.items() if name in _RESOURCE_OF_NAME
)


@dataclass(frozen=True)
class Selection:
    """What to export: one member or all, some resource types, records whose time is in a window."""

    user: str | None = None
    start: datetime | None = None
    end: datetime | None = None  # excluded
    types: frozenset[str] = frozenset(RESOURCE_TYPES)

    @property
    def windowed(self) -> bool:
        return self.start is not None or self.end is not None

    def admits(self, resource_type: str, moment: datetime | None) -> bool:
        """True for a record of ``resource_type`` whose time is ``moment`` (None: it has none)."""
        if resource_type not in self.types:
            return False
        if not self.windowed:
            return True
        if moment is None:
            return False
        return (self.start is None or moment >= self.start) and (self.end is None or moment < self.end)


@dataclass
class Tally:
    """What an export read, wrote (by type) and skipped (by reason)."""

    read: int = 0
    written: dict[str, int] = field(default_factory=dict)
    erased: int = 0
    tombstones: int = 0
    unreadable: int = 0
    invalid: int = 0
    filtered: int = 0

    def skipped(self) -> dict[str, int]:
        return {
            "erased": self.erased,
            "tombstones": self.tombstones,
            "unreadable": self.unreadable,
            "invalid": self.invalid,
            "filtered": self.filtered,
        }


def record_time(record: Envelope) -> datetime | None:
    """A record's time for ``--start``/``--end``: its start; a recovery's WHOOP ``created_at``; a
    deletion has none."""
    if isinstance(record, CycleRecorded | SleepRecorded | WorkoutRecorded):
        return record.start
    if isinstance(record, RecoveryRecorded):
        return created_at_of(record.document, record.whoop_updated_at)
    return None


def document_time(doc: DocumentFetched) -> datetime | None:
    """A document's time, as its record's (:func:`record_time`): ``start``; a recovery's ``created_at``
    (else its ``updated_at``, as the normalizer's ``whoop_updated_at``)."""
    body = doc.document
    if body is None:
        return None
    if doc.resource_type == "recovery":
        return _instant(body.get("created_at")) or _instant(body.get("updated_at"))
    return _instant(body.get("start"))


def _instant(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- topics -------------------------------------------------------------------------------------------


async def topic_spans(kafka: KafkaSettings, topic: str, user: str | None) -> list[Span]:
    """The offsets to read of ``topic`` (only ``user``'s partition when given), captured now."""
    try:
        found = await spans(kafka, topic)
    except PipelineError as exc:
        fail(f"{exc}: does the topic exist?")
    if user is None:
        return found
    partition = partition_for(user.encode(), len(found))
    return [span for span in found if span.partition == partition]


Decoded = tuple[str, str, Envelope, bytes]  # type name, resource type, record, its plaintext


def _decoder(documents: bool) -> Callable[[bytes], Envelope]:
    if documents:
        return lambda raw: decode_as(DocumentFetched, raw)
    return lambda raw: decode_one_of(_RECORD_MODELS, raw)


async def topic_batches(
    kafka: KafkaSettings,
    keys: PooledKeys,
    topic: str,
    of: Sequence[Span],
    selection: Selection,
    tally: Tally,
    *,
    documents: bool,
) -> AsyncIterator[tuple[int, list[Decoded]]]:
    """Per batch read: how many records were read, and those selected, opened and decoded."""
    decode = _decoder(documents)
    try:
        async for batch in read_spans(kafka, topic, of, batch=2000):
            tally.read += len(batch)
            yield len(batch), await _opened(keys, batch, selection, tally, decode)
    except ReadStalled as exc:
        fail(str(exc))
    except KeysUnavailable as exc:
        fail(f"PostgreSQL unreachable or failing: {exc}")


async def _opened(
    keys: PooledKeys,
    batch: Sequence[ConsumerRecord[bytes, bytes]],
    selection: Selection,
    tally: Tally,
    decode: Callable[[bytes], Envelope],
) -> list[Decoded]:
    candidates: list[tuple[str, bytes]] = []
    for record in batch:
        if record.value is None:
            tally.tombstones += 1
            continue
        user = user_of_key(record.key or b"").decode("utf-8", "replace")
        if selection.user is not None and user != selection.user:
            tally.filtered += 1
            continue
        candidates.append((user, record.value))
    sealed = {user for user, value in candidates if is_sealed(value)}
    found = await keys.fetch(sealed, candidates) if sealed else {}
    kept: list[Decoded] = []
    for user, value in candidates:
        try:
            plain = open_with(found, user, value, keys.keys.unopenable)
        except SealError:
            tally.unreadable += 1
            continue
        if plain is ERASED:
            tally.erased += 1
            continue
        assert isinstance(plain, bytes)  # noqa: S101 - not None (checked), not ERASED
        try:
            item = decode(plain)
        except SchemaError:
            tally.invalid += 1
            continue
        kind: str
        if isinstance(item, DocumentFetched):
            name, kind, moment = "DocumentFetched", item.resource_type, document_time(item)
        else:
            name = item.event_type
            kind, moment = _RESOURCE_OF_NAME[name], record_time(item)
        if not selection.admits(kind, moment):
            tally.filtered += 1
            continue
        kept.append((name, kind, item, plain))
    return kept


# --- read models ----------------------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _where(selection: Selection, time_column: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if selection.user is not None:
        args.append(selection.user)
        clauses.append(f"user_id = ${len(args)}")
    if selection.start is not None:
        args.append(selection.start)
        clauses.append(f"{time_column} >= ${len(args)}")
    if selection.end is not None:
        args.append(selection.end)
        clauses.append(f"{time_column} < ${len(args)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _tables(selection: Selection) -> list[str]:
    return [READ_MODEL_OF[kind][0] for kind in RESOURCE_TYPES if kind in selection.types]


async def read_model_total(connection: Connection, selection: Selection) -> tuple[int, int]:
    """The served version's number and how many rows the selection holds (in the caller's snapshot)."""
    served = await versions.serving(connection)
    total = 0
    for kind in RESOURCE_TYPES:
        if kind not in selection.types:
            continue
        table, _, time_column = READ_MODEL_OF[kind]
        where, args = _where(selection, time_column)
        sql = f"SELECT count(*) FROM {_quote(served.schema)}.{table}{where}"  # noqa: S608 - registry names
        total += int(await connection.fetchval(sql, *args))
    return served.number, total


async def read_model_batches(
    connection: Connection, selection: Selection, *, batch: int = 2000
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The selected rows of the served version, per table in batches (in the caller's transaction)."""
    served = await versions.serving(connection)
    for kind in RESOURCE_TYPES:
        if kind not in selection.types:
            continue
        table, id_column, time_column = READ_MODEL_OF[kind]
        columns = ", ".join(
            "document::text AS document" if f.name == "document" else f.name
            for f in READ_MODEL_SCHEMAS[table]
        )
        where, args = _where(selection, time_column)
        sql = (
            f"SELECT {columns} FROM {_quote(served.schema)}.{table}{where}"  # noqa: S608 - registry names
            f" ORDER BY user_id, {id_column}"
        )
        rows: list[dict[str, Any]] = []
        async for row in connection.cursor(sql, *args, prefetch=batch):
            rows.append(dict(row.items()))
            if len(rows) >= batch:
                yield table, rows
                rows = []
        if rows:
            yield table, rows


def read_model_line(table: str, row: Mapping[str, Any]) -> bytes:
    """A read-model row as one JSON object: ``table`` first, then its columns, ``document`` as JSON."""
    return orjson.dumps(
        {"table": table, **row, "document": orjson.Fragment(row["document"])},
        option=orjson.OPT_UTC_Z,
    )
