"""The normalizer over the §14 documents: exact values, units, local dates, leniency and precise refusals."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from processors.errors import NormalizationError
from processors.normalize import (
    BOUNDS,
    NORMALIZER_VERSION,
    SOURCE,
    normalize_document,
    record_event_id,
    record_resource_id,
)
from schemas.records import (
    CycleDeleted,
    CycleRecorded,
    DocumentFetched,
    RecoveryDeleted,
    RecoveryRecorded,
    ResourceType,
    SleepDeleted,
    SleepRecorded,
    WorkoutDeleted,
    WorkoutRecorded,
)
from schemas.serde import decode, decode_as, encode

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "whoop"
FETCHED_AT = datetime(2025, 10, 15, 14, 0, tzinfo=UTC)
WHOOP_USER = 482913
S1 = "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13"
C1 = 1093387651
C2 = 1093512278


def load(name: str, index: int | None = None) -> dict[str, Any]:
    """A §14 fixture (one record of a collection page when ``index`` is given)."""
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return body["records"][index] if index is not None else body


def fetched(
    resource_type: str,
    document: dict[str, Any] | None,
    *,
    resource_id: str | None = None,
    context: dict[str, Any] | None = None,
    deleted: bool = False,
    event_id: str = "doc-event-1",
    whoop_user_id: int = WHOOP_USER,
) -> DocumentFetched:
    """A ``DocumentFetched`` as the fetcher writes it; the resource id defaults to the document's."""
    if resource_id is None:
        assert document is not None
        resource_id = str(document["cycle_id"] if resource_type == "recovery" else document["id"])
    return DocumentFetched(
        event_id=event_id,
        occurred_at=FETCHED_AT,
        user_id="user-482913",
        source="fetcher",
        trace_id="trace-1",
        whoop_user_id=whoop_user_id,
        resource_type=cast(ResourceType, resource_type),  # a test may name any
        resource_id=resource_id,
        fetched_at=FETCHED_AT,
        deleted=deleted,
        document=document,
        context=context or {},
        caused_by=("webhook-1",),
    )


def one(doc: DocumentFetched) -> Any:
    records = normalize_document(doc)
    assert len(records) == 1
    return records[0]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- exact values over every §14 document ------------------------------------------------------------

