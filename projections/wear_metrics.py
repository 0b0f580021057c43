"""Read-model rows as the phone SDK's ``WearMetrics`` (``phone-contract.md``), without I/O.

``{timestamp, device_id, source, metrics, meta}`` and nothing else at the top level. ``timestamp``
is the start of what the record measures (a recovery: the start of the sleep it is based on), UTC,
milliseconds, ``Z``. ``device_id`` is ``whoop_<WHOOP member id>``, ``source`` is ``whoop``.
``metrics`` maps names to numbers (or null) in the project's units: ``hr``/``hr_max``/``resting_hr``
bpm, ``hrv_rmssd`` ms, ``calories`` kcal, ``distance`` metres, ``spo2`` %, ``skin_temp_c`` °C, and
WHOOP's own scores: ``recovery_score`` 0-100 %, ``strain`` 0-21, ``sleep_performance`` /
``sleep_efficiency`` / ``sleep_consistency`` 0-100 %, ``respiratory_rate`` breaths/min, sleep stage
durations ``*_ms`` in milliseconds. WHOOP has no stress, steps or SDNN: those keys are never sent.
``meta`` holds what is not a number: the record type and id, score state, local date and offset.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Protocol

__all__ = ["COLUMNS", "iso_instant", "wear_metrics"]


class Row(Protocol):
    """A row by column name (an ``asyncpg.Record`` or a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


COLUMNS: dict[str, tuple[str, ...]] = {
    "recovery": (
        "cycle_id",
        "sleep_id",
        "whoop_user_id",
        "score_state",
        "start_at",
        "end_at",
        "day",
        "user_calibrating",
        "recovery_score_pct",
        "resting_heart_rate_bpm",
        "hrv_rmssd_ms",
        "spo2_pct",
        "skin_temp_c",
    ),
    "sleep": (
        "sleep_id",
        "cycle_id",
        "whoop_user_id",
        "score_state",
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
        "asleep_ms",
        "respiratory_rate_bpm",
        "performance_pct",
        "consistency_pct",
        "efficiency_pct",
    ),
    "workouts": (
        "workout_id",
        "whoop_user_id",
        "score_state",
        "sport_name",
        "start_at",
        "end_at",
        "timezone_offset",
        "local_date",
        "strain",
        "energy_kcal",
        "average_heart_rate_bpm",
        "max_heart_rate_bpm",
        "distance_m",
        "altitude_gain_m",
        "percent_recorded",
    ),
    "cycles": (
        "cycle_id",
        "whoop_user_id",
        "score_state",
        "start_at",
        "end_at",
        "timezone_offset",
        "local_date",
        "strain",
        "energy_kcal",
        "average_heart_rate_bpm",
        "max_heart_rate_bpm",
    ),
}
"""The columns each kind's ``WearMetrics`` is made from."""


def iso_instant(moment: datetime) -> str:
    """UTC, milliseconds, ``Z``: the form WHOOP uses and strict ISO parsers accept."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso_instant(moment)


def _date_or_none(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _number(value: object) -> float | int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    raise TypeError(f"not a number: {type(value).__name__}")


def _envelope(row: Row, metrics: dict[str, float | int | None], meta: dict[str, object]) -> dict[str, object]:
    return {
        "timestamp": iso_instant(row["start_at"]),
        "device_id": f"whoop_{row['whoop_user_id']}",
        "source": "whoop",
        "metrics": metrics,
        "meta": meta,
    }


def _recovery(row: Row) -> dict[str, object]:
    metrics = {
        "recovery_score": _number(row["recovery_score_pct"]),
        "hrv_rmssd": _number(row["hrv_rmssd_ms"]),
        "resting_hr": _number(row["resting_heart_rate_bpm"]),
        "spo2": _number(row["spo2_pct"]),
        "skin_temp_c": _number(row["skin_temp_c"]),
    }
    meta: dict[str, object] = {
        "vendor": "whoop",
        "type": "recovery",
        "id": str(row["cycle_id"]),
        "cycle_id": row["cycle_id"],
        "sleep_id": row["sleep_id"],
        "score_state": row["score_state"],
        "user_calibrating": row["user_calibrating"],
        "local_date": _date_or_none(row["day"]),
        "end": _iso_or_none(row["end_at"]),
    }
    return _envelope(row, metrics, meta)


def _sleep(row: Row) -> dict[str, object]:
    metrics = {
        "sleep_performance": _number(row["performance_pct"]),
        "sleep_efficiency": _number(row["efficiency_pct"]),
        "sleep_consistency": _number(row["consistency_pct"]),
        "respiratory_rate": _number(row["respiratory_rate_bpm"]),
        "asleep_ms": _number(row["asleep_ms"]),
        "in_bed_ms": _number(row["in_bed_ms"]),
        "awake_ms": _number(row["awake_ms"]),
        "light_ms": _number(row["light_ms"]),
        "slow_wave_ms": _number(row["slow_wave_ms"]),
        "rem_ms": _number(row["rem_ms"]),
    }
    meta: dict[str, object] = {
        "vendor": "whoop",
        "type": "sleep",
        "id": row["sleep_id"],
        "cycle_id": row["cycle_id"],
        "nap": row["nap"],
        "score_state": row["score_state"],
        "local_date": _date_or_none(row["local_date"]),
        "timezone_offset": row["timezone_offset"],
        "end": _iso_or_none(row["end_at"]),
    }
    return _envelope(row, metrics, meta)


def _workout(row: Row) -> dict[str, object]:
    metrics = {
        "hr": _number(row["average_heart_rate_bpm"]),
        "hr_max": _number(row["max_heart_rate_bpm"]),
        "calories": _number(row["energy_kcal"]),
        "distance": _number(row["distance_m"]),
        "strain": _number(row["strain"]),
        "altitude_gain": _number(row["altitude_gain_m"]),
        "percent_recorded": _number(row["percent_recorded"]),
    }
    meta: dict[str, object] = {
        "vendor": "whoop",
        "type": "workout",
        "id": row["workout_id"],
        "sport_name": row["sport_name"],
        "score_state": row["score_state"],
        "local_date": _date_or_none(row["local_date"]),
        "timezone_offset": row["timezone_offset"],
        "end": _iso_or_none(row["end_at"]),
    }
    return _envelope(row, metrics, meta)


def _cycle(row: Row) -> dict[str, object]:
    metrics = {
        "hr": _number(row["average_heart_rate_bpm"]),
        "hr_max": _number(row["max_heart_rate_bpm"]),
        "calories": _number(row["energy_kcal"]),
        "strain": _number(row["strain"]),
    }
    meta: dict[str, object] = {
        "vendor": "whoop",
        "type": "cycle",
        "id": str(row["cycle_id"]),
        "score_state": row["score_state"],
        "local_date": _date_or_none(row["local_date"]),
        "timezone_offset": row["timezone_offset"],
        "end": _iso_or_none(row["end_at"]),
    }
    return _envelope(row, metrics, meta)


_BUILDERS: dict[str, Callable[[Row], dict[str, object]]] = {
    "recovery": _recovery,
    "sleep": _sleep,
    "workouts": _workout,
    "cycles": _cycle,
}


def wear_metrics(kind: str, row: Row) -> dict[str, object]:
    """The ``WearMetrics`` of one row of ``kind`` (``recovery``, ``sleep``, ``workouts``, ``cycles``)."""
    return _BUILDERS[kind](row)
