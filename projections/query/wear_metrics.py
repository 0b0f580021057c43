"""Read-model rows as the phone SDK's ``WearMetrics`` (``phone-contract.md``): one declarative shape per
kind, rendered two ways from it, in Python (:func:`wear_metrics`, one row) and in SQL
(:func:`wear_metrics_sql`, an expression PostgreSQL evaluates to the item's JSON text, so that a
window of ~100 items is rendered where the rows are, without the API process decoding a row).

``{timestamp, device_id, source, metrics, meta}`` and nothing else at the top level. ``timestamp``
is the start of what the record measures (a recovery: the start of the sleep it is based on), UTC,
milliseconds, ``Z``. ``device_id`` is ``whoop_<WHOOP member id>``, ``source`` is ``whoop``.
``metrics`` maps names to numbers (or null) in the project's units: ``hr``/``hr_max``/``resting_hr``
bpm, ``hrv_rmssd`` ms, ``calories`` kcal, ``distance`` metres, ``spo2`` %, ``skin_temp_c`` °C, and
WHOOP's own scores: ``recovery_score`` 0-100 %, ``strain`` 0-21, ``sleep_performance`` /
``sleep_efficiency`` / ``sleep_consistency`` 0-100 %, ``respiratory_rate`` breaths/min, sleep stage
durations ``*_ms`` in milliseconds. WHOOP has no stress, steps or SDNN: those keys are never sent.
``meta`` holds what is not a number: the record type and id, score state, local date and offset.

Both renderings give the same JSON value (a test compares them on real rows); the SQL one writes a
whole number held as a float without ``.0`` (``64`` for ``64.0``), the same number in JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

import orjson

__all__ = ["COLUMNS", "SHAPES", "iso_instant", "wear_metrics", "wear_metrics_sql"]


class Row(Protocol):
    """A row by column name (an ``asyncpg.Record`` or a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


Form = Literal["number", "string", "boolean", "id", "date", "instant", "const"]
"""How a value is written: a JSON number, string or boolean as stored; ``id``: an integer written as a
string; ``date``: ``YYYY-MM-DD``; ``instant``: UTC, milliseconds, ``Z``; ``const``: a fixed string."""


@dataclass(frozen=True)
class Field:
    """One key of ``metrics`` or ``meta``: its ``form`` and the column (or, for ``const``, the text)."""

    key: str
    form: Form
    source: str


@dataclass(frozen=True)
class Shape:
    """The ``WearMetrics`` of one kind: its metrics and meta."""

    metrics: tuple[Field, ...]
    meta: tuple[Field, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """The table columns it is made from: the member and the start (``device_id``,
        ``timestamp``), then the column of every metric and meta key."""
        sources = (field.source for field in (*self.metrics, *self.meta) if field.form != "const")
        return tuple(dict.fromkeys(("whoop_user_id", "start_at", *sources)))


def _numbers(*pairs: tuple[str, str]) -> tuple[Field, ...]:
    return tuple(Field(key, "number", column) for key, column in pairs)


def _meta(kind: str, *fields: Field) -> tuple[Field, ...]:
    return (Field("vendor", "const", "whoop"), Field("type", "const", kind), *fields)


SHAPES: dict[str, Shape] = {
    "recovery": Shape(
        metrics=_numbers(
            ("recovery_score", "recovery_score_pct"),
            ("hrv_rmssd", "hrv_rmssd_ms"),
            ("resting_hr", "resting_heart_rate_bpm"),
            ("spo2", "spo2_pct"),
            ("skin_temp_c", "skin_temp_c"),
        ),
        meta=_meta(
            "recovery",
            Field("id", "id", "cycle_id"),
            Field("cycle_id", "number", "cycle_id"),
            Field("sleep_id", "string", "sleep_id"),
            Field("score_state", "string", "score_state"),
            Field("user_calibrating", "boolean", "user_calibrating"),
            Field("local_date", "date", "day"),
            Field("end", "instant", "end_at"),
        ),
    ),
    "sleep": Shape(
        metrics=_numbers(
            ("sleep_performance", "performance_pct"),
            ("sleep_efficiency", "efficiency_pct"),
            ("sleep_consistency", "consistency_pct"),
            ("respiratory_rate", "respiratory_rate_bpm"),
            ("asleep_ms", "asleep_ms"),
            ("in_bed_ms", "in_bed_ms"),
            ("awake_ms", "awake_ms"),
            ("light_ms", "light_ms"),
            ("slow_wave_ms", "slow_wave_ms"),
            ("rem_ms", "rem_ms"),
        ),
        meta=_meta(
            "sleep",
            Field("id", "string", "sleep_id"),
            Field("cycle_id", "number", "cycle_id"),
            Field("nap", "boolean", "nap"),
            Field("score_state", "string", "score_state"),
            Field("local_date", "date", "local_date"),
            Field("timezone_offset", "string", "timezone_offset"),
            Field("end", "instant", "end_at"),
        ),
    ),
    "workouts": Shape(
        metrics=_numbers(
            ("hr", "average_heart_rate_bpm"),
            ("hr_max", "max_heart_rate_bpm"),
            ("calories", "energy_kcal"),
            ("distance", "distance_m"),
            ("strain", "strain"),
            ("altitude_gain", "altitude_gain_m"),
            ("percent_recorded", "percent_recorded"),
        ),
        meta=_meta(
            "workout",
            Field("id", "string", "workout_id"),
            Field("sport_name", "string", "sport_name"),
            Field("score_state", "string", "score_state"),
            Field("local_date", "date", "local_date"),
            Field("timezone_offset", "string", "timezone_offset"),
            Field("end", "instant", "end_at"),
        ),
    ),
    "cycles": Shape(
        metrics=_numbers(
            ("hr", "average_heart_rate_bpm"),
            ("hr_max", "max_heart_rate_bpm"),
            ("calories", "energy_kcal"),
            ("strain", "strain"),
        ),
        meta=_meta(
            "cycle",
            Field("id", "id", "cycle_id"),
            Field("score_state", "string", "score_state"),
            Field("local_date", "date", "local_date"),
            Field("timezone_offset", "string", "timezone_offset"),
            Field("end", "instant", "end_at"),
        ),
    ),
}
"""The ``WearMetrics`` of each kind (``recovery``, ``sleep``, ``workouts``, ``cycles``)."""

COLUMNS: dict[str, tuple[str, ...]] = {kind: shape.columns for kind, shape in SHAPES.items()}
"""The columns each kind's ``WearMetrics`` is made from."""


# --- Python -------------------------------------------------------------------------------------


def iso_instant(moment: datetime) -> str:
    """UTC, milliseconds, ``Z``: the form WHOOP uses and strict ISO parsers accept."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: object) -> float | int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    raise TypeError(f"not a number: {type(value).__name__}")


def _date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _instant(value: datetime | None) -> str | None:
    return None if value is None else iso_instant(value)


def _as_is(value: object) -> object:
    return value


def _id(value: object) -> str:
    return str(value)


_PYTHON: dict[str, Callable[[Any], object]] = {
    "number": _number,
    "string": _as_is,
    "boolean": _as_is,
    "id": _id,
    "date": _date,
    "instant": _instant,
}


def _values(row: Row, fields: tuple[Field, ...]) -> dict[str, Any]:
    return {
        field.key: field.source if field.form == "const" else _PYTHON[field.form](row[field.source])
        for field in fields
    }


def wear_metrics(kind: str, row: Row) -> dict[str, object]:
    """The ``WearMetrics`` of one row of ``kind`` (``recovery``, ``sleep``, ``workouts``, ``cycles``)."""
    shape = SHAPES[kind]
    return {
        "timestamp": iso_instant(row["start_at"]),
        "device_id": f"whoop_{row['whoop_user_id']}",
        "source": "whoop",
        "metrics": _values(row, shape.metrics),
        "meta": _values(row, shape.meta),
    }


# --- SQL ----------------------------------------------------------------------------------------

_UTC_MS = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quoted(expression: str) -> str:
    """A JSON string of a text expression that needs no escaping (digits, dates, instants)."""
    return f"""'"' || {expression} || '"'"""


def _sql_value(field: Field, table: str) -> str:
    """The JSON text of one value (``null`` when the column is null)."""
    column = f"{table}.{field.source}"
    if field.form == "const":
        return _sql_literal(orjson.dumps(field.source).decode())
    expression = {
        "number": f"{column}::text",  # PostgreSQL's shortest exact float text, as orjson's
        "string": f"to_json({column})::text",  # escaped as JSON
        "boolean": f"{column}::text",
        "id": _quoted(f"{column}::text"),
        "date": _quoted(f"to_char({column}, 'YYYY-MM-DD')"),
        "instant": _quoted(f"to_char({column} AT TIME ZONE 'UTC', {_UTC_MS})"),
    }[field.form]
    return f"coalesce({expression}, 'null')"


def _sql_object(pairs: list[tuple[str, str]]) -> str:
    """Concatenation of ``{"key":value,...}`` from (key, JSON text expression) pairs."""
    parts = []
    for index, (key, value) in enumerate(pairs):
        lead = "{" if index == 0 else ","
        parts.append(_sql_literal(lead + orjson.dumps(key).decode() + ":"))
        parts.append(value)
    parts.append("'}'")
    return " || ".join(parts)


def wear_metrics_sql(kind: str, table: str) -> str:
    """A text expression: the ``WearMetrics`` JSON of the row of ``kind`` aliased ``table``."""
    shape = SHAPES[kind]
    metrics = _sql_object([(field.key, _sql_value(field, table)) for field in shape.metrics])
    meta = _sql_object([(field.key, _sql_value(field, table)) for field in shape.meta])
    start = Field("timestamp", "instant", "start_at")
    device = _quoted(f"'whoop_' || {table}.whoop_user_id::text")
    return _sql_object(
        [
            ("timestamp", _sql_value(start, table)),
            ("device_id", device),
            ("source", _sql_literal('"whoop"')),
            ("metrics", metrics),
            ("meta", meta),
        ]
    )