CASES: list[tuple[str, DocumentFetched, type[Any], dict[str, Any]]] = [
    (
        "14.5 cycle C1, scored, onset 22:41 local on Oct 13",
        fetched("cycle", load("cycle_scored.json")),
        CycleRecorded,
        {
            "cycle_id": C1,
            "start": _utc("2025-10-14T02:41:07.312Z"),
            "end": _utc("2025-10-15T03:05:44.120Z"),
            "timezone_offset": "-04:00",
            "local_date": date(2025, 10, 14),
            "score_state": "SCORED",
            "strain": 13.4182,
            "energy_kcal": 10874.6 / 4.184,
            "average_heart_rate_bpm": 72,
            "max_heart_rate_bpm": 178,
            "whoop_updated_at": _utc("2025-10-15T11:20:31.604Z"),
        },
    ),
    (
        "14.6 current cycle C2, end null, provisional strain",
        fetched("cycle", load("cycle_collection_page.json", 0)),
        CycleRecorded,
        {
            "cycle_id": C2,
            "start": _utc("2025-10-15T03:05:44.120Z"),
            "end": None,
            "local_date": date(2025, 10, 15),
            "strain": 7.9015,
            "energy_kcal": 4121.9 / 4.184,
            "average_heart_rate_bpm": 66,
            "max_heart_rate_bpm": 158,
        },
    ),
    (
        "14.7 main sleep S1, scored",
        fetched("sleep", load("sleep_main_scored.json")),
        SleepRecorded,
        {
            "sleep_id": S1,
            "cycle_id": C1,
            "nap": False,
            "start": _utc("2025-10-14T02:41:07.312Z"),
            "end": _utc("2025-10-14T10:52:33.918Z"),
            "timezone_offset": "-04:00",
            "local_date": date(2025, 10, 14),
            "in_bed_ms": 29486606,
            "awake_ms": 2214301,
            "light_ms": 13602417,
            "slow_wave_ms": 6231044,
            "rem_ms": 7438844,
            "no_data_ms": 0,
            "asleep_ms": 27272305,
            "sleep_needed_ms": 29566868,
            "sleep_cycle_count": 5,
            "disturbance_count": 9,
            "respiratory_rate_bpm": 15.2578125,
            "performance_pct": 92.0,
            "consistency_pct": 71.0,
            "efficiency_pct": 92.490485,
        },
    ),
    (
        "14.8 nap, no performance or consistency",
        fetched("sleep", load("sleep_nap_scored.json")),
        SleepRecorded,
        {
            "nap": True,
            "cycle_id": C1,
            "local_date": date(2025, 10, 14),
            "in_bed_ms": 1569311,
            "awake_ms": 301207,
            "light_ms": 1102356,
            "slow_wave_ms": 165748,
            "rem_ms": 0,
            "asleep_ms": 1268104,
            "sleep_needed_ms": 27842210,
            "sleep_cycle_count": 0,
            "disturbance_count": 1,
            "respiratory_rate_bpm": 14.9765625,
            "performance_pct": None,
            "consistency_pct": None,
            "efficiency_pct": 80.80642,
        },
    ),
    (
        "14.9 sleep S2 still being scored: no values, dated by its end",
        fetched("sleep", load("sleep_pending.json")),
        SleepRecorded,
        {
            "score_state": "PENDING_SCORE",
            "cycle_id": C2,
            "local_date": date(2025, 10, 15),
            "in_bed_ms": None,
            "asleep_ms": None,
            "performance_pct": None,
        },
    ),
    (
        "14.10 recovery R1 with its sleep in context: dated by the sleep's end",
        fetched("recovery", load("recovery_scored.json"), context={"sleep": load("sleep_main_scored.json")}),
        RecoveryRecorded,
        {
            "cycle_id": C1,
            "sleep_id": S1,
            "local_date": date(2025, 10, 14),
            "user_calibrating": False,
            "recovery_score_pct": 68.0,
            "resting_heart_rate_bpm": 52.0,
            "hrv_rmssd_ms": 61.472305,
            "spo2_pct": 96.25,
            "skin_temp_c": 33.81,
            "whoop_updated_at": _utc("2025-10-14T11:03:41.256Z"),
        },
    ),
    (
        "14.10 recovery R1, flat context",
        fetched(
            "recovery",
            load("recovery_scored.json"),
            context={
                "sleep_id": S1,
                "sleep_end": "2025-10-14T03:30:00.000Z",
                "sleep_timezone_offset": "-04:00",
            },
        ),
        RecoveryRecorded,
        {"local_date": date(2025, 10, 13), "hrv_rmssd_ms": 61.472305},
    ),
    (
        "14.10 recovery R1 without context: no local date",
        fetched("recovery", load("recovery_scored.json")),
        RecoveryRecorded,
        {"local_date": None, "recovery_score_pct": 68.0},
    ),
    (
        "14.11 pending recovery",
        fetched("recovery", load("recovery_collection_last_page.json", 0)),
        RecoveryRecorded,
        {
            "cycle_id": C2,
            "score_state": "PENDING_SCORE",
            "recovery_score_pct": None,
            "user_calibrating": None,
        },
    ),
    (
        "14.11 unscorable recovery",
        fetched("recovery", load("recovery_collection_last_page.json", 2)),
        RecoveryRecorded,
        {"cycle_id": 1093260114, "score_state": "UNSCORABLE", "hrv_rmssd_ms": None},
    ),
    (
        "14.12 run with GPS, dated by its start",
        fetched("workout", load("workout_running.json")),
        WorkoutRecorded,
        {
            "workout_id": "b2d7e0c4-61a9-4f3e-8c25-7e9a0d4f1b88",
            "sport_name": "running",
            "sport_id": 0,
            "start": _utc("2025-10-14T21:32:10.004Z"),
            "end": _utc("2025-10-14T22:17:48.553Z"),
            "local_date": date(2025, 10, 14),
            "strain": 11.0734,
            "energy_kcal": 2311.84 / 4.184,
            "average_heart_rate_bpm": 152,
            "max_heart_rate_bpm": 178,
            "percent_recorded": 100.0,
            "distance_m": 8046.7,
            "altitude_gain_m": 38.2,
            "altitude_change_m": -2.6,
            "zone_ms": (42110, 318204, 905322, 1104987, 367926, 0),
        },
    ),
    (
        "14.13 weightlifting, no distance or altitude",
        fetched("workout", load("workout_collection_last_page.json", 0)),
        WorkoutRecorded,
        {
            "sport_name": "weightlifting",
            "sport_id": 45,
            "local_date": date(2025, 10, 15),
            "strain": 7.2155,
            "energy_kcal": 1187.02 / 4.184,
            "percent_recorded": 98.61,
            "distance_m": None,
            "altitude_gain_m": None,
            "altitude_change_m": None,
            "zone_ms": (210334, 1602550, 1150218, 258510, 0, 0),
        },
    ),
]


