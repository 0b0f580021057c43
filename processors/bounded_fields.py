"""Readers of a WHOOP document's values within physiological bounds, for the normalizer (pure).

``BOUNDS`` holds the inclusive limits of every numeric record field, in our units (keyed by record
field): a value outside them is not physiology, it is a bug upstream, and it is dead-lettered
rather than served. The readers here check a document's values against them, in our units (kJ
become kcal: ``schemas.units``), and the shape every resource shares: the document is the member's,
its id is the fetched resource's, a span is 0 to 48 h, a score is read only when ``score_state`` is
``SCORED``. Each takes the usual case (a value of the exact type, within bounds) without building a
JSON path; anything else goes to ``processors.whoop_fields``, which reads ``72.0`` as an integer or
raises ``NormalizationError`` naming the path and what is wrong there (never the value itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

from processors import whoop_fields as wf
from processors.errors import NormalizationError
from schemas.records import DocumentFetched, ScoreState
from schemas.units import KJ_PER_KCAL, STRAIN_MAX, kcal_from_kj

__all__ = [
    "BOUNDS",
    "document_of",
    "float_at",
    "float_or_none",
    "floats_or_none",
    "heart_rates",
    "int_at",
    "ints",
    "kcal",
    "same_resource",
    "score_of",
    "span_of",
]

_Object = wf.JsonObject
_H = 3_600_000  # one hour in ms
BOUNDS: Final[Mapping[str, tuple[float, float]]] = MappingProxyType(
    {
        # inclusive physiological (or physical) limits of each numeric record field, in our units
        "strain": (0.0, STRAIN_MAX),
        "energy_kcal": (0.0, 25_000.0),  # ~104,600 kJ: beyond any day, even a 30 h one
        "average_heart_rate_bpm": (25, 250),
        "max_heart_rate_bpm": (25, 250),
        "resting_heart_rate_bpm": (20.0, 200.0),
        "hrv_rmssd_ms": (0.0, 500.0),
        "recovery_score_pct": (0.0, 100.0),
        "spo2_pct": (50.0, 100.0),
        "skin_temp_c": (20.0, 45.0),  # absolute skin temperature, not a deviation
        "respiratory_rate_bpm": (4.0, 60.0),
        "performance_pct": (0.0, 100.0),
        "consistency_pct": (0.0, 100.0),
        "efficiency_pct": (0.0, 100.0),
        "percent_recorded": (0.0, 100.0),
        "in_bed_ms": (0, 48 * _H),
        "awake_ms": (0, 48 * _H),
        "light_ms": (0, 48 * _H),
        "slow_wave_ms": (0, 48 * _H),
        "rem_ms": (0, 48 * _H),
        "no_data_ms": (0, 48 * _H),
        "asleep_ms": (0, 48 * _H),
        "sleep_needed_ms": (0, 48 * _H),
        "sleep_cycle_count": (0, 100),
        "disturbance_count": (0, 1_000),
        "distance_m": (0.0, 1_000_000.0),
        "altitude_gain_m": (0.0, 100_000.0),
        "altitude_change_m": (-20_000.0, 20_000.0),
        "zone_ms": (0, 48 * _H),  # each of the six zones
    }
)
_MAX_ACTIVITY = timedelta(hours=48)  # the longest sleep or workout we accept
_SCORE_STATES: frozenset[str] = frozenset(("SCORED", "PENDING_SCORE", "UNSCORABLE"))


def document_of(doc: DocumentFetched, expected: str) -> _Object:
    """The WHOOP document of ``doc``, which must be there and be the fetched member's."""
    if doc.document is None:
        raise NormalizationError(f"document: absent on a {expected} that is not deleted")
    user_id = doc.document.get("user_id")
    if user_id is not None and (
        isinstance(user_id, bool) or not isinstance(user_id, int) or user_id != doc.whoop_user_id
    ):
        raise NormalizationError("user_id: does not match the member the document was fetched for")
    return doc.document


def same_resource(doc: DocumentFetched, resource_id: str, field: str) -> None:
    """Refuse a document whose own id is not the resource that was fetched."""
    if resource_id != doc.resource_id:
        raise NormalizationError(
            f"{field}: {resource_id[:64]!r} is not the fetched resource {doc.resource_id!r}"
        )


