"""One record of the records topic as the fold needs it: its table, key, version and row.

:func:`read_record` decodes one Kafka record into its canonical type (``schemas.serde``, msgspec),
checks what PostgreSQL needs (:class:`Storable`: integers within bigint, no NUL in a string; no NUL
in the document), and :func:`decoded_of` builds the row of a canonical record from ``ROW_SOURCES``
(the column lists of ``projections.columns``). A Kafka tombstone is a :class:`Purge`
(:func:`purge_of`). The worker reads through ``projections.decode.decode_record``, which decodes with
the same contract types and the same checks and builds the same row directly.

No I/O, no clock, no logging.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Annotated, Any, Literal, NamedTuple, NoReturn, Union, get_args, get_origin

import msgspec

from schemas.records import (
    CycleDeleted,
    CycleRecorded,
    RecoveryDeleted,
    RecoveryRecorded,
    SleepDeleted,
    SleepRecorded,
    WorkoutDeleted,
    WorkoutRecorded,
)
from schemas.serde import SchemaError, decode_one_of

from .columns import CYCLE_COLUMNS, RECOVERY_COLUMNS, SLEEP_COLUMNS, WORKOUT_COLUMNS
from .errors import RecordRejected

__all__ = [
    "ID_FIELDS",
    "RESOURCE_TYPES",
    "ROW_SOURCES",
    "Decoded",
    "Deleted",
    "Projectable",
    "Purge",
    "Recorded",
    "ResourceType",
    "Row",
    "Storable",
    "Version",
    "created_at_of",
    "decoded_of",
    "document_text",
    "has_nul",
    "instant_or",
    "purge_of",
    "read_record",
    "zones_text",
]

Version = tuple[datetime, int]
"""``(updated_at or deletion time, normalizer_version)``: greater wins, a deletion wins a tie."""
Row = tuple[object, ...]
ResourceType = Literal["cycle", "sleep", "recovery", "workout"]

_ENCODER = msgspec.json.Encoder()
_FIELD_OF_COLUMN = {"version": "whoop_updated_at", "start_at": "start", "end_at": "end", "zone_ms": "_zones"}


def _sources(columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_FIELD_OF_COLUMN.get(column, column) for column in columns)


ROW_SOURCES: dict[ResourceType, tuple[str, ...]] = {
    "cycle": _sources(CYCLE_COLUMNS),
    "sleep": _sources(SLEEP_COLUMNS),
    "recovery": _sources(RECOVERY_COLUMNS),
    "workout": _sources(WORKOUT_COLUMNS),
}
"""The record field behind each column of a table's row, for both readers. A column is the field of
its name but for those of ``_FIELD_OF_COLUMN``; three are not the record's own values but made by the
reader under these names: ``document`` (its JSON text), ``created_at`` (:func:`created_at_of`) and
``_zones`` (:func:`zones_text`)."""
ID_FIELDS: dict[ResourceType, str] = {
    "cycle": "cycle_id",
    "sleep": "sleep_id",
    # a recovery, and its deletion, are keyed by their cycle (the fetcher resolves a deleted
    # recovery's cycle from the webhook's sleep id: guarantee 3)
    "recovery": "cycle_id",
    "workout": "workout_id",
}
"""The record field holding the resource's id, its key in its table with ``user_id``."""


@dataclass(frozen=True)
class Purge:
    """A Kafka tombstone on the records topic: forget the resource, its deletion marker included."""

    user_id: str
    resource_type: ResourceType
    resource_id: str


class Decoded(NamedTuple):
    """A canonical record as the fold needs it: its table, key, version and row (None: a deletion)."""

    resource_type: ResourceType
    user_id: str
    resource_id: Any  # int (cycle, recovery) or str (sleep, workout)
    version: Version
    row: Row | None
    whoop_user_id: int
    occurred_at: datetime


Recorded = CycleRecorded | SleepRecorded | RecoveryRecorded | WorkoutRecorded
Deleted = CycleDeleted | SleepDeleted | RecoveryDeleted | WorkoutDeleted
Projectable = Recorded | Deleted | Purge | Decoded
RESOURCE_TYPES: dict[type[Recorded | Deleted], ResourceType] = {
    CycleRecorded: "cycle",
    SleepRecorded: "sleep",
    RecoveryRecorded: "recovery",
    WorkoutRecorded: "workout",
    CycleDeleted: "cycle",
    SleepDeleted: "sleep",
    RecoveryDeleted: "recovery",
    WorkoutDeleted: "workout",
}
"""Every model the records topic carries, and the table it changes."""
_DELETED = (CycleDeleted, SleepDeleted, RecoveryDeleted, WorkoutDeleted)
_PROJECTABLE: tuple[type[Recorded | Deleted], ...] = tuple(RESOURCE_TYPES)