@pytest.mark.parametrize(("doc", "model", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_example_document_gives_its_exact_record(
    doc: DocumentFetched, model: type[Any], expected: dict[str, Any]
) -> None:
    record = one(doc)
    assert type(record) is model
    assert {field: getattr(record, field) for field in expected} == expected
    assert record.document == doc.document
    assert record.whoop_user_id == WHOOP_USER
    assert record.normalizer_version == NORMALIZER_VERSION
    # the envelope points at the document, and the record survives the codec unchanged
    assert (record.user_id, record.source, record.causation_id, record.trace_id) == (
        "user-482913",
        SOURCE,
        "doc-event-1",
        "trace-1",
    )
    assert record.occurred_at == record.whoop_updated_at
    assert decode(encode(record)) == record


def test_kilojoules_are_converted_once_and_only_once() -> None:
    cycle = one(fetched("cycle", load("cycle_scored.json")))
    assert cycle.energy_kcal == pytest.approx(2599.0918, abs=1e-4)  # not 10874.6 (kJ read as kcal)
    workout = one(fetched("workout", load("workout_running.json")))
    assert workout.energy_kcal == pytest.approx(552.5430, abs=1e-4)


def test_hrv_stays_in_milliseconds_and_stages_in_milliseconds() -> None:
    recovery = one(fetched("recovery", load("recovery_scored.json")))
    assert recovery.hrv_rmssd_ms == 61.472305  # not 0.061 (divided by 1000)
    sleep = one(fetched("sleep", load("sleep_main_scored.json")))
    assert sleep.asleep_ms / 3_600_000 == pytest.approx(7.5756, abs=1e-4)


def test_records_are_keyed_by_their_whoop_resource() -> None:
    recovery = one(fetched("recovery", load("recovery_scored.json")))
    assert record_resource_id(recovery) == str(C1)  # a recovery is keyed by its cycle
    assert record_resource_id(one(fetched("sleep", load("sleep_main_scored.json")))) == S1
    assert record_resource_id(one(fetched("cycle", load("cycle_scored.json")))) == str(C1)
    workout = one(fetched("workout", load("workout_running.json")))
    assert record_resource_id(workout) == "b2d7e0c4-61a9-4f3e-8c25-7e9a0d4f1b88"


# --- determinism -------------------------------------------------------------------------------------


def test_the_same_document_always_gives_the_same_bytes() -> None:
    doc = fetched("sleep", load("sleep_main_scored.json"))
    again = decode_as(DocumentFetched, encode(doc))
    assert [encode(r) for r in normalize_document(doc)] == [encode(r) for r in normalize_document(again)]


def test_event_ids_follow_the_document_the_record_type_and_the_normalizer_version() -> None:
    doc = fetched("cycle", load("cycle_scored.json"))
    record = one(doc)
    assert record.event_id == record_event_id("doc-event-1", "CycleRecorded", NORMALIZER_VERSION)
    assert (
        one(fetched("cycle", load("cycle_scored.json"), event_id="doc-event-2")).event_id != record.event_id
    )
    bumped = normalize_document(doc, normalizer_version=NORMALIZER_VERSION + 1)[0]
    assert bumped.event_id != record.event_id and bumped.normalizer_version == NORMALIZER_VERSION + 1
    assert {record_event_id("e", t, 1) for t in ("CycleRecorded", "CycleDeleted")}.__len__() == 2


# --- deletions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "resource_id", "context", "model", "fields"),
    [
        ("sleep", S1, {}, SleepDeleted, {"sleep_id": S1}),
        (
            "workout",
            "e4a8c1f0-2b6d-47a9-93e1-5c0b8d7f6a24",
            {},
            WorkoutDeleted,
            {"workout_id": "e4a8c1f0-2b6d-47a9-93e1-5c0b8d7f6a24"},
        ),
        ("cycle", str(C1), {}, CycleDeleted, {"cycle_id": C1}),
        ("recovery", str(C1), {"sleep_id": S1}, RecoveryDeleted, {"cycle_id": C1, "sleep_id": S1}),
        ("recovery", str(C1), {"sleep": {"id": S1}}, RecoveryDeleted, {"cycle_id": C1, "sleep_id": S1}),
        ("recovery", str(C1), {}, RecoveryDeleted, {"cycle_id": C1, "sleep_id": None}),
    ],
)
def test_deletions_become_deleted_records(
    resource_type: str, resource_id: str, context: dict[str, Any], model: type[Any], fields: dict[str, Any]
) -> None:
    record = one(fetched(resource_type, None, resource_id=resource_id, context=context, deleted=True))
    assert type(record) is model
    assert {field: getattr(record, field) for field in fields} == fields
    assert record.occurred_at == FETCHED_AT  # the deletion document's time, not a clock
    assert record.event_id == record_event_id("doc-event-1", model.__name__, NORMALIZER_VERSION)
    assert record.causation_id == "doc-event-1"
    assert record_resource_id(record) == resource_id
    assert decode(encode(record)) == record


def test_a_deletion_ignores_a_leftover_document() -> None:
    record = one(fetched("sleep", load("sleep_main_scored.json"), deleted=True))
    assert type(record) is SleepDeleted and record.sleep_id == S1


# --- leniency: WHOOP adds fields, sends null or nothing, floats with .0 ------------------------------


def test_unknown_fields_are_ignored() -> None:
    plain = one(fetched("workout", load("workout_running.json")))
    body = load("workout_running.json")
    body["new_top_level"] = {"anything": [1, 2]}
    body["score"]["new_metric"] = 3.5
    body["score"]["zone_durations"]["zone_six_milli"] = 7
    extended = one(fetched("workout", body))
    assert msgspec.structs.replace(extended, document={}) == msgspec.structs.replace(plain, document={})


def test_absent_and_null_are_the_same() -> None:
    with_null = load("cycle_collection_page.json", 0)
    without = {k: v for k, v in with_null.items() if k != "end"}
    assert one(fetched("cycle", with_null)).end is None
    assert one(fetched("cycle", without)).end is None
    nap = load("sleep_nap_scored.json")
    nap["score"]["sleep_performance_percentage"] = None
    assert one(fetched("sleep", nap)).performance_pct is None
    pending = load("sleep_pending.json")
    pending["score"] = None
    assert one(fetched("sleep", pending)).in_bed_ms is None


def test_numbers_are_read_by_value_not_by_json_spelling() -> None:
    body = load("workout_running.json")
    body["score"]["average_heart_rate"] = 152.0  # an integral float where WHOOP documents an integer
    body["score"]["strain"] = 11  # an integer where WHOOP documents a float
    record = one(fetched("workout", body))
    assert record.average_heart_rate_bpm == 152 and type(record.average_heart_rate_bpm) is int
    assert record.strain == 11.0 and type(record.strain) is float


def test_offsets_and_timestamps_are_read_in_every_documented_spelling() -> None:
    body = load("sleep_main_scored.json")
    body["timezone_offset"] = "+00:00"
    body["start"] = "2025-10-14T02:41:07Z"  # no milliseconds
    body["end"] = "2025-10-14T10:52:33.918+00:00"
    record = one(fetched("sleep", body))
    assert record.timezone_offset == "Z"
    assert record.start == datetime(2025, 10, 14, 2, 41, 7, tzinfo=UTC)
    assert record.local_date == date(2025, 10, 14)


def test_a_score_on_an_unscored_record_is_not_read() -> None:
    body = load("cycle_scored.json")
    body["score_state"] = "PENDING_SCORE"
    record = one(fetched("cycle", body))
    assert (record.score_state, record.strain, record.energy_kcal) == ("PENDING_SCORE", None, None)


def test_each_record_is_dated_with_its_own_offset() -> None:
    # the same instants, recorded in Tokyo: the run began on Oct 15 there
    body = load("workout_running.json")
    body["timezone_offset"] = "+09:00"
    assert one(fetched("workout", body)).local_date == date(2025, 10, 15)
    sleep = load("sleep_main_scored.json")
    sleep["timezone_offset"] = "-11:00"  # wake-up at 23:52 on Oct 13 there
    assert one(fetched("sleep", sleep)).local_date == date(2025, 10, 13)


# --- refusals: precise reasons, one error type -------------------------------------------------------


def _set(path: str, value: Any) -> Any:
    def mutate(body: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        node[leaf] = value

    return mutate


def _drop(path: str) -> Any:
    def mutate(body: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        del node[leaf]

    return mutate


REFUSALS: list[tuple[str, str, Any, str]] = [
    ("cycle_scored.json", "strain above 21", _set("score.strain", 21.5), "score.strain: outside"),
    ("cycle_scored.json", "negative strain", _set("score.strain", -0.1), "score.strain: outside"),
    (
        "cycle_scored.json",
        "kJ as text",
        _set("score.kilojoule", "10874.6"),
        "score.kilojoule: expected a number",
    ),
    (
        "cycle_scored.json",
        "absurd energy",
        _set("score.kilojoule", 2.0e6),
        "score.kilojoule: outside",
    ),
    ("cycle_scored.json", "fractional bpm", _set("score.average_heart_rate", 72.5), "expected an integer"),
    ("cycle_scored.json", "bpm as boolean", _set("score.max_heart_rate", True), "got a boolean"),
    ("cycle_scored.json", "average above max", _set("score.average_heart_rate", 190), "above max_heart_rate"),
    (
        "cycle_scored.json",
        "heart rate 400",
        _set("score.max_heart_rate", 400),
        "score.max_heart_rate: outside",
    ),
    ("cycle_scored.json", "scored without score", _drop("score"), "score: required"),
    ("cycle_scored.json", "score not an object", _set("score", [1]), "score: expected an object"),
    (
        "cycle_scored.json",
        "unknown score state",
        _set("score_state", "DONE"),
        "score_state: 'DONE' is not one of",
    ),
    ("cycle_scored.json", "no score state", _drop("score_state"), "score_state: required"),
    ("cycle_scored.json", "date-only start", _set("start", "2025-10-14"), "start: not an RFC 3339"),
    ("cycle_scored.json", "epoch start", _set("start", 1760409667312), "start: expected an RFC 3339"),
    ("cycle_scored.json", "end before start", _set("end", "2025-10-13T00:00:00.000Z"), "end: before start"),
    (
        "cycle_scored.json",
        "zone name as offset",
        _set("timezone_offset", "EST"),
        "timezone_offset: not a UTC offset",
    ),
    ("cycle_scored.json", "offset beyond 14 h", _set("timezone_offset", "+15:00"), "beyond"),
    ("cycle_scored.json", "offset in hours", _set("timezone_offset", -4), "timezone_offset: expected +hh:mm"),
    ("cycle_scored.json", "cycle id as text", _set("id", "1093387651"), "id: expected an integer id"),
    ("cycle_scored.json", "no updated_at", _drop("updated_at"), "updated_at: required"),
    ("cycle_scored.json", "year 1999", _set("updated_at", "1999-12-31T23:59:59.000Z"), "outside 2000-2099"),
    ("cycle_scored.json", "someone else's cycle", _set("user_id", 1), "user_id: does not match"),
    (
        "sleep_main_scored.json",
        "negative stage",
        _set("score.stage_summary.total_rem_sleep_time_milli", -5),
        "total_rem_sleep_time_milli: outside",
    ),
    (
        "sleep_main_scored.json",
        "stages beyond bed",
        _set("score.stage_summary.total_light_sleep_time_milli", 29486606),
        "more time in stages than in bed",
    ),
    (
        "sleep_main_scored.json",
        "no stage summary",
        _drop("score.stage_summary"),
        "score.stage_summary: required",
    ),
    (
        "sleep_main_scored.json",
        "missing stage",
        _drop("score.stage_summary.total_awake_time_milli"),
        "total_awake_time_milli: required",
    ),
    (
        "sleep_main_scored.json",
        "negative need",
        _set("score.sleep_needed.need_from_recent_nap_milli", -40_000_000),
        "add up to",
    ),
    (
        "sleep_main_scored.json",
        "performance 120 %",
        _set("score.sleep_performance_percentage", 120.0),
        "sleep_performance_percentage: outside",
    ),
    (
        "sleep_main_scored.json",
        "respiration 0",
        _set("score.respiratory_rate", 0.0),
        "respiratory_rate: outside",
    ),
    ("sleep_main_scored.json", "nap as text", _set("nap", "false"), "nap: expected true or false"),
    ("sleep_main_scored.json", "no nap flag", _drop("nap"), "nap: required"),
    ("sleep_main_scored.json", "a 3-day sleep", _set("end", "2025-10-17T10:52:33.918Z"), "not 0 to 48 h"),
    ("sleep_main_scored.json", "v1 integer id", _set("id", 93845), "id: expected a string"),
    ("sleep_main_scored.json", "id with a colon", _set("id", "a:b"), "id: not a WHOOP v2 id"),
    ("sleep_main_scored.json", "no cycle", _drop("cycle_id"), "cycle_id: required"),
    (
        "recovery_scored.json",
        "HRV in microseconds",
        _set("score.hrv_rmssd_milli", 61472.305),
        "hrv_rmssd_milli: outside",
    ),
    (
        "recovery_scored.json",
        "recovery 101 %",
        _set("score.recovery_score", 101.0),
        "recovery_score: outside",
    ),
    (
        "recovery_scored.json",
        "SpO2 30 %",
        _set("score.spo2_percentage", 30.0),
        "spo2_percentage: outside",
    ),
    (
        "recovery_scored.json",
        "skin temp as deviation",
        _set("score.skin_temp_celsius", 0.4),
        "skin_temp_celsius: outside",
    ),
    (
        "recovery_scored.json",
        "calibrating as 0",
        _set("score.user_calibrating", 0),
        "user_calibrating: expected true or false",
    ),
    (
        "recovery_scored.json",
        "no resting HR",
        _drop("score.resting_heart_rate"),
        "resting_heart_rate: required",
    ),
    ("recovery_scored.json", "no sleep id", _drop("sleep_id"), "sleep_id: required"),
    (
        "workout_running.json",
        "v1 zone_duration",
        lambda b: b["score"].__setitem__("zone_duration", b["score"].pop("zone_durations")),
        "'zone_duration' is the v1 shape",
    ),
    (
        "workout_running.json",
        "missing zone",
        _drop("score.zone_durations.zone_five_milli"),
        "zone_five_milli: required",
    ),
    (
        "workout_running.json",
        "percent recorded 101",
        _set("score.percent_recorded", 101.0),
        "percent_recorded: outside",
    ),
    (
        "workout_running.json",
        "negative distance",
        _set("score.distance_meter", -1.0),
        "distance_meter: outside",
    ),
    ("workout_running.json", "no sport", _drop("sport_name"), "sport_name: required"),
    ("workout_running.json", "sport id as text", _set("sport_id", "0"), "sport_id: expected an integer"),
    (
        "workout_running.json",
        "ends before it starts",
        _set("end", "2025-10-14T21:00:00.000Z"),
        "not 0 to 48 h",
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "reason"), [r[:1] + r[2:] for r in REFUSALS], ids=[r[1] for r in REFUSALS]
)
def test_garbage_is_refused_with_a_precise_reason(name: str, mutate: Any, reason: str) -> None:
    body = load(name)
    resource_type = name.split("_")[0]
    doc = fetched(resource_type, body)
    body = copy.deepcopy(body)
    mutate(body)
    with pytest.raises(NormalizationError) as caught:
        normalize_document(msgspec.structs.replace(doc, document=body))
    assert reason in caught.value.reason
    assert caught.value.retriable is False


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (fetched("sleep", None, resource_id=S1), "document: absent"),
        (
            fetched("workout", load("workout_running.json"), resource_id="another"),
            "is not the fetched resource",
        ),
        (
            fetched("recovery", load("recovery_scored.json"), resource_id=str(C2)),
            "is not the fetched resource",
        ),
        (fetched("sleep", load("cycle_scored.json")), "id: expected a string"),  # a cycle filed as a sleep
        (
            fetched("recovery", load("recovery_scored.json"), context={"sleep": load("sleep_pending.json")}),
            "context.sleep.id: not the recovery's sleep_id",
        ),
        (
            fetched(
                "recovery", load("recovery_scored.json"), context={"sleep_end": "2025-10-14T10:52:33.918Z"}
            ),
            "one without the other",
        ),
        (
            fetched("recovery", load("recovery_scored.json"), context={"sleep": "yesterday"}),
            "context.sleep: expected an object",
        ),
        (
            fetched(
                "recovery",
                load("recovery_scored.json"),
                context={"sleep_end": "2025-10-14", "sleep_timezone_offset": "-04:00"},
            ),
            "context.sleep_end: not an RFC 3339",
        ),
        (fetched("recovery", None, resource_id=S1, deleted=True), "needs a cycle id"),
        (fetched("cycle", None, resource_id="٣", deleted=True), "needs a cycle id"),
        (fetched("cycle", None, resource_id=str(2**63), deleted=True), "outside"),
        (
            fetched("recovery", None, resource_id="7", context={"sleep_id": 5}, deleted=True),
            "context.sleep_id",
        ),
    ],
)
def test_documents_that_do_not_fit_their_envelope_are_refused(doc: DocumentFetched, reason: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        normalize_document(doc)
    assert reason in caught.value.reason


def test_a_record_the_contract_refuses_is_a_normalization_error_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # the checks above the contract are stricter than it; if one ever is not, the contract still holds
    monkeypatch.setattr("processors.bounded_fields.BOUNDS", {**BOUNDS, "strain": (0.0, 30.0)})
    body = load("cycle_scored.json")
    body["score"]["strain"] = 25.0
    with pytest.raises(
        NormalizationError, match=r"invalid CycleRecorded: Expected `float` <= 21.0 - at `\$.strain`"
    ):
        normalize_document(fetched("cycle", body))


def test_a_refusal_names_the_field_never_its_health_value() -> None:
    # the reason goes, unsealed, into a dead letter on <topic>.dlq: it must not carry the value
    body = load("recovery_scored.json")
    doc = fetched("recovery", body)
    body = copy.deepcopy(body)
    _set("score.hrv_rmssd_milli", 61472.305)(body)
    with pytest.raises(NormalizationError) as caught:
        normalize_document(msgspec.structs.replace(doc, document=body))
    assert "hrv_rmssd_milli" in caught.value.reason and "61472" not in caught.value.reason