def int_at(obj: _Object, key: str, where: str, bound: str) -> int:
    """The integer at ``key``, within ``BOUNDS[bound]``."""
    low, high = BOUNDS[bound]
    value = obj.get(key)
    if type(value) is int and low <= value <= high:  # the usual case, without building a path
        return value
    return wf.int_value(wf.required(obj, key, where), f"{where}{key}", low, high)


def float_at(obj: _Object, key: str, where: str, bound: str) -> float:
    """The number at ``key`` as a float, within ``BOUNDS[bound]``."""
    low, high = BOUNDS[bound]
    value = obj.get(key)
    if type(value) is float and low <= value <= high:  # the usual case; BOUNDS are finite: no NaN
        return value
    return wf.float_value(wf.required(obj, key, where), f"{where}{key}", low, high)


def float_or_none(obj: _Object, key: str, where: str, bound: str) -> float | None:
    """:func:`float_at`, or None when the value is absent or null."""
    return None if obj.get(key) is None else float_at(obj, key, where, bound)


def ints(obj: _Object, fields: tuple[tuple[str, str], ...], where: str, out: dict[str, Any]) -> None:
    """:func:`int_at` of each ``(record field, WHOOP key)`` in order, into ``out``, in one loop."""
    bounds = BOUNDS
    for field, key in fields:
        low, high = bounds[field]
        value = obj.get(key)
        if type(value) is not int or not low <= value <= high:  # the reader says why, or reads 72.0
            value = wf.int_value(wf.required(obj, key, where), f"{where}{key}", low, high)
        out[field] = value


def floats_or_none(
    obj: _Object, fields: tuple[tuple[str, str], ...], where: str, out: dict[str, object]
) -> None:
    """:func:`float_or_none` of each ``(record field, WHOOP key)`` in order, into ``out``, in one loop."""
    bounds = BOUNDS
    for field, key in fields:
        value = obj.get(key)
        if value is not None:
            low, high = bounds[field]
            if type(value) is not float or not low <= value <= high:  # BOUNDS are finite: no NaN
                value = wf.float_value(value, f"{where}{key}", low, high)
        out[field] = value


def span_of(obj: _Object) -> tuple[datetime, datetime]:
    """``start`` and ``end``, 0 to 48 h apart."""
    start, end = wf.instant_at(obj, "start"), wf.instant_at(obj, "end")
    if not timedelta(0) <= end - start <= _MAX_ACTIVITY:
        raise NormalizationError("end: not 0 to 48 h after start")
    return start, end


def score_of(obj: _Object) -> tuple[ScoreState, _Object | None]:
    """The score state, and the score when it is ``SCORED`` (then required)."""
    state = obj.get("score_state")
    if state == "SCORED":
        return "SCORED", wf.object_at(obj, "score", "")
    state = wf.required(obj, "score_state", "")
    # a score on an unscored record is not final: it is not read
    if state == "PENDING_SCORE":
        return "PENDING_SCORE", None
    if state == "UNSCORABLE":
        return "UNSCORABLE", None
    shown = state[:32] if isinstance(state, str) else wf.kind(state)
    raise NormalizationError(f"score_state: {shown!r} is not one of {sorted(_SCORE_STATES)}")


def kcal(score: _Object, where: str) -> float:
    """The score's ``kilojoule`` in kcal, within ``BOUNDS["energy_kcal"]``."""
    low, high = BOUNDS["energy_kcal"]
    kilojoule = wf.float_value(
        wf.required(score, "kilojoule", where), f"{where}kilojoule", low, high * KJ_PER_KCAL
    )
    return kcal_from_kj(kilojoule)


def heart_rates(score: _Object, where: str, out: dict[str, object]) -> None:
    """The average and max heart rates into ``out``, the average not above the max."""
    average = int_at(score, "average_heart_rate", where, "average_heart_rate_bpm")
    maximum = int_at(score, "max_heart_rate", where, "max_heart_rate_bpm")
    if average > maximum:
        raise NormalizationError(f"{where}average_heart_rate: above max_heart_rate")
    out["average_heart_rate_bpm"] = average
    out["max_heart_rate_bpm"] = maximum
