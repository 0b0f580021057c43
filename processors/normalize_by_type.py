"""One normalizer per WHOOP resource type: a fetched document in, its canonical record out (pure).

Each function reads one WHOOP v2 document (whoop-api-v2.md §6; values through
``processors.bounded_fields`` and ``processors.whoop_fields``) and returns its record, built by
``processors.record_envelope``; anything it cannot read raises ``NormalizationError`` with the JSON
path and what is wrong there. ``processors.normalize`` picks the function by resource type.

Local dates follow ``processors.local_time`` (each record's own offset): a cycle's is
``cycle_local_date`` of its start, a sleep's that of its end, a workout's that of its start.
Recovery documents lack a time: the fetcher passes the recovery's sleep in ``context`` —
``{"sleep": {"id": ..., "end": ..., "timezone_offset": ...}}`` (the sleep document) or, flat,
``{"sleep_id": ..., "sleep_end": ..., "sleep_timezone_offset": ...}`` — and its local date is that
sleep's; without it the local date is ``None``.
"""

from __future__ import annotations

from datetime import date

from processors import bounded_fields as bf
from processors import whoop_fields as wf
from processors.errors import NormalizationError
from processors.local_time import cycle_local_date, local_date
from processors.record_envelope import build
from schemas.records import CycleRecorded, DocumentFetched, RecoveryRecorded, SleepRecorded, WorkoutRecorded

__all__ = ["normalize_cycle", "normalize_recovery", "normalize_sleep", "normalize_workout"]

_Object = wf.JsonObject
_NEED_PART = 48 * 3_600_000  # bound of each sleep-need component, in ms (the nap one is <= 0)
_ZONE_KEYS = tuple(f"zone_{n}_milli" for n in ("zero", "one", "two", "three", "four", "five"))
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


def normalize_cycle(doc: DocumentFetched, normalizer_version: int) -> CycleRecorded:
    """A ``CycleRecorded`` from a WHOOP ``Cycle`` (§6.1); its day label is ``cycle_local_date``."""
    body = bf.document_of(doc, "cycle")
    cycle_id = wf.id_int(body, "id")
    bf.same_resource(doc, str(cycle_id), "id")
    start = wf.instant_at(body, "start")
    end = wf.instant_or_none(body, "end")
    if end is not None and end < start:
        raise NormalizationError("end: before start")
    offset, offset_text = wf.offset_at(body, "timezone_offset")
    state, score = bf.score_of(body)
    fields: dict[str, object] = {}
    if score is not None:
        fields["strain"] = bf.float_at(score, "strain", "score.", "strain")
        fields["energy_kcal"] = bf.kcal(score, "score.")
        bf.heart_rates(score, "score.", fields)
    fields.update(
        cycle_id=cycle_id,
        start=start,
        end=end,
        timezone_offset=offset_text,
        local_date=cycle_local_date(start, offset),
    )
    return build(CycleRecorded, doc, normalizer_version, body, state, fields)


def normalize_sleep(doc: DocumentFetched, normalizer_version: int) -> SleepRecorded:
    """A ``SleepRecorded`` from a WHOOP ``Sleep`` (§6.2), main sleep or nap; dated by its end."""
    body = bf.document_of(doc, "sleep")
    sleep_id = wf.id_str(body, "id")
    bf.same_resource(doc, sleep_id, "id")
    start, end = bf.span_of(body)
    offset, offset_text = wf.offset_at(body, "timezone_offset")
    nap = wf.required(body, "nap", "")
    if not isinstance(nap, bool):
        raise NormalizationError(f"nap: expected true or false, got {wf.kind(nap)}")
    state, score = bf.score_of(body)
    fields: dict[str, object] = {}
    if score is not None:
        _sleep_score(score, fields)
    fields.update(
        sleep_id=sleep_id,
        cycle_id=wf.id_int(body, "cycle_id"),
        nap=nap,
        start=start,
        end=end,
        timezone_offset=offset_text,
        local_date=local_date(end, offset),
    )
    return build(SleepRecorded, doc, normalizer_version, body, state, fields)


