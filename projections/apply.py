"""The pure core of the projection: canonical records in, the row changes of one batch out.

Every resource has a version ``(updated_at, normalizer_version)``: WHOOP's ``updated_at`` for a
recorded resource, the deletion record's ``occurred_at`` for a deletion; the normalizer version
breaks ties, so a re-normalization of the same WHOOP document (a bug fix replayed) replaces what it
fixes. The state of a resource is the greatest version seen, a deletion winning a tie. That merge is
commutative and associative, so a batch can be reduced to at most one upsert and one deletion per
resource and the result does not depend on where batches start or end: a replay after a crash, a
duplicate or an out-of-order version changes nothing. A Kafka tombstone (null value, the erasure of a
resource) is the one non-commutative event: it forgets the resource entirely, then later records of
the batch apply again (the log orders them).

No I/O, no clock, no logging: :func:`read_record` decodes one Kafka record into its canonical type
(``schemas.serde``, msgspec) and :func:`plan_batch` folds decoded records into :class:`Changes`, which
``projections.store`` writes. The worker reads through ``projections.decode.decode_record``, which
decodes with the same contract types and the same checks (:class:`Storable`) and builds the row
directly; :func:`decoded_of` builds the same row from a canonical record.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NamedTuple,
    NoReturn,
    TypeVar,
    Union,
    get_args,
    get_origin,
)

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

from .errors import RecordRejected

__all__ = [
    "CYCLE_COLUMNS",
    "ID_FIELDS",
    "RECOVERY_COLUMNS",
    "RESOURCE_TYPES",
    "ROW_SOURCES",
    "SLEEP_COLUMNS",
    "WORKOUT_COLUMNS",
    "Activity",
    "ActivityDelta",
    "Changes",
    "Decoded",
    "Projectable",
    "Purge",
    "StatusDelta",
    "Storable",
    "TableChanges",
    "Version",
    "created_at_of",
    "decoded_of",
    "document_text",
    "has_nul",
    "instant_or",
    "plan_activity",
    "plan_batch",
    "purge_of",
    "read_activity",
    "read_record",
    "zones_text",
]

Version = tuple[datetime, int]
"""``(updated_at or deletion time, normalizer_version)``: greater wins, a deletion wins a tie."""
Row = tuple[object, ...]
K = TypeVar("K", int, str)
ResourceType = Literal["cycle", "sleep", "recovery", "workout"]

CYCLE_COLUMNS = (
    "user_id",
    "cycle_id",
    "whoop_user_id",
    "version",
    "normalizer_version",
    "score_state",
    "start_at",
    "end_at",
    "timezone_offset",
    "local_date",
    "strain",
    "energy_kcal",
    "average_heart_rate_bpm",
    "max_heart_rate_bpm",
    "document",
)
SLEEP_COLUMNS = (
    "user_id",
    "sleep_id",
    "whoop_user_id",
    "version",
    "normalizer_version",
    "score_state",
    "cycle_id",
    "nap",
    "start_at",
    "end_at",
    "timezone_offset",
    "local_date",
    "in_bed_ms",
    "awake_ms",
    "light_ms",
    "slow_wave_ms",
    "rem_ms",
    "no_data_ms",
    "asleep_ms",
    "sleep_needed_ms",
    "sleep_cycle_count",
    "disturbance_count",
    "respiratory_rate_bpm",
    "performance_pct",
    "consistency_pct",
    "efficiency_pct",
    "document",
)
RECOVERY_COLUMNS = (
    "user_id",
    "cycle_id",
    "sleep_id",
    "whoop_user_id",
    "version",
    "normalizer_version",
    "score_state",
    "local_date",
    "created_at",
    "user_calibrating",
    "recovery_score_pct",
    "resting_heart_rate_bpm",
    "hrv_rmssd_ms",
    "spo2_pct",
    "skin_temp_c",
    "document",
)
WORKOUT_COLUMNS = (
    "user_id",
    "workout_id",
    "whoop_user_id",
    "version",
    "normalizer_version",
    "score_state",
    "sport_name",
    "sport_id",
    "start_at",
    "end_at",
    "timezone_offset",
    "local_date",
    "strain",
    "energy_kcal",
    "average_heart_rate_bpm",
    "max_heart_rate_bpm",
    "percent_recorded",
    "distance_m",
    "altitude_gain_m",
    "altitude_change_m",
    "zone_ms",
    "document",
)
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


@dataclass
class TableChanges(Generic[K]):
    """The reduced changes of one table in one batch, keyed by ``(user_id, resource id)``."""

    resource_type: ResourceType
    purges: set[tuple[str, K]] = field(default_factory=set)
    deletes: dict[tuple[str, K], Version] = field(default_factory=dict)
    upserts: dict[tuple[str, K], tuple[Version, Row]] = field(default_factory=dict)

    def upsert(self, key: tuple[str, K], version: Version, row: Row) -> None:
        """Keep ``row`` when its version is greater than every upsert and deletion seen for ``key``."""
        deleted = self.deletes.get(key)
        if deleted is not None and version <= deleted:
            return
        current = self.upserts.get(key)
        if current is None or version > current[0]:
            self.upserts[key] = (version, row)

    def delete(self, key: tuple[str, K], version: Version) -> None:
        """Keep the greatest deletion; it removes every upsert not newer than itself."""
        deleted = self.deletes.get(key)
        if deleted is not None and version <= deleted:
            return
        self.deletes[key] = version
        current = self.upserts.get(key)
        if current is not None and current[0] <= version:
            del self.upserts[key]

    def purge(self, key: tuple[str, K]) -> None:
        """Forget ``key``: what came before in this batch is dropped, the store drops what it holds."""
        self.purges.add(key)
        self.deletes.pop(key, None)
        self.upserts.pop(key, None)

    def __bool__(self) -> bool:
        return bool(self.purges or self.deletes or self.upserts)


@dataclass
class StatusDelta:
    """What one batch applied for one member."""

    whoop_user_id: int | None = None
    last_record_at: datetime | None = None
    last_whoop_update_at: datetime | None = None
    records: int = 0

    def add(
        self, whoop_user_id: int | None, occurred_at: datetime | None, updated_at: datetime | None
    ) -> None:
        self.records += 1
        if whoop_user_id is not None:
            self.whoop_user_id = whoop_user_id
        if occurred_at is not None and (self.last_record_at is None or occurred_at > self.last_record_at):
            self.last_record_at = occurred_at
        if updated_at is not None and (
            self.last_whoop_update_at is None or updated_at > self.last_whoop_update_at
        ):
            self.last_whoop_update_at = updated_at


@dataclass
class Changes:
    """Everything one batch changes, table by table, plus what it applied per member."""

    cycles: TableChanges[int] = field(default_factory=lambda: TableChanges[int]("cycle"))
    sleeps: TableChanges[str] = field(default_factory=lambda: TableChanges[str]("sleep"))
    recoveries: TableChanges[int] = field(default_factory=lambda: TableChanges[int]("recovery"))
    workouts: TableChanges[str] = field(default_factory=lambda: TableChanges[str]("workout"))
    status: dict[str, StatusDelta] = field(default_factory=dict)

    def member(self, user_id: str) -> StatusDelta:
        delta = self.status.get(user_id)
        if delta is None:
            delta = self.status[user_id] = StatusDelta()
        return delta


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


def plan_batch(records: Iterable[Projectable], into: Changes | None = None) -> Changes:
    """Fold records (in log order) into the reduced changes of one batch (``into``, to go on folding)."""
    changes = Changes() if into is None else into
    tables: dict[str, TableChanges[Any]] = {
        "cycle": changes.cycles,
        "sleep": changes.sleeps,
        "recovery": changes.recoveries,
        "workout": changes.workouts,
    }
    status = changes.status
    for record in records:
        if type(record) is not Decoded:
            if type(record) is Purge:
                _plan_purge(record, changes)
                continue
            record = decoded_of(record)  # type: ignore[arg-type] # a canonical model: Recorded | Deleted
        table = tables[record.resource_type]
        key = (record.user_id, record.resource_id)
        if record.row is None:
            table.delete(key, record.version)
            updated_at = None
        else:
            table.upsert(key, record.version, record.row)
            updated_at = record.version[0]
        delta = status.get(record.user_id)
        if delta is None:
            delta = status[record.user_id] = StatusDelta()
        delta.add(record.whoop_user_id, record.occurred_at, updated_at)
    return changes


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


def _plan_purge(record: Purge, changes: Changes) -> None:
    if record.resource_type == "cycle":
        changes.cycles.purge((record.user_id, int(record.resource_id)))
    elif record.resource_type == "recovery":
        changes.recoveries.purge((record.user_id, int(record.resource_id)))
    elif record.resource_type == "sleep":
        changes.sleeps.purge((record.user_id, record.resource_id))
    else:
        changes.workouts.purge((record.user_id, record.resource_id))
    changes.member(record.user_id).add(None, None, None)


# --- sync activity: arrivals on the webhook and document topics, per member -------------------------


@dataclass(frozen=True)
class Activity:
    """One webhook received, or one WHOOP document fetched, for a member."""

    user_id: str
    webhook_at: datetime | None = None
    fetch_at: datetime | None = None


@dataclass
class ActivityDelta:
    """What one batch saw for one member."""

    last_webhook_at: datetime | None = None
    last_fetch_at: datetime | None = None
    webhooks: int = 0
    documents: int = 0


class _ActivityEvent(msgspec.Struct, frozen=True):
    """The few envelope fields the sync status needs; the rest of the event is not read."""

    event_type: str
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^:\x00]+$")]
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    fetched_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


_ACTIVITY = msgspec.json.Decoder(_ActivityEvent)


def read_activity(value: bytes | None) -> Activity | None:
    """A webhook or fetch of a member, or None for anything else (those topics belong to other stages)."""
    if value is None:
        return None
    try:
        event = _ACTIVITY.decode(value)
    except msgspec.DecodeError:
        return None
    if event.event_type == "WebhookReceived":
        return Activity(event.user_id, webhook_at=event.occurred_at.astimezone(UTC))
    if event.event_type == "DocumentFetched":
        return Activity(event.user_id, fetch_at=(event.fetched_at or event.occurred_at).astimezone(UTC))
    return None


def plan_activity(items: Iterable[Activity]) -> dict[str, ActivityDelta]:
    """Fold arrivals into one delta per member: the latest times and the counts."""
    deltas: dict[str, ActivityDelta] = {}
    for item in items:
        delta = deltas.setdefault(item.user_id, ActivityDelta())
        if item.webhook_at is not None:
            delta.webhooks += 1
            if delta.last_webhook_at is None or item.webhook_at > delta.last_webhook_at:
                delta.last_webhook_at = item.webhook_at
        if item.fetch_at is not None:
            delta.documents += 1
            if delta.last_fetch_at is None or item.fetch_at > delta.last_fetch_at:
                delta.last_fetch_at = item.fetch_at
    return deltas
