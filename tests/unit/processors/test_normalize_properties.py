"""Properties of the normalizer over generated WHOOP documents (hypothesis).

1. Realistic documents (the simulator's members: several zones, DST, travel, naps, unscorable
   sleeps, pending current cycles) always normalize, within physiological bounds, in our units.
2. Any document at all (realistic ones with random fields replaced or removed, and arbitrary JSON)
   either gives records that hold the same guarantees or raises ``NormalizationError``: never
   another exception.
3. The same document always gives the same records, byte for byte.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.errors import NormalizationError
from processors.local_time import CYCLE_DAY_SHIFT, parse_offset
from processors.normalize import BOUNDS, Record, normalize_document
from schemas.records import (
    CycleRecorded,
    DocumentFetched,
    RecoveryRecorded,
    SleepRecorded,
    WorkoutRecorded,
)
from schemas.serde import decode, encode
from schemas.units import kcal_from_kj
from simulator.generator import Member, generate_member
from tests.unit.processors.test_normalize import fetched, load

Json = dict[str, Any]
_MEASUREMENTS = frozenset(BOUNDS) | {"user_calibrating"}
_RESOURCES = ("cycle", "sleep", "recovery", "workout")


def member_documents(member: Member) -> list[DocumentFetched]:
    """Every document of a simulated member, as the fetcher would log it (recoveries with their sleep)."""
    sleeps = {sleep["id"]: sleep for sleep in member.sleeps}
    docs = [fetched("cycle", c, whoop_user_id=member.user_id, event_id=f"c{c['id']}") for c in member.cycles]
    docs += [fetched("sleep", s, whoop_user_id=member.user_id, event_id=f"s{s['id']}") for s in member.sleeps]
    docs += [
        fetched("workout", w, whoop_user_id=member.user_id, event_id=f"w{w['id']}") for w in member.workouts
    ]
    docs += [
        fetched(
            "recovery",
            r,
            whoop_user_id=member.user_id,
            event_id=f"r{r['cycle_id']}",
            context={"sleep": sleeps[r["sleep_id"]]},
        )
        for r in member.recoveries
    ]
    return docs


def check_records(doc: DocumentFetched, records: list[Record]) -> None:
    """What every record must satisfy, whatever document it came from."""
    assert len(records) == 1
    record = records[0]
    # the same document gives the same records, and they survive the codec
    assert normalize_document(doc) == records
    assert decode(encode(record)) == record
    assert record.user_id == doc.user_id and record.causation_id == doc.event_id
    if doc.deleted:
        assert record.event_type.endswith("Deleted")
        return
    assert isinstance(record, CycleRecorded | SleepRecorded | RecoveryRecorded | WorkoutRecorded)
    assert record.document == doc.document
    values = {name: getattr(record, name, None) for name in _MEASUREMENTS}
    # physiological bounds, in our units
    for field, (low, high) in BOUNDS.items():
        value = values.get(field)
        for number in value if isinstance(value, tuple | list) else [] if value is None else [value]:
            assert math.isfinite(number) and low <= number <= high, (field, number)
    # physiological invariants between values
    if isinstance(record, SleepRecorded) and record.in_bed_ms is not None:
        stages = (record.light_ms, record.slow_wave_ms, record.rem_ms)
        assert record.asleep_ms == sum(v or 0 for v in stages)
        assert max(record.asleep_ms, record.awake_ms or 0, record.no_data_ms or 0) <= record.in_bed_ms
    if isinstance(record, CycleRecorded | WorkoutRecorded) and record.average_heart_rate_bpm is not None:
        assert record.max_heart_rate_bpm is not None
        assert record.average_heart_rate_bpm <= record.max_heart_rate_bpm
    # values only when scored, and then kcal from kJ
    if record.score_state != "SCORED":
        assert all(v is None for v in values.values()), values
    # every value is WHOOP's, unchanged (ms stay ms, 72.5 bpm never becomes 72), except kJ -> kcal
    for field, path in _SAME_VALUE[type(record)].items():
        if values[field] is not None:
            assert values[field] == _at(doc.document, path), (field, path)
    if isinstance(record, CycleRecorded | WorkoutRecorded) and record.energy_kcal is not None:
        assert record.energy_kcal == kcal_from_kj(_at(doc.document, "score.kilojoule"))
    # the local date is the date on the record's own clock
    if isinstance(record, CycleRecorded | SleepRecorded | WorkoutRecorded):
        anchor = {
            CycleRecorded: lambda r: r.start + CYCLE_DAY_SHIFT,
            SleepRecorded: lambda r: r.end,
            WorkoutRecorded: lambda r: r.start,
        }[type(record)](record)
        assert record.local_date == (anchor + parse_offset(record.timezone_offset)).date()


_STAGES = "score.stage_summary.total_"
_SAME_VALUE: dict[type, dict[str, str]] = {
    CycleRecorded: {
        "strain": "score.strain",
        "average_heart_rate_bpm": "score.average_heart_rate",
        "max_heart_rate_bpm": "score.max_heart_rate",
    },
    SleepRecorded: {
        "in_bed_ms": f"{_STAGES}in_bed_time_milli",
        "awake_ms": f"{_STAGES}awake_time_milli",
        "light_ms": f"{_STAGES}light_sleep_time_milli",
        "slow_wave_ms": f"{_STAGES}slow_wave_sleep_time_milli",
        "rem_ms": f"{_STAGES}rem_sleep_time_milli",
        "no_data_ms": f"{_STAGES}no_data_time_milli",
        "sleep_cycle_count": "score.stage_summary.sleep_cycle_count",
        "disturbance_count": "score.stage_summary.disturbance_count",
        "respiratory_rate_bpm": "score.respiratory_rate",
        "performance_pct": "score.sleep_performance_percentage",
        "consistency_pct": "score.sleep_consistency_percentage",
        "efficiency_pct": "score.sleep_efficiency_percentage",
    },
    RecoveryRecorded: {
        "user_calibrating": "score.user_calibrating",
        "recovery_score_pct": "score.recovery_score",
        "resting_heart_rate_bpm": "score.resting_heart_rate",
        "hrv_rmssd_ms": "score.hrv_rmssd_milli",
        "spo2_pct": "score.spo2_percentage",
        "skin_temp_c": "score.skin_temp_celsius",
    },
    WorkoutRecorded: {
        "strain": "score.strain",
        "average_heart_rate_bpm": "score.average_heart_rate",
        "max_heart_rate_bpm": "score.max_heart_rate",
        "percent_recorded": "score.percent_recorded",
        "distance_m": "score.distance_meter",
        "altitude_gain_m": "score.altitude_gain_meter",
        "altitude_change_m": "score.altitude_change_meter",
    },
}


def _at(document: Any, path: str) -> Any:
    for key in path.split("."):
        document = document[key]
    return document


# --- 1. realistic documents -------------------------------------------------------------------------

members = st.builds(
    lambda seed, index, days, end, state: generate_member(seed, index, days, end, current_state=state),
    seed=st.integers(0, 2**32),
    index=st.integers(0, 60),
    days=st.integers(2, 24),
    end=st.dates(dt.date(2016, 1, 1), dt.date(2030, 12, 31)),
    state=st.sampled_from(["SCORED", "PENDING_SCORE"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members)
def test_realistic_documents_always_normalize_within_bounds(member: Member) -> None:
    docs = member_documents(member)
    assert docs
    for doc in docs:
        check_records(doc, normalize_document(doc))


def test_realistic_local_dates_agree_with_the_member_s_day() -> None:
    # over a long history with DST and a trip: a main sleep, its recovery and its cycle share a date
    # unless the onset was after local midnight and before noon but the wake-up after noon (rare)
    member = generate_member(11, 1, 120, dt.date(2025, 11, 20), current_state="SCORED")
    records = {doc.event_id: normalize_document(doc)[0] for doc in member_documents(member)}
    agree = 0
    for sleep in member.sleeps:
        if sleep["nap"]:
            continue
        sleep_record = records[f"s{sleep['id']}"]
        cycle_record = records[f"c{sleep['cycle_id']}"]
        assert isinstance(sleep_record, SleepRecorded) and isinstance(cycle_record, CycleRecorded)
        agree += sleep_record.local_date == cycle_record.local_date
        recovery = records.get(f"r{sleep['cycle_id']}")
        if recovery is not None:
            assert isinstance(recovery, RecoveryRecorded)
            assert recovery.local_date == sleep_record.local_date
    assert agree == sum(not s["nap"] for s in member.sleeps)


# --- 2. any document at all --------------------------------------------------------------------------

_INTERESTING = st.sampled_from(
    [
        "2025-10-14T02:41:07.312Z",
        "2025-10-15T03:05:44.120Z",
        "2025-10-14",
        "-04:00",
        "+14:00",
        "Z",
        "SCORED",
        "PENDING_SCORE",
        "",
        0,
        21,
        21.0000001,
        -1,
        100.0,
        1e308,
        -0.0,
        2**63,
        True,
    ]
)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | _INTERESTING
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_BASES = [
    ("cycle", load("cycle_scored.json")),
    ("cycle", load("cycle_collection_page.json", 0)),
    ("sleep", load("sleep_main_scored.json")),
    ("sleep", load("sleep_nap_scored.json")),
    ("sleep", load("sleep_pending.json")),
    ("recovery", load("recovery_scored.json")),
    ("recovery", load("recovery_collection_last_page.json", 2)),
    ("workout", load("workout_running.json")),
    ("workout", load("workout_collection_last_page.json", 0)),
]


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        found.append((*prefix, key))
        found += _paths(value, (*prefix, key))
    return found


def _mutated(data: st.DataObject, body: Json) -> Json:
    body = copy.deepcopy(body)
    paths = _paths(body)
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4, unique=True)):
        node: Any = body
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or path[-1] not in node:
            continue  # an earlier mutation replaced a parent
        if data.draw(st.booleans()):
            del node[path[-1]]
        else:
            node[path[-1]] = data.draw(json_values)
    return body


def _normalizes_or_refuses(doc: DocumentFetched) -> None:
    try:
        records = normalize_document(doc)
    except NormalizationError as exc:
        assert exc.reason and not exc.retriable
        # refusals are deterministic too
        try:
            normalize_document(doc)
        except NormalizationError as again:
            assert again.reason == exc.reason
        else:
            raise AssertionError("refused once, accepted the second time") from None
        return
    check_records(doc, records)


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from(_BASES))
def test_mutated_documents_normalize_or_raise_normalization_error(
    data: st.DataObject, base: tuple[str, Json]
) -> None:
    resource_type, body = base
    mutated = _mutated(data, body)
    resource_id = str(body["cycle_id"] if resource_type == "recovery" else body["id"])
    context = data.draw(
        st.sampled_from([{}, {"sleep": load("sleep_main_scored.json")}])
        | st.dictionaries(
            st.sampled_from(["sleep", "sleep_id", "sleep_end", "sleep_timezone_offset"]),
            json_values,
            max_size=3,
        )
    )
    doc = fetched(resource_type, mutated, resource_id=resource_id, context=context)
    _normalizes_or_refuses(doc)


def _number_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _number_paths(value, f"{prefix}{key}.")]
    return [prefix[:-1]] if isinstance(node, int | float) and not isinstance(node, bool) else []


@settings(max_examples=400, deadline=None)
@given(
    st.data(),
    st.sampled_from(_BASES),
    st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(-1e4, 1e5)
    | st.integers(-10, 300),
)
def test_any_number_anywhere_stays_within_bounds_or_is_refused(
    data: st.DataObject, base: tuple[str, Json], number: float
) -> None:
    resource_type, body = base
    body = copy.deepcopy(body)
    path = data.draw(st.sampled_from(_number_paths(body)))
    *parents, leaf = path.split(".")
    (_at(body, ".".join(parents)) if parents else body)[leaf] = number
    resource_id = str(body["cycle_id"] if resource_type == "recovery" else body["id"])
    _normalizes_or_refuses(fetched(resource_type, body, resource_id=resource_id))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_RESOURCES),
    st.dictionaries(st.text(max_size=16) | st.sampled_from(list(load("workout_running.json"))), json_values),
    st.text(min_size=1, max_size=64),
    st.booleans(),
    st.dictionaries(st.text(max_size=16), json_values, max_size=3),
)
def test_arbitrary_documents_normalize_or_raise_normalization_error(
    resource_type: str, body: Json, resource_id: str, deleted: bool, context: Json
) -> None:
    doc = fetched(resource_type, body, resource_id=resource_id, deleted=deleted, context=context)
    _normalizes_or_refuses(doc)


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("cycle_scored.json", "strain"),
        ("cycle_scored.json", "kilojoule"),
        ("recovery_scored.json", "hrv_rmssd_milli"),
        ("recovery_scored.json", "skin_temp_celsius"),
        ("sleep_main_scored.json", "respiratory_rate"),
        ("workout_running.json", "distance_meter"),
    ],
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(name: str, field: str, value: float) -> None:
    # JSON has no NaN, but a document built in Python might: it must still not crash anything
    body = load(name)
    body["score"][field] = value
    with pytest.raises(NormalizationError, match="outside"):
        normalize_document(fetched(name.split("_")[0], body))
