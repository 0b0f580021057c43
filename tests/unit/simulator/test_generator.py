"""The generator: deterministic per seed, physiologically consistent, several zones with DST and travel."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from simulator.generator import generate_member
from simulator.timefmt import parse_query_datetime

pytestmark = pytest.mark.unit

END = dt.date(2025, 11, 10)


def _members(seed: int, count: int = 6, days: int = 30) -> list:  # type: ignore[type-arg]
    return [generate_member(seed, i, days, END, current_state="SCORED") for i in range(count)]


def test_same_seed_same_data_and_index_independent_of_count() -> None:
    first, again = _members(11), _members(11)
    assert [m.cycles + m.sleeps + m.workouts + m.recoveries for m in first] == [
        m.cycles + m.sleeps + m.workouts + m.recoveries for m in again
    ]
    assert generate_member(11, 4, 30, END, current_state="SCORED").profile == first[4].profile
    assert _members(12)[0].sleeps != first[0].sleeps
    assert len({m.user_id for m in first}) == len(first)


def test_cycles_are_contiguous_and_start_with_their_main_sleep() -> None:
    for member in _members(3):
        cycles = member.cycles
        for before, after in itertools.pairwise(cycles):
            assert before["end"] == after["start"]
        assert cycles[-1]["end"] is None
        main = {s["cycle_id"]: s for s in member.sleeps if not s["nap"]}
        assert set(main) == {c["id"] for c in cycles}
        for cycle in cycles:
            assert main[cycle["id"]]["start"] == cycle["start"]
        for recovery in member.recoveries:
            assert recovery["sleep_id"] == main[recovery["cycle_id"]]["id"]
        naps = [s for s in member.sleeps if s["nap"]]
        assert not {n["id"] for n in naps} & {r["sleep_id"] for r in member.recoveries}


def test_scores_add_up() -> None:
    for member in _members(5):
        for sleep in member.sleeps:
            if sleep["score"] is None:
                continue
            stages = sleep["score"]["stage_summary"]
            parts = (
                stages["total_awake_time_milli"]
                + stages["total_no_data_time_milli"]
                + stages["total_light_sleep_time_milli"]
                + stages["total_slow_wave_sleep_time_milli"]
                + stages["total_rem_sleep_time_milli"]
            )
            in_bed = parse_query_datetime(sleep["end"]) - parse_query_datetime(sleep["start"])
            assert parts == stages["total_in_bed_time_milli"] == in_bed
            assert sleep["score"]["sleep_needed"]["need_from_recent_nap_milli"] <= 0
        for workout in member.workouts:
            duration = parse_query_datetime(workout["end"]) - parse_query_datetime(workout["start"])
            if workout["score"] is not None:
                assert sum(workout["score"]["zone_durations"].values()) == duration
                assert 0 <= workout["score"]["strain"] <= 21
                assert workout["score"]["average_heart_rate"] <= workout["score"]["max_heart_rate"]
        for recovery in member.recoveries:
            if recovery["score"] is not None:
                assert 30 <= recovery["score"]["resting_heart_rate"] <= 90
                assert 1 <= recovery["score"]["recovery_score"] <= 99


def test_time_zones_dst_and_travel() -> None:
    members = _members(1)
    offsets = [{c["timezone_offset"] for c in m.cycles} for m in members]
    assert {"-04:00", "-05:00"} <= offsets[0]  # New York across the Nov 2 DST change
    assert {"+01:00", "Z"} <= offsets[1]  # London across the Oct 26 DST change
    assert len(offsets[1]) >= 3  # ... and a trip abroad
    assert {"-07:00", "-08:00"} <= offsets[3]  # Los Angeles
    assert len({m.home_zone for m in members}) == 6


def test_many_sports_with_distance_only_where_it_moves() -> None:
    workouts = [w for m in _members(2, count=6, days=60) for w in m.workouts if w["score"] is not None]
    sports = {w["sport_name"] for w in workouts}
    assert len(sports) >= 12
    for workout in workouts:
        has_distance = "distance_meter" in workout["score"]
        assert has_distance == (
            workout["sport_name"] in {"running", "cycling", "swimming", "walking", "hiking-rucking", "rowing"}
        )