def _members(annotation: object) -> set[object]:
    """The types a field annotation admits besides None (``Annotated`` and unions looked into)."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return set().union(*(_members(arg) for arg in get_args(annotation)))
    return set() if annotation is type(None) else {annotation}


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[Any, ...]]:
    """A function giving the values of ``names`` of a record as a tuple (``attrgetter`` when it can)."""
    if len(names) > 1:
        return attrgetter(*names)
    return lambda record: tuple(getattr(record, name) for name in names)


class Storable:
    """Checks what PostgreSQL needs of one record type: integers within bigint, no NUL in a string.

    Built once per type from its fields (the document aside: ``has_nul``); a call raises
    RecordRejected naming the first field PostgreSQL would refuse.
    """

    def __init__(self, model: type[msgspec.Struct]) -> None:
        members = {f.name: _members(f.type) for f in msgspec.structs.fields(model) if f.name != "document"}
        self.event_type = str(getattr(model, "event_type", model.__name__))
        self.ints = tuple(name for name, kinds in members.items() if kinds == {int})
        self.texts = tuple(name for name, kinds in members.items() if kinds == {str})
        self.tuples = tuple(
            name for name, kinds in members.items() if any(get_origin(kind) is tuple for kind in kinds)
        )
        self._ints = _getter(self.ints)
        self._texts = _getter(self.texts)

    def __call__(self, record: object) -> None:
        for number in self._ints(record):
            if number is not None and not _INT64_MIN <= number <= _INT64_MAX:
                self._refuse(record)
        for text in self._texts(record):
            if text is not None and "\x00" in text:
                self._refuse(record)
        for name in self.tuples:
            if not _storable(getattr(record, name)):
                self._refuse(record)

    def _refuse(self, record: object) -> NoReturn:
        name = next(n for n in (*self.ints, *self.texts, *self.tuples) if not _storable(getattr(record, n)))
        raise RecordRejected(f"{self.event_type}.{name} cannot be stored (integer range or NUL)")


_STORABLE: dict[type, Storable] = {model: Storable(model) for model in _PROJECTABLE}
_INT_IDS: frozenset[str] = frozenset({"cycle", "recovery"})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def read_record(
    key: bytes | None, value: bytes | None, topic: str = "", partition: int = 0, offset: int = 0
) -> Projectable:
    """One Kafka record of the records topic as its canonical record, or a Purge; RecordRejected otherwise.

    The contract's decoder (``schemas.serde``) validates it in the pass that parses it; then what
    PostgreSQL needs is checked (:class:`Storable`, ``has_nul``).
    """
    if value is None:
        return purge_of(key)
    try:
        event = decode_one_of(_PROJECTABLE, value, topic, partition, offset)
    except SchemaError as exc:
        raise RecordRejected(exc.reason) from exc
    _STORABLE[type(event)](event)
    if has_nul(getattr(event, "document", None)):
        raise RecordRejected(f"{event.event_type}.document cannot be stored (NUL)")
    return event


def _storable(value: object) -> bool:
    """PostgreSQL takes it: integers fit a bigint, strings hold no NUL (documents: ``has_nul``)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return _INT64_MIN <= value <= _INT64_MAX
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, tuple):
        return all(_storable(item) for item in value)
    return True


def purge_of(key: bytes | None) -> Purge:
    """The erasure a Kafka tombstone (null value) keyed ``<user_id>:<type>:<id>`` means."""
    parts = (key or b"").decode("utf-8", "replace").split(":")
    if (
        len(parts) != 3
        or not parts[0]
        or not parts[2]
        or parts[1] not in ("cycle", "sleep", "recovery", "workout")
    ):
        raise RecordRejected("a tombstone whose key is not <user_id>:<type>:<id>")
    resource_type: ResourceType = parts[1]  # type: ignore[assignment] # checked just above
    if resource_type in _INT_IDS and not (parts[2].isascii() and parts[2].isdigit() and len(parts[2]) <= 18):
        raise RecordRejected(f"a {resource_type} tombstone whose id is not an integer")
    return Purge(parts[0], resource_type, parts[2])


def document_text(document: Mapping[str, object]) -> str:
    """The WHOOP document as compact JSON text (the form the normalizer's encoder writes)."""
    return _ENCODER.encode(document).decode()


def has_nul(value: object) -> bool:
    """A string anywhere in ``value`` (keys included) holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(item) for item in value)
    return False


def created_at_of(document: Mapping[str, object], fallback: datetime) -> datetime:
    """A recovery's ``created_at`` as WHOOP wrote it in the document (UTC), else ``fallback``."""
    return instant_or(document.get("created_at"), fallback)


def instant_or(raw: object, fallback: datetime) -> datetime:
    """``raw`` read as an ISO 8601 instant (UTC; naive means UTC), else ``fallback``."""
    if not isinstance(raw, str):
        return fallback
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return fallback
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def zones_text(zone_ms: Sequence[int] | None) -> str | None:
    """Heart-rate zones as a PostgreSQL array literal (``{a,b,c,d,e,f}``), None when absent."""
    return None if zone_ms is None else "{" + ",".join(map(str, zone_ms)) + "}"


def decoded_of(record: Recorded | Deleted) -> Decoded:
    """What the fold needs of a validated canonical record (its row: ``ROW_SOURCES``, as ``decode``'s)."""
    resource_type = RESOURCE_TYPES[type(record)]
    row: Row | None
    if isinstance(record, _DELETED):
        version = (record.occurred_at, record.normalizer_version)
        row = None
    else:
        version = (record.whoop_updated_at, record.normalizer_version)
        values = {**msgspec.structs.asdict(record), "document": document_text(record.document)}
        if isinstance(record, RecoveryRecorded):
            values["created_at"] = created_at_of(record.document, record.whoop_updated_at)
        elif isinstance(record, WorkoutRecorded):
            values["_zones"] = zones_text(record.zone_ms)
        row = tuple(map(values.get, ROW_SOURCES[resource_type]))
    return Decoded(
        resource_type,
        record.user_id,
        getattr(record, ID_FIELDS[resource_type]),
        version,
        row,
        record.whoop_user_id,
        record.occurred_at,
    )
