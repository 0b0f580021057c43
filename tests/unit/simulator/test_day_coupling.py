"""A simulated day hangs together as at WHOOP: workouts move their cycle's strain, naps the next need.

The fetcher's targeted reconciliation reads these links (``processors.reconcile_plan``): a cycle
whose strain its known workouts cannot explain, and a main sleep whose need counts a nap we never
saw, each point at a lost webhook.
"""

from __future__ import annotations

from typing import Any

import pytest

from simulator.physiology import load_from_strain, strain_from_load
from simulator.timefmt import parse_query_datetime
from tests.unit.simulator.conftest import Harness

pytestmark = pytest.mark.unit

HOUR_MS = 3_600_000


def _open_cycle(harness: Harness, user_id: int) -> dict[str, Any]:
    member = harness.sim.store.members[user_id]
    doc: dict[str, Any] = harness.sim.store.cycles[member.last_cycle_id].doc
    return doc


def test_load_from_strain_inverts_strain_from_load() -> None:
    for load in (0.0, 12.5, 80.0, 240.0, 700.0):
        assert load_from_strain(strain_from_load(load)) == pytest.approx(load, rel=1e-3, abs=1e-3)


async def test_a_scored_workout_raises_its_cycle_and_its_deletion_lowers_it(harness: Harness) -> None:
    user = harness.sim.member_ids()[0]
    scenarios = harness.sim.scenarios
    before = _open_cycle(harness, user)["score"]
    workout, _ = scenarios.new_workout(user, sport_name="Running", scoring="scored")
    during = _open_cycle(harness, user)["score"]
    assert during["strain"] > before["strain"]
    assert during["kilojoule"] > before["kilojoule"]
    added = load_from_strain(during["strain"]) - load_from_strain(before["strain"])
    assert added == pytest.approx(load_from_strain(workout["score"]["strain"]), rel=0.05)

    scenarios.delete("workout", workout["id"])
    after = _open_cycle(harness, user)["score"]
    removed = load_from_strain(during["strain"]) - load_from_strain(after["strain"])
    assert removed == pytest.approx(load_from_strain(workout["score"]["strain"]), rel=1e-3)


async def test_a_pending_workout_counts_once_scored(harness: Harness) -> None:
    user = harness.sim.member_ids()[0]
    scenarios = harness.sim.scenarios
    before = _open_cycle(harness, user)["score"]["strain"]
    workout, _ = scenarios.new_workout(user, sport_name="Cycling", scoring="pending")
    assert _open_cycle(harness, user)["score"]["strain"] == pytest.approx(before, abs=1e-3)
    scenarios.complete_scoring("workout", workout["id"], "SCORED")
    assert _open_cycle(harness, user)["score"]["strain"] > before


async def test_the_closed_cycle_keeps_its_workouts_load(harness: Harness) -> None:
    user = harness.sim.member_ids()[1]
    scenarios = harness.sim.scenarios
    workout, _ = scenarios.new_workout(user, sport_name="Running", scoring="scored")
    cycle_id = _open_cycle(harness, user)["id"]
    harness.clock.advance(16 * 3600)
    scenarios.new_sleep(user, nap=False, scoring="scored")
    closed = harness.sim.store.cycles[cycle_id].doc
    assert closed["end"] is not None
    hours = (parse_query_datetime(closed["end"]) - parse_query_datetime(closed["start"])) / HOUR_MS
    rest = load_from_strain(closed["score"]["strain"]) - load_from_strain(workout["score"]["strain"])
    # what the workout does not explain is a resting day's load (35-85 per 24 h in physiology)
    assert 35.0 * hours / 24 - 0.5 <= rest <= 85.0 * hours / 24 + 0.5


async def test_a_nap_lowers_the_next_main_sleeps_need(harness: Harness) -> None:
    napper, other = harness.sim.member_ids()[:2]
    scenarios = harness.sim.scenarios
    harness.clock.advance(8 * 3600)
    scenarios.new_sleep(napper, nap=True, scoring="scored")
    harness.clock.advance(12 * 3600)
    napped, _ = scenarios.new_sleep(napper, nap=False, scoring="scored")
    rested, _ = scenarios.new_sleep(other, nap=False, scoring="scored")
    assert napped["score"]["sleep_needed"]["need_from_recent_nap_milli"] < 0
    assert rested["score"]["sleep_needed"]["need_from_recent_nap_milli"] == 0
