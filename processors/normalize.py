"""The normalizer: WHOOP documents in, canonical records out. Pure: no clients, no await, no clock.

``normalize_document(doc, normalizer_version=...)`` turns one ``DocumentFetched`` from
``whoop.documents.v1`` into the records for ``wear.records.v1``: a ``CycleRecorded``,
``SleepRecorded``, ``RecoveryRecorded`` or ``WorkoutRecorded`` for a fetched document, the matching
``*Deleted`` for a deletion. Anything it cannot normalize raises ``NormalizationError`` with a
precise reason (a JSON path and what is wrong there), and nothing else: the runner dead-letters it.

Reading WHOOP (whoop-api-v2.md §3, §6, §12; field readers in ``processors.whoop_fields``): unknown
fields are ignored, absent and ``null`` are the same thing, timestamps are RFC 3339 (``Z``,
milliseconds), integral floats are accepted where WHOOP documents an integer (``72.0``) but ``72.5``
is not, booleans are never numbers, and the fields WHOOP marks as required must be there. ``score``
is read only when ``score_state`` is ``SCORED`` (and must then be present); a pending or unscorable
record has no values.

Units (``schemas.units``): kJ become kcal; durations stay milliseconds, percentages 0-100, HRV
RMSSD milliseconds, strain 0-21. Every value is checked against ``BOUNDS`` (keyed by record field):
a value outside them is not physiology, it is a bug upstream, and it is dead-lettered rather
than served. Local dates follow ``processors.local_time`` (each record's own offset).

Determinism: the same document gives the same records, byte for byte. A record's ``event_id`` is
a uuid5 of the source document's ``event_id``, the record type and the normalizer version; its
``occurred_at`` is WHOOP's ``updated_at`` (a deletion's is the deletion document's ``occurred_at``).

Recovery documents lack a time: the fetcher passes the recovery's sleep in ``context`` —
``{"sleep": {"id": ..., "end": ..., "timezone_offset": ...}}`` (the sleep document) or, flat,
``{"sleep_id": ..., "sleep_end": ..., "sleep_timezone_offset": ...}`` — and its local date is that
sleep's; without it the local date is ``None``. A recovery deletion's ``resource_id`` is the
cycle id the fetcher resolved; the sleep id comes from ``context`` when known.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Final, TypeVar

import msgspec

from processors import whoop_fields as wf
from processors.errors import NormalizationError
from processors.local_time import cycle_local_date, local_date
from schemas.records import (
    CycleDeleted,
    CycleRecorded,
    DocumentFetched,
    RecoveryDeleted,
    RecoveryRecorded,
    ScoreState,
    SleepDeleted,
    SleepRecorded,
    WorkoutDeleted,
    WorkoutRecorded,
)
from schemas.units import KJ_PER_KCAL, STRAIN_MAX, kcal_from_kj

__all__ = [
    "BOUNDS",
    "NORMALIZER_VERSION",
    "RECORD_NAMESPACE",
    "SOURCE",
    "Record",
    "normalize_cycle",
    "normalize_deletion",
    "normalize_document",
    "normalize_recovery",
    "normalize_sleep",
    "normalize_workout",
    "record_event_id",
    "record_resource_id",
]

NORMALIZER_VERSION: Final = 1
SOURCE: Final = "normalizer"
RECORD_NAMESPACE: Final = uuid.UUID("9b7e3c1a-52d4-5f08-8a6e-2d41c07b93f5")
_NAMESPACE_SHA1: Final = hashlib.sha1(RECORD_NAMESPACE.bytes, usedforsecurity=False)

Record = (
    CycleRecorded
    | SleepRecorded
    | RecoveryRecorded
    | WorkoutRecorded
    | CycleDeleted
    | SleepDeleted
    | RecoveryDeleted
    | WorkoutDeleted
)
_Object = wf.JsonObject
_R = TypeVar("_R", CycleRecorded, SleepRecorded, RecoveryRecorded, WorkoutRecorded)
_M = TypeVar(
    "_M",
    CycleRecorded,
    SleepRecorded,
    RecoveryRecorded,
    WorkoutRecorded,
    CycleDeleted,
    SleepDeleted,
    RecoveryDeleted,
    WorkoutDeleted,
)

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
_NEED_PART = 48 * _H  # bound of each sleep-need component (the nap one is <= 0)
_SCORE_STATES: frozenset[str] = frozenset(("SCORED", "PENDING_SCORE", "UNSCORABLE"))
_ZONES = ("zero", "one", "two", "three", "four", "five")
_ZONE_KEYS = tuple(f"zone_{n}_milli" for n in _ZONES)
_STAGES = tuple(
    (field, f"total_{name}_time_milli")
    for field, name in (
        ("in_bed_ms", "in_bed"),
        ("awake_ms", "awake"),
        ("light_ms", "light_sleep"),
        ("slow_wave_ms", "slow_wave_sleep"),
        ("rem_ms", "rem_sleep"),
        ("no_data_ms", "no_data"),
    )
)
_COUNTS = (("sleep_cycle_count", "sleep_cycle_count"), ("disturbance_count", "disturbance_count"))
_SLEEP_RATES = (
    ("respiratory_rate_bpm", "respiratory_rate"),
    ("performance_pct", "sleep_performance_percentage"),
    ("consistency_pct", "sleep_consistency_percentage"),
    ("efficiency_pct", "sleep_efficiency_percentage"),
)
_NEED_PARTS = (
    "baseline_milli",
    "need_from_sleep_debt_milli",
    "need_from_recent_strain_milli",
    "need_from_recent_nap_milli",
)


def record_event_id(source_event_id: str, event_type: str, normalizer_version: int) -> str:
    """The ``event_id`` of a record: the same document and normalizer always give the same one.

    ``str(uuid.uuid5(RECORD_NAMESPACE, f"{source_event_id}/{event_type}/{normalizer_version}"))``,
    computed without building ``UUID`` objects (``uuid.uuid5`` costs three times as much).
    """
    digest = _NAMESPACE_SHA1.copy()
    digest.update(f"{source_event_id}/{event_type}/{normalizer_version}".encode())
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def record_resource_id(record: Record) -> str:
    """The resource id in a record's key: the WHOOP id (a recovery's is its ``cycle_id``)."""
    if isinstance(record, SleepRecorded | SleepDeleted):
        return record.sleep_id
    if isinstance(record, WorkoutRecorded | WorkoutDeleted):
        return record.workout_id
    return str(record.cycle_id)


def normalize_document(doc: DocumentFetched, *, normalizer_version: int = NORMALIZER_VERSION) -> list[Record]:
    """The records one document gives; raises ``NormalizationError`` (only) when it cannot."""
    if doc.deleted:
        return [normalize_deletion(doc, normalizer_version=normalizer_version)]
    normalize = _BY_TYPE[doc.resource_type]
    return [normalize(doc, normalizer_version)]


def normalize_cycle(doc: DocumentFetched, *, normalizer_version: int = NORMALIZER_VERSION) -> CycleRecorded:
    """A ``CycleRecorded`` from a WHOOP ``Cycle`` (§6.1); its day label is ``cycle_local_date``."""
    body = _document(doc, "cycle")
    cycle_id = wf.id_int(body, "id")
    _same_resource(doc, str(cycle_id), "id")
    start = wf.instant_at(body, "start")
    end = wf.instant_or_none(body, "end")
    if end is not None and end < start:
        raise NormalizationError("end: before start")
    offset, offset_text = wf.offset_at(body, "timezone_offset")
    state, score = _score(body)
    fields: dict[str, object] = {}
    if score is not None:
        fields = {
            "strain": _float(score, "strain", "score.", "strain"),
            "energy_kcal": _kcal(score, "score."),
            **_heart_rates(score, "score."),
        }
    return _build(
        CycleRecorded,
        doc,
        normalizer_version,
        body,
        state,
        cycle_id=cycle_id,
        start=start,
        end=end,
        timezone_offset=offset_text,
        local_date=cycle_local_date(start, offset),
        **fields,
    )


def normalize_sleep(doc: DocumentFetched, *, normalizer_version: int = NORMALIZER_VERSION) -> SleepRecorded:
    """A ``SleepRecorded`` from a WHOOP ``Sleep`` (§6.2), main sleep or nap; dated by its end."""
    body = _document(doc, "sleep")
    sleep_id = wf.id_str(body, "id")
    _same_resource(doc, sleep_id, "id")
    start, end = _span(body)
    offset, offset_text = wf.offset_at(body, "timezone_offset")
    nap = wf.required(body, "nap", "")
    if not isinstance(nap, bool):
        raise NormalizationError(f"nap: expected true or false, got {wf.kind(nap)}")
    state, score = _score(body)
    fields: dict[str, object] = {}
    if score is not None:
        fields = _sleep_score(score)
    return _build(
        SleepRecorded,
        doc,
        normalizer_version,
        body,
        state,
        sleep_id=sleep_id,
        cycle_id=wf.id_int(body, "cycle_id"),
        nap=nap,
        start=start,
        end=end,
        timezone_offset=offset_text,
        local_date=local_date(end, offset),
        **fields,
    )


def normalize_recovery(
    doc: DocumentFetched, *, normalizer_version: int = NORMALIZER_VERSION
) -> RecoveryRecorded:
    """A ``RecoveryRecorded`` from a WHOOP ``Recovery`` (§6.3), dated by its sleep from ``context``."""
    body = _document(doc, "recovery")
    cycle_id = wf.id_int(body, "cycle_id")
    _same_resource(doc, str(cycle_id), "cycle_id")
    sleep_id = wf.id_str(body, "sleep_id")
    state, score = _score(body)
    fields: dict[str, object] = {}
    if score is not None:
        calibrating = wf.required(score, "user_calibrating", "score.")
        if not isinstance(calibrating, bool):
            raise NormalizationError(
                f"score.user_calibrating: expected true or false, got {wf.kind(calibrating)}"
            )
        fields = {
            "user_calibrating": calibrating,
            "recovery_score_pct": _float(score, "recovery_score", "score.", "recovery_score_pct"),
            "resting_heart_rate_bpm": _float(score, "resting_heart_rate", "score.", "resting_heart_rate_bpm"),
            "hrv_rmssd_ms": _float(score, "hrv_rmssd_milli", "score.", "hrv_rmssd_ms"),
            "spo2_pct": _float_or_none(score, "spo2_percentage", "score.", "spo2_pct"),
            "skin_temp_c": _float_or_none(score, "skin_temp_celsius", "score.", "skin_temp_c"),
        }
    return _build(
        RecoveryRecorded,
        doc,
        normalizer_version,
        body,
        state,
        cycle_id=cycle_id,
        sleep_id=sleep_id,
        local_date=_recovery_date(doc.context, sleep_id),
        **fields,
    )


def normalize_workout(
    doc: DocumentFetched, *, normalizer_version: int = NORMALIZER_VERSION
) -> WorkoutRecorded:
    """A ``WorkoutRecorded`` from a WHOOP ``WorkoutV2`` (§6.4); dated by its start."""
    body = _document(doc, "workout")
    workout_id = wf.id_str(body, "id")
    _same_resource(doc, workout_id, "id")
    start, end = _span(body)
    offset, offset_text = wf.offset_at(body, "timezone_offset")
    sport_name = wf.text_at(body, "sport_name")
    sport_id = body.get("sport_id")
    state, score = _score(body)
    fields: dict[str, object] = {}
    if score is not None:
        fields = _workout_score(score)
    return _build(
        WorkoutRecorded,
        doc,
        normalizer_version,
        body,
        state,
        workout_id=workout_id,
        sport_name=sport_name,
        sport_id=None if sport_id is None else wf.int_value(sport_id, "sport_id", -(2**31), 2**31 - 1),
        start=start,
        end=end,
        timezone_offset=offset_text,
        local_date=local_date(start, offset),
        **fields,
    )


def normalize_deletion(
    doc: DocumentFetched, *, normalizer_version: int = NORMALIZER_VERSION
) -> CycleDeleted | SleepDeleted | RecoveryDeleted | WorkoutDeleted:
    """The ``*Deleted`` record of a deletion document (``deleted=True``; any document is ignored)."""
    common = _envelope(doc, normalizer_version, _DELETED[doc.resource_type], doc.occurred_at, {})
    resource_id = doc.resource_id
    if doc.resource_type == "sleep":
        return _validated(SleepDeleted, {**common, "sleep_id": resource_id})
    if doc.resource_type == "workout":
        return _validated(WorkoutDeleted, {**common, "workout_id": resource_id})
    if not resource_id.isdigit() or not resource_id.isascii():
        raise NormalizationError(
            f"resource_id: a {doc.resource_type} deletion needs a cycle id, not an opaque id"
        )
    cycle_id = wf.int_value(int(resource_id), "resource_id", 0, wf.INT64 - 1)
    if doc.resource_type == "cycle":
        return _validated(CycleDeleted, {**common, "cycle_id": cycle_id})
    sleep = doc.context.get("sleep")
    sleep_id = sleep.get("id") if isinstance(sleep, dict) else doc.context.get("sleep_id")
    if sleep_id is not None and not isinstance(sleep_id, str):
        raise NormalizationError(f"context.sleep_id: expected a string, got {wf.kind(sleep_id)}")
    return _validated(RecoveryDeleted, {**common, "cycle_id": cycle_id, "sleep_id": sleep_id})


# --- reading a WHOOP document -----------------------------------------------------------------


def _document(doc: DocumentFetched, expected: str) -> _Object:
    if doc.document is None:
        raise NormalizationError(f"document: absent on a {expected} that is not deleted")
    user_id = doc.document.get("user_id")
    if user_id is not None and (
        isinstance(user_id, bool) or not isinstance(user_id, int) or user_id != doc.whoop_user_id
    ):
        raise NormalizationError("user_id: does not match the member the document was fetched for")
    return doc.document


def _same_resource(doc: DocumentFetched, resource_id: str, field: str) -> None:
    if resource_id != doc.resource_id:
        raise NormalizationError(
            f"{field}: {resource_id[:64]!r} is not the fetched resource {doc.resource_id!r}"
        )


def _int(obj: _Object, key: str, where: str, bound: str) -> int:
    low, high = BOUNDS[bound]
    value = obj.get(key)
    if type(value) is int and low <= value <= high:  # the usual case, without building a path
        return value
    return wf.int_value(wf.required(obj, key, where), f"{where}{key}", low, high)


def _float(obj: _Object, key: str, where: str, bound: str) -> float:
    low, high = BOUNDS[bound]
    value = obj.get(key)
    if type(value) is float and low <= value <= high:  # the usual case; BOUNDS are finite: no NaN
        return value
    return wf.float_value(wf.required(obj, key, where), f"{where}{key}", low, high)


def _ints(obj: _Object, fields: tuple[tuple[str, str], ...], where: str) -> dict[str, int]:
    """``_int`` of each ``(record field, WHOOP key)`` in order, in one loop."""
    bounds = BOUNDS
    out: dict[str, int] = {}
    for field, key in fields:
        low, high = bounds[field]
        value = obj.get(key)
        if type(value) is not int or not low <= value <= high:  # the reader says why, or reads 72.0
            value = wf.int_value(wf.required(obj, key, where), f"{where}{key}", low, high)
        out[field] = value
    return out


def _floats_or_none(obj: _Object, fields: tuple[tuple[str, str], ...], where: str) -> dict[str, float | None]:
    """``_float_or_none`` of each ``(record field, WHOOP key)`` in order, in one loop."""
    bounds = BOUNDS
    out: dict[str, float | None] = {}
    for field, key in fields:
        value = obj.get(key)
        if value is not None:
            low, high = bounds[field]
            if type(value) is not float or not low <= value <= high:  # BOUNDS are finite: no NaN
                value = wf.float_value(value, f"{where}{key}", low, high)
        out[field] = value
    return out


def _float_or_none(obj: _Object, key: str, where: str, bound: str) -> float | None:
    return None if obj.get(key) is None else _float(obj, key, where, bound)


def _span(obj: _Object) -> tuple[datetime, datetime]:
    start, end = wf.instant_at(obj, "start"), wf.instant_at(obj, "end")
    if not timedelta(0) <= end - start <= _MAX_ACTIVITY:
        raise NormalizationError("end: not 0 to 48 h after start")
    return start, end


def _score(obj: _Object) -> tuple[ScoreState, _Object | None]:
    state = wf.required(obj, "score_state", "")
    if state == "SCORED":
        return "SCORED", wf.object_at(obj, "score", "")
    # a score on an unscored record is not final: it is not read
    if state == "PENDING_SCORE":
        return "PENDING_SCORE", None
    if state == "UNSCORABLE":
        return "UNSCORABLE", None
    shown = state[:32] if isinstance(state, str) else wf.kind(state)
    raise NormalizationError(f"score_state: {shown!r} is not one of {sorted(_SCORE_STATES)}")


def _kcal(score: _Object, where: str) -> float:
    low, high = BOUNDS["energy_kcal"]
    kilojoule = wf.float_value(
        wf.required(score, "kilojoule", where), f"{where}kilojoule", low, high * KJ_PER_KCAL
    )
    return kcal_from_kj(kilojoule)


def _heart_rates(score: _Object, where: str) -> dict[str, object]:
    average = _int(score, "average_heart_rate", where, "average_heart_rate_bpm")
    maximum = _int(score, "max_heart_rate", where, "max_heart_rate_bpm")
    if average > maximum:
        raise NormalizationError(f"{where}average_heart_rate: above max_heart_rate")
    return {"average_heart_rate_bpm": average, "max_heart_rate_bpm": maximum}


def _sleep_score(score: _Object) -> dict[str, object]:
    stages = wf.object_at(score, "stage_summary", "score.")
    where = "score.stage_summary."
    parts = _ints(stages, _STAGES, where)
    in_bed = parts.pop("in_bed_ms")
    asleep = parts["light_ms"] + parts["slow_wave_ms"] + parts["rem_ms"]
    if asleep > in_bed or max(parts.values()) > in_bed:
        raise NormalizationError(f"{where}: more time in stages than in bed")
    need = wf.object_at(score, "sleep_needed", "score.")
    need_where = "score.sleep_needed."
    sleep_needed = 0
    for key in _NEED_PARTS:
        part = need.get(key)
        if type(part) is not int or not -_NEED_PART <= part <= _NEED_PART:  # else the reader says why
            part = wf.int_value(
                wf.required(need, key, need_where), f"{need_where}{key}", -_NEED_PART, _NEED_PART
            )
        sleep_needed += part
    low, high = BOUNDS["sleep_needed_ms"]
    if not low <= sleep_needed <= high:
        raise NormalizationError(f"{need_where}: the parts add up to outside [{low}, {high}] ms")
    return {
        "in_bed_ms": in_bed,
        **parts,
        "asleep_ms": asleep,
        "sleep_needed_ms": sleep_needed,
        **_ints(stages, _COUNTS, where),
        **_floats_or_none(score, _SLEEP_RATES, "score."),
    }


def _workout_score(score: _Object) -> dict[str, object]:
    if score.get("zone_durations") is None and score.get("zone_duration") is not None:
        raise NormalizationError("score.zone_durations: absent; 'zone_duration' is the v1 shape, not v2")
    zones = wf.object_at(score, "zone_durations", "score.")
    return {
        "strain": _float(score, "strain", "score.", "strain"),
        "energy_kcal": _kcal(score, "score."),
        **_heart_rates(score, "score."),
        "percent_recorded": _float(score, "percent_recorded", "score.", "percent_recorded"),
        "distance_m": _float_or_none(score, "distance_meter", "score.", "distance_m"),
        "altitude_gain_m": _float_or_none(score, "altitude_gain_meter", "score.", "altitude_gain_m"),
        "altitude_change_m": _float_or_none(score, "altitude_change_meter", "score.", "altitude_change_m"),
        "zone_ms": tuple([_int(zones, key, "score.zone_durations.", "zone_ms") for key in _ZONE_KEYS]),
    }


def _recovery_date(context: _Object, sleep_id: str) -> date | None:
    sleep = context.get("sleep")
    if isinstance(sleep, dict):
        where, known_id, end, offset = (
            "context.sleep.",
            sleep.get("id"),
            sleep.get("end"),
            sleep.get("timezone_offset"),
        )
    elif sleep is None:
        where = "context.sleep_"
        known_id, end, offset = (
            context.get("sleep_id"),
            context.get("sleep_end"),
            context.get("sleep_timezone_offset"),
        )
    else:
        raise NormalizationError(f"context.sleep: expected an object, got {wf.kind(sleep)}")
    if known_id is not None and known_id != sleep_id:
        raise NormalizationError(f"{where}id: not the recovery's sleep_id")
    if end is None and offset is None:
        return None  # the fetcher did not learn the sleep: the local date is unknown
    if end is None or offset is None:
        raise NormalizationError(f"{where}end and {where}timezone_offset: one without the other")
    return local_date(
        wf.instant_value(end, f"{where}end"), wf.offset_value(offset, f"{where}timezone_offset")[0]
    )


# --- building records -------------------------------------------------------------------------


def _envelope(
    doc: DocumentFetched, version: int, model: type[Record], occurred_at: datetime, fields: dict[str, object]
) -> dict[str, object]:
    """``fields`` with the record's envelope added (and returned)."""
    fields["event_id"] = record_event_id(doc.event_id, model.event_type, version)
    fields["occurred_at"] = occurred_at
    fields["user_id"] = doc.user_id
    fields["source"] = SOURCE
    fields["causation_id"] = doc.event_id
    fields["trace_id"] = doc.trace_id
    fields["whoop_user_id"] = doc.whoop_user_id
    fields["normalizer_version"] = version
    return fields