def normalize_recovery(doc: DocumentFetched, normalizer_version: int) -> RecoveryRecorded:
    """A ``RecoveryRecorded`` from a WHOOP ``Recovery`` (§6.3), dated by its sleep from ``context``."""
    body = bf.document_of(doc, "recovery")
    cycle_id = wf.id_int(body, "cycle_id")
    bf.same_resource(doc, str(cycle_id), "cycle_id")
    sleep_id = wf.id_str(body, "sleep_id")
    state, score = bf.score_of(body)
    fields: dict[str, object] = {}
    if score is not None:
        calibrating = wf.required(score, "user_calibrating", "score.")
        if not isinstance(calibrating, bool):
            raise NormalizationError(
                f"score.user_calibrating: expected true or false, got {wf.kind(calibrating)}"
            )
        fields["user_calibrating"] = calibrating
        fields["recovery_score_pct"] = bf.float_at(score, "recovery_score", "score.", "recovery_score_pct")
        fields["resting_heart_rate_bpm"] = bf.float_at(
            score, "resting_heart_rate", "score.", "resting_heart_rate_bpm"
        )
        fields["hrv_rmssd_ms"] = bf.float_at(score, "hrv_rmssd_milli", "score.", "hrv_rmssd_ms")
        fields["spo2_pct"] = bf.float_or_none(score, "spo2_percentage", "score.", "spo2_pct")
        fields["skin_temp_c"] = bf.float_or_none(score, "skin_temp_celsius", "score.", "skin_temp_c")
    fields.update(cycle_id=cycle_id, sleep_id=sleep_id, local_date=_recovery_date(doc.context, sleep_id))
    return build(RecoveryRecorded, doc, normalizer_version, body, state, fields)


def normalize_workout(doc: DocumentFetched, normalizer_version: int) -> WorkoutRecorded:
    """A ``WorkoutRecorded`` from a WHOOP ``WorkoutV2`` (§6.4); dated by its start."""
    body = bf.document_of(doc, "workout")
    workout_id = wf.id_str(body, "id")
    bf.same_resource(doc, workout_id, "id")
    start, end = bf.span_of(body)
    offset, offset_text = wf.offset_at(body, "timezone_offset")
    sport_name = wf.text_at(body, "sport_name")
    sport_id = body.get("sport_id")
    state, score = bf.score_of(body)
    fields: dict[str, object] = {}
    if score is not None:
        _workout_score(score, fields)
    fields.update(
        workout_id=workout_id,
        sport_name=sport_name,
        sport_id=None if sport_id is None else wf.int_value(sport_id, "sport_id", -(2**31), 2**31 - 1),
        start=start,
        end=end,
        timezone_offset=offset_text,
        local_date=local_date(start, offset),
    )
    return build(WorkoutRecorded, doc, normalizer_version, body, state, fields)


def _sleep_score(score: _Object, fields: dict[str, object]) -> None:
    stages = wf.object_at(score, "stage_summary", "score.")
    where = "score.stage_summary."
    parts: dict[str, int] = {}
    bf.ints(stages, _STAGES, where, parts)
    in_bed = parts["in_bed_ms"]
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
    low, high = bf.BOUNDS["sleep_needed_ms"]
    if not low <= sleep_needed <= high:
        raise NormalizationError(f"{need_where}: the parts add up to outside [{low}, {high}] ms")
    fields.update(parts)
    fields["asleep_ms"] = asleep
    fields["sleep_needed_ms"] = sleep_needed
    bf.ints(stages, _COUNTS, where, fields)
    bf.floats_or_none(score, _SLEEP_RATES, "score.", fields)


def _workout_score(score: _Object, fields: dict[str, object]) -> None:
    if score.get("zone_durations") is None and score.get("zone_duration") is not None:
        raise NormalizationError("score.zone_durations: absent; 'zone_duration' is the v1 shape, not v2")
    zones = wf.object_at(score, "zone_durations", "score.")
    fields["strain"] = bf.float_at(score, "strain", "score.", "strain")
    fields["energy_kcal"] = bf.kcal(score, "score.")
    bf.heart_rates(score, "score.", fields)
    fields["percent_recorded"] = bf.float_at(score, "percent_recorded", "score.", "percent_recorded")
    fields["distance_m"] = bf.float_or_none(score, "distance_meter", "score.", "distance_m")
    fields["altitude_gain_m"] = bf.float_or_none(score, "altitude_gain_meter", "score.", "altitude_gain_m")
    fields["altitude_change_m"] = bf.float_or_none(
        score, "altitude_change_meter", "score.", "altitude_change_m"
    )
    fields["zone_ms"] = tuple(
        [bf.int_at(zones, key, "score.zone_durations.", "zone_ms") for key in _ZONE_KEYS]
    )


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
