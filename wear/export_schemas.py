"""The Parquet schemas of ``wear export``: one explicit, versioned pyarrow schema per record type.

Written out here field by field, never inferred from the data, so a file's columns depend on its
type alone (``tests/unit/wear/test_export_schemas.py`` pins each one to its contract in
``schemas/records.py`` or its table in ``projections/read_model_ddl.py``, so the two cannot drift
apart silently). Every file carries ``wear.export.schema = <name>/<SCHEMA_VERSION>`` in its metadata;
a change of a schema here is a new version.

Column types: text → ``string``; integers → ``int64``; numbers → ``float64``; ``bool``; instants →
``timestamp[us, UTC]``; dates → ``date32``; WHOOP's JSON documents (``document``, ``context``) →
``string`` holding the JSON text; lists → ``list<int64>`` / ``list<string>``. ``event_type`` is the
first column of every record file.

Pure: :func:`record_table` turns decoded records into a table of their schema, :func:`record_of`
turns a row read back into the record it came from (what the round trip checks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
import orjson
import pyarrow as pa

from schemas.events import Envelope
from schemas.records import RECORD_TYPES

__all__ = [
    "DOCUMENT_SCHEMA",
    "JSON_COLUMNS",
    "READ_MODEL_SCHEMAS",
    "RECORD_SCHEMAS",
    "SCHEMA_VERSION",
    "record_of",
    "record_table",
    "row_table",
    "schema_of",
]

SCHEMA_VERSION: Final = 1
JSON_COLUMNS: Final = frozenset({"document", "context"})
"""Columns holding JSON text (a WHOOP document, the fetcher's context)."""

_TS = pa.timestamp("us", tz="UTC")
_STR = pa.string()
_INT = pa.int64()
_FLOAT = pa.float64()
_BOOL = pa.bool_()
_DATE = pa.date32()


def _f(name: str, kind: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, kind, nullable=nullable)


def _schema(name: str, fields: Sequence[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={"wear.export.schema": f"{name}/{SCHEMA_VERSION}"})


_ENVELOPE = (
    _f("event_type", _STR),
    _f("event_id", _STR),
    _f("schema_version", _INT),
    _f("occurred_at", _TS),
    _f("user_id", _STR),
    _f("source", _STR),
    _f("causation_id", _STR, True),
    _f("trace_id", _STR, True),
)
_RECORDED = (
    *_ENVELOPE,
    _f("whoop_user_id", _INT),
    _f("whoop_updated_at", _TS),
    _f("normalizer_version", _INT),
    _f("score_state", _STR),
    _f("document", _STR),
)
_DELETED = (*_ENVELOPE, _f("whoop_user_id", _INT), _f("normalizer_version", _INT))
_SPAN = (_f("start", _TS), _f("end", _TS), _f("timezone_offset", _STR), _f("local_date", _DATE))
_HEART = (
    _f("strain", _FLOAT, True),
    _f("energy_kcal", _FLOAT, True),
    _f("average_heart_rate_bpm", _INT, True),
    _f("max_heart_rate_bpm", _INT, True),
)
_SLEEP_MS = (
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
)
_SLEEP_PCT = ("respiratory_rate_bpm", "performance_pct", "consistency_pct", "efficiency_pct")
_RECOVERY_SCORE = ("recovery_score_pct", "resting_heart_rate_bpm", "hrv_rmssd_ms", "spo2_pct", "skin_temp_c")
_WORKOUT_MORE = ("percent_recorded", "distance_m", "altitude_gain_m", "altitude_change_m")

RECORD_SCHEMAS: Final[Mapping[str, pa.Schema]] = {
    "CycleRecorded": _schema(
        "CycleRecorded",
        [
            *_RECORDED,
            _f("cycle_id", _INT),
            _f("start", _TS),
            _f("end", _TS, True),
            _f("timezone_offset", _STR),
            _f("local_date", _DATE),
            *_HEART,
        ],
    ),
    "SleepRecorded": _schema(
        "SleepRecorded",
        [
            *_RECORDED,
            _f("sleep_id", _STR),
            _f("cycle_id", _INT),
            _f("nap", _BOOL),
            *_SPAN,
            *(_f(name, _INT, True) for name in _SLEEP_MS),
            *(_f(name, _FLOAT, True) for name in _SLEEP_PCT),
        ],
    ),
    "RecoveryRecorded": _schema(
        "RecoveryRecorded",
        [
            *_RECORDED,
            _f("cycle_id", _INT),
            _f("sleep_id", _STR),
            _f("local_date", _DATE, True),
            _f("user_calibrating", _BOOL, True),
            *(_f(name, _FLOAT, True) for name in _RECOVERY_SCORE),
        ],
    ),
    "WorkoutRecorded": _schema(
        "WorkoutRecorded",
        [
            *_RECORDED,
            _f("workout_id", _STR),
            _f("sport_name", _STR),
            _f("sport_id", _INT, True),
            *_SPAN,
            *_HEART,
            *(_f(name, _FLOAT, True) for name in _WORKOUT_MORE),
            _f("zone_ms", pa.list_(pa.field("element", _INT, nullable=False)), True),
        ],
    ),
    "CycleDeleted": _schema("CycleDeleted", [*_DELETED, _f("cycle_id", _INT)]),
    "SleepDeleted": _schema("SleepDeleted", [*_DELETED, _f("sleep_id", _STR)]),
    "RecoveryDeleted": _schema(
        "RecoveryDeleted", [*_DELETED, _f("cycle_id", _INT), _f("sleep_id", _STR, True)]
    ),
    "WorkoutDeleted": _schema("WorkoutDeleted", [*_DELETED, _f("workout_id", _STR)]),
}
"""The schema of each canonical record type of ``wear.records.v1`` (``schemas/records.py``)."""

DOCUMENT_SCHEMA: Final = _schema(
    "DocumentFetched",
    [
        *_ENVELOPE,
        _f("whoop_user_id", _INT),
        _f("resource_type", _STR),
        _f("resource_id", _STR),
        _f("fetched_at", _TS),
        _f("deleted", _BOOL),
        _f("document", _STR, True),
        _f("context", _STR),
        _f("caused_by", pa.list_(pa.field("element", _STR, nullable=False))),
    ],
)
"""The schema of ``whoop.documents.v1``'s ``DocumentFetched`` (the raw WHOOP document as JSON text)."""

_ROW_HEAD = (
    _f("user_id", _STR),
    _f("whoop_user_id", _INT),
    _f("version", _TS),
    _f("normalizer_version", _INT),
    _f("score_state", _STR),
)
_ROW_SPAN = (_f("timezone_offset", _STR), _f("local_date", _DATE))

READ_MODEL_SCHEMAS: Final[Mapping[str, pa.Schema]] = {
    "rm_cycles": _schema(
        "rm_cycles",
        [
            *_ROW_HEAD,
            _f("cycle_id", _INT),
            _f("start_at", _TS),
            _f("end_at", _TS, True),
            *_ROW_SPAN,
            *_HEART,
            _f("document", _STR),
        ],
    ),
    "rm_sleeps": _schema(
        "rm_sleeps",
        [
            *_ROW_HEAD,
            _f("sleep_id", _STR),
            _f("cycle_id", _INT),
            _f("nap", _BOOL),
            _f("start_at", _TS),
            _f("end_at", _TS),
            *_ROW_SPAN,
            *(_f(name, _INT, True) for name in _SLEEP_MS),
            *(_f(name, _FLOAT, True) for name in _SLEEP_PCT),
            _f("document", _STR),
        ],
    ),
    "rm_recoveries": _schema(
        "rm_recoveries",
        [
            *_ROW_HEAD,
            _f("cycle_id", _INT),
            _f("sleep_id", _STR),
            _f("local_date", _DATE, True),
            _f("created_at", _TS),
            _f("user_calibrating", _BOOL, True),
            *(_f(name, _FLOAT, True) for name in _RECOVERY_SCORE),
            _f("start_at", _TS),
            _f("end_at", _TS, True),
            _f("day", _DATE, True),
            _f("document", _STR),
        ],
    ),
    "rm_workouts": _schema(
        "rm_workouts",
        [
            *_ROW_HEAD,
            _f("workout_id", _STR),
            _f("sport_name", _STR),
            _f("sport_id", _INT, True),
            _f("start_at", _TS),
            _f("end_at", _TS),
            *_ROW_SPAN,
            *_HEART,
            *(_f(name, _FLOAT, True) for name in _WORKOUT_MORE),
            _f("zone_ms", pa.list_(pa.field("element", _INT, nullable=True)), True),
            _f("document", _STR),
        ],
    ),
}
"""The schema of each read-model table exported (its columns but the generated ``long_span``)."""


def schema_of(name: str) -> pa.Schema:
    """The schema named ``name``: a record type, ``DocumentFetched`` or a read-model table."""
    if name == "DocumentFetched":
        return DOCUMENT_SCHEMA
    return RECORD_SCHEMAS.get(name) or READ_MODEL_SCHEMAS[name]


_JSON = msgspec.json.Encoder()


def _json_text(value: Any) -> str | None:
    return None if value is None else _JSON.encode(value).decode()


def record_table(name: str, records: Sequence[Envelope]) -> pa.Table:
    """``records`` (all of type ``name``: a record type or ``DocumentFetched``) as a table of its schema."""
    schema = schema_of(name)
    arrays = []
    for field in schema:
        column = field.name
        if column == "event_type":
            values: list[Any] = [name] * len(records)
        elif column in JSON_COLUMNS:
            values = [_json_text(getattr(record, column)) for record in records]
        else:
            values = [getattr(record, column) for record in records]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def row_table(name: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Read-model ``rows`` (mappings by column; ``document`` as JSON text) as a table of ``name``'s schema."""
    schema = READ_MODEL_SCHEMAS[name]
    arrays = [pa.array([row[field.name] for row in rows], type=field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def record_of(row: Mapping[str, Any]) -> Envelope:
    """The record (or ``DocumentFetched``) a row of an exported file holds, validated by its contract."""
    values = {
        column: orjson.loads(value) if column in JSON_COLUMNS and value is not None else value
        for column, value in row.items()
    }
    model = RECORD_TYPES[str(values["event_type"])]
    return msgspec.convert(values, model)