def _build(
    model: type[_R], doc: DocumentFetched, version: int, body: _Object, state: ScoreState, **fields: object
) -> _R:
    updated_at = wf.instant_at(body, "updated_at")
    _envelope(doc, version, model, updated_at, fields)
    fields["whoop_updated_at"] = updated_at
    fields["score_state"] = state
    fields["document"] = body
    return _validated(model, fields)


def _validated(model: type[_M], fields: dict[str, object]) -> _M:
    """The record, built and checked against its contract in one pass (``msgspec.convert``).

    A safety net: the checks above are stricter than the contract, so it should never refuse.
    """
    try:
        return msgspec.convert(fields, model)
    except msgspec.ValidationError as exc:
        raise NormalizationError(f"invalid {model.__name__}: {exc}") from exc


_BY_TYPE: Final[dict[str, Callable[[DocumentFetched, int], Record]]] = {
    "cycle": lambda doc, version: normalize_cycle(doc, normalizer_version=version),
    "sleep": lambda doc, version: normalize_sleep(doc, normalizer_version=version),
    "recovery": lambda doc, version: normalize_recovery(doc, normalizer_version=version),
    "workout": lambda doc, version: normalize_workout(doc, normalizer_version=version),
}
_DELETED: Final[dict[str, type[Record]]] = {
    "cycle": CycleDeleted,
    "sleep": SleepDeleted,
    "recovery": RecoveryDeleted,
    "workout": WorkoutDeleted,
}
